// CudaBackendImpl: validates op arguments on the host, queues kernels on its stream and records the
// first failure (launch errors, bad shapes); synchronize() turns it, any asynchronous device error
// and the kernels' data-error word into a Status.
#include "backend/cuda/cuda_backend.h"

#include <string>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/elementwise.cuh"
#include "backend/cuda/gemm.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/kv_cache.cuh"
#include "backend/cuda/norm.cuh"
#include "backend/cuda/packed_weight.cuh"
#include "backend/cuda/rope.cuh"

namespace ge {
namespace cuda {

std::string describe_device_errors(uint32_t bits) {
  std::string s;
  auto add = [&](const char* text) {
    if (!s.empty()) s += "; ";
    s += text;
  };
  if (bits & kErrTokenRange) add("embed: token id outside the embedding table");
  if (bits & kErrPosition) add("negative token position");
  if (bits & kErrKvWindow) add("attention needs more keys than the KV ring holds (capacity too small)");
  if (s.empty()) s = "unknown device error bits " + std::to_string(bits);
  return s;
}

namespace {

class CudaBackendImpl final : public CudaBackend {
 public:
  ~CudaBackendImpl() override {
    if (stream_ != nullptr) {
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
  }

  Status init() {
    int count = 0;
    GE_RETURN_IF_ERROR(cuda_status(cudaGetDeviceCount(&count), "cudaGetDeviceCount"));
    if (count == 0) return unsupported("cuda: no CUDA device found");
    int dev = 0;
    GE_RETURN_IF_ERROR(cuda_status(cudaGetDevice(&dev), "cudaGetDevice"));
    cudaDeviceProp prop{};
    GE_RETURN_IF_ERROR(cuda_status(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties"));
    if (prop.major < 8) {
      return unsupported(std::string("cuda: device '") + prop.name + "' (sm_" + std::to_string(prop.major) +
                         std::to_string(prop.minor) + ") is older than sm_80, which the kernels need");
    }
    device_name_ = prop.name;
    num_sms_ = prop.multiProcessorCount;
    GE_RETURN_IF_ERROR(cuda_status(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "create stream"));
    GE_RETURN_IF_ERROR(error_mem_.allocate(sizeof(uint32_t), "device error word"));
    GE_RETURN_IF_ERROR(cuda_status(cudaMemset(error_mem_.get(), 0, sizeof(uint32_t)), "clear error word"));
    GE_RETURN_IF_ERROR(cuda_status(configure_gemv_kernels(), "configure gemv kernels"));
    GE_RETURN_IF_ERROR(cuda_status(configure_attention_kernels(), "configure attention kernels"));
    return gemm_.init();
  }

  std::string name() const override { return "cuda"; }
  void* stream() const override { return stream_; }
  std::string device_name() const override { return device_name_; }

  // ---- memory ----
  Result<DeviceBuffer> alloc(size_t bytes) override {
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, bytes == 0 ? 16 : bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return out_of_memory("cuda: cannot allocate " + std::to_string(bytes) + " bytes of device memory: " +
                           cudaGetErrorString(err));
    }
    return DeviceBuffer(this, p, bytes);
  }
  void free_memory(void* ptr) override { record(cudaFree(ptr), "cudaFree"); }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    record(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    record(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    record(cudaStreamSynchronize(stream_), "download");
  }
  Status synchronize() override {
    record(cudaStreamSynchronize(stream_), "synchronize");
    uint32_t bits = 0;
    cudaError_t err = cudaMemcpy(&bits, error_mem_.get(), sizeof(bits), cudaMemcpyDeviceToHost);
    record(err, "read device error word");
    if (err == cudaSuccess && bits != 0) {
      record_status(invalid_argument("cuda: " + describe_device_errors(bits)));
      record(cudaMemset(error_mem_.get(), 0, sizeof(uint32_t)), "clear device error word");
    }
    Status out = first_error_;
    (void)(first_error_ = Status::ok());
    return out;
  }

  // ---- load time ----
  Result<std::unique_ptr<PackedWeight>> pack_weight(const QuantWeight& w) override {
    GE_ASSIGN_OR_RETURN(std::unique_ptr<CudaPackedWeight> p, pack_quant_weight(w, ctx()));
    return std::unique_ptr<PackedWeight>(std::move(p));
  }
  Result<std::unique_ptr<PackedWeight>> synthesize_weight(const QuantWeight& like, uint64_t seed) override {
    GE_ASSIGN_OR_RETURN(std::unique_ptr<CudaPackedWeight> p,
                        synthesize_packed_weight(like.type, like.rows, like.cols, like.group_size,
                                                 like.zero != nullptr, seed, ctx()));
    return std::unique_ptr<PackedWeight>(std::move(p));
  }
  Result<std::unique_ptr<KvCache>> create_kv_cache(const std::vector<KvLayerSpec>& layers) override {
    GE_ASSIGN_OR_RETURN(std::unique_ptr<CudaKvCache> c, create_cuda_kv_cache(layers));
    return std::unique_ptr<KvCache>(std::move(c));
  }
  Status dequantize(const PackedWeight& w, float* out) override {
    record(launch_dequantize_f32(view(w), out, ctx()), "dequantize");
    return synchronize();
  }
  std::string layout_name(const PackedWeight& w) const override {
    switch (view(w).layout) {
      case WeightLayout::kTiled4: return "tiled4";
      case WeightLayout::kTiled8: return "tiled8";
      case WeightLayout::kRawBlocks: return "raw";
      case WeightLayout::kRawGroup: return "raw-group";
    }
    return "unknown";
  }
  void set_matmul_tuning(const CudaMatmulTuning& tuning) override { tuning_ = tuning; }

  // ---- ops ----
  void embed(const int32_t* tokens, int64_t n_tokens, const PackedWeight& table, float scale,
             float* out) override {
    record(launch_embed(tokens, n_tokens, view(table), scale, out, ctx()), "embed");
  }

  void matmul(const float* x, int64_t m, const PackedWeight& pw, float* y) override {
    if (m <= 0) return;
    const WeightView& w = view(pw);
    const bool tiled = w.layout == WeightLayout::kTiled4 || w.layout == WeightLayout::kTiled8;
    if (m <= kGemvMaxM) {
      if (tiled) {
        GemvTuning tune;
        tune.ctas_per_sm = tuning_.gemv_ctas_per_sm;
        record(launch_gemv_tiled(w, x, static_cast<int>(m), y, GemvScratch{&gemv_scratch_, &gemv_split_partial_, &gemv_split_count_}, tune, ctx()),
               "matmul (tensor-core gemv)");
      } else {
        record(launch_gemv_raw(w, x, m, y, ctx()), "matmul (gemv)");
      }
      return;
    }
    record_status(gemm_.run(w, x, m, y, ctx()));
  }

  void rms_norm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y) override {
    record(launch_rms_norm(x, w, rows, n, eps, y, ctx()), "rms_norm");
  }
  void add_rms_norm(float* x, const float* a, const float* w, int64_t rows, int64_t n, float eps) override {
    record(launch_add_rms_norm(x, a, w, rows, n, eps, ctx()), "add_rms_norm");
  }
  void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
            const float* inv_freq) override {
    if (head_dim % 2 != 0) {
      record_status(invalid_argument("cuda rope: head_dim " + std::to_string(head_dim) + " is odd"));
      return;
    }
    record(launch_rope(x, n_tokens, n_heads, head_dim, positions, inv_freq, ctx()), "rope");
  }
  void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out) override {
    record(launch_gelu_tanh_mul(gate, up, n, out, ctx()), "gelu_tanh_mul");
  }
  void add(const float* a, const float* b, int64_t n, float* out) override {
    record(launch_add(a, b, n, out, ctx()), "add");
  }
  void scale(float* x, int64_t n, float s) override { record(launch_scale(x, n, s, ctx()), "scale"); }
  void softcap(float* x, int64_t n, float cap) override {
    if (!(cap > 0.0f)) {
      record_status(invalid_argument("cuda softcap: cap must be positive"));
      return;
    }
    record(launch_softcap(x, n, cap, ctx()), "softcap");
  }

  void kv_store(KvCache& cache, int32_t layer, const float* k, const float* v, int64_t n_tokens,
                const int32_t* positions) override {
    auto& c = static_cast<CudaKvCache&>(cache);
    if (layer < 0 || layer >= c.n_layers()) {
      record_status(invalid_argument("cuda kv_store: layer " + std::to_string(layer) + " out of range"));
      return;
    }
    record(launch_kv_store(c.layer(layer), k, v, n_tokens, positions, ctx()), "kv_store");
  }

  void attention(const KvCache& cache, int32_t layer, const float* q, int64_t n_tokens, const int32_t* positions,
                 const AttentionParams& p, float* out) override {
    const auto& c = static_cast<const CudaKvCache&>(cache);
    if (layer < 0 || layer >= c.n_layers()) {
      record_status(invalid_argument("cuda attention: layer " + std::to_string(layer) + " out of range"));
      return;
    }
    const KvLayerSpec& s = c.layer(layer).spec;
    if (p.n_kv_heads != s.n_kv_heads || p.head_dim != s.head_dim) {
      record_status(invalid_argument("cuda attention: heads/head_dim do not match KV cache layer " +
                                     std::to_string(layer)));
      return;
    }
    if (!attention_supported(p)) {
      record_status(unsupported("cuda attention: head_dim " + std::to_string(p.head_dim) + " with " +
                                std::to_string(p.n_heads) + " query / " + std::to_string(p.n_kv_heads) +
                                " KV heads is not supported (head_dim multiple of 8 up to 512, group <= 8)"));
      return;
    }
    record(launch_attention(c.layer(layer), q, n_tokens, positions, p, out, AttentionScratch{&attn_scratch_}, ctx()),
           "attention");
  }

 private:
  static const WeightView& view(const PackedWeight& w) { return static_cast<const CudaPackedWeight&>(w).view(); }

  LaunchContext ctx() const {
    LaunchContext c;
    c.stream = stream_;
    c.error_word = error_mem_.as<uint32_t>();
    c.num_sms = num_sms_;
    c.programmatic_launch = tuning_.programmatic_launch;
    return c;
  }
  void record(cudaError_t err, const char* what) {
    if (err != cudaSuccess && first_error_.is_ok()) (void)(first_error_ = cuda_status(err, what));
  }
  void record_status(const Status& s) {
    if (!s.is_ok() && first_error_.is_ok()) (void)(first_error_ = s);
  }

  cudaStream_t stream_ = nullptr;
  DeviceMemory error_mem_;
  Status first_error_;
  std::string device_name_;
  int num_sms_ = 0;
  CudaMatmulTuning tuning_;
  GemmRunner gemm_;
  DeviceMemory gemv_scratch_;
  DeviceMemory gemv_split_partial_;
  DeviceMemory gemv_split_count_;
  DeviceMemory attn_scratch_;
};

}  // namespace
}  // namespace cuda

Result<std::unique_ptr<Backend>> create_cuda_backend() {
  auto backend = std::make_unique<cuda::CudaBackendImpl>();
  GE_RETURN_IF_ERROR(backend->init());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace ge
