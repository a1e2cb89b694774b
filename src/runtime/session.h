// A Session is one sequence being generated: it owns its KV cache and position. It prefills in
// chunks (never more than the model's max_chunk per forward, so sliding rings stay exact) and
// decodes one token at a time; only the last position goes through the LM head.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "model/gemma_model.h"

namespace ge {

class Session {
 public:
  Session(GemmaModel& model, std::unique_ptr<KvCache> cache, int32_t context_len)
      : model_(model), cache_(std::move(cache)), context_len_(context_len) {}

  // Appends `tokens` to the sequence. When `last_logits` is non-null it receives the logits [vocab]
  // of the final token.
  Status prefill(std::span<const int32_t> tokens, float* last_logits);
  // Appends one token and writes its logits [vocab].
  Status decode(int32_t token, float* logits);
  // ---- device-resident decode (backends with supports_device_decode): the token is sampled on
  // the device and decode steps replay one recorded graph; only the token id comes back. ----
  bool device_decode_available() const { return model_.supports_device_decode(); }
  // Sampler parameters for the device (penalties are not applied there: callers that need them use
  // prefill/decode and the host Sampler). The RNG counter restarts when `seed` changes.
  Status set_device_sampling(const SamplingParams& params, uint64_t seed);
  // prefill(tokens), then the next token sampled on the device; returns it (not yet appended).
  Result<int32_t> prefill_sample(std::span<const int32_t> tokens);
  // Appends `token` (normally the one the previous call returned) and returns the next sampled one.
  Result<int32_t> decode_sample(int32_t token);
  // Why decode steps run eagerly although the backend could record them (ok when they do not).
  Status graph_status() const { return graph_.last_capture_error; }

  // Keeps the first n tokens (prompt-prefix reuse). Fails when a sliding ring has already
  // overwritten keys that position n still needs; then the caller re-prefills from 0.
  Status truncate(int32_t n);
  void reset() {
    history_.clear();
    high_water_ = 0;
    pending_ = -1;
  }

  int32_t position() const { return static_cast<int32_t>(history_.size()); }
  int32_t context_len() const { return context_len_; }
  const std::vector<int32_t>& history() const { return history_; }
  // Length of the common prefix of the cached sequence and `tokens`.
  int32_t common_prefix(std::span<const int32_t> tokens) const;
  size_t kv_bytes() const { return cache_->bytes(); }
  // Continuous batching (runtime/scheduler.h): the cache to name in a SequenceChunk at position(),
  // and append() to record the tokens once GemmaModel::forward_batch has stored them.
  KvCache& cache() { return *cache_; }
  void append(std::span<const int32_t> tokens);
  GemmaModel& model() const { return model_; }

 private:
  GemmaModel& model_;
  std::unique_ptr<KvCache> cache_;
  int32_t context_len_;
  std::vector<int32_t> history_;
  int32_t high_water_ = 0;  // one past the highest position written since reset (ring overwrite check)
  Status ensure_slot();
  // Device decode: the slot (token, position, sampler state), the recorded step, and host mirrors
  // of what the slot holds (pending_: the token it will decode next at position(), -1 = unknown).
  DeviceDecodeSlot slot_;
  DecodeGraph graph_;
  int32_t pending_ = -1;
  uint64_t seed_ = 0, step_ = 0;
  bool seeded_ = false;
};

}  // namespace ge
