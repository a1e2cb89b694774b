// Session: chunked prefill, single-token decode, prefix truncation.
#include "runtime/session.h"

#include <algorithm>

namespace ge {

Status Session::prefill(std::span<const int32_t> tokens, float* last_logits) {
  if (tokens.empty()) return invalid_argument("prefill: no tokens");
  const int64_t end = static_cast<int64_t>(history_.size()) + static_cast<int64_t>(tokens.size());
  if (end > context_len_)
    return invalid_argument("prompt of " + std::to_string(end) + " tokens exceeds the context of " +
                            std::to_string(context_len_) + " tokens");
  const int32_t chunk = model_.max_chunk();
  size_t done = 0;
  while (done < tokens.size()) {
    const int32_t n = static_cast<int32_t>(std::min<size_t>(static_cast<size_t>(chunk), tokens.size() - done));
    const bool last = done + static_cast<size_t>(n) == tokens.size();
    const LogitsMode mode = last && last_logits != nullptr ? LogitsMode::kLast : LogitsMode::kNone;
    GE_RETURN_IF_ERROR(model_.forward(*cache_, tokens.data() + done, n, position(), mode, last_logits));
    history_.insert(history_.end(), tokens.begin() + static_cast<std::ptrdiff_t>(done),
                    tokens.begin() + static_cast<std::ptrdiff_t>(done) + n);
    done += static_cast<size_t>(n);
  }
  high_water_ = std::max(high_water_, position());
  pending_ = -1;
  return Status::ok();
}

Status Session::ensure_slot() {
  if (slot_.token != nullptr) return Status::ok();
  GE_ASSIGN_OR_RETURN(slot_, model_.create_decode_slot());
  return Status::ok();
}

Status Session::set_device_sampling(const SamplingParams& params, uint64_t seed) {
  GE_RETURN_IF_ERROR(ensure_slot());
  if (!seeded_ || seed != seed_) step_ = 0;
  seed_ = seed;
  seeded_ = true;
  return model_.set_device_sampling(slot_, params, seed_, step_);
}

Result<int32_t> Session::prefill_sample(std::span<const int32_t> tokens) {
  if (tokens.empty()) return invalid_argument("prefill: no tokens");
  GE_RETURN_IF_ERROR(ensure_slot());
  if (!seeded_) GE_RETURN_IF_ERROR(set_device_sampling(SamplingParams{}, 0));
  // All but the last chunk as usual; the last one samples on the device.
  const size_t chunk = static_cast<size_t>(model_.max_chunk());
  const size_t last = (tokens.size() - 1) / chunk * chunk;
  if (last > 0) GE_RETURN_IF_ERROR(prefill(tokens.first(last), nullptr));
  const std::span<const int32_t> tail = tokens.subspan(last);
  if (static_cast<int64_t>(position()) + static_cast<int64_t>(tail.size()) > context_len_)
    return invalid_argument("prompt of " + std::to_string(position() + tail.size()) + " tokens exceeds the context of " +
                            std::to_string(context_len_) + " tokens");
  GE_ASSIGN_OR_RETURN(const int32_t tok, model_.prefill_sample(*cache_, slot_, tail.data(),
                                                               static_cast<int32_t>(tail.size()), position()));
  history_.insert(history_.end(), tail.begin(), tail.end());
  high_water_ = std::max(high_water_, position());
  ++step_;
  pending_ = tok;
  return tok;
}

Result<int32_t> Session::decode_sample(int32_t token) {
  if (position() >= context_len_)
    return invalid_argument("context of " + std::to_string(context_len_) + " tokens is full");
  GE_RETURN_IF_ERROR(ensure_slot());
  if (!seeded_) GE_RETURN_IF_ERROR(set_device_sampling(SamplingParams{}, 0));
  // The slot already holds the token the device sampled; anything else is uploaded (and checked).
  if (token != pending_) GE_RETURN_IF_ERROR(model_.set_decode_input(slot_, token, position()));
  Result<int32_t> next = model_.decode_device(*cache_, slot_, graph_);
  if (!next.is_ok()) {
    pending_ = -1;
    return next.status();
  }
  history_.push_back(token);
  high_water_ = std::max(high_water_, position());
  ++step_;
  pending_ = *next;
  return *next;
}

Status Session::decode(int32_t token, float* logits) {
  if (position() >= context_len_)
    return invalid_argument("context of " + std::to_string(context_len_) + " tokens is full");
  GE_RETURN_IF_ERROR(model_.forward(*cache_, &token, 1, position(), LogitsMode::kLast, logits));
  history_.push_back(token);
  high_water_ = std::max(high_water_, position());
  pending_ = -1;
  return Status::ok();
}

void Session::append(std::span<const int32_t> tokens) {
  history_.insert(history_.end(), tokens.begin(), tokens.end());
  high_water_ = std::max(high_water_, position());
  pending_ = -1;
}

int32_t Session::common_prefix(std::span<const int32_t> tokens) const {
  const size_t n = std::min(tokens.size(), history_.size());
  size_t i = 0;
  while (i < n && tokens[i] == history_[i]) ++i;
  return static_cast<int32_t>(i);
}

Status Session::truncate(int32_t n) {
  if (n < 0 || n > position()) return invalid_argument("truncate: position out of range");
  // A sliding ring of window + chunk slots still holds the keys that position n needs as long as
  // no more than `chunk` later positions were written over them.
  const GemmaConfig& c = model_.config();
  bool has_sliding = false;
  for (const auto& l : c.layers) has_sliding |= l.sliding;
  if (has_sliding && n > 0 && high_water_ - n > model_.max_chunk()) {
    history_.clear();
    high_water_ = 0;
    pending_ = -1;
    return unsupported("truncate: the sliding-window cache no longer holds position " + std::to_string(n));
  }
  history_.resize(static_cast<size_t>(n));  // high_water_ stays: those slots were written
  pending_ = -1;
  return Status::ok();
}

}  // namespace ge
