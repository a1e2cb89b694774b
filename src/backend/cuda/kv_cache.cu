// KV cache allocation (checked sizes, one cudaMalloc) and the kv_store kernel (fp32 -> bf16).
#include "backend/cuda/kv_cache.cuh"

#include <string>

#include "core/checked_math.h"

namespace ge::cuda {
namespace {

struct KvStoreParams {
  __nv_bfloat16* k_cache;
  __nv_bfloat16* v_cache;
  const float* k;  // [n_tokens, n_kv * d]
  const float* v;
  const int32_t* positions;
  int64_t n_tokens, row;
  int32_t capacity;
  uint32_t* error_word;
  KvBatchView batch;  // bases null: every token goes to k_cache / v_cache
};

static __global__ void kv_store_kernel(KvStoreParams p) {
  const int64_t total = p.n_tokens * p.row;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / p.row, e = i % p.row;
    const int32_t pos = p.positions[t];
    if (pos < 0) {
      if (e == 0) raise_device_error(p.error_word, kErrPosition);
      continue;
    }
    const int64_t dst = static_cast<int64_t>(pos % p.capacity) * p.row + e;
    __nv_bfloat16* kc = p.k_cache;
    __nv_bfloat16* vc = p.v_cache;
    if (p.batch.bases != nullptr) {
      kc = reinterpret_cast<__nv_bfloat16*>(p.batch.bases[t] + p.batch.k_offset);
      vc = reinterpret_cast<__nv_bfloat16*>(p.batch.bases[t] + p.batch.v_offset);
    }
    kc[dst] = __float2bfloat16_rn(p.k[i]);
    vc[dst] = __float2bfloat16_rn(p.v[i]);
  }
}

}  // namespace

Result<std::unique_ptr<CudaKvCache>> create_cuda_kv_cache(const std::vector<KvLayerSpec>& specs, cudaStream_t stream) {
  auto cache = std::make_unique<CudaKvCache>();
  uint64_t total = 0;
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < specs.size(); ++i) {
    const KvLayerSpec& s = specs[i];
    if (s.n_kv_heads <= 0 || s.head_dim <= 0 || s.capacity <= 0 || s.sliding_window < 0) {
      return invalid_argument("cuda: invalid KV cache geometry for layer " + std::to_string(i));
    }
    uint64_t elems = 0, bytes = 0;
    if (!mul_ok(static_cast<uint64_t>(s.capacity), static_cast<uint64_t>(s.n_kv_heads), &elems) ||
        !mul_ok(elems, static_cast<uint64_t>(s.head_dim), &elems) || !mul_ok(elems, 2 * sizeof(__nv_bfloat16), &bytes) ||
        !pad_ok(bytes, 256, &bytes)) {
      return invalid_argument("cuda: KV cache size of layer " + std::to_string(i) + " overflows");
    }
    offsets.push_back(total);
    if (!add_ok(total, bytes, &total)) return invalid_argument("cuda: KV cache size overflows");
  }
  Status st = cache->memory_.allocate(total, "KV cache");
  if (!st.is_ok()) {
    return out_of_memory("cuda: KV cache needs " + std::to_string(total >> 20) +
                         " MiB of device memory; lower the context length (--ctx)");
  }
  if (total > 0) {
    const cudaError_t e = stream != nullptr ? cudaMemsetAsync(cache->memory_.get(), 0, total, stream)
                                            : cudaMemset(cache->memory_.get(), 0, total);
    GE_RETURN_IF_ERROR(cuda_status(e, "clear KV cache"));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    CudaKvCache::Layer layer;
    layer.spec = specs[i];
    const size_t elems = static_cast<size_t>(specs[i].capacity) * specs[i].n_kv_heads * specs[i].head_dim;
    layer.k = reinterpret_cast<__nv_bfloat16*>(cache->memory_.as<uint8_t>() + offsets[i]);
    layer.v = layer.k + elems;
    cache->layers_.push_back(layer);
  }
  return std::move(cache);
}

cudaError_t launch_kv_store(const CudaKvCache::Layer& layer, const float* k, const float* v, int64_t n_tokens,
                            const int32_t* positions, const LaunchContext& ctx) {
  const int64_t row = int64_t{layer.spec.n_kv_heads} * layer.spec.head_dim;
  if (n_tokens <= 0) return cudaSuccess;
  kv_store_kernel<<<blocks_for(n_tokens * row, 256, 8192), 256, 0, ctx.stream>>>(
      KvStoreParams{layer.k, layer.v, k, v, positions, n_tokens, row, layer.spec.capacity, ctx.error_word, {}});
  return cudaGetLastError();
}

cudaError_t launch_kv_store_batch(const CudaKvCache::Layer& layer, const KvBatchView& batch, const float* k,
                                  const float* v, int64_t n_tokens, const int32_t* positions,
                                  const LaunchContext& ctx) {
  const int64_t row = int64_t{layer.spec.n_kv_heads} * layer.spec.head_dim;
  if (n_tokens <= 0) return cudaSuccess;
  if (batch.bases == nullptr) return cudaErrorInvalidValue;
  kv_store_kernel<<<blocks_for(n_tokens * row, 256, 8192), 256, 0, ctx.stream>>>(
      KvStoreParams{nullptr, nullptr, k, v, positions, n_tokens, row, layer.spec.capacity, ctx.error_word, batch});
  return cudaGetLastError();
}

}  // namespace ge::cuda
