// The CPU backend's kernel table: one implementation per instruction set (portable C++, AVX2,
// AVX-512 VNNI), chosen at run time from what the processor reports, so one build runs anywhere.
#pragma once

#include <cstdint>

#include "backend/cpu/cpu_packed_weight.h"

namespace ge::cpu {

enum class CpuIsa : uint8_t {
  kPortable,    // plain C++ (any x86-64 or other architecture)
  kAvx2,        // AVX2 + FMA + F16C: int8 dots with vpmaddubsw
  kAvx512Vnni,  // AVX-512 F/BW/VL + VNNI: int8 dots with vpdpbusd, 32 vector registers
};

const char* cpu_isa_name(CpuIsa isa);
// The best instruction set this processor (and operating system) supports.
CpuIsa detect_cpu_isa();
// Whether kernels for `isa` may run here.
bool cpu_isa_supported(CpuIsa isa);

// Activations quantized to int8 per block of 32 (as ggml's Q8_0 activations, with an fp32 scale):
// x[t, 32b + i] ≈ d[t, b] · q[t, 32b + i], q in −127..127.
// Decode (M ≤ kInt16MaxTokens) quantizes to int16 instead (d = max|x|/32767; relative error ~1e-5,
// so decode matches the fp32 reference): its matmuls are bound by weight bytes, not by the dots.
struct QuantizedActs {
  const int8_t* q = nullptr;      // [m][blocks · 32]; null on the int16 path
  const int16_t* q16 = nullptr;   // [m][blocks · 32] on the int16 path
  const float* d = nullptr;       // [m][blocks]
  const float* dsum = nullptr;    // [m][blocks]: d · Σ q over the block (for weight mins)
  const int32_t* sum16 = nullptr; // [m][blocks][2]: Σ q over columns 0..15 and 16..31
  int64_t m = 0;
  int64_t blocks = 0;
};

// Matmuls with at most this many tokens take int16 activations whatever the backend's setting.
constexpr int64_t kInt16MaxTokens = 2;

// Activation precision of the quantized matmuls with more tokens (prefill).
//   kInt16: near-exact (relative error ~1e-5 per output), 2 MACs per 32-bit lane.
//   kInt8:  ggml-style, relative error ~0.5% per output, 4 MACs per 32-bit lane.
enum class CpuActivations : uint8_t { kInt8, kInt16 };
const char* cpu_activations_name(CpuActivations acts);
// The default: GE_CPU_ACTIVATIONS=int8|int16 if set, else kInt16 (the project's real-model tests
// compare greedy text with transformers token for token; int16 keeps that agreement).
CpuActivations default_cpu_activations();

struct CpuKernels {
  CpuIsa isa;
  // Quantizes x [m, 32·blocks] to int8 (q in −127..127) with per-block d, d·Σq and half sums.
  void (*quantize_acts)(const float* x, int64_t m, int64_t blocks, int8_t* q, float* d, float* dsum,
                        int32_t* sum16);
  // The same with int16 quants (q in −32767..32767).
  void (*quantize_acts16)(const float* x, int64_t m, int64_t blocks, int16_t* q, float* d, float* dsum,
                          int32_t* sum16);
  // y[t, r] (row stride ldy) for rows of tiles [tile_begin, tile_end) of a quant stream.
  void (*gemm_q)(const QStreamLayout& l, const uint8_t* data, int64_t rows, const QuantizedActs& a,
                 int64_t tile_begin, int64_t tile_end, float* y, int64_t ldy);
  // Same with int16 activations (a.q16).
  void (*gemm_q16)(const QStreamLayout& l, const uint8_t* data, int64_t rows, const QuantizedActs& a,
                   int64_t tile_begin, int64_t tile_end, float* y, int64_t ldy);
  // In place: y[t, r] for rows [row_begin, row_end) of a row-major GGUF matrix read where it lies
  // (bits 4: Q4_0, 18-byte blocks; bits 8: Q8_0, 34-byte blocks; row_bytes apart) against int16
  // activations (a.q16). The weight is decoded once per block for up to a few tokens at a time.
  void (*gemm_rows16)(int bits, const uint8_t* data, int64_t row_bytes, const QuantizedActs& a, int64_t row_begin,
                      int64_t row_end, float* y, int64_t ldy);
  // Same for an fp32 tile stream [tiles][k][8] and fp32 activations x [m, k].
  void (*gemm_f32)(const float* w, int64_t rows, int64_t k, const float* x, int64_t m,
                   int64_t tile_begin, int64_t tile_end, float* y, int64_t ldy);

  // ---- vector ops (rows of fp32) ----
  float (*dot)(const float* a, const float* b, int64_t n);
  // y += s · x
  void (*axpy)(float s, const float* x, int64_t n, float* y);
  // Per row: y = x / sqrt(mean(x²) + eps) · (w ? w : 1); then y += base when base is non-null.
  void (*rms_norm_row)(const float* x, const float* w, int64_t n, float eps, const float* base,
                       float* y);
  void (*gelu_tanh_mul)(const float* gate, const float* up, int64_t n, float* out);
  void (*add)(const float* a, const float* b, int64_t n, float* out);
  void (*scale)(float* x, int64_t n, float s);
  void (*softcap)(float* x, int64_t n, float cap);
  // x[i] = exp(x[i] − mx); returns Σ x[i].
  float (*exp_sum)(float* x, int64_t n, float mx);

  // ---- attention over a contiguous run of cached rows (the caller splits the ring at its wrap) ----
  // s[i, j] = q[i] · k[j] for nq query rows q [nq, d] and n_keys key rows k[j] = k + j·k_stride;
  // s has row stride s_stride. Each key row is loaded once for all query rows (GQA heads).
  void (*attn_scores)(const float* q, int64_t nq, int64_t d, const float* k, int64_t k_stride, int64_t n_keys,
                      float* s, int64_t s_stride);
  // o[i] += Σ_j p[i, j] · v[j] for nq rows (o [nq, d]; p row stride p_stride; v[j] = v + j·v_stride).
  void (*attn_accumulate)(const float* p, int64_t p_stride, int64_t nq, const float* v, int64_t v_stride,
                          int64_t n_keys, int64_t d, float* o);
};

const CpuKernels& portable_kernels();
const CpuKernels& avx2_kernels();
const CpuKernels& avx512_vnni_kernels();
// The table for `isa` (which must be supported).
const CpuKernels& kernels_for(CpuIsa isa);

}  // namespace ge::cpu
