// Reference CPU backend. Each op is the obvious loop, parallelised over independent rows/heads with
// the thread pool; accumulation is fp32 with several partial sums so the compiler can vectorise.
#include "backend/cpu/cpu_reference_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// A weight kept as its source view: packing for the reference is the identity.
class CpuWeight final : public PackedWeight {
 public:
  explicit CpuWeight(const QuantWeight& w) : PackedWeight(w.rows, w.cols, w.type), w_(w) {}
  size_t bytes() const override { return 0; }  // lives in the mapped file
  const QuantWeight& view() const { return w_; }

 private:
  QuantWeight w_;
};

void norm_row(const float* x, const float* w, int64_t n, float eps, float* y) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * (w ? w[i] : 1.0f);
}

}  // namespace

CpuKvCache::CpuKvCache(const std::vector<KvLayerSpec>& specs) : specs_(specs) {
  for (const auto& s : specs_) {
    size_t n = static_cast<size_t>(s.capacity) * static_cast<size_t>(s.n_kv_heads) *
               static_cast<size_t>(s.head_dim);
    k_.emplace_back(n, 0.0f);
    v_.emplace_back(n, 0.0f);
    bytes_ += 2 * n * sizeof(float);
  }
}

Result<DeviceBuffer> CpuReferenceBackend::alloc(size_t bytes) {
  void* p = std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
  if (p == nullptr) return out_of_memory("cpu: cannot allocate " + std::to_string(bytes) + " bytes");
  return DeviceBuffer(this, p, bytes);
}
void CpuReferenceBackend::free_memory(void* ptr) { std::free(ptr); }
void CpuReferenceBackend::upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuReferenceBackend::download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

Result<std::unique_ptr<PackedWeight>> CpuReferenceBackend::pack_weight(const QuantWeight& w) {
  GE_RETURN_IF_ERROR(validate_weight(w));
  return std::unique_ptr<PackedWeight>(new CpuWeight(w));
}

Result<std::unique_ptr<KvCache>> CpuReferenceBackend::create_kv_cache(const std::vector<KvLayerSpec>& layers) {
  uint64_t total = 0;
  for (const auto& s : layers) {
    if (s.n_kv_heads <= 0 || s.head_dim <= 0 || s.capacity <= 0)
      return invalid_argument("cpu: invalid KV cache layer geometry");
    total += 2ull * static_cast<uint64_t>(s.capacity) * static_cast<uint64_t>(s.n_kv_heads) *
             static_cast<uint64_t>(s.head_dim) * sizeof(float);
  }
  try {
    return std::unique_ptr<KvCache>(new CpuKvCache(layers));
  } catch (const std::bad_alloc&) {
    return out_of_memory("cpu: KV cache needs " + std::to_string(total >> 20) +
                         " MiB; lower the context length (--ctx)");
  }
}

void CpuReferenceBackend::embed(const int32_t* tokens, int64_t n_tokens, const PackedWeight& table, float scale,
                                float* out) {
  const QuantWeight& w = static_cast<const CpuWeight&>(table).view();
  for (int64_t t = 0; t < n_tokens; ++t) {
    GE_CHECK(tokens[t] >= 0 && tokens[t] < w.rows);
    float* row = out + t * w.cols;
    dequantize_row(w, tokens[t], row);
    for (int64_t i = 0; i < w.cols; ++i) row[i] *= scale;
  }
}

void CpuReferenceBackend::matmul(const float* x, int64_t m, const PackedWeight& pw, float* y) {
  const QuantWeight& w = static_cast<const CpuWeight&>(pw).view();
  const int64_t n = w.rows, k = w.cols;
  pool_.parallel_for(n, 8, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = begin; r < end; ++r) {
      dequantize_row(w, r, row.data());  // decode once, reuse for every token
      for (int64_t i = 0; i < m; ++i) y[i * n + r] = dot_f32(x + i * k, row.data(), k);
    }
  });
}

void CpuReferenceBackend::rms_norm(const float* x, const float* w, int64_t rows, int64_t n, float eps,
                                   float* y) {
  pool_.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) norm_row(x + r * n, w, n, eps, y + r * n);
  });
}

void CpuReferenceBackend::add_rms_norm(float* x, const float* a, const float* w, int64_t rows, int64_t n,
                                       float eps) {
  pool_.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> tmp(static_cast<size_t>(n));
    for (int64_t r = begin; r < end; ++r) {
      norm_row(a + r * n, w, n, eps, tmp.data());
      for (int64_t i = 0; i < n; ++i) x[r * n + i] += tmp[static_cast<size_t>(i)];
    }
  });
}

void CpuReferenceBackend::rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                               const int32_t* positions, const float* inv_freq) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t j = 0; j < half; ++j) {
      if (inv_freq[j] == 0.0f) continue;  // proportional RoPE: this pair does not rotate
      // Angles in fp32 as the reference computes them (positions up to 2^24 are exact).
      const float angle = static_cast<float>(positions[t]) * inv_freq[j];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * head_dim;
        const float a = v[j], b = v[j + half];
        v[j] = a * c - b * s;
        v[j + half] = b * c + a * s;
      }
    }
  }
}

void CpuReferenceBackend::gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out) {
  const float k0 = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float gelu = 0.5f * g * (1.0f + std::tanh(k0 * (g + 0.044715f * g * g * g)));
    out[i] = gelu * up[i];
  }
}

void CpuReferenceBackend::add(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
void CpuReferenceBackend::scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}
void CpuReferenceBackend::softcap(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void CpuReferenceBackend::kv_store(KvCache& cache, int32_t layer, const float* k, const float* v,
                                   int64_t n_tokens, const int32_t* positions) {
  auto& c = static_cast<CpuKvCache&>(cache);
  const KvLayerSpec& s = c.spec(layer);
  const int64_t row = static_cast<int64_t>(s.n_kv_heads) * s.head_dim;
  for (int64_t t = 0; t < n_tokens; ++t) {
    GE_CHECK(positions[t] >= 0);
    const int64_t slot = positions[t] % s.capacity;
    std::memcpy(c.k(layer) + slot * row, k + t * row, static_cast<size_t>(row) * sizeof(float));
    std::memcpy(c.v(layer) + slot * row, v + t * row, static_cast<size_t>(row) * sizeof(float));
  }
}

void CpuReferenceBackend::attention(const KvCache& cache, int32_t layer, const float* q, int64_t n_tokens,
                                    const int32_t* positions, const AttentionParams& p, float* out) {
  const auto& c = static_cast<const CpuKvCache&>(cache);
  const KvLayerSpec& s = c.spec(layer);
  GE_CHECK(p.n_kv_heads == s.n_kv_heads && p.head_dim == s.head_dim && p.n_heads % p.n_kv_heads == 0);
  const int64_t d = p.head_dim, group = p.n_heads / p.n_kv_heads;
  const int64_t kv_row = static_cast<int64_t>(s.n_kv_heads) * d;
  pool_.parallel_for(n_tokens * p.n_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t t = idx / p.n_heads, h = idx % p.n_heads, g = h / group;
      const int64_t pos = positions[t];
      int64_t lo = 0;
      if (p.sliding_window > 0) lo = std::max<int64_t>(0, pos - p.sliding_window + 1);
      // Every visible key must still be cached: the ring holds `capacity` positions.
      GE_CHECK(pos - lo + 1 <= s.capacity);
      const float* qv = q + (t * p.n_heads + h) * d;
      scores.resize(static_cast<size_t>(pos - lo + 1));
      float mx = -INFINITY;
      for (int64_t kp = lo; kp <= pos; ++kp) {
        const float* kv = c.k(layer) + (kp % s.capacity) * kv_row + g * d;
        float sc = dot_f32(qv, kv, d) * p.scale;
        if (p.logit_softcap > 0.0f) sc = p.logit_softcap * std::tanh(sc / p.logit_softcap);
        scores[static_cast<size_t>(kp - lo)] = sc;
        mx = std::max(mx, sc);
      }
      float sum = 0.0f;
      for (float& sc : scores) {
        sc = std::exp(sc - mx);
        sum += sc;
      }
      float* o = out + (t * p.n_heads + h) * d;
      std::fill(o, o + d, 0.0f);
      for (int64_t kp = lo; kp <= pos; ++kp) {
        const float pr = scores[static_cast<size_t>(kp - lo)] / sum;
        const float* vv = c.v(layer) + (kp % s.capacity) * kv_row + g * d;
        for (int64_t i = 0; i < d; ++i) o[i] += pr * vv[i];
      }
    }
  });
}

Backend* create_cpu_reference_backend(int n_threads) { return new CpuReferenceBackend(n_threads); }

}  // namespace ge
