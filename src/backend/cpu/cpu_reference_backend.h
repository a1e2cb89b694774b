// The reference CPU backend ("cpu-ref"): plain C++ ops, parallel over rows, weights decoded one row
// at a time from the mapped file. Every other backend (and the SIMD "cpu" backend) is tested against it.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace ge {

// fp32 KV cache shared by both CPU backends: per layer, K and V of [capacity, n_kv_heads, head_dim].
class CpuKvCache final : public KvCache {
 public:
  explicit CpuKvCache(const std::vector<KvLayerSpec>& specs);
  size_t bytes() const override { return bytes_; }
  const KvLayerSpec& spec(int32_t l) const { return specs_[static_cast<size_t>(l)]; }
  float* k(int32_t l) { return k_[static_cast<size_t>(l)].data(); }
  float* v(int32_t l) { return v_[static_cast<size_t>(l)].data(); }
  const float* k(int32_t l) const { return k_[static_cast<size_t>(l)].data(); }
  const float* v(int32_t l) const { return v_[static_cast<size_t>(l)].data(); }

 private:
  std::vector<KvLayerSpec> specs_;
  std::vector<std::vector<float>> k_, v_;
  size_t bytes_ = 0;
};

class CpuReferenceBackend : public Backend {
 public:
  explicit CpuReferenceBackend(int n_threads) : pool_(n_threads) {}
  std::string name() const override { return "cpu-ref"; }

  Result<DeviceBuffer> alloc(size_t bytes) override;
  void free_memory(void* ptr) override;
  void upload(void* dst, const void* src, size_t bytes) override;
  void download(void* dst, const void* src, size_t bytes) override;
  Status synchronize() override { return Status::ok(); }

  Result<std::unique_ptr<PackedWeight>> pack_weight(const QuantWeight& w) override;
  Result<std::unique_ptr<KvCache>> create_kv_cache(const std::vector<KvLayerSpec>& layers) override;

  void embed(const int32_t* tokens, int64_t n_tokens, const PackedWeight& table, float scale,
             float* out) override;
  void matmul(const float* x, int64_t m, const PackedWeight& w, float* y) override;
  void rms_norm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y) override;
  void add_rms_norm(float* x, const float* a, const float* w, int64_t rows, int64_t n, float eps) override;
  void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
            const float* inv_freq) override;
  void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out) override;
  void add(const float* a, const float* b, int64_t n, float* out) override;
  void scale(float* x, int64_t n, float s) override;
  void softcap(float* x, int64_t n, float cap) override;
  void kv_store(KvCache& cache, int32_t layer, const float* k, const float* v, int64_t n_tokens,
                const int32_t* positions) override;
  void attention(const KvCache& cache, int32_t layer, const float* q, int64_t n_tokens,
                 const int32_t* positions, const AttentionParams& p, float* out) override;

 protected:
  ThreadPool pool_;
};

}  // namespace ge
