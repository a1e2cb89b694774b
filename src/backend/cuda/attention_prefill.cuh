// Prefill flash attention on the tensor cores (mma.sync m16n8k16, bf16 operands, fp32 accumulators
// and softmax) over the bf16 KV ring: 128 query rows per CTA (the heads of a GQA group times consecutive
// tokens; 64 rows for head_dim 512), K/V tiles of 64 keys (32 for head_dim 512) in two stages; and the
// attention prologue for prefill chunks (one warp per head row).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kv_cache.cuh"

namespace ge::cuda {

struct PrefillAttentionArgs {
  const float* q = nullptr;  // [T, n_heads, d], 16-byte aligned
  float* out = nullptr;      // [T, n_heads, d], 8-byte aligned
  const __nv_bfloat16* k = nullptr;  // ring [cap, n_kv, d]
  const __nv_bfloat16* v = nullptr;
  const int32_t* positions = nullptr;  // [T], read on the device
  uint32_t* error_word = nullptr;
  int n_tokens = 0, n_heads = 0, n_kv = 0, d = 0, group = 1, cap = 0, window = 0;
  float scale = 1.0f, softcap = 0.0f;
};

// Head dims the kernel is instantiated for: 32, 64, 128, 256, 512. The launch needs n_heads = group * n_kv
// and a ring of at least one slot (else cudaErrorInvalidValue). GE_CUDA_PREFILL_HEADS=n caps the query
// heads per CTA (default: up to 8, 4 for head_dim 512, as the GQA group allows); GE_CUDA_PREFILL_SPLIT_O=1
// runs head_dim 256 as two column groups of 8 warps (slower; kept for lab comparisons).
bool prefill_attention_mma_supported(int head_dim);

cudaError_t launch_prefill_attention_mma(const PrefillAttentionArgs& args, cudaStream_t stream);

cudaError_t configure_prefill_attention_mma();

// The attention prologue (backend.h AttentionPrologue: head norms, V = norm(raw K) or raw / normed V,
// RoPE, K/V to the bf16 ring) for many tokens: one warp per (token, head) row, the row in registers,
// warp-shuffle sums. Same expressions as the decode kernel (decode_fused.cu); the sums run in another
// order. Returns cudaErrorNotSupported where head_dim is not 64, 128, 256 or 512 (or operands are not
// 16-byte aligned): the caller keeps the general kernel. GE_CUDA_ROW_PROLOGUE=0 always declines.
cudaError_t launch_attention_prologue_rows(const CudaKvCache::Layer& layer, const AttentionPrologue& p,
                                           const LaunchContext& ctx);

}  // namespace ge::cuda
