// Prefill flash attention on the tensor cores (mma.sync m16n8k16, bf16 operands, fp32 accumulators
// and softmax) over the bf16 KV ring: 64 queries of one head per CTA, 64-key tiles.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/cuda_common.cuh"

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

// Head dims the kernel is instantiated for: 32, 64, 128, 256, 512.
bool prefill_attention_mma_supported(int head_dim);

cudaError_t launch_prefill_attention_mma(const PrefillAttentionArgs& args, cudaStream_t stream);

cudaError_t configure_prefill_attention_mma();

}  // namespace ge::cuda
