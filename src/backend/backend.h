// The op interface every backend implements: coarse, Gemma-shaped ops on fp32 activations that live
// in backend memory (host RAM for the CPU, device memory for CUDA). The model (src/model) is written
// once against this interface; backends never re-implement the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "quant/quant_type.h"

namespace ge {

class Backend;

// Backend-owned memory (RAII). Pointers into it are only dereferenced by the owning backend.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend* owner, void* ptr, size_t bytes) : owner_(owner), ptr_(ptr), bytes_(bytes) {}
  ~DeviceBuffer();  // defined below Backend
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    DeviceBuffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }
  int32_t* i32() const { return static_cast<int32_t*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void swap(DeviceBuffer& o) noexcept {
    std::swap(owner_, o.owner_);
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
  }
  Backend* owner_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A weight matrix [rows, cols] repacked into the backend's own layout at load time. Packing is
// lossless: the packed form dequantizes to exactly what the source QuantWeight dequantizes to.
class PackedWeight {
 public:
  virtual ~PackedWeight() = default;
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  QuantType source_type() const { return source_type_; }
  // Bytes held by the packed form (weights + scales), for memory reports.
  virtual size_t bytes() const = 0;

 protected:
  PackedWeight(int64_t rows, int64_t cols, QuantType type) : rows_(rows), cols_(cols), source_type_(type) {}

 private:
  int64_t rows_;
  int64_t cols_;
  QuantType source_type_;
};

// Geometry of one layer's KV cache. Sliding layers keep a ring of `capacity` slots
// (window + largest prefill chunk), full layers keep `capacity` = the context length.
struct KvLayerSpec {
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t capacity = 0;        // slots; position p lives in slot p % capacity
  int32_t sliding_window = 0;  // 0 = full attention; else keys with q - k < window are visible
};

class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual size_t bytes() const = 0;
};

// Parameters of one attention call.
struct AttentionParams {
  int32_t n_heads = 0;     // query heads
  int32_t n_kv_heads = 0;  // query head h reads KV head h / (n_heads / n_kv_heads)
  int32_t head_dim = 0;
  int32_t sliding_window = 0;  // 0 = causal over everything cached
  float scale = 1.0f;          // applied to q·k
  float logit_softcap = 0.0f;  // 0 = none; else s = cap * tanh(s / cap)
};

// A sequence of queued ops recorded once (begin_capture .. end_capture) and replayed as a unit:
// one launch instead of one per op. The ops read their varying inputs (token ids, positions,
// sampler state) from backend memory, so the same recording serves every decode step.
class CapturedGraph {
 public:
  virtual ~CapturedGraph() = default;
  // Runs the recorded ops, then copies the readback region named at end_capture (a few bytes:
  // the sampled token ids) into `host_dst`, waits, and reports any error the ops raised.
  virtual Status replay(void* host_dst) = 0;
  // False once memory the recording points at has moved (backend scratch regrown by a larger op
  // since): the owner drops the graph, runs the step eagerly and records it again.
  virtual bool valid() const { return true; }
};

// Sampler state in backend memory, read by Backend::sample_tokens on the device so that a captured
// decode step needs no host input. `step` keys the counter-based RNG together with `seed`; every
// draw advances it, so the same seed reproduces the same tokens.
struct DeviceSamplerState {
  float temperature = 0.0f;  // 0 = greedy
  int32_t top_k = 0;         // 0 = disabled
  float top_p = 1.0f;        // 1 = disabled
  float min_p = 0.0f;        // 0 = disabled
  uint64_t seed = 0;
  uint64_t step = 0;
};

// Device memory in use, for memory reports and clear out-of-memory errors.
struct BackendMemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};

// The attention block's work between the Q/K/V projections and attention (one op so a backend can
// run it as one kernel): per-head RMSNorm of q (q_norm) and k (k_norm), V = rms_norm(raw k) when
// k_eq_v (else v, normalised without weight when v_norm), RoPE of q and k, K/V into the cache.
struct AttentionPrologue {
  float* q = nullptr;  // [n_tokens, n_heads, d]: raw in, normalised + rotated out
  float* k = nullptr;  // [n_tokens, n_kv, d]: raw in, clobbered
  float* v = nullptr;  // [n_tokens, n_kv, d]: raw V in (k_eq_v: output only), clobbered
  const float* q_norm = nullptr;  // [d]
  const float* k_norm = nullptr;  // [d]
  bool k_eq_v = false;
  bool v_norm = false;
  const float* inv_freq = nullptr;   // [d / 2]
  const int32_t* positions = nullptr;  // [n_tokens]
  int64_t n_tokens = 0, n_heads = 0, n_kv = 0, head_dim = 0;
  float eps = 1e-6f;
};

// One product of Backend::matmul_shared_input: y [m, w->rows] = x · wᵀ.
struct MatmulOutput {
  const PackedWeight* w = nullptr;
  float* y = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- memory ----
  virtual Result<DeviceBuffer> alloc(size_t bytes) = 0;
  virtual void free_memory(void* ptr) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  // Waits for queued work; reports errors a device raised asynchronously.
  virtual Status synchronize() = 0;

  // ---- load time ----
  virtual Result<std::unique_ptr<PackedWeight>> pack_weight(const QuantWeight& w) = 0;
  virtual Result<std::unique_ptr<KvCache>> create_kv_cache(const std::vector<KvLayerSpec>& layers) = 0;
  // Random weights built directly in backend memory (benchmarks of model shapes whose real weights
  // are out of reach). `like` gives the encoding, shape and group size; its pointers are ignored.
  // Optional.
  virtual Result<std::unique_ptr<PackedWeight>> synthesize_weight(const QuantWeight& like, uint64_t seed) {
    (void)like, (void)seed;
    return unsupported("backend '" + name() + "' cannot synthesize weights");
  }

  // ---- ops (shapes in brackets; all activations fp32, row-major) ----
  // out[t, :] = table[tokens[t], :] * scale. tokens: [n_tokens] in backend memory.
  virtual void embed(const int32_t* tokens, int64_t n_tokens, const PackedWeight& table, float scale,
                     float* out /* [n_tokens, table.cols] */) = 0;
  // y[m, n] = Σ_k x[m, k] · w[n, k]   (y = x · wᵀ)
  virtual void matmul(const float* x /* [m, w.cols] */, int64_t m, const PackedWeight& w,
                      float* y /* [m, w.rows] */) = 0;
  // Several products of one input: outs[i].y = x · outs[i].wᵀ for every i, all weights with the same
  // cols (q/k/v of a layer, gate/up). A backend may run them as one launch; the default loops.
  virtual void matmul_shared_input(const float* x /* [m, cols] */, int64_t m, std::span<const MatmulOutput> outs) {
    for (const MatmulOutput& o : outs) matmul(x, m, *o.w, o.y);
  }
  // add_rms_norm_then_norm (w_next set) followed by matmul_shared_input(y, rows, outs), every weight with
  // n cols. y [rows, n] is scratch: the default leaves the normed rows there, a backend may instead
  // feed them straight into its matmul input and leave y unwritten.
  virtual void add_rms_norm_then_matmul(float* x, const float* a, const float* w_post, float scale, const float* w_next,
                                        int64_t rows, int64_t n, float eps, float* y,
                                        std::span<const MatmulOutput> outs) {
    add_rms_norm_then_norm(x, a, w_post, scale, w_next, rows, n, eps, y);
    matmul_shared_input(y, rows, outs);
  }
  // The MLP's down projection: y = (gelu_tanh(gate) * up) · wᵀ. gate may be overwritten (the default
  // writes the product into it, then matmul); a backend may instead feed the product straight into
  // its matmul input.
  virtual void matmul_gelu_input(float* gate /* [m, w.cols] */, const float* up /* [m, w.cols] */, int64_t m,
                                 const PackedWeight& w, float* y /* [m, w.rows] */) {
    gelu_tanh_mul(gate, up, m * w.cols(), gate);
    matmul(gate, m, w, y);
  }
  // Per row of length n: y = x / sqrt(mean(x²) + eps) * (w ? w : 1). y may alias x.
  virtual void rms_norm(const float* x /* [rows, n] */, const float* w /* [n] or null */, int64_t rows,
                        int64_t n, float eps, float* y) = 0;
  // x += rms_norm(a) * w over rows of length n (post-norm then residual add, Gemma's sandwich).
  virtual void add_rms_norm(float* x /* [rows, n] */, const float* a /* [rows, n] */, const float* w,
                            int64_t rows, int64_t n, float eps);
  // NeoX ("rotate half") RoPE in place: dim j pairs with j + d/2; angle = positions[t] * inv_freq[j].
  // inv_freq [head_dim/2] is in backend memory; zero entries leave their pair unrotated.
  virtual void rope(float* x /* [n_tokens, n_heads, head_dim] */, int64_t n_tokens, int64_t n_heads,
                    int64_t head_dim, const int32_t* positions /* [n_tokens] */, const float* inv_freq) = 0;
  // out = gelu_tanh(gate) * up, elementwise.
  virtual void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out) = 0;
  virtual void add(const float* a, const float* b, int64_t n, float* out) = 0;
  virtual void scale(float* x, int64_t n, float s) = 0;
  // x = cap * tanh(x / cap)
  virtual void softcap(float* x, int64_t n, float cap) = 0;
  // x += rms_norm(a) * w_post; x *= scale unless scale == 1; then, when w_next is set,
  // y = rms_norm(x) * w_next (the next block's input norm). Backends may fuse it; the default
  // composes the ops above.
  virtual void add_rms_norm_then_norm(float* x /* [rows, n] */, const float* a, const float* w_post, float scale,
                                      const float* w_next, int64_t rows, int64_t n, float eps, float* y) {
    add_rms_norm(x, a, w_post, rows, n, eps);
    if (scale != 1.0f) this->scale(x, rows * n, scale);
    if (w_next != nullptr) rms_norm(x, w_next, rows, n, eps, y);
  }

  // Writes K and V of n_tokens consecutive positions into layer `layer` of the cache.
  virtual void kv_store(KvCache& cache, int32_t layer, const float* k /* [n_tokens, n_kv, d] */,
                        const float* v /* [n_tokens, n_kv, d] */, int64_t n_tokens,
                        const int32_t* positions) = 0;
  // See AttentionPrologue. The default composes rms_norm, rope and kv_store.
  virtual void attention_prologue(KvCache& cache, int32_t layer, const AttentionPrologue& p) {
    prologue_norms_and_rope(p);
    kv_store(cache, layer, p.k, p.v, p.n_tokens, p.positions);
  }
  // Causal (optionally sliding-window) attention of n_tokens queries at `positions` over everything
  // cached in `layer` up to each query's own position (its K/V must already be stored).
  virtual void attention(const KvCache& cache, int32_t layer, const float* q /* [n_tokens, n_heads, d] */,
                         int64_t n_tokens, const int32_t* positions, const AttentionParams& p,
                         float* out /* [n_tokens, n_heads, d] */) = 0;

  // ---- optional: decode of several sequences at once, one token each: token t belongs to the
  // sequence whose cache is caches[t] (rows t of q/k/v/out, positions[t]). A backend may run each
  // as one launch for all sequences; the defaults loop over the single-sequence ops. ----
  // kv_store of token t into caches[t].
  virtual void kv_store_batch(const std::vector<KvCache*>& caches, int32_t layer, const float* k /* [T, n_kv, d] */,
                              const float* v /* [T, n_kv, d] */, int64_t n_kv, int64_t head_dim,
                              const int32_t* positions /* [T] */);
  // attention_prologue with p.n_tokens == caches.size(). The default normalises and rotates every
  // token in one pass of rms_norm / rope, then calls kv_store_batch.
  virtual void attention_prologue_batch(const std::vector<KvCache*>& caches, int32_t layer, const AttentionPrologue& p);
  // attention of token t (one query position) over caches[t].
  virtual void attention_batch(const std::vector<KvCache*>& caches, int32_t layer, const float* q /* [T, n_heads, d] */,
                               const int32_t* positions /* [T] */, const AttentionParams& p,
                               float* out /* [T, n_heads, d] */);

  // ---- optional: device-resident decode (CUDA). Backends without it keep these defaults and the
  // model runs eagerly, sampling on the host. ----
  // Whether sample_tokens, advance_positions and begin/end_capture all work (the model then runs
  // decode steps as one recorded graph with the token sampled on the device).
  virtual bool supports_device_decode() const { return false; }
  // Device memory free / total; unsupported where the backend has no separate memory.
  virtual Result<BackendMemoryInfo> memory_info() { return unsupported("backend '" + name() + "' has no device memory"); }
  // Draws one token per logits row on the device with the temperature / top-k / top-p / min-p
  // chain of ge::Sampler (no penalties), writing ids in [0, vocab) to out_tokens [rows] and
  // advancing state->step by one. state: DeviceSamplerState in backend memory. Errors (host-side
  // argument checks) are returned now; device errors surface at synchronize().
  virtual Status sample_tokens(const float* logits /* [rows, vocab] */, int64_t rows, int64_t vocab,
                               DeviceSamplerState* state, int32_t* out_tokens /* [rows] */) {
    (void)logits, (void)rows, (void)vocab, (void)state, (void)out_tokens;
    return unsupported("backend '" + name() + "' cannot sample on the device");
  }
  // positions[i] += delta for i < n, on the device (the next decode step's positions).
  virtual Status advance_positions(int32_t* positions, int64_t n, int32_t delta) {
    (void)positions, (void)n, (void)delta;
    return unsupported("backend '" + name() + "' cannot advance positions on the device");
  }
  // Records every op queued until end_capture instead of running it. Ops must not allocate or
  // free while recording (run the same ops once eagerly first so scratch is sized).
  virtual Status begin_capture() { return unsupported("backend '" + name() + "' cannot capture graphs"); }
  // Ends recording. replay() copies `readback_bytes` from `readback_src` (backend memory) back.
  virtual Result<std::unique_ptr<CapturedGraph>> end_capture(const void* readback_src, size_t readback_bytes) {
    (void)readback_src, (void)readback_bytes;
    return unsupported("backend '" + name() + "' cannot capture graphs");
  }

 protected:
  // The cache-independent part of the prologue (V from K or v_norm, q/k head norms, RoPE), shared by
  // the default attention_prologue and attention_prologue_batch.
  void prologue_norms_and_rope(const AttentionPrologue& p) {
    const int64_t T = p.n_tokens, d = p.head_dim;
    if (p.k_eq_v) {
      rms_norm(p.k, nullptr, T * p.n_kv, d, p.eps, p.v);
    } else if (p.v_norm) {
      rms_norm(p.v, nullptr, T * p.n_kv, d, p.eps, p.v);
    }
    rms_norm(p.q, p.q_norm, T * p.n_heads, d, p.eps, p.q);
    rms_norm(p.k, p.k_norm, T * p.n_kv, d, p.eps, p.k);
    rope(p.q, T, p.n_heads, d, p.positions, p.inv_freq);
    rope(p.k, T, p.n_kv, d, p.positions, p.inv_freq);
  }
};

inline DeviceBuffer::~DeviceBuffer() {
  if (owner_ != nullptr && ptr_ != nullptr) owner_->free_memory(ptr_);
}

inline void Backend::add_rms_norm(float* x, const float* a, const float* w, int64_t rows, int64_t n,
                                  float eps) {
  // Default composition; backends override it with a fused kernel. Needs scratch for norm(a).
  Result<DeviceBuffer> tmp = alloc(static_cast<size_t>(rows * n) * sizeof(float));
  GE_CHECK_MSG(tmp.is_ok(), tmp.status().to_string());
  rms_norm(a, w, rows, n, eps, tmp->f32());
  add(x, tmp->f32(), rows * n, x);
}

inline void Backend::kv_store_batch(const std::vector<KvCache*>& caches, int32_t layer, const float* k,
                                    const float* v, int64_t n_kv, int64_t head_dim, const int32_t* positions) {
  const int64_t row = n_kv * head_dim;
  for (size_t t = 0; t < caches.size(); ++t) {
    const int64_t i = static_cast<int64_t>(t);
    kv_store(*caches[t], layer, k + i * row, v + i * row, 1, positions + i);
  }
}

inline void Backend::attention_prologue_batch(const std::vector<KvCache*>& caches, int32_t layer,
                                              const AttentionPrologue& p) {
  // Norms and RoPE do not touch the cache: one call each for all tokens (rows are independent).
  prologue_norms_and_rope(p);
  kv_store_batch(caches, layer, p.k, p.v, p.n_kv, p.head_dim, p.positions);
}

inline void Backend::attention_batch(const std::vector<KvCache*>& caches, int32_t layer, const float* q,
                                     const int32_t* positions, const AttentionParams& p, float* out) {
  const int64_t row = static_cast<int64_t>(p.n_heads) * p.head_dim;
  for (size_t t = 0; t < caches.size(); ++t) {
    const int64_t i = static_cast<int64_t>(t);
    attention(*caches[t], layer, q + i * row, 1, positions + i, p, out + i * row);
  }
}

// Creates a backend by name: "cpu" (always), "cuda" (when built with GE_CUDA).
Result<std::unique_ptr<Backend>> create_backend(const std::string& name, int n_threads);

}  // namespace ge
