// CudaBackendImpl: validates op arguments on the host, queues kernels on its stream and records the
// first failure (launch errors, bad shapes); synchronize() turns it, any asynchronous device error
// and the kernels' data-error word into a Status.
#include "backend/cuda/cuda_backend.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/attention_prefill.cuh"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/decode_fused.cuh"
#include "backend/cuda/elementwise.cuh"
#include "backend/cuda/gemm.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/kv_cache.cuh"
#include "backend/cuda/norm.cuh"
#include "backend/cuda/packed_weight.cuh"
#include "backend/cuda/rope.cuh"
#include "backend/cuda/sampling.cuh"

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

class CudaBackendImpl;

// A captured decode step: the instantiated graph ends with copies of the readback region and the
// device error word into pinned host memory, so a replay is one launch and one wait.
class CudaCapturedGraph final : public CapturedGraph {
 public:
  CudaCapturedGraph(CudaBackendImpl* backend, cudaGraphExec_t exec, void* pinned, size_t readback_bytes,
                    std::vector<const void*> scratch)
      : backend_(backend), exec_(exec), pinned_(pinned), bytes_(readback_bytes), scratch_(std::move(scratch)) {}
  ~CudaCapturedGraph() override;
  Status replay(void* host_dst) override;
  bool valid() const override;

 private:
  CudaBackendImpl* backend_;
  cudaGraphExec_t exec_;
  void* pinned_;  // [bytes_] readback, then the 4-byte error word
  size_t bytes_;
  std::vector<const void*> scratch_;  // backend scratch pointers the recording uses
};

constexpr size_t kMaxReadback = 4096;

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
    // On stream_ (non-blocking: it does not wait for the legacy stream a plain cudaMemset runs on).
    GE_RETURN_IF_ERROR(
        cuda_status(cudaMemsetAsync(error_mem_.get(), 0, sizeof(uint32_t), stream_), "clear error word"));
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
      record(cudaMemsetAsync(error_mem_.get(), 0, sizeof(uint32_t), stream_), "clear device error word");
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
    // Cleared on stream_ (non-blocking: a plain cudaMemset on the legacy stream would not be ordered
    // before this stream's first kv_store).
    Result<std::unique_ptr<CudaKvCache>> c = create_cuda_kv_cache(layers, stream_);
    if (!c.is_ok()) {
      if (c.status().code() != StatusCode::kOutOfMemory) return c.status();
      size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      return out_of_memory(c.status().message() + " (device has " + std::to_string(free_b) + " bytes free of " +
                           std::to_string(total_b) + ")");
    }
    return std::unique_ptr<KvCache>(std::move(c).value());
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

  // ---- device-resident decode ----
  bool supports_device_decode() const override { return true; }
  Result<BackendMemoryInfo> memory_info() override {
    BackendMemoryInfo m;
    GE_RETURN_IF_ERROR(cuda_status(cudaMemGetInfo(&m.free_bytes, &m.total_bytes), "cudaMemGetInfo"));
    return m;
  }
  Status sample_tokens(const float* logits, int64_t rows, int64_t vocab, DeviceSamplerState* state,
                       int32_t* out_tokens) override {
    if (rows <= 0 || rows > 65535 || vocab <= 0 || vocab > (int64_t{1} << 30))
      return invalid_argument("cuda sample_tokens: " + std::to_string(rows) + " rows of " + std::to_string(vocab) +
                              " logits is out of range");
    if (logits == nullptr || state == nullptr || out_tokens == nullptr)
      return invalid_argument("cuda sample_tokens: null buffer");
    if (sample_scratch_.get() == nullptr) {
      // Fixed size, allocated and zeroed once (the kernels leave it zeroed): never inside a recording.
      if (capturing_) return internal_error("cuda sample_tokens: run the sampler once before capturing it");
      GE_RETURN_IF_ERROR(sample_scratch_.allocate(sampler_scratch_bytes(), "sampler scratch"));
      record(cudaMemsetAsync(sample_scratch_.get(), 0, sample_scratch_.bytes(), stream_), "sampler scratch");
    }
    record(launch_sample_tokens(logits, rows, vocab, state, out_tokens, sample_scratch_.get(), ctx()),
           "sample_tokens");
    return Status::ok();
  }
  Status advance_positions(int32_t* positions, int64_t n, int32_t delta) override {
    if (n < 0 || (n > 0 && positions == nullptr)) return invalid_argument("cuda advance_positions: bad arguments");
    record(launch_advance_positions(positions, n, delta, ctx()), "advance_positions");
    return Status::ok();
  }
  Status begin_capture() override {
    if (capturing_) return invalid_argument("cuda begin_capture: already capturing");
    GE_RETURN_IF_ERROR(synchronize());
    // Pinned readback slot for this recording, allocated now: allocation is not allowed while capturing.
    GE_RETURN_IF_ERROR(cuda_status(cudaMallocHost(&capture_pinned_, kMaxReadback + sizeof(uint32_t)), "cudaMallocHost"));
    capture_scratch_ = scratch_pointers();
    cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
      cudaFreeHost(capture_pinned_);
      capture_pinned_ = nullptr;
      return cuda_status(e, "cudaStreamBeginCapture");
    }
    capturing_ = true;
    return Status::ok();
  }
  Result<std::unique_ptr<CapturedGraph>> end_capture(const void* readback_src, size_t readback_bytes) override {
    if (!capturing_) return invalid_argument("cuda end_capture: not capturing");
    capturing_ = false;
    void* pinned = capture_pinned_;
    capture_pinned_ = nullptr;
    if (readback_bytes > kMaxReadback || (readback_bytes > 0 && readback_src == nullptr)) {
      record_status(invalid_argument("cuda end_capture: readback of " + std::to_string(readback_bytes) +
                                     " bytes (at most " + std::to_string(kMaxReadback) + ")"));
    } else {
      if (readback_bytes > 0)
        record(cudaMemcpyAsync(pinned, readback_src, readback_bytes, cudaMemcpyDeviceToHost, stream_), "readback");
      record(cudaMemcpyAsync(static_cast<uint8_t*>(pinned) + kMaxReadback, error_mem_.get(), sizeof(uint32_t),
                             cudaMemcpyDeviceToHost, stream_),
             "error word readback");
    }
    cudaGraph_t graph = nullptr;
    record(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    if (first_error_.is_ok() && graph != nullptr) record(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
    if (graph != nullptr) cudaGraphDestroy(graph);
    // Anything recorded must not have moved scratch (the recording would point at freed memory).
    if (first_error_.is_ok() && scratch_pointers() != capture_scratch_)
      record_status(internal_error("cuda end_capture: scratch was reallocated while capturing; run the ops once "
                                   "eagerly before recording them"));
    if (!first_error_.is_ok()) {
      if (exec != nullptr) cudaGraphExecDestroy(exec);
      cudaFreeHost(pinned);
      (void)cudaGetLastError();
      Status out = first_error_;
      (void)(first_error_ = Status::ok());
      return out;
    }
    return std::unique_ptr<CapturedGraph>(
        std::make_unique<CudaCapturedGraph>(this, exec, pinned, readback_bytes, capture_scratch_));
  }

  // Used by CudaCapturedGraph.
  Status replay(cudaGraphExec_t exec, void* pinned, size_t bytes, void* host_dst) {
    record(cudaGraphLaunch(exec, stream_), "cudaGraphLaunch");
    record(cudaStreamSynchronize(stream_), "graph replay");
    if (!first_error_.is_ok()) return synchronize();
    uint32_t bits = 0;
    std::memcpy(&bits, static_cast<const uint8_t*>(pinned) + kMaxReadback, sizeof(bits));
    if (bits != 0) return synchronize();  // reports and clears the device error word
    if (bytes > 0 && host_dst != nullptr) std::memcpy(host_dst, pinned, bytes);
    return Status::ok();
  }
  std::vector<const void*> scratch_pointers() const {
    return {gemv_scratch_.get(), gemv_split_partial_.get(), gemv_split_count_.get(), attn_scratch_.get()};
  }

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
        record(launch_gemv_tiled(w, x, static_cast<int>(m), y, gemv_scratch(), gemv_tuning(), ctx()),
               "matmul (tensor-core gemv)");
      } else {
        record(launch_gemv_raw(w, x, m, y, ctx()), "matmul (gemv)");
      }
      return;
    }
    record_status(gemm_.run(w, x, m, y, ctx()));
  }

  GemvScratch gemv_scratch() { return GemvScratch{&gemv_scratch_, &gemv_split_partial_, &gemv_split_count_}; }
  GemvTuning gemv_tuning() const {
    GemvTuning tune;
    tune.ctas_per_sm = tuning_.gemv_ctas_per_sm;
    tune.schedule = tuning_.gemv_schedule;
    tune.int8_x = tuning_.gemv_int8_x < 0 ? int8_x_env_ : tuning_.gemv_int8_x != 0;
    return tune;
  }

  void matmul_shared_input(const float* x, int64_t m, std::span<const MatmulOutput> outs) override {
    if (m >= 1 && m <= kGemvMaxM && outs.size() >= 2 && outs.size() <= static_cast<size_t>(kGemvMaxOutputs)) {
      // GEMV: one launch for all outputs where they share a layout (same bits as one matmul each).
      GemvTarget t[kGemvMaxOutputs];
      for (size_t i = 0; i < outs.size(); ++i) t[i] = GemvTarget{&view(*outs[i].w), outs[i].y};
      const cudaError_t e = launch_gemv_tiled_group(std::span<const GemvTarget>(t, outs.size()), x,
                                                    static_cast<int>(m), gemv_scratch(), gemv_tuning(), ctx());
      if (e != cudaErrorNotSupported) {
        record(e, "matmul_shared_input (tensor-core gemv)");
        return;
      }
    }
    // GEMM path (prefill): x is rounded to bf16 once for all the products; otherwise one matmul each.
    constexpr size_t kMaxShared = 4;
    bool shared = m > kGemvMaxM && !outs.empty() && outs.size() <= kMaxShared;
    for (const MatmulOutput& o : outs) shared = shared && o.w->cols() == outs[0].w->cols();
    if (!shared) return Backend::matmul_shared_input(x, m, outs);
    GemmRunner::Output g[kMaxShared];
    for (size_t i = 0; i < outs.size(); ++i) g[i] = GemmRunner::Output{&view(*outs[i].w), outs[i].y};
    record_status(gemm_.run_shared(x, m, std::span<const GemmRunner::Output>(g, outs.size()), ctx()));
  }

  void matmul_gelu_input(float* gate, const float* up, int64_t m, const PackedWeight& w, float* y) override {
    // gelu(gate) * up is formed where the product reads its input: the GEMM's bf16 conversion (prefill)
    // or the GEMV's x staging (decode, fp16 K-slice kernel); elsewhere gelu_tanh_mul + matmul.
    if (!GemmRunner::gelu_input_enabled() || m <= 0) return Backend::matmul_gelu_input(gate, up, m, w, y);
    if (m <= kGemvMaxM) {
      const cudaError_t e = launch_gemv_tiled_gelu(view(w), gate, up, static_cast<int>(m), y, gemv_scratch(),
                                                   gemv_tuning(), ctx());
      if (e == cudaErrorNotSupported) return Backend::matmul_gelu_input(gate, up, m, w, y);
      record(e, "matmul_gelu_input (tensor-core gemv)");
      return;
    }
    record_status(gemm_.run_gelu_input(view(w), gate, up, m, y, ctx()));
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

  void add_rms_norm_then_norm(float* x, const float* a, const float* w_post, float scale, const float* w_next,
                              int64_t rows, int64_t n, float eps, float* y) override {
    if (!fused_decode_) return Backend::add_rms_norm_then_norm(x, a, w_post, scale, w_next, rows, n, eps, y);
    {  // rows held in registers (vectorised, PDL); other shapes fall through to the general kernel
      const cudaError_t e = launch_add_rms_norm_then_norm_rows(x, a, w_post, scale, w_next, rows, n, eps, y, ctx());
      if (e != cudaErrorNotSupported) {
        record(e, "add_rms_norm_then_norm (rows)");
        return;
      }
    }
    record(launch_add_rms_norm_then_norm(x, a, w_post, scale, w_next, rows, n, eps, y, ctx()), "add_rms_norm_then_norm");
  }
  void add_rms_norm_then_matmul(float* x, const float* a, const float* w_post, float scale, const float* w_next,
                                int64_t rows, int64_t n, float eps, float* y, std::span<const MatmulOutput> outs) override {
    // Prefill: the normed rows go to the GEMM as bf16 straight from the add-norm (no fp32 y, no conversion).
    constexpr size_t kMaxShared = 4;
    bool direct = fused_decode_ && rows > kGemvMaxM && w_next != nullptr && !outs.empty() &&
                  outs.size() <= kMaxShared && GemmRunner::norm_input_enabled();
    for (const MatmulOutput& o : outs) direct = direct && o.w->cols() == n;
    if (!direct) return Backend::add_rms_norm_then_matmul(x, a, w_post, scale, w_next, rows, n, eps, y, outs);
    Result<__nv_bfloat16*> in = gemm_.input_bf16(rows, n);
    if (!in.is_ok()) return record_status(in.status());
    const cudaError_t e = launch_add_rms_norm_then_norm_rows(x, a, w_post, scale, w_next, rows, n, eps, nullptr, ctx(), *in);
    if (e == cudaErrorNotSupported) return Backend::add_rms_norm_then_matmul(x, a, w_post, scale, w_next, rows, n, eps, y, outs);
    record(e, "add_rms_norm_then_matmul (rows)");
    GemmRunner::Output g[kMaxShared];
    for (size_t i = 0; i < outs.size(); ++i) g[i] = GemmRunner::Output{&view(*outs[i].w), outs[i].y};
    record_status(gemm_.run_prepared(rows, std::span<const GemmRunner::Output>(g, outs.size()), ctx()));
  }
  void attention_prologue(KvCache& cache, int32_t layer, const AttentionPrologue& p) override {
    auto& c = static_cast<CudaKvCache&>(cache);
    if (layer < 0 || layer >= c.n_layers()) {
      record_status(invalid_argument("cuda attention_prologue: layer " + std::to_string(layer) + " out of range"));
      return;
    }
    const KvLayerSpec& s = c.layer(layer).spec;
    if (p.n_kv != s.n_kv_heads || p.head_dim != s.head_dim) {
      record_status(invalid_argument("cuda attention_prologue: heads/head_dim do not match KV cache layer " +
                                     std::to_string(layer)));
      return;
    }
    if (!fused_decode_) return Backend::attention_prologue(cache, layer, p);
    if (p.n_tokens > kGemvMaxM) {  // prefill chunk: one warp per head row; other shapes fall through
      const cudaError_t e = launch_attention_prologue_rows(c.layer(layer), p, ctx());
      if (e != cudaErrorNotSupported) {
        record(e, "attention_prologue (rows)");
        return;
      }
    }
    record(launch_attention_prologue(c.layer(layer), p, ctx()), "attention_prologue");
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

  // ---- decode batches: one launch for the kv_store / attention of every sequence ----
  void kv_store_batch(const std::vector<KvCache*>& caches, int32_t layer, const float* k, const float* v,
                      int64_t n_kv, int64_t head_dim, const int32_t* positions) override {
    KvBatchView bv;
    const CudaKvCache::Layer* geom = nullptr;
    const BatchForm form = batch_view(caches, layer, "kv_store_batch", &geom, &bv);
    if (form == BatchForm::kError) return;
    if (form == BatchForm::kLoop) return Backend::kv_store_batch(caches, layer, k, v, n_kv, head_dim, positions);
    if (n_kv != geom->spec.n_kv_heads || head_dim != geom->spec.head_dim) {
      record_status(invalid_argument("cuda kv_store_batch: heads/head_dim do not match KV cache layer " +
                                     std::to_string(layer)));
      return;
    }
    record(launch_kv_store_batch(*geom, bv, k, v, static_cast<int64_t>(caches.size()), positions, ctx()),
           "kv_store_batch");
  }

  void attention_prologue_batch(const std::vector<KvCache*>& caches, int32_t layer,
                                const AttentionPrologue& p) override {
    if (!fused_decode_) return Backend::attention_prologue_batch(caches, layer, p);
    KvBatchView bv;
    const CudaKvCache::Layer* geom = nullptr;
    const BatchForm form = batch_view(caches, layer, "attention_prologue_batch", &geom, &bv);
    if (form == BatchForm::kError) return;
    if (form == BatchForm::kLoop) return Backend::attention_prologue_batch(caches, layer, p);
    if (p.n_kv != geom->spec.n_kv_heads || p.head_dim != geom->spec.head_dim ||
        p.n_tokens != static_cast<int64_t>(caches.size())) {
      record_status(invalid_argument("cuda attention_prologue_batch: heads/head_dim/tokens do not match KV cache layer " +
                                     std::to_string(layer)));
      return;
    }
    record(launch_attention_prologue(*geom, p, ctx(), bv), "attention_prologue_batch");
  }

  void attention_batch(const std::vector<KvCache*>& caches, int32_t layer, const float* q, const int32_t* positions,
                       const AttentionParams& p, float* out) override {
    KvBatchView bv;
    const CudaKvCache::Layer* geom = nullptr;
    const BatchForm form = batch_view(caches, layer, "attention_batch", &geom, &bv);
    if (form == BatchForm::kError) return;
    if (form == BatchForm::kLoop) return Backend::attention_batch(caches, layer, q, positions, p, out);
    if (p.n_kv_heads != geom->spec.n_kv_heads || p.head_dim != geom->spec.head_dim) {
      record_status(invalid_argument("cuda attention_batch: heads/head_dim do not match KV cache layer " +
                                     std::to_string(layer)));
      return;
    }
    if (!attention_supported(p)) {
      record_status(unsupported("cuda attention_batch: head_dim " + std::to_string(p.head_dim) + " with " +
                                std::to_string(p.n_heads) + " query / " + std::to_string(p.n_kv_heads) +
                                " KV heads is not supported (head_dim multiple of 8 up to 512, group <= 8)"));
      return;
    }
    record(launch_attention(*geom, q, static_cast<int64_t>(caches.size()), positions, p, out,
                            AttentionScratch{&attn_scratch_}, ctx(), bv),
           "attention_batch");
  }

 private:
  enum class BatchForm { kBatch, kLoop, kError };

  // The kernels' view of a decode batch's caches: every cache's layer `layer` must sit at the same
  // offsets from its allocation (same specs for all layers up to it), else the ops loop per
  // sequence (kLoop), as they do while recording a graph (the table upload is not recordable).
  // The device table of allocation starts is uploaded only when the set of caches changes, so
  // the layers of one step (and steps of an unchanged batch) reuse it.
  BatchForm batch_view(const std::vector<KvCache*>& caches, int32_t layer, const char* op,
                       const CudaKvCache::Layer** geom, KvBatchView* bv) {
    if (caches.empty()) return BatchForm::kError;
    for (KvCache* kc : caches) {
      if (kc == nullptr) {
        record_status(invalid_argument(std::string("cuda ") + op + ": null KV cache"));
        return BatchForm::kError;
      }
      const auto& c = static_cast<const CudaKvCache&>(*kc);
      if (layer < 0 || layer >= c.n_layers()) {
        record_status(invalid_argument(std::string("cuda ") + op + ": layer " + std::to_string(layer) + " out of range"));
        return BatchForm::kError;
      }
    }
    if (capturing_) return BatchForm::kLoop;
    const auto& first = static_cast<const CudaKvCache&>(*caches[0]);
    const CudaKvCache::Layer& l0 = first.layer(layer);
    const uint8_t* base0 = first.memory_.as<uint8_t>();
    const int64_t k_off = reinterpret_cast<const uint8_t*>(l0.k) - base0;
    const int64_t v_off = reinterpret_cast<const uint8_t*>(l0.v) - base0;
    batch_host_.clear();
    for (KvCache* kc : caches) {
      const auto& c = static_cast<const CudaKvCache&>(*kc);
      const CudaKvCache::Layer& l = c.layer(layer);
      uint8_t* base = c.memory_.as<uint8_t>();
      if (l.spec.n_kv_heads != l0.spec.n_kv_heads || l.spec.head_dim != l0.spec.head_dim ||
          l.spec.capacity != l0.spec.capacity || reinterpret_cast<const uint8_t*>(l.k) - base != k_off ||
          reinterpret_cast<const uint8_t*>(l.v) - base != v_off)
        return BatchForm::kLoop;
      batch_host_.push_back(base);
    }
    if (batch_host_ != batch_uploaded_) {
      if (Status st = batch_bases_.ensure(batch_host_.size() * sizeof(uint8_t*), "decode batch table"); !st.is_ok()) {
        record_status(st);
        return BatchForm::kError;
      }
      // Pageable source: the copy is staged before cudaMemcpyAsync returns, and it is ordered after
      // the kernels already queued that read the previous table.
      upload(batch_bases_.get(), batch_host_.data(), batch_host_.size() * sizeof(uint8_t*));
      batch_uploaded_ = batch_host_;
    }
    *geom = &l0;
    bv->bases = batch_bases_.as<uint8_t*>();
    bv->k_offset = k_off;
    bv->v_offset = v_off;
    return BatchForm::kBatch;
  }

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
  DeviceMemory sample_scratch_;            // the sampler's counters, histograms and pools
  DeviceMemory batch_bases_;               // [T] KV cache allocation starts of the decode batch
  std::vector<uint8_t*> batch_host_;       // scratch for building the table
  std::vector<uint8_t*> batch_uploaded_;   // what batch_bases_ holds
  bool capturing_ = false;
  // Lab switch: GE_CUDA_UNFUSED=1 runs the separate kernels instead of the fused decode ones
  // (same results; for measuring what the fusion saves).
  bool fused_decode_ = std::getenv("GE_CUDA_UNFUSED") == nullptr;
  // GE_CUDA_GEMV_INT8X=1: the int8-x GEMV where CudaMatmulTuning::gemv_int8_x is left at -1.
  bool int8_x_env_ = [] {
    const char* e = std::getenv("GE_CUDA_GEMV_INT8X");
    return e != nullptr && std::strcmp(e, "1") == 0;
  }();
  void* capture_pinned_ = nullptr;
  std::vector<const void*> capture_scratch_;
};

CudaCapturedGraph::~CudaCapturedGraph() {
  if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
  if (pinned_ != nullptr) cudaFreeHost(pinned_);
}

Status CudaCapturedGraph::replay(void* host_dst) {
  if (!valid()) return internal_error("cuda: replay of a graph whose scratch memory has moved (re-record it)");
  return backend_->replay(exec_, pinned_, bytes_, host_dst);
}

bool CudaCapturedGraph::valid() const { return backend_->scratch_pointers() == scratch_; }

}  // namespace
}  // namespace cuda

Result<std::unique_ptr<Backend>> create_cuda_backend() {
  auto backend = std::make_unique<cuda::CudaBackendImpl>();
  GE_RETURN_IF_ERROR(backend->init());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace ge
