// Attention over the bf16 KV ring. Decode (few queries): split-K flash-decoding, one CTA per
// (KV head, key split, token) serving every query head of the GQA group (each K/V byte read once),
// the splits sized on the device from the visible keys; the last split CTA of a (token, KV head) to
// finish merges the partials. One sequence's step at head_dim 64..512 (powers of two) runs on tensor
// cores with Q and P split into three bf16 parts (fp32-equivalent sums); otherwise fp32 SIMT kernels.
// Prefill: tensor-core flash attention (attention_prefill.cu: bf16 mma, fp32 softmax) for head_dim
// 32..512 powers of two; otherwise, or on request, a SIMT fp32 kernel (16 queries x 32 keys per step).
// Both only visit key blocks some query can see (causal and sliding-window masks).
#pragma once

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kv_cache.cuh"

namespace ge::cuda {

constexpr int kAttentionMaxGroup = 8;  // query heads per KV head the decode kernel serves
constexpr int kAttentionMaxHeadDim = 512;

// Whether the kernels take this geometry (head_dim a multiple of 8 up to 512, GQA group <= 8).
bool attention_supported(const AttentionParams& p);

struct AttentionScratch {
  DeviceMemory* partials = nullptr;  // split-K partial outputs
  bool simt_prefill = false;         // use the fp32 SIMT prefill kernel (reference / comparison)
};

// With batch.bases set, token t is one decode query of its own sequence, cache batch.bases[t]
// (`layer` gives the geometry): always the split-K decode kernel, any n_tokens.
cudaError_t launch_attention(const CudaKvCache::Layer& layer, const float* q, int64_t n_tokens,
                             const int32_t* positions, const AttentionParams& p, float* out,
                             const AttentionScratch& scratch, const LaunchContext& ctx,
                             const KvBatchView& batch = {});

cudaError_t configure_attention_kernels();

}  // namespace ge::cuda
