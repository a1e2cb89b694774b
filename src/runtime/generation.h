// The generation loop (prefill → sample → decode until a stop) and its statistics, reported in the
// field names of ExecuTorch's runner (`PyTorchObserver {...}`) so existing tooling can parse them.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/session.h"
#include "sampling/sampler.h"

namespace ge {

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t reused_prompt_tokens = 0;  // prefix already in the KV cache
  int64_t generated_tokens = 0;
  // Wall-clock timestamps, milliseconds since the Unix epoch.
  double model_load_start_ms = 0, model_load_end_ms = 0;
  double inference_start_ms = 0, prompt_eval_end_ms = 0, first_token_ms = 0, inference_end_ms = 0;
  double aggregate_sampling_time_ms = 0;

  double prefill_tokens_per_sec() const;
  double decode_tokens_per_sec() const;
  // `PyTorchObserver {...}` JSON line.
  std::string observer_line() const;
  // One human-readable line.
  std::string summary() const;
};

enum class StopReason { kMaxTokens, kStopToken, kCallback, kContextFull };
const char* stop_reason_name(StopReason r);

struct GenerateOptions {
  int32_t max_new_tokens = 256;
  std::vector<int32_t> stop_ids;  // generation ends after sampling one of these (not passed on)
  // Sample on the device and replay recorded decode steps when the backend can and the sampler
  // needs no penalties (those, like logprobs, need the logits on the host). false: host path.
  bool device_sampling = true;
};

double now_ms();

// Whether generate() takes the device path for this session, sampler and options.
bool uses_device_sampling(const Session& session, const Sampler& sampler, const GenerateOptions& options);

// Prefills `prompt` (reusing the longest prefix already cached in `session`), then samples and
// decodes until a stop. on_token(id) receives every generated token that is not a stop token and
// returns false to end generation.
Result<StopReason> generate(Session& session, std::span<const int32_t> prompt, Sampler& sampler,
                            const GenerateOptions& options, const std::function<bool(int32_t)>& on_token,
                            GenerationStats* stats);

}  // namespace ge
