// x as int8 codes per 32-element block for gemv_slice_f16_kernel's kI8 mode (M = 1, 4-bit weights
// without zero points): a block of both tiles takes one IMMA m16n8k32 (u8 codes 0..15 times s8 x, exact
// int32 sums) where the fp16 path takes two m16n8k16 and 16 fp16 subtractions. The offset 8 comes off
// as 8·Σq of the block; the block's x scale d and the group's weight scale multiply the sum at once.
// x keeps 8 bits per block (|error| <= d/2 = max|x of the block| / 254 per element). Internal to gemv_slice.cu.
#pragma once

#include "backend/cuda/elementwise.cuh"
#include "backend/cuda/gemv_slice.cuh"

namespace ge::cuda {
namespace {

// Bytes of the int8 x of a slice of len chunks (two 32-blocks each): B fragments (8 bytes per block,
// token and lane), then per block and token slot (16) the scale d and the code sum Σq.
__host__ __device__ constexpr size_t slice_i8_x_bytes(int len, int m) {
  return static_cast<size_t>(len) * 2 * m * 4 * 8 + static_cast<size_t>(len) * 2 * 16 * 8;
}

__device__ __forceinline__ void imma_u8s8(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}

// A fragments of one 32-block of a tile from its two 4-bit words (k-steps 2h, 2h + 1 of the chunk):
// the low nibbles of a word are row g's codes at k {2t, 2t + 8, 2t + 1, 2t + 9} of its k-step (bytes 0..3),
// the high nibbles row g + 8's at the same k; build_fragments_i8 orders x's bytes alike.
__device__ __forceinline__ void decode_a4_u8(uint32_t w0, uint32_t w1, uint32_t (&a)[4]) {
  a[0] = w0 & 0x0F0F0F0Fu;
  a[1] = (w0 >> 4) & 0x0F0F0F0Fu;
  a[2] = w1 & 0x0F0F0F0Fu;
  a[3] = (w1 >> 4) & 0x0F0F0F0Fu;
}

// x (m tokens, K) from element kofs on, nblk 32-blocks -> int8 B fragments: item (b, n, t) holds
// {b0, b1} of lane t for token n: x at 32b + {2t, 2t + 8, 2t + 1, 2t + 9} and the same + 16, as codes
// q = rint(x / d), d = max|x of the block| / 127; dx[b·16 + n] = d, sx[b·16 + n] = Σq of the block (zero
// for tokens >= m). A NaN or infinity in a block makes its d NaN, so it reaches the output. With `up`,
// x stands for gelu_tanh(x) · up. Ends with the CTA barrier.
__device__ __forceinline__ void build_fragments_i8(const float* x, int64_t K, int64_t kofs, int m, int nblk, uint2* frag,
                                                   float* dx, int* sx, int tid, int nthreads, const float* up) {
  const int items = nblk * m * 4;
  // Every thread runs the same rounds: a block's four lanes are four consecutive threads (nthreads
  // is a multiple of 32), which exchange their maxima and sums by shuffles.
  for (int base = 0; base < items; base += nthreads) {
    const int i = base + tid;
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = 0.0f;
    const int t = i & 3, rest = i >> 2;
    const int b = rest / m, n = rest - b * m;
    if (i < items) {
      const int64_t k0 = kofs + int64_t{b} * 32 + 2 * t;
      const float* xr = x + n * K + k0;
      const float* ur = up != nullptr ? up + n * K + k0 : nullptr;
      // Pairs at +0, +8, +16, +24: bytes {0, 2}, {1, 3} of b0, then of b1.
#pragma unroll
      for (int p = 0; p < 4; ++p) {
        if (k0 + 8 * p - 2 * t < K) {  // the pair's 8-element run lies inside x (K a multiple of 16)
          float2 e = make_float2(xr[8 * p], xr[8 * p + 1]);
          if (ur != nullptr) e = make_float2(gelu_tanh_times(e.x, ur[8 * p]), gelu_tanh_times(e.y, ur[8 * p + 1]));
          const int q = (p >> 1) * 4 + (p & 1);  // byte of x[k0 + 8p] in {b0, b1}; x[k0 + 8p + 1] two bytes on
          v[q] = e.x;
          v[q + 2] = e.y;
        }
      }
    }
    float mx = 0.0f;
    bool bad = false;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      bad = bad || !isfinite(v[j]);
      mx = fmaxf(mx, fabsf(v[j]));
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    bad = ((__ballot_sync(0xffffffffu, bad) >> (threadIdx.x & 28)) & 15u) != 0;  // any of the block's four lanes
    uint32_t bytes[2] = {0u, 0u};
    int s = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      // v / mx first: in [-1, 1] for any finite max, subnormal ones included (127 / mx could overflow).
      const int q = mx > 0.0f && !bad ? max(-127, min(127, __float2int_rn(v[j] / mx * 127.0f))) : 0;
      s += q;
      bytes[j >> 2] |= (static_cast<uint32_t>(q) & 0xffu) << (8 * (j & 3));
    }
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    if (i < items) {
      frag[i] = make_uint2(bytes[0], bytes[1]);
      if (t == 0) {
        dx[b * 16 + n] = bad ? __int_as_float(0x7fc00000) : mx / 127.0f;
        sx[b * 16 + n] = s;
      }
    }
  }
  for (int i = tid; i < nblk * 16; i += nthreads) {
    if (i % 16 >= m) {
      dx[i] = 0.0f;
      sx[i] = 0;
    }
  }
  __syncthreads();
}

}  // namespace
}  // namespace ge::cuda
