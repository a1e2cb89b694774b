// Portable C++ kernels: the same integer math as the SIMD kernels (int8 activations, exact int32
// block dots), used where the processor has no AVX2, and as a second opinion in the kernel tests.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"

namespace ge::cpu {
namespace {

template <typename Q, int kMax>
void quantize_acts_t(const float* x, int64_t m, int64_t blocks, Q* q, float* d, float* dsum, int32_t* sum16) {
  for (int64_t t = 0; t < m; ++t) {
    for (int64_t b = 0; b < blocks; ++b) {
      const float* xb = x + (t * blocks + b) * kBlock;
      Q* qb = q + (t * blocks + b) * kBlock;
      float amax = 0.0f;
      for (int i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(xb[i]));
      const float db = amax / static_cast<float>(kMax);
      const float inv = amax > 0.0f ? static_cast<float>(kMax) / amax : 0.0f;
      int32_t s[2] = {0, 0};
      for (int i = 0; i < kBlock; ++i) {
        const int v = static_cast<int>(std::nearbyint(xb[i] * inv));
        qb[i] = static_cast<Q>(v);
        s[i / 16] += v;
      }
      d[t * blocks + b] = db;
      dsum[t * blocks + b] = db * static_cast<float>(s[0] + s[1]);
      sum16[(t * blocks + b) * 2] = s[0];
      sum16[(t * blocks + b) * 2 + 1] = s[1];
    }
  }
}

void quantize_acts(const float* x, int64_t m, int64_t blocks, int8_t* q, float* d, float* dsum, int32_t* sum16) {
  quantize_acts_t<int8_t, 127>(x, m, blocks, q, d, dsum, sum16);
}
void quantize_acts16(const float* x, int64_t m, int64_t blocks, int16_t* q, float* d, float* dsum,
                     int32_t* sum16) {
  quantize_acts_t<int16_t, 32767>(x, m, blocks, q, d, dsum, sum16);
}

int quant_at(const QStreamLayout& l, const uint8_t* blk, int64_t rr, int k) {
  if (l.bits == 8) return static_cast<int8_t>(blk[(k / 4) * 32 + 4 * rr + k % 4]);
  const int kk = k % 16;
  const uint8_t byte = blk[(kk / 4) * 32 + 4 * rr + kk % 4];
  int q = k < 16 ? (byte & 0x0f) : (byte >> 4);
  if (l.bits == 5) q |= ((blk[128 + 4 * rr + k % 4] >> (k / 4)) & 1) << 4;
  return q;
}

// In-place GGUF rows: per block an exact int32 dot of (q − zero) with the int16 activations,
// scaled by the two fp16/fp32 scales into an fp32 sum (the SIMD kernels keep 8 partial sums).
void gemm_rows16(int bits, const uint8_t* data, int64_t row_bytes, const QuantizedActs& a, int64_t row_begin,
                 int64_t row_end, float* y, int64_t ldy) {
  const int64_t bb = bits == 4 ? 18 : 34;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = data + r * row_bytes;
    for (int64_t t = 0; t < a.m; ++t) {
      float acc = 0.0f;
      for (int64_t b = 0; b < a.blocks; ++b) {
        const uint8_t* blk = row + b * bb;
        uint16_t h;
        std::memcpy(&h, blk, 2);
        const int16_t* q = a.q16 + (t * a.blocks + b) * kBlock;
        int32_t s = 0;
        if (bits == 4) {
          for (int j = 0; j < 16; ++j) {
            s += ((blk[2 + j] & 0x0f) - 8) * q[j];
            s += ((blk[2 + j] >> 4) - 8) * q[j + 16];
          }
        } else {
          for (int j = 0; j < 32; ++j) s += static_cast<int8_t>(blk[2 + j]) * q[j];
        }
        acc += fp16_to_f32(h) * a.d[t * a.blocks + b] * static_cast<float>(s);
      }
      y[t * ldy + r] = acc;
    }
  }
}

float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

template <typename Q>
void gemm_q_t(const QStreamLayout& l, const uint8_t* data, int64_t rows, const QuantizedActs& a, const Q* aq,
              int64_t tile_begin, int64_t tile_end, float* y, int64_t ldy) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const uint8_t* base = data + tile * l.tile_stride;
    const int64_t n_rr = std::min<int64_t>(kRowTile, rows - tile * kRowTile);
    for (int64_t t = 0; t < a.m; ++t) {
      for (int64_t rr = 0; rr < n_rr; ++rr) {
        float acc = 0.0f;
        for (int64_t b = 0; b < l.blocks; ++b) {
          const uint8_t* blk = base + b * l.block_stride;
          const Q* qa = aq + (t * a.blocks + b) * kBlock;
          int32_t s[2] = {0, 0};
          for (int k = 0; k < kBlock; ++k) s[k / 16] += (quant_at(l, blk, rr, k) - l.zero_point) * qa[k];
          const uint8_t* sc = blk + l.scale_offset();
          const float da = a.d[t * a.blocks + b];
          if (l.split_scale) {
            acc += static_cast<float>(s[0]) * (load_f32(sc + 4 * rr) * da) +
                   static_cast<float>(s[1]) * (load_f32(sc + 4 * (kRowTile + rr)) * da);
          } else {
            uint16_t h;
            std::memcpy(&h, sc + 2 * rr, 2);
            const float scale = l.scale_fp16 ? fp16_to_f32(h) : load_f32(sc + 4 * rr);
            acc += static_cast<float>(s[0] + s[1]) * (scale * da);
          }
          if (l.has_min) acc -= load_f32(blk + l.min_offset() + 4 * rr) * a.dsum[t * a.blocks + b];
        }
        y[t * ldy + tile * kRowTile + rr] = acc;
      }
    }
  }
}

void gemm_q(const QStreamLayout& l, const uint8_t* data, int64_t rows, const QuantizedActs& a,
            int64_t tile_begin, int64_t tile_end, float* y, int64_t ldy) {
  gemm_q_t(l, data, rows, a, a.q, tile_begin, tile_end, y, ldy);
}
void gemm_q16(const QStreamLayout& l, const uint8_t* data, int64_t rows, const QuantizedActs& a,
              int64_t tile_begin, int64_t tile_end, float* y, int64_t ldy) {
  gemm_q_t(l, data, rows, a, a.q16, tile_begin, tile_end, y, ldy);
}

void gemm_f32(const float* w, int64_t rows, int64_t k, const float* x, int64_t m, int64_t tile_begin,
              int64_t tile_end, float* y, int64_t ldy) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const float* wt = w + tile * k * kRowTile;
    const int64_t n_rr = std::min<int64_t>(kRowTile, rows - tile * kRowTile);
    for (int64_t t = 0; t < m; ++t) {
      float acc[kRowTile] = {};
      for (int64_t i = 0; i < k; ++i) {
        for (int rr = 0; rr < kRowTile; ++rr) acc[rr] += wt[i * kRowTile + rr] * x[t * k + i];
      }
      for (int64_t rr = 0; rr < n_rr; ++rr) y[t * ldy + tile * kRowTile + rr] = acc[rr];
    }
  }
}

float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void axpy(float s, const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += s * x[i];
}

void rms_norm_row(const float* x, const float* w, int64_t n, float eps, const float* base, float* y) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * inv * (w ? w[i] : 1.0f);
    y[i] = base ? base[i] + v : v;
  }
}

void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out) {
  const float k0 = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(k0 * (g + 0.044715f * g * g * g))) * up[i];
  }
}

void add(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
void scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}
void softcap(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}
float exp_sum(float* x, int64_t n, float mx) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    s += x[i];
  }
  return s;
}

void attn_scores(const float* q, int64_t nq, int64_t d, const float* k, int64_t k_stride, int64_t n_keys,
                 float* s, int64_t s_stride) {
  for (int64_t j = 0; j < n_keys; ++j)
    for (int64_t i = 0; i < nq; ++i) s[i * s_stride + j] = dot(q + i * d, k + j * k_stride, d);
}

void attn_accumulate(const float* p, int64_t p_stride, int64_t nq, const float* v, int64_t v_stride,
                     int64_t n_keys, int64_t d, float* o) {
  for (int64_t j = 0; j < n_keys; ++j)
    for (int64_t i = 0; i < nq; ++i) axpy(p[i * p_stride + j], v + j * v_stride, d, o + i * d);
}

}  // namespace

const CpuKernels& portable_kernels() {
  static const CpuKernels k{CpuIsa::kPortable, quantize_acts, quantize_acts16, gemm_q, gemm_q16, gemm_rows16, gemm_f32, dot, axpy,
                            rms_norm_row, gelu_tanh_mul, add, scale, softcap, exp_sum,
                            attn_scores, attn_accumulate};
  return k;
}

}  // namespace ge::cpu
