// Generation loop and stats formatting.
#include "runtime/generation.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

namespace ge {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kMaxTokens: return "length";
    case StopReason::kStopToken: return "stop";
    case StopReason::kCallback: return "stop";
    case StopReason::kContextFull: return "length";
  }
  return "stop";
}

double GenerationStats::prefill_tokens_per_sec() const {
  const double ms = prompt_eval_end_ms - inference_start_ms;
  return ms > 0 ? static_cast<double>(prompt_tokens - reused_prompt_tokens) * 1000.0 / ms : 0.0;
}

double GenerationStats::decode_tokens_per_sec() const {
  // The first generated token comes from the prefill's logits; decode steps produce the rest.
  const double ms = inference_end_ms - prompt_eval_end_ms;
  return ms > 0 && generated_tokens > 0 ? static_cast<double>(generated_tokens) * 1000.0 / ms : 0.0;
}

std::string GenerationStats::observer_line() const {
  auto i64 = [](double v) { return static_cast<long long>(v); };
  std::ostringstream os;
  os << "PyTorchObserver {";
  if (prefill_tokens_per_sec() > 0) os << "\"prefill_token_per_sec\":" << prefill_tokens_per_sec() << ",";
  if (decode_tokens_per_sec() > 0) os << "\"decode_token_per_sec\":" << decode_tokens_per_sec() << ",";
  os << "\"prompt_tokens\":" << prompt_tokens << ",\"generated_tokens\":" << generated_tokens
     << ",\"model_load_start_ms\":" << i64(model_load_start_ms) << ",\"model_load_end_ms\":" << i64(model_load_end_ms)
     << ",\"inference_start_ms\":" << i64(inference_start_ms) << ",\"inference_end_ms\":" << i64(inference_end_ms)
     << ",\"model_execution_start_ms\":" << i64(inference_start_ms)
     << ",\"model_execution_end_ms\":" << i64(inference_end_ms)
     << ",\"prompt_eval_end_ms\":" << i64(prompt_eval_end_ms) << ",\"first_token_ms\":" << i64(first_token_ms)
     << ",\"aggregate_sampling_time_ms\":" << i64(aggregate_sampling_time_ms)
     << ",\"SCALING_FACTOR_UNITS_PER_SECOND\":1000}";
  return os.str();
}

std::string GenerationStats::summary() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "prompt %lld tokens (%lld reused) at %.1f tok/s, generated %lld tokens at %.1f tok/s, "
                "first token after %.0f ms, load %.0f ms",
                static_cast<long long>(prompt_tokens), static_cast<long long>(reused_prompt_tokens),
                prefill_tokens_per_sec(), static_cast<long long>(generated_tokens), decode_tokens_per_sec(),
                first_token_ms - inference_start_ms, model_load_end_ms - model_load_start_ms);
  return buf;
}

bool uses_device_sampling(const Session& session, const Sampler& sampler, const GenerateOptions& opt) {
  const SamplingParams& p = sampler.params();
  const bool penalties = p.penalty_last_n != 0 &&
                         (p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f);
  return opt.device_sampling && session.device_decode_available() && !penalties;
}

Result<StopReason> generate(Session& session, std::span<const int32_t> prompt, Sampler& sampler,
                            const GenerateOptions& opt, const std::function<bool(int32_t)>& on_token,
                            GenerationStats* stats) {
  if (prompt.empty()) return invalid_argument("generate: the prompt is empty");
  if (opt.max_new_tokens < 0) return invalid_argument("generate: max_new_tokens must be >= 0");
  if (static_cast<int64_t>(prompt.size()) > session.context_len())
    return invalid_argument("prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                            std::to_string(session.context_len()));
  GenerationStats local;
  GenerationStats& st = stats ? *stats : local;
  st.inference_start_ms = now_ms();
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  const int64_t V = session.model().config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(V));

  // Reuse the cached prefix; at least the last prompt token is recomputed for its logits.
  int32_t keep = std::min<int32_t>(session.common_prefix(prompt), static_cast<int32_t>(prompt.size()) - 1);
  if (!session.truncate(keep).is_ok()) {
    session.reset();
    keep = 0;
  }
  st.reused_prompt_tokens = keep;
  const std::span<const int32_t> fresh = prompt.subspan(static_cast<size_t>(keep));

  StopReason reason = StopReason::kMaxTokens;
  if (uses_device_sampling(session, sampler, opt)) {
    // Device path: the token is sampled on the device and each decode step replays one recorded
    // graph; only token ids cross to the host.
    GE_RETURN_IF_ERROR(session.set_device_sampling(sampler.params(), sampler.seed()));
    Result<int32_t> next = session.prefill_sample(fresh);
    if (!next.is_ok()) return next.status();
    st.prompt_eval_end_ms = now_ms();
    for (int32_t i = 0; i < opt.max_new_tokens; ++i) {
      const int32_t tok = *next;
      if (i == 0) st.first_token_ms = now_ms();
      if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), tok) != opt.stop_ids.end()) {
        reason = StopReason::kStopToken;
        break;
      }
      ++st.generated_tokens;
      if (on_token && !on_token(tok)) {
        reason = StopReason::kCallback;
        break;
      }
      if (i + 1 == opt.max_new_tokens) break;
      if (session.position() >= session.context_len()) {
        reason = StopReason::kContextFull;
        break;
      }
      next = session.decode_sample(tok);
      if (!next.is_ok()) return next.status();
    }
    st.inference_end_ms = now_ms();
    return reason;
  }

  GE_RETURN_IF_ERROR(session.prefill(fresh, logits.data()));
  st.prompt_eval_end_ms = now_ms();

  std::vector<int32_t> history(prompt.begin(), prompt.end());
  for (int32_t i = 0; i < opt.max_new_tokens; ++i) {
    const double s0 = now_ms();
    const int32_t tok = sampler.sample(logits, history);
    st.aggregate_sampling_time_ms += now_ms() - s0;
    if (i == 0) st.first_token_ms = now_ms();
    if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), tok) != opt.stop_ids.end()) {
      reason = StopReason::kStopToken;
      break;
    }
    ++st.generated_tokens;
    history.push_back(tok);
    if (on_token && !on_token(tok)) {
      reason = StopReason::kCallback;
      break;
    }
    if (i + 1 == opt.max_new_tokens) break;
    if (session.position() >= session.context_len()) {
      reason = StopReason::kContextFull;
      break;
    }
    GE_RETURN_IF_ERROR(session.decode(tok, logits.data()));
  }
  st.inference_end_ms = now_ms();
  return reason;
}

}  // namespace ge
