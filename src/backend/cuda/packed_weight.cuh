// Device weight layouts of the CUDA backend, the device decoders every kernel shares (embed,
// dequantize, the generic GEMV, the prefill GEMM), and packing: QuantWeight (host) or random
// synthetic data (device) -> CudaPackedWeight, always through the same device repack kernels.
#pragma once

#include <cstdint>
#include <memory>

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "quant/quant_type.h"

namespace ge::cuda {

// kTiled4 / kTiled8: the tensor-core GEMV layout (Q4_0, Int4Group / Q8_0, Int8Group). Rows are cut
// into tiles of 16 (one mma.m16n8k16 A operand), K into chunks of 64 (4-bit) or 32 (8-bit) so that
// one lane's 16-byte load holds exactly its A fragments for 4 (resp. 2) k-steps; see
// docs/cuda-backend.md for the bit positions. Scales (and zeros) are [tile][group][8] words whose
// low half is row g and high half row g + 8 of the tile, the pair one mma lane needs.
// kRawBlocks: the file's row-blocked bytes unchanged (F32/F16/BF16/Q5_0/Q4_K/Q5_K/Q6_K, and the
// tiled types when a shape does not fit the tiling). kRawGroup: torchao arrays unchanged.
enum class WeightLayout : uint8_t { kTiled4, kTiled8, kRawBlocks, kRawGroup };

constexpr int kTileRows = 16;

// Everything a kernel needs to read one packed weight (passed by value).
struct WeightView {
  WeightLayout layout = WeightLayout::kRawBlocks;
  QuantType type = QuantType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  // Tiled layouts.
  const uint4* codes = nullptr;     // [n_tiles][n_chunks][32 lanes] x 16 B
  const uint32_t* scales = nullptr;  // [n_tiles][n_groups][8]
  const uint32_t* zeros = nullptr;   // same; 4-bit: bf16 pairs, 8-bit: int8 in bits 0-7 / 16-23
  int32_t n_tiles = 0;
  int32_t n_chunks = 0;
  int32_t n_groups = 0;  // per padded row
  int32_t group_size = 0;
  bool scale_fp16 = false;  // Q4_0 / Q8_0 keep their fp16 d; torchao scales are bf16
  // Raw layouts.
  const uint8_t* raw = nullptr;  // row-blocked bytes, or torchao qdata
  int64_t row_bytes = 0;         // kRawBlocks
  const uint16_t* g_scale = nullptr;  // kRawGroup, as QuantWeight::scale
  const void* g_zero = nullptr;       // kRawGroup, as QuantWeight::zero (may be null)
};

inline int tiled_chunk_k(WeightLayout l) { return l == WeightLayout::kTiled4 ? 64 : 32; }

class CudaPackedWeight final : public PackedWeight {
 public:
  CudaPackedWeight(int64_t rows, int64_t cols, QuantType type) : PackedWeight(rows, cols, type) {}
  size_t bytes() const override { return a_.bytes() + b_.bytes() + c_.bytes(); }
  const WeightView& view() const { return view_; }

  WeightView view_;
  DeviceMemory a_;  // codes / raw bytes
  DeviceMemory b_;  // scales
  DeviceMemory c_;  // zeros
};

// Raw (source-layout) arrays already in device memory, the input of the repack kernels.
struct RawWeightDevice {
  QuantType type = QuantType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t group_size = 0;  // Int4Group / Int8Group
  const uint8_t* data = nullptr;
  int64_t row_bytes = 0;  // row-blocked types
  const uint16_t* scale = nullptr;
  const void* zero = nullptr;
};

// Uploads a host QuantWeight and repacks it on the device. Validates every size first.
Result<std::unique_ptr<CudaPackedWeight>> pack_quant_weight(const QuantWeight& w, const LaunchContext& ctx);

// Random weight of the given encoding, generated and packed on the device (no host copy).
// group_size / with_zero apply to Int4Group / Int8Group (group_size 0 = 128).
Result<std::unique_ptr<CudaPackedWeight>> synthesize_packed_weight(QuantType type, int64_t rows, int64_t cols,
                                                                   int64_t group_size, bool with_zero,
                                                                   uint64_t seed, const LaunchContext& ctx);

// out[rows, cols] = the weight decoded to fp32 (device memory), bit-exact with dequantize_row.
cudaError_t launch_dequantize_f32(const WeightView& w, float* out, const LaunchContext& ctx);
// Rows [row0, row0 + n_rows) decoded and rounded to bf16, row-major [n_rows, cols].
cudaError_t launch_dequantize_bf16(const WeightView& w, int64_t row0, int64_t n_rows, __nv_bfloat16* out,
                                   const LaunchContext& ctx);

// ---- device decoders (shared by the kernels of several files) ----

__device__ __forceinline__ uint32_t load_u16_unaligned(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8);
}

// ggml's 6-bit scale/min unpacking for Q4_K/Q5_K sub-block j (0..7).
__device__ __forceinline__ void k_scale_min_dev(const uint8_t* s, int j, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 0x3f;
    *mn = s[j + 4] & 0x3f;
  } else {
    *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// One element of a tiled weight. Products use __fmul_rn/__fsub_rn so nothing is contracted into
// an FMA: the result matches the reference decoder bit for bit.
__device__ __forceinline__ float tiled_element(const WeightView& w, int64_t row, int64_t k) {
  const int64_t tile = row / kTileRows;
  const int r = static_cast<int>(row % kTileRows);
  const int g = r & 7, hi = r >> 3;
  const bool four = w.layout == WeightLayout::kTiled4;
  const int chunk_k = four ? 64 : 32;
  const int64_t chunk = k / chunk_k;
  const int kk = static_cast<int>(k % chunk_k);
  const int s = kk / 16, kin = kk % 16;
  const int t = (kin % 8) / 2, odd = kin & 1, upper = kin / 8;
  const int lane = g * 4 + t;
  const uint32_t* lane_words =
      reinterpret_cast<const uint32_t*>(w.codes + (tile * w.n_chunks + chunk) * 32 + lane);
  const int64_t grp = k / w.group_size;
  const uint32_t sw = w.scales[(tile * w.n_groups + grp) * 8 + g];
  const uint32_t sbits = hi ? (sw >> 16) : (sw & 0xffffu);
  const float scale = w.scale_fp16 ? fp16_bits_to_f32(sbits) : bf16_bits_to_f32(sbits);
  if (four) {
    const uint32_t word = lane_words[s];
    const int e = hi + 2 * upper + 4 * odd;
    const int q = static_cast<int>((word >> (4 * e)) & 0xfu);
    if (w.zeros == nullptr) return __fmul_rn(static_cast<float>(q - 8), scale);
    const uint32_t zw = w.zeros[(tile * w.n_groups + grp) * 8 + g];
    const float z = bf16_bits_to_f32(hi ? (zw >> 16) : (zw & 0xffffu));
    return __fmul_rn(__fsub_rn(static_cast<float>(q), z), scale);
  }
  const uint32_t word = lane_words[s * 2 + upper];
  const int byte = hi + 2 * odd;
  const int q = static_cast<int>((word >> (8 * byte)) & 0xffu) - 128;
  int z = 0;
  if (w.zeros != nullptr) {
    const uint32_t zw = w.zeros[(tile * w.n_groups + grp) * 8 + g];
    z = static_cast<int8_t>(static_cast<uint8_t>(hi ? (zw >> 16) : zw));
  }
  return __fmul_rn(static_cast<float>(q - z), scale);
}

// 32 consecutive elements [k0, k0 + 32) of row `row` of a raw-layout weight of encoding kType
// (k0 a multiple of 32). Elements at k >= cols (only possible for F32/F16/BF16) decode as 0.
template <QuantType kType>
__device__ __forceinline__ void raw_decode32_typed(const WeightView& w, int64_t row, int64_t k0, float* y) {
  if constexpr (kType == QuantType::kInt4Group) {
    const int64_t G = w.group_size;
    const uint8_t* q = w.raw + row * (w.cols / 2);
    const uint16_t* zero = static_cast<const uint16_t*>(w.g_zero);
#pragma unroll 4
    for (int i = 0; i < 32; ++i) {
      const int64_t k = k0 + i;
      if (k >= w.cols) {  // rows need not be a multiple of 32 for torchao groups
        y[i] = 0.0f;
        continue;
      }
      const int64_t grp = k / G;
      const float scale = bf16_bits_to_f32(w.g_scale[grp * w.rows + row]);
      const float z = zero != nullptr ? bf16_bits_to_f32(zero[grp * w.rows + row]) : 8.0f;
      const uint8_t b = q[k / 2];
      const int v = (k % 2 == 0) ? (b & 0x0f) : (b >> 4);
      y[i] = __fmul_rn(__fsub_rn(static_cast<float>(v), z), scale);
    }
  } else if constexpr (kType == QuantType::kInt8Group) {
    const int64_t G = w.group_size;
    const int64_t n_groups = w.cols / G;
    const int8_t* q = reinterpret_cast<const int8_t*>(w.raw) + row * w.cols;
    const int8_t* zero = static_cast<const int8_t*>(w.g_zero);
#pragma unroll 4
    for (int i = 0; i < 32; ++i) {
      const int64_t k = k0 + i;
      if (k >= w.cols) {
        y[i] = 0.0f;
        continue;
      }
      const int64_t grp = k / G;
      const float scale = bf16_bits_to_f32(w.g_scale[row * n_groups + grp]);
      const int z = zero != nullptr ? zero[row * n_groups + grp] : 0;
      y[i] = __fmul_rn(static_cast<float>(q[k] - z), scale);
    }
  } else if constexpr (kType == QuantType::kF32) {
    const float* p = reinterpret_cast<const float*>(w.raw + row * w.row_bytes);
#pragma unroll
    for (int i = 0; i < 32; ++i) y[i] = (k0 + i < w.cols) ? p[k0 + i] : 0.0f;
  } else if constexpr (kType == QuantType::kF16 || kType == QuantType::kBF16) {
    const uint16_t* p = reinterpret_cast<const uint16_t*>(w.raw + row * w.row_bytes);
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const uint32_t h = (k0 + i < w.cols) ? p[k0 + i] : 0u;
      y[i] = kType == QuantType::kF16 ? fp16_bits_to_f32(h) : bf16_bits_to_f32(h);
    }
  } else if constexpr (kType == QuantType::kQ4_0) {
    const uint8_t* b = w.raw + row * w.row_bytes + (k0 / 32) * 18;
    const float d = fp16_bits_to_f32(load_u16_unaligned(b));
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const uint8_t v = b[2 + j];
      y[j] = __fmul_rn(static_cast<float>((v & 0x0f) - 8), d);
      y[j + 16] = __fmul_rn(static_cast<float>((v >> 4) - 8), d);
    }
  } else if constexpr (kType == QuantType::kQ5_0) {
    const uint8_t* b = w.raw + row * w.row_bytes + (k0 / 32) * 22;
    const float d = fp16_bits_to_f32(load_u16_unaligned(b));
    const uint32_t qh = load_u16_unaligned(b + 2) | (load_u16_unaligned(b + 4) << 16);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const uint8_t v = b[6 + j];
      const int lo = (v & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (v >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = __fmul_rn(static_cast<float>(lo - 16), d);
      y[j + 16] = __fmul_rn(static_cast<float>(hi - 16), d);
    }
  } else if constexpr (kType == QuantType::kQ8_0) {
    const uint8_t* b = w.raw + row * w.row_bytes + (k0 / 32) * 34;
    const float d = fp16_bits_to_f32(load_u16_unaligned(b));
#pragma unroll
    for (int j = 0; j < 32; ++j) y[j] = __fmul_rn(static_cast<float>(static_cast<int8_t>(b[2 + j])), d);
  } else if constexpr (kType == QuantType::kQ4_K || kType == QuantType::kQ5_K) {
    constexpr bool kFive = kType == QuantType::kQ5_K;
    const uint8_t* b = w.raw + row * w.row_bytes + (k0 / 256) * (kFive ? 176 : 144);
    const int j = static_cast<int>((k0 % 256) / 32);
    const float d = fp16_bits_to_f32(load_u16_unaligned(b));
    const float dmin = fp16_bits_to_f32(load_u16_unaligned(b + 2));
    int sc, mn;
    k_scale_min_dev(b + 4, j, &sc, &mn);
    const float dl = __fmul_rn(d, static_cast<float>(sc));
    const float ml = __fmul_rn(dmin, static_cast<float>(mn));
    const uint8_t* q = b + (kFive ? 48 : 16) + 32 * (j / 2);
    const uint8_t* qh = b + 16;
    const int shift = 4 * (j % 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      int v = (q[l] >> shift) & 0x0f;
      if constexpr (kFive) v |= ((qh[l] >> j) & 1) << 4;
      y[l] = __fsub_rn(__fmul_rn(dl, static_cast<float>(v)), ml);
    }
  } else if constexpr (kType == QuantType::kQ6_K) {
    const uint8_t* b = w.raw + row * w.row_bytes + (k0 / 256) * 210;
    const int j = static_cast<int>((k0 % 256) / 32);  // 32-element sub-chunk 0..7
    const int h = j / 4, jq = j % 4;
    const uint8_t* ql = b + 64 * h + 32 * (jq % 2);
    const uint8_t* qh = b + 128 + 32 * h;
    const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
    const float d = fp16_bits_to_f32(load_u16_unaligned(b + 208));
    const float dl0 = __fmul_rn(d, static_cast<float>(scales[2 * j]));
    const float dl1 = __fmul_rn(d, static_cast<float>(scales[2 * j + 1]));
    const int lshift = 4 * (jq / 2), hshift = 2 * jq;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int lo = (ql[l] >> lshift) & 0x0f;
      const int hi = (qh[l] >> hshift) & 0x03;
      y[l] = __fmul_rn(l < 16 ? dl0 : dl1, static_cast<float>((lo | (hi << 4)) - 32));
    }
  } else {
#pragma unroll
    for (int i = 0; i < 32; ++i) y[i] = 0.0f;
  }
}

__device__ __forceinline__ void raw_decode32(const WeightView& w, int64_t row, int64_t k0, float* y) {
  switch (w.type) {
    case QuantType::kF32: raw_decode32_typed<QuantType::kF32>(w, row, k0, y); return;
    case QuantType::kF16: raw_decode32_typed<QuantType::kF16>(w, row, k0, y); return;
    case QuantType::kBF16: raw_decode32_typed<QuantType::kBF16>(w, row, k0, y); return;
    case QuantType::kQ4_0: raw_decode32_typed<QuantType::kQ4_0>(w, row, k0, y); return;
    case QuantType::kQ5_0: raw_decode32_typed<QuantType::kQ5_0>(w, row, k0, y); return;
    case QuantType::kQ8_0: raw_decode32_typed<QuantType::kQ8_0>(w, row, k0, y); return;
    case QuantType::kQ4_K: raw_decode32_typed<QuantType::kQ4_K>(w, row, k0, y); return;
    case QuantType::kQ5_K: raw_decode32_typed<QuantType::kQ5_K>(w, row, k0, y); return;
    case QuantType::kQ6_K: raw_decode32_typed<QuantType::kQ6_K>(w, row, k0, y); return;
    case QuantType::kInt4Group: raw_decode32_typed<QuantType::kInt4Group>(w, row, k0, y); return;
    case QuantType::kInt8Group: raw_decode32_typed<QuantType::kInt8Group>(w, row, k0, y); return;
  }
#pragma unroll
  for (int i = 0; i < 32; ++i) y[i] = 0.0f;
}

// One element of any layout (embed, dequantize): slow but exact.
__device__ __forceinline__ float decode_element(const WeightView& w, int64_t row, int64_t k) {
  if (w.layout == WeightLayout::kTiled4 || w.layout == WeightLayout::kTiled8) return tiled_element(w, row, k);
  float v[32];
  raw_decode32(w, row, k & ~int64_t{31}, v);
  float out = 0.0f;
#pragma unroll
  for (int i = 0; i < 32; ++i) out = (i == (k & 31)) ? v[i] : out;
  return out;
}

}  // namespace ge::cuda
