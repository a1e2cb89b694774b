// ggml's reference (non-imatrix) k-quant search, written out for Q4_K and Q6_K: a per-sub-block
// scale (and min) is chosen by trying a few candidate grids and keeping the weighted least-squares
// best, then the scales themselves are quantized to 6 or 8 bits against one fp16 super-scale.
#include "quant/k_quantize.h"

#include <cmath>
#include <cstring>

#include "core/dtype.h"

// Same reason as in quantize.cc: keep each multiply and add a separately rounded fp32 operation.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ge {
namespace {

// Below this a sub-block is treated as all zeros (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Round half to even, as ggml's nearest_int, with out-of-range values clamped before the cast.
int nearest(float v) {
  if (std::isnan(v)) return 0;
  const float r = std::nearbyint(v);
  if (r <= -2147483648.0f) return INT32_MIN;
  if (r >= 2147483648.0f) return INT32_MAX;
  return static_cast<int>(r);
}

int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

void store_fp16(uint8_t* p, float v) {
  const uint16_t h = f32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

float load_fp16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(h);
}

// Fits x[i] ≈ scale·L[i] − neg_min with L in [0, nmax] and neg_min ≥ 0, minimising Σ w·err².
// Starts from the min-max grid, then tries nstep + 1 slightly stretched grids (iscale =
// (nmax + rmin + rdelta·is) / range), solving the 2×2 weighted normal equations for each.
float fit_scale_min(const float* x, const float* w, int n, int nmax, uint8_t* L, float* neg_min) {
  constexpr float kRmin = -1.0f, kRdelta = 0.1f;
  constexpr int kSteps = 20;
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;  // the grid always reaches 0 so that zeros stay exact
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *neg_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(clamp_int(nearest(iscale * (x[i] - min)), 0, nmax));
    const float diff = scale * L[i] + min - x[i];
    best_error += w[i] * (diff * diff);
  }
  uint8_t trial[32];
  for (int is = 0; is <= kSteps; ++is) {
    iscale = (kRmin + kRdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest(iscale * (x[i] - min)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {  // a positive offset is not representable: refit through 0
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float error = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * trial[i] + this_min - x[i];
      error += w[i] * (diff * diff);
    }
    if (error < best_error) {
      std::memcpy(L, trial, static_cast<size_t>(n));
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *neg_min = -min;
  return scale;
}

// Symmetric fit x[i] ≈ scale·(L[i] − nmax), L − nmax in [−nmax, nmax − 1], weights x², over the
// grid through the signed absmax and 18 stretched variants; keeps the best Σ w·x·l)² / Σ w·l².
float fit_scale_symmetric(const float* x, int n, int nmax, uint8_t* L) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  auto accumulate = [&](float iscale, float* sumlx, float* suml2, bool store) {
    *sumlx = 0;
    *suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest(iscale * x[i]), -nmax, nmax - 1);
      if (store) L[i] = static_cast<uint8_t>(l + nmax);
      const float w = x[i] * x[i];
      *sumlx += w * x[i] * l;
      *suml2 += w * l * l;
    }
  };
  float sumlx, suml2;
  accumulate(static_cast<float>(-nmax) / max, &sumlx, &suml2, true);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(nmax + 0.1f * is) / max;
    accumulate(iscale, &sumlx, &suml2, false);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      accumulate(iscale, &sumlx, &suml2, true);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

}  // namespace

// Q4_K layout: fp16 d, fp16 dmin, 12 packed scale bytes, 128 B nibbles (see dequantize.cc).
void quantize_block_q4_k(const float* x, uint8_t* out) {
  uint8_t L[256];
  float scales[8], mins[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    // Weights favour large-magnitude elements, offset by the sub-block RMS.
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    float weights[32];
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(xs, weights, 32, 15, L + 32 * j, &mins[j]);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t* packed = out + 4;
  std::memset(packed, 0, 12);
  for (int j = 0; j < 8; ++j) {
    // A negative fitted scale wraps through uint8 and saturates at 63, as in ggml.
    uint8_t ls = static_cast<uint8_t>(nearest(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest(inv_min * mins[j]));
    if (ls > 63) ls = 63;
    if (lm > 63) lm = 63;
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0x0f) | ((lm & 0x0f) << 4));
      packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  store_fp16(out, max_scale / 63.f);
  store_fp16(out + 2, max_min / 63.f);
  const float d_all = load_fp16(out);
  const float dmin_all = load_fp16(out + 2);
  // Requantize every element against the scales as they will be decoded.
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    if (j < 4) {
      sc = packed[j] & 0x3f;
      m = packed[j + 4] & 0x3f;
    } else {
      sc = (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4);
      m = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
    }
    const float d = d_all * sc;
    if (d == 0) continue;
    const float dm = dmin_all * m;
    for (int l = 0; l < 32; ++l) {
      L[32 * j + l] = static_cast<uint8_t>(clamp_int(nearest((x[32 * j + l] + dm) / d), 0, 15));
    }
  }
  uint8_t* qs = out + 16;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
  }
}

// Q6_K layout: 128 B ql, 64 B qh, 16 int8 scales, fp16 d (see dequantize.cc).
void quantize_block_q6_k(const float* x, uint8_t* out) {
  uint8_t L[256];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = fit_scale_symmetric(x + 16 * ib, 16, 32, L + 16 * ib);
    if (std::fabs(scales[ib]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(out, 0, 210);
    return;
  }
  const float iscale = -128.f / max_scale;
  store_fp16(out + 208, 1 / iscale);
  const float d_all = load_fp16(out + 208);
  int8_t* sc = reinterpret_cast<int8_t*>(out + 192);
  for (int ib = 0; ib < 16; ++ib) {
    sc[ib] = static_cast<int8_t>(clamp_int(nearest(iscale * scales[ib]), -128, 127));
  }
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * sc[j];
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i) {
      L[16 * j + i] = static_cast<uint8_t>(clamp_int(nearest(x[16 * j + i] / d), -32, 31) + 32);
    }
  }
  uint8_t* ql = out;
  uint8_t* qh = out + 128;
  for (int h = 0; h < 2; ++h) {
    const uint8_t* q = L + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[64 * h + l] = static_cast<uint8_t>((q[l] & 0x0f) | ((q[l + 64] & 0x0f) << 4));
      ql[64 * h + l + 32] = static_cast<uint8_t>((q[l + 32] & 0x0f) | ((q[l + 96] & 0x0f) << 4));
      qh[32 * h + l] = static_cast<uint8_t>((q[l] >> 4) | ((q[l + 32] >> 4) << 2) |
                                            ((q[l + 64] >> 4) << 4) | ((q[l + 96] >> 4) << 6));
    }
  }
}

}  // namespace ge
