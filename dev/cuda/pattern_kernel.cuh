// The K-slice GEMV's weight stream without its math, for bench_decode --pattern (dev tool, not part of
// the engine). Included by bench_decode.cu inside its anonymous namespace.
#pragma once

// Access-pattern experiment (--pattern): the K-slice GEMV's weight stream without its math. Warps of
// 8-warp CTAs (2 per SM) own pairs of 16-row tiles over a K-slice of `len` 64-element chunks and pull
// each chunk (2 x 512 B of codes) through a ring of kRing cp.async slots, as gemv_slice_f16_kernel
// does. Layout "separate": each tile's chunks are contiguous (tile-major, the packer's tiled4 layout),
// so a warp reads two 512 B runs one tile stride apart; "interleaved": the pair's two tiles of a chunk
// are adjacent (one 1 KB run per chunk). kScales: 0 codes only; 1 also the pair's scale words of the
// chunk (2 x 64 B, Q4_0's 2 groups x 8 words per tile) from a separate tile-major array, as the packer
// lays them out; 2 the same 128 B stored right after the chunk's codes (one 1,152 B run per chunk).
template <int kRing, bool kInterleaved, int kScales = 0>
__global__ void __launch_bounds__(256, 2) pattern_kernel(const uint4* base, int n_pairs, int n_chunks, int slices,
                                                         uint32_t* sink, const uint32_t* scales = nullptr) {
  extern __shared__ uint4 ring_s[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int slice = blockIdx.x % slices, r = blockIdx.x / slices;
  const int per_slice = gridDim.x / slices;
  const int c0 = slice * n_chunks / slices, c1 = (slice + 1) * n_chunks / slices, len = c1 - c0;
  const int nw = per_slice * 8, lw = r * 8 + warp;
  const int units = lw < n_pairs ? (n_pairs - 1 - lw) / nw + 1 : 0;
  const int total = units * len;
  constexpr int kSlot = 72;  // uint4 per slot: 64 of codes, 8 of scale words
  uint4* ring = ring_s + warp * kRing * kSlot;
  auto src = [&](int u, int tt) {
    const int64_t gp = lw + int64_t{u / len} * nw, c = c0 + u % len;
    if (kScales == 2) return base + (gp * n_chunks + c) * 72 + tt * 32 + lane;  // codes, then 128 B of scales
    return kInterleaved ? base + ((gp * n_chunks + c) * 2 + tt) * 32 + lane
                        : base + ((2 * gp + tt) * n_chunks + c) * 32 + lane;
  };
  auto issue = [&](int u, int slot) {
    for (int tt = 0; tt < 2; ++tt) {
      const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(ring + slot * kSlot + tt * 32 + lane));
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src(u, tt)) : "memory");
    }
    if (kScales != 0) {  // lane L: scale word L of the pair's 32 ([tile][group][row])
      const int64_t gp = lw + int64_t{u / len} * nw, c = c0 + u % len;
      const uint32_t* w = kScales == 2 ? reinterpret_cast<const uint32_t*>(base + (gp * n_chunks + c) * 72 + 64) + lane
                                       : scales + ((2 * gp + lane / 16) * n_chunks + c) * 16 + lane % 16;
      const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(reinterpret_cast<uint32_t*>(ring + slot * kSlot + 64) + lane));
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(d), "l"(w) : "memory");
    }
  };
  for (int i = 0; i < kRing; ++i) {
    if (i < total) issue(i, i);
    asm volatile("cp.async.commit_group;" ::: "memory");
  }
  uint32_t acc = 0;
  for (int u = 0; u < total; ++u) {
    asm volatile("cp.async.wait_group %0;" ::"n"(kRing - 1) : "memory");
    const int slot = u % kRing;
    const uint4 a = ring[slot * kSlot + lane], b = ring[slot * kSlot + 32 + lane];
    acc ^= a.x ^ b.y;
    if (kScales != 0) acc ^= reinterpret_cast<const uint32_t*>(ring + slot * kSlot + 64)[lane];
    __syncwarp();
    if (u + kRing < total) issue(u + kRing, slot);
    asm volatile("cp.async.commit_group;" ::: "memory");
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

