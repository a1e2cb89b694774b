// The "cpu" backend: weights repacked into 8-row SIMD tiles at load, activations quantized to int8
// per block of 32 once per matmul, tiles split over the thread pool; vector ops and attention use
// the run-time selected kernel table. Memory, KV cache and kv_store are the reference backend's.
#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_packed_weight.h"
#include "backend/cpu/cpu_reference_backend.h"

namespace ge {
namespace {

using cpu::CpuPackedWeight;
using cpu::kBlock;
using cpu::kRowTile;

// Elementwise ops below this size run on the calling thread (waking the pool costs more).
constexpr int64_t kParallelElems = 1 << 15;

class CpuBackend final : public CpuReferenceBackend {
 public:
  CpuBackend(int n_threads, cpu::CpuIsa isa, cpu::CpuActivations acts)
      : CpuReferenceBackend(n_threads), k_(cpu::kernels_for(isa)), acts_(acts) {}
  std::string name() const override { return "cpu"; }

  void set_placement(cpu::WeightPlacement p) { placement_ = p; }

  Result<std::unique_ptr<PackedWeight>> pack_weight(const QuantWeight& w) override {
    std::unique_ptr<CpuPackedWeight> p;
    if (placement_ == cpu::WeightPlacement::kInPlace && cpu::in_place_supported(w.type)) {
      GE_ASSIGN_OR_RETURN(p, cpu::view_cpu_weight_in_place(w));
    } else {
      GE_ASSIGN_OR_RETURN(p, cpu::pack_cpu_weight(w, &pool_));
    }
    return std::unique_ptr<PackedWeight>(std::move(p));
  }

  void embed(const int32_t* tokens, int64_t n_tokens, const PackedWeight& table, float scale,
             float* out) override {
    const auto& w = static_cast<const CpuPackedWeight&>(table);
    for (int64_t t = 0; t < n_tokens; ++t) {
      GE_CHECK(tokens[t] >= 0 && tokens[t] < w.rows());
      float* row = out + t * w.cols();
      w.dequantize_row(tokens[t], row);
      k_.scale(row, w.cols(), scale);
    }
  }

  void matmul(const float* x, int64_t m, const PackedWeight& pw, float* y) override {
    const auto& w = static_cast<const CpuPackedWeight&>(pw);
    const int64_t n = w.rows(), k = w.cols(), tiles = w.tiles();
    if (m <= 0) return;
    if (w.kind() == cpu::PackedKind::kInPlace) {
      matmul_in_place(x, m, w, y);
      return;
    }
    // Chunks of tiles claimed dynamically: about 8 per thread, at most 64 tiles (a few hundred KiB
    // of weights) each.
    const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(64, tiles / (8 * pool_.size())));
    if (w.kind() == cpu::PackedKind::kF32) {
      const float* wd = reinterpret_cast<const float*>(w.data());
      parallel_chunks(tiles, grain, [&](int64_t b, int64_t e) { k_.gemm_f32(wd, n, k, x, m, b, e, y, n); });
      return;
    }
    const cpu::QStreamLayout& l = w.layout();
    const int64_t nb = l.blocks;
    d_.resize(static_cast<size_t>(m * nb));
    dsum_.resize(static_cast<size_t>(m * nb));
    sum16_.resize(static_cast<size_t>(m * nb * 2));
    const bool int16 = m <= cpu::kInt16MaxTokens || acts_ == cpu::CpuActivations::kInt16;
    if (int16) {
      q16_.resize(static_cast<size_t>(m * nb * kBlock));
    } else {
      q_.resize(static_cast<size_t>(m * nb * kBlock));
    }
    // Quantize every token once (parallel over tokens for large inputs).
    auto quantize = [&](int64_t b, int64_t e) {
      if (int16) {
        k_.quantize_acts16(x + b * k, e - b, nb, q16_.data() + b * nb * kBlock, d_.data() + b * nb,
                           dsum_.data() + b * nb, sum16_.data() + b * nb * 2);
      } else {
        k_.quantize_acts(x + b * k, e - b, nb, q_.data() + b * nb * kBlock, d_.data() + b * nb,
                         dsum_.data() + b * nb, sum16_.data() + b * nb * 2);
      }
    };
    if (m * k >= kParallelElems) {
      pool_.parallel_for(m, 1, quantize);
    } else {
      quantize(0, m);
    }
    // Prefill is blocked over tokens too: a chunk's activations (≤ 256 KiB) stay in L2 while every
    // tile of the weight streams past them, instead of each 8-row tile re-reading all tokens.
    const int64_t act_bytes = k * (int16 ? 2 : 1);
    const int64_t tok_chunk = std::clamp<int64_t>((256 << 10) / act_bytes / 8 * 8, 8, 256);
    const int64_t n_tok_chunks = (m + tok_chunk - 1) / tok_chunk;
    // With several tokens, a chunk of tiles is sized to stay in L1 (16 KiB) across the chunk's
    // token groups; decode streams each tile once, so its chunks only amortise the claiming.
    const int64_t tile_grain =
        m <= cpu::kInt16MaxTokens ? grain : std::clamp<int64_t>((16 << 10) / l.tile_stride, 1, 64);
    const int64_t n_tile_chunks = (tiles + tile_grain - 1) / tile_grain;
    parallel_chunks(n_tok_chunks * n_tile_chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t t0 = (item / n_tile_chunks) * tok_chunk, tile0 = (item % n_tile_chunks) * tile_grain;
        const int64_t o = t0 * nb;
        cpu::QuantizedActs a{int16 ? nullptr : q_.data() + o * kBlock, int16 ? q16_.data() + o * kBlock : nullptr,
                             d_.data() + o, dsum_.data() + o, sum16_.data() + 2 * o, std::min(tok_chunk, m - t0), nb};
        const int64_t tile1 = std::min(tiles, tile0 + tile_grain);
        if (int16) {
          k_.gemm_q16(l, w.data(), n, a, tile0, tile1, y + t0 * n, n);
        } else {
          k_.gemm_q(l, w.data(), n, a, tile0, tile1, y + t0 * n, n);
        }
      }
    });
  }

  void rms_norm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y) override {
    rows_op(rows, n, [&](int64_t r) { k_.rms_norm_row(x + r * n, w, n, eps, nullptr, y + r * n); });
  }

  void add_rms_norm(float* x, const float* a, const float* w, int64_t rows, int64_t n, float eps) override {
    rows_op(rows, n, [&](int64_t r) { k_.rms_norm_row(a + r * n, w, n, eps, x + r * n, x + r * n); });
  }

  void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
            const float* inv_freq) override {
    const int64_t half = head_dim / 2;
    rows_op(n_tokens, n_heads * head_dim, [&](int64_t t) {
      // cos/sin once per token and pair (the same fp32 angle and libm calls as the reference),
      // then contiguous, vectorisable passes over each head.
      std::vector<float> cs(static_cast<size_t>(2 * half));
      float* c = cs.data();
      float* s = c + half;
      for (int64_t j = 0; j < half; ++j) {
        const float angle = static_cast<float>(positions[t]) * inv_freq[j];
        c[j] = inv_freq[j] == 0.0f ? 1.0f : std::cos(angle);
        s[j] = inv_freq[j] == 0.0f ? 0.0f : std::sin(angle);
      }
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * head_dim;
        float* v2 = v + half;
        for (int64_t j = 0; j < half; ++j) {
          const float a = v[j], b = v2[j];
          v[j] = a * c[j] - b * s[j];
          v2[j] = b * c[j] + a * s[j];
        }
      }
    });
  }

  void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out) override {
    elems_op(n, [&](int64_t b, int64_t e) { k_.gelu_tanh_mul(gate + b, up + b, e - b, out + b); });
  }
  void add(const float* a, const float* b, int64_t n, float* out) override {
    elems_op(n, [&](int64_t s, int64_t e) { k_.add(a + s, b + s, e - s, out + s); });
  }
  void scale(float* x, int64_t n, float s) override {
    elems_op(n, [&](int64_t b, int64_t e) { k_.scale(x + b, e - b, s); });
  }
  void softcap(float* x, int64_t n, float cap) override {
    elems_op(n, [&](int64_t b, int64_t e) { k_.softcap(x + b, e - b, cap); });
  }

  void attention(const KvCache& cache, int32_t layer, const float* q, int64_t n_tokens,
                 const int32_t* positions, const AttentionParams& p, float* out) override {
    const auto& c = static_cast<const CpuKvCache&>(cache);
    const KvLayerSpec& s = c.spec(layer);
    GE_CHECK(p.n_kv_heads == s.n_kv_heads && p.head_dim == s.head_dim && p.n_heads % p.n_kv_heads == 0);
    const int64_t d = p.head_dim, group = p.n_heads / p.n_kv_heads;
    const int64_t kv_row = static_cast<int64_t>(s.n_kv_heads) * d;
    const float* kc = c.k(layer);
    const float* vc = c.v(layer);
    // One task = one token × a run of query heads sharing a KV head, so each cached K/V row is
    // read once for all of them. Decode (few tokens) splits the group into single heads instead,
    // to keep every thread busy.
    const int64_t per_task = n_tokens * p.n_kv_heads >= 2 * pool_.size() ? group : 1;
    const int64_t runs = group / per_task;
    parallel_chunks(n_tokens * p.n_kv_heads * runs, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scores;
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t t = idx / (p.n_kv_heads * runs);
        const int64_t g = (idx / runs) % p.n_kv_heads;
        const int64_t h0 = g * group + (idx % runs) * per_task;
        const int64_t pos = positions[t];
        GE_CHECK(pos >= 0);
        const int64_t lo = p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0;
        const int64_t n_keys = pos - lo + 1;
        GE_CHECK(n_keys <= s.capacity);
        // The visible keys occupy ring slots [lo % cap, ...), wrapping once at most.
        const int64_t slot0 = lo % s.capacity;
        const int64_t run1 = std::min<int64_t>(n_keys, s.capacity - slot0);
        const float* qv = q + (t * p.n_heads + h0) * d;  // [per_task, d]
        float* o = out + (t * p.n_heads + h0) * d;       // [per_task, d]
        scores.resize(static_cast<size_t>(per_task * n_keys));
        float* sc = scores.data();  // [per_task, n_keys]
        k_.attn_scores(qv, per_task, d, kc + slot0 * kv_row + g * d, kv_row, run1, sc, n_keys);
        if (run1 < n_keys) k_.attn_scores(qv, per_task, d, kc + g * d, kv_row, n_keys - run1, sc + run1, n_keys);
        for (int64_t i = 0; i < per_task; ++i) {
          float* row = sc + i * n_keys;
          k_.scale(row, n_keys, p.scale);
          if (p.logit_softcap > 0.0f) k_.softcap(row, n_keys, p.logit_softcap);
          float mx = -INFINITY;
          for (int64_t j = 0; j < n_keys; ++j) mx = std::max(mx, row[j]);
          k_.scale(row, n_keys, 1.0f / k_.exp_sum(row, n_keys, mx));
        }
        std::fill(o, o + per_task * d, 0.0f);
        k_.attn_accumulate(sc, n_keys, per_task, vc + slot0 * kv_row + g * d, kv_row, run1, d, o);
        if (run1 < n_keys) k_.attn_accumulate(sc + run1, n_keys, per_task, vc + g * d, kv_row, n_keys - run1, d, o);
      }
    });
  }

 private:
  // GGUF rows read from the mapping, int16 activations (decode and prefill). Prefill is blocked
  // over tokens (a chunk's activations stay in L2) and rows (a chunk of rows stays in L1 while the
  // chunk's tokens pass over it, four at a time).
  void matmul_in_place(const float* x, int64_t m, const CpuPackedWeight& w, float* y) {
    const int64_t n = w.rows(), k = w.cols(), nb = k / kBlock;
    d_.resize(static_cast<size_t>(m * nb));
    dsum_.resize(static_cast<size_t>(m * nb));
    sum16_.resize(static_cast<size_t>(m * nb * 2));
    q16_.resize(static_cast<size_t>(m * nb * kBlock));
    auto quantize = [&](int64_t b, int64_t e) {
      k_.quantize_acts16(x + b * k, e - b, nb, q16_.data() + b * nb * kBlock, d_.data() + b * nb,
                         dsum_.data() + b * nb, sum16_.data() + b * nb * 2);
    };
    if (m * k >= kParallelElems) {
      pool_.parallel_for(m, 1, quantize);
    } else {
      quantize(0, m);
    }
    const int64_t rb = w.source_row_bytes();
    const int64_t tok_chunk = std::clamp<int64_t>((256 << 10) / (2 * k) / 4 * 4, 4, 256);
    const int64_t n_tok_chunks = (m + tok_chunk - 1) / tok_chunk;
    const int64_t row_grain =
        m <= cpu::kInt16MaxTokens ? std::clamp<int64_t>(n / (8 * pool_.size()), 1, 256)
                                  : std::clamp<int64_t>((16 << 10) / rb, 1, 64);
    const int64_t n_row_chunks = (n + row_grain - 1) / row_grain;
    parallel_chunks(n_tok_chunks * n_row_chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t t0 = (item / n_row_chunks) * tok_chunk, r0 = (item % n_row_chunks) * row_grain;
        const int64_t o = t0 * nb;
        cpu::QuantizedActs a{nullptr, q16_.data() + o * kBlock, d_.data() + o, dsum_.data() + o,
                             sum16_.data() + 2 * o, std::min(tok_chunk, m - t0), nb};
        k_.gemm_rows16(w.source_bits(), w.source_data(), rb, a, r0, std::min(n, r0 + row_grain), y + t0 * n, n);
      }
    });
  }

  // fn(begin, end) over [0, n) in chunks of `chunk`, claimed one at a time by every thread of the
  // pool: on a shared machine a descheduled thread then delays the call by one chunk, not by a
  // static half of the work.
  template <typename Fn>
  void parallel_chunks(int64_t n, int64_t chunk, const Fn& fn) {
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    if (n_chunks <= 1 || pool_.size() == 1) {
      if (n > 0) fn(0, n);
      return;
    }
    std::atomic<int64_t> next{0};
    pool_.parallel_for(std::min<int64_t>(pool_.size(), n_chunks), 1, [&](int64_t, int64_t) {
      for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks;
           c = next.fetch_add(1, std::memory_order_relaxed)) {
        fn(c * chunk, std::min(n, (c + 1) * chunk));
      }
    });
  }

  // fn(r) for each of `rows` rows of `n` elements, over the pool when the rows are large enough.
  template <typename Fn>
  void rows_op(int64_t rows, int64_t n, const Fn& fn) {
    if (rows * n < kParallelElems || rows < 2) {
      for (int64_t r = 0; r < rows; ++r) fn(r);
      return;
    }
    pool_.parallel_for(rows, 1, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) fn(r);
    });
  }
  template <typename Fn>
  void elems_op(int64_t n, const Fn& fn) {
    if (n < kParallelElems) {
      fn(0, n);
      return;
    }
    pool_.parallel_for(n, 1024, fn);
  }

  const cpu::CpuKernels& k_;
  const cpu::CpuActivations acts_;
  cpu::WeightPlacement placement_ = cpu::WeightPlacement::kRepack;
  // Activation quantization scratch, reused across calls: [m][blocks][32] int8 (or int16) and per block d,
  // d·Σq and the two half sums. One backend serves one caller at a time (the pool does too).
  std::vector<int8_t> q_;
  std::vector<int16_t> q16_;
  std::vector<float> d_, dsum_;
  std::vector<int32_t> sum16_;
};

}  // namespace

Backend* create_cpu_backend_isa(int n_threads, cpu::CpuIsa isa, cpu::CpuActivations acts) {
  return new CpuBackend(n_threads, isa, acts);
}

Backend* create_cpu_backend(int n_threads) { return create_cpu_backend_isa(n_threads, cpu::detect_cpu_isa()); }

namespace cpu {

uint64_t mem_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream in(line.substr(13));
    uint64_t kib = 0;
    if (in >> kib && kib < (uint64_t{1} << 44)) return kib * 1024;
    return 0;
  }
  return 0;
}

WeightPlacement choose_weight_placement(uint64_t packed_bytes, uint64_t available, bool force_in_place) {
  if (force_in_place) return WeightPlacement::kInPlace;
  if (available == 0) return WeightPlacement::kRepack;
  // While packing, the mapped source pages sit in the page cache beside the copy: both must fit,
  // with 1 GiB left for activations, the KV cache and everything else.
  const uint64_t margin = uint64_t{1} << 30;
  return available > margin && packed_bytes <= (available - margin) / 2 ? WeightPlacement::kRepack
                                                                         : WeightPlacement::kInPlace;
}

bool set_weight_placement(Backend& b, WeightPlacement p) {
  auto* cb = dynamic_cast<CpuBackend*>(&b);
  if (cb == nullptr) return false;
  cb->set_placement(p);
  return true;
}

std::string apply_weight_policy(Backend& b, uint64_t weight_bytes, bool force_in_place) {
  if (dynamic_cast<CpuBackend*>(&b) == nullptr) return "";
  const uint64_t avail = mem_available_bytes();
  const WeightPlacement p = choose_weight_placement(weight_bytes, avail, force_in_place);
  set_weight_placement(b, p);
  if (p == WeightPlacement::kRepack) return "";
  char buf[256];
  const double gib = 1.0 / (1u << 30);
  if (force_in_place) {
    std::snprintf(buf, sizeof(buf), "cpu: Q4_0/Q8_0 weights used in place from the mapping (--no-repack)");
  } else {
    std::snprintf(buf, sizeof(buf),
                  "cpu: Q4_0/Q8_0 weights used in place from the mapping (a %.2f GiB packed copy would not fit "
                  "in %.2f GiB available)",
                  static_cast<double>(weight_bytes) * gib, static_cast<double>(avail) * gib);
  }
  return buf;
}

}  // namespace cpu

}  // namespace ge
