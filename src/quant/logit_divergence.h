// How far a quantized model's next-token distributions are from the unquantized model's: KL
// divergence of the softmaxed logits per position, top-1 agreement and the largest logit change.
#pragma once

#include <cstdint>

namespace ge {

struct LogitDivergence {
  double mean_kl = 0.0;  // mean over positions of KL(P_ref ‖ P_test), in nats
  double max_kl = 0.0;
  double top1_agreement = 0.0;  // fraction of positions whose argmax agrees
  double max_abs_logit_diff = 0.0;
  int64_t positions = 0;
};

// `ref` and `test` are [positions, vocab] logits (row-major). Softmax and KL are computed in double
// with the max subtracted, so any finite logits are safe.
LogitDivergence compare_logits(const float* ref, const float* test, int64_t positions, int64_t vocab);

// KL(softmax(p) ‖ softmax(q)) of one row of `vocab` logits.
double kl_divergence_logits(const float* p, const float* q, int64_t vocab);

}  // namespace ge
