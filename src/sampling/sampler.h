// Token sampling: the penalty / temperature / top-k / top-p / min-p chain over one logits row,
// with a seeded, platform-independent RNG so that a seed reproduces a generation exactly.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/status.h"

namespace ge {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  int32_t top_k = 64;        // 0 = disabled
  float top_p = 0.95f;       // 1 = disabled
  float min_p = 0.0f;        // 0 = disabled
  float repetition_penalty = 1.0f;  // 1 = disabled
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t penalty_last_n = 64;  // tokens of history the penalties look at; 0 = none, -1 = all
  uint64_t seed = 0;
  bool has_seed = false;  // false: a random seed is drawn when the Sampler is built
};

// kInvalidArgument naming the field for: non-finite values, temperature < 0, top_k < 0,
// top_p outside (0, 1], min_p outside [0, 1], repetition_penalty <= 0, penalty_last_n < -1.
Status validate(const SamplingParams& params);

// Index of the largest logit; ties go to the lowest id, NaN never wins (all NaN: 0).
// Returns -1 for an empty row.
int32_t argmax(std::span<const float> logits);

// llama.cpp's penalties over the last `penalty_last_n` tokens of `history`: for every distinct
// token t seen c times there, logit /= repetition_penalty if it is positive (*= if not), then
// logit -= c * frequency_penalty + presence_penalty. Ids outside the row are ignored.
void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                     const SamplingParams& params);

// The chain, in this order:
//   1. penalties (apply_penalties), written into `logits`;
//   2. temperature == 0: argmax of the penalised logits;
//   3. top-k: keep the k largest logits (nth_element, O(V); ties broken towards lower ids);
//   4. softmax of logit / temperature over what is left;
//   5. top-p: keep the most probable tokens until their mass reaches top_p (the token that
//      crosses the threshold stays);
//   6. min-p: drop tokens with p < min_p * p_max;
//   7. draw from the renormalised remainder.
// Non-finite logits: NaN counts as -inf; if any logit is +inf the lowest such id is returned.
// The RNG is std::mt19937_64 seeded with `seed`; a draw uses its top 53 bits as a double in
// [0, 1), so the same seed gives the same tokens on every platform.
class Sampler {
 public:
  // `p` should have passed validate(); out-of-range values are clamped to the nearest valid
  // setting rather than trusted.
  explicit Sampler(SamplingParams p);

  // Returns a token id in [0, logits.size()), or -1 if `logits` is empty. `logits` is modified:
  // on return it holds the penalised logits.
  int32_t sample(std::span<float> logits, std::span<const int32_t> history);

  // Restarts the random sequence from the seed (the drawn one when has_seed was false).
  void reset();

  const SamplingParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
    float p;
  };
  double next_uniform();
  int32_t draw(size_t n, double total);

  SamplingParams params_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;  // its output sequence is fixed by the C++ standard
  std::vector<Candidate> candidates_;  // scratch, reused between calls
};

}  // namespace ge
