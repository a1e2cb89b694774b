// Shared by the decode (attention.cu) and SIMT prefill (attention_simt_prefill.cu) attention kernels:
// launch constants, the kernel parameter block and small device helpers. Internal to the CUDA backend.
#pragma once

#include <cstdint>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/cuda_common.cuh"

namespace ge::cuda::attention_detail {

constexpr int kDecodeThreads = 128;
constexpr int kDecodeWarps = kDecodeThreads / 32;
constexpr int kDecodeTile = 64;   // keys per online-softmax step
constexpr int kMaxSplits = 256;   // decode key splits per (token, KV head)
constexpr int kPrefillThreads = 128;
constexpr int kPrefillRows = 16;  // queries per CTA, 4 per warp
constexpr int kPrefillKeys = 32;  // keys per step, one per lane when scoring
constexpr int kDecodeMaxTokens = 4;
constexpr int kFusedCombineWeights = 512;  // n_splits * group bound of the decode kernel's own merge

struct AttnParams {
  const float* q;  // [T, H, d]
  float* out;      // [T, H, d]
  const __nv_bfloat16* k;  // [cap, n_kv, d]
  const __nv_bfloat16* v;
  const int32_t* positions;
  float* part_o;   // [T, H, splits, d]
  float* part_ml;  // [T, H, splits, 2]
  uint32_t* split_count;  // [T, n_kv] arrivals (zero between launches), or null: the combine kernel merges
  uint32_t* error_word;
  KvBatchView batch;  // bases set: token t reads its own cache (decode kernel only)
  int n_tokens, n_heads, n_kv, d, group, cap, window;
  int n_splits;  // decode: launch-time split count (the device sizes each split from the visible keys)
  int min_keys;  // decode: fewest keys per split
  int lpk;       // decode: lanes per key when scoring (power of two <= 32, <= d / 8)
  bool q_aligned;  // decode: q is 16-byte aligned (vector loads)
  bool interleave;  // decode: splits take granules round-robin (else contiguous runs)
  float scale, softcap;
};

__device__ __forceinline__ void bf16x8_to_f32(const uint4& r, float* f) {
  const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ float cap_score(float s, float cap) { return cap > 0.0f ? cap * tanhf(s / cap) : s; }

// Visible logical key range [lo, pos] of a query; false (and an error bit) for a bad position.
__device__ __forceinline__ bool visible_range(const AttnParams& p, int32_t pos, int64_t* lo, int64_t* n_vis,
                                              bool report) {
  if (pos < 0) {
    if (report) raise_device_error(p.error_word, kErrPosition);
    return false;
  }
  int64_t l = p.window > 0 ? max(int64_t{0}, int64_t{pos} - p.window + 1) : 0;
  int64_t n = int64_t{pos} - l + 1;
  if (n > p.cap) {  // the ring no longer holds the oldest visible keys
    if (report) raise_device_error(p.error_word, kErrKvWindow);
    l = int64_t{pos} - p.cap + 1;
    n = p.cap;
  }
  *lo = l;
  *n_vis = n;
  return true;
}

// SIMT prefill attention (head_dim % 32 == 0, more than kDecodeMaxTokens queries): the fallback for
// head dims the tensor-core kernel does not take. Raises the kernels' dynamic shared-memory limit.
cudaError_t configure_prefill_simt();
cudaError_t launch_prefill_simt(const AttnParams& p, const LaunchContext& ctx);

}  // namespace ge::cuda::attention_detail
