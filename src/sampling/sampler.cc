// Sampler chain (penalties -> greedy | top-k -> softmax(T) -> top-p -> min-p -> draw). top-k is a
// bounded heap over one pass of the logits, so a 262144-entry row is never sorted.
#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace ge {
namespace {

bool finite(float v) { return std::isfinite(v); }

Status field_error(const char* field, const std::string& why) {
  return invalid_argument(std::string("sampling parameters: ") + field + " " + why);
}

}  // namespace

Status validate(const SamplingParams& p) {
  if (!finite(p.temperature) || p.temperature < 0.0f) {
    return field_error("temperature", "must be a finite number >= 0 (0 = greedy), got " +
                                          std::to_string(p.temperature));
  }
  if (p.top_k < 0) {
    return field_error("top_k", "must be >= 0 (0 = disabled), got " + std::to_string(p.top_k));
  }
  if (!finite(p.top_p) || p.top_p <= 0.0f || p.top_p > 1.0f) {
    return field_error("top_p", "must be in (0, 1], got " + std::to_string(p.top_p));
  }
  if (!finite(p.min_p) || p.min_p < 0.0f || p.min_p > 1.0f) {
    return field_error("min_p", "must be in [0, 1], got " + std::to_string(p.min_p));
  }
  if (!finite(p.repetition_penalty) || p.repetition_penalty <= 0.0f) {
    return field_error("repetition_penalty",
                       "must be a finite number > 0 (1 = disabled), got " +
                           std::to_string(p.repetition_penalty));
  }
  if (!finite(p.presence_penalty)) {
    return field_error("presence_penalty", "must be finite");
  }
  if (!finite(p.frequency_penalty)) {
    return field_error("frequency_penalty", "must be finite");
  }
  if (p.penalty_last_n < -1) {
    return field_error("penalty_last_n", "must be >= -1 (-1 = whole history, 0 = none), got " +
                                             std::to_string(p.penalty_last_n));
  }
  return Status::ok();
}

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) return -1;
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    if (std::isnan(v)) continue;
    if (best < 0 || v > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best < 0 ? 0 : best;
}

void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                     const SamplingParams& p) {
  if (p.penalty_last_n == 0 || history.empty()) return;
  if (p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f) {
    return;
  }
  size_t n = history.size();
  if (p.penalty_last_n > 0) n = std::min(n, static_cast<size_t>(p.penalty_last_n));
  std::vector<int32_t> window;
  window.reserve(n);
  for (int32_t id : history.subspan(history.size() - n)) {
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) window.push_back(id);
  }
  std::sort(window.begin(), window.end());
  for (size_t i = 0; i < window.size();) {
    size_t j = i;
    while (j < window.size() && window[j] == window[i]) ++j;
    const float count = static_cast<float>(j - i);
    float& logit = logits[static_cast<size_t>(window[i])];
    if (logit > 0.0f) {
      logit /= p.repetition_penalty;
    } else {
      logit *= p.repetition_penalty;
    }
    logit -= count * p.frequency_penalty + p.presence_penalty;
    i = j;
  }
}

Sampler::Sampler(SamplingParams p) : params_(p) {
  // Fall back to the default for any field validate() would reject.
  const SamplingParams d;
  if (!finite(params_.temperature) || params_.temperature < 0.0f) params_.temperature = d.temperature;
  if (params_.top_k < 0) params_.top_k = 0;
  if (!finite(params_.top_p) || params_.top_p <= 0.0f || params_.top_p > 1.0f) params_.top_p = d.top_p;
  if (!finite(params_.min_p) || params_.min_p < 0.0f || params_.min_p > 1.0f) params_.min_p = d.min_p;
  if (!finite(params_.repetition_penalty) || params_.repetition_penalty <= 0.0f) {
    params_.repetition_penalty = d.repetition_penalty;
  }
  if (!finite(params_.presence_penalty)) params_.presence_penalty = d.presence_penalty;
  if (!finite(params_.frequency_penalty)) params_.frequency_penalty = d.frequency_penalty;
  if (params_.penalty_last_n < -1) params_.penalty_last_n = d.penalty_last_n;

  if (params_.has_seed) {
    seed_ = params_.seed;
  } else {
    std::random_device rd;
    seed_ = (static_cast<uint64_t>(rd()) << 32) ^ static_cast<uint64_t>(rd());
  }
  reset();
}

void Sampler::reset() { rng_.seed(seed_); }

double Sampler::next_uniform() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // 53 random bits -> [0, 1)
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
  if (logits.empty()) return -1;
  if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) return -1;
  apply_penalties(logits, history, params_);

  const size_t vocab = logits.size();
  // argmax already returns the lowest +inf id; the scans below stop at the first one. A
  // temperature so small that 1/T overflows is greedy too (0 * inf would poison the softmax).
  const float inv_t = 1.0f / params_.temperature;
  if (params_.temperature == 0.0f || !std::isfinite(inv_t)) return argmax(logits);
  constexpr float kInf = std::numeric_limits<float>::infinity();

  // "a before b": larger logit, then lower id. A strict total order, so results never depend
  // on the order the standard library visits equal elements.
  auto better = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };

  // 3. top-k: a heap whose top is the worst of the k best seen so far.
  candidates_.clear();
  const bool use_top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab;
  if (use_top_k) {
    const size_t k = static_cast<size_t>(params_.top_k);
    candidates_.reserve(k);
    for (size_t i = 0; i < vocab; ++i) {
      const float v = logits[i];
      if (!(v > -kInf)) continue;  // -inf and NaN
      if (v == kInf) return static_cast<int32_t>(i);
      const Candidate c{v, static_cast<int32_t>(i), 0.0f};
      if (candidates_.size() < k) {
        candidates_.push_back(c);
        std::push_heap(candidates_.begin(), candidates_.end(), better);
      } else if (better(c, candidates_.front())) {
        std::pop_heap(candidates_.begin(), candidates_.end(), better);
        candidates_.back() = c;
        std::push_heap(candidates_.begin(), candidates_.end(), better);
      }
    }
    std::sort(candidates_.begin(), candidates_.end(), better);
  } else {
    candidates_.reserve(vocab);
    for (size_t i = 0; i < vocab; ++i) {
      const float v = logits[i];
      if (v == kInf) return static_cast<int32_t>(i);
      if (v > -kInf) {
        candidates_.push_back(Candidate{v, static_cast<int32_t>(i), 0.0f});
      }
    }
  }
  if (candidates_.empty()) return argmax(logits);  // every logit is -inf or NaN

  // 4. softmax(logit / T).
  float max_logit = candidates_[0].logit;
  for (const Candidate& c : candidates_) max_logit = std::max(max_logit, c.logit);
  double total = 0.0;
  for (Candidate& c : candidates_) {
    c.p = std::exp((c.logit - max_logit) * inv_t);
    total += c.p;
  }

  // 5. top-p. After top-k the candidates are sorted and a walk finds the cut. Without top-k the
  //    row is never sorted: quickselect on probability mass narrows [lo, hi) to the block that
  //    holds the crossing token (expected O(V)), and only that small block is sorted.
  if (params_.top_p < 1.0f) {
    const double target = static_cast<double>(params_.top_p) * total;
    size_t lo = 0;
    size_t hi = candidates_.size();
    double mass_before = 0.0;  // mass of [0, lo), all better than anything in [lo, end)
    if (!use_top_k) {
      while (hi - lo > 64) {
        const size_t mid = lo + (hi - lo) / 2;
        std::nth_element(candidates_.begin() + static_cast<std::ptrdiff_t>(lo),
                         candidates_.begin() + static_cast<std::ptrdiff_t>(mid),
                         candidates_.begin() + static_cast<std::ptrdiff_t>(hi), better);
        double mass = 0.0;
        for (size_t i = lo; i <= mid; ++i) mass += candidates_[i].p;
        if (mass_before + mass >= target) {
          hi = mid + 1;
        } else {
          mass_before += mass;
          lo = mid + 1;
        }
      }
      std::sort(candidates_.begin() + static_cast<std::ptrdiff_t>(lo),
                candidates_.begin() + static_cast<std::ptrdiff_t>(hi), better);
    }
    size_t keep = lo;
    while (keep < hi && mass_before < target) mass_before += candidates_[keep++].p;
    candidates_.resize(std::max<size_t>(keep, 1));  // the crossing token stays
  }

  // 6. min-p relative to the most probable token.
  if (params_.min_p > 0.0f) {
    float p_max = 0.0f;
    for (const Candidate& c : candidates_) p_max = std::max(p_max, c.p);
    const float threshold = params_.min_p * p_max;
    candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(),
                                     [&](const Candidate& c) { return c.p < threshold; }),
                      candidates_.end());
  }

  // 7. draw.
  total = 0.0;
  for (const Candidate& c : candidates_) total += c.p;
  return draw(candidates_.size(), total);
}

int32_t Sampler::draw(size_t n, double total) {
  const double r = next_uniform() * total;
  double cum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cum += candidates_[i].p;
    if (r < cum) return candidates_[i].id;
  }
  return candidates_[n - 1].id;  // rounding left r at the very top
}

}  // namespace ge
