// KL divergence between two softmax distributions given as logits, via log-sum-exp in double:
// KL(P‖Q) = Σ p_i (log p_i − log q_i), log p_i = a_i − lse(a).
#include "quant/logit_divergence.h"

#include <algorithm>
#include <cmath>

namespace ge {
namespace {

double log_sum_exp(const float* x, int64_t n) {
  const double m = *std::max_element(x, x + n);
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - m);
  return m + std::log(s);
}

}  // namespace

double kl_divergence_logits(const float* p, const float* q, int64_t vocab) {
  if (vocab <= 0) return 0.0;
  const double lp = log_sum_exp(p, vocab), lq = log_sum_exp(q, vocab);
  double kl = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    const double log_p = static_cast<double>(p[i]) - lp;
    const double log_q = static_cast<double>(q[i]) - lq;
    kl += std::exp(log_p) * (log_p - log_q);
  }
  return std::max(kl, 0.0);  // rounding can leave a tiny negative for identical rows
}

LogitDivergence compare_logits(const float* ref, const float* test, int64_t positions, int64_t vocab) {
  LogitDivergence d;
  if (positions <= 0 || vocab <= 0) return d;
  int64_t agree = 0;
  for (int64_t t = 0; t < positions; ++t) {
    const float* a = ref + t * vocab;
    const float* b = test + t * vocab;
    const double kl = kl_divergence_logits(a, b, vocab);
    d.mean_kl += kl;
    d.max_kl = std::max(d.max_kl, kl);
    agree += (std::max_element(a, a + vocab) - a) == (std::max_element(b, b + vocab) - b) ? 1 : 0;
    for (int64_t i = 0; i < vocab; ++i) {
      d.max_abs_logit_diff = std::max(d.max_abs_logit_diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    }
  }
  d.positions = positions;
  d.mean_kl /= static_cast<double>(positions);
  d.top1_agreement = static_cast<double>(agree) / static_cast<double>(positions);
  return d;
}

}  // namespace ge
