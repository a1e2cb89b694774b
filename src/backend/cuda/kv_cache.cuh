// The CUDA KV cache: per layer a ring of `capacity` slots of K and V in bf16 (half the bytes of
// fp32, the dtype the reference model keeps its cache in), [capacity, n_kv_heads, head_dim] each,
// and the kv_store kernel that writes new tokens at slot = position % capacity.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace ge::cuda {

class CudaKvCache final : public KvCache {
 public:
  struct Layer {
    KvLayerSpec spec;
    __nv_bfloat16* k = nullptr;
    __nv_bfloat16* v = nullptr;
  };
  size_t bytes() const override { return memory_.bytes(); }
  const Layer& layer(int32_t i) const { return layers_[static_cast<size_t>(i)]; }
  int32_t n_layers() const { return static_cast<int32_t>(layers_.size()); }

  std::vector<Layer> layers_;
  DeviceMemory memory_;
};

// A decode batch's caches (token t in caches[t]) as the kernels see them: token t's layer lives at
// bases[t] + k_offset / v_offset bytes. Only caches whose layers share one layout (same specs, so
// the same offsets from the allocation's start) form a view; the host checks that.
struct KvBatchView {
  uint8_t* const* bases = nullptr;  // [T] device memory: each cache's allocation start
  int64_t k_offset = 0, v_offset = 0;
};

// Checks every geometry, allocates one block for all layers and zero-fills it: on `stream` (queued, so
// work later queued on that stream sees the zeros), or with a blocking cudaMemset when stream is null.
Result<std::unique_ptr<CudaKvCache>> create_cuda_kv_cache(const std::vector<KvLayerSpec>& specs,
                                                          cudaStream_t stream = nullptr);

cudaError_t launch_kv_store(const CudaKvCache::Layer& layer, const float* k, const float* v, int64_t n_tokens,
                            const int32_t* positions, const LaunchContext& ctx);
// kv_store of token t (one position each) into the cache bases[t]; `layer` gives the geometry.
cudaError_t launch_kv_store_batch(const CudaKvCache::Layer& layer, const KvBatchView& batch, const float* k,
                                  const float* v, int64_t n_tokens, const int32_t* positions,
                                  const LaunchContext& ctx);

}  // namespace ge::cuda
