// Batched decode on the CUDA backend: step time of GemmaModel::forward_batch with N sequences x 1 token
// (synthetic Gemma 4 31B, Q4_0) for several N, and where the time of one step goes per op class.
//   batch_decode_bench [--preset gemma-4-31b] [--depth 128] [--reps 5] [--ns 1,2,4,8,16,17,32,64] [--profile 1,16]
//                      [--batch-ops 1|0]   (0: attention per sequence, as before the batch ops)
//   batch_decode_bench --attn-micro 128,4096,32768 [--micro-ns 1,16,64] [--micro-iters 200] [--micro-probes 1]
//                      (decode attention and its prologue alone on the 31B's layer shapes, then exit)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "model/gemma_model.h"
#include "model/model_presets.h"
#include "sampling/sampler.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Forwards every op to the wrapped backend. With profiling on it synchronizes after each op and adds
// the op's host wall time (launch + device work; the queue is empty when the op starts) to its class.
class TimingBackend : public ge::Backend {
 public:
  explicit TimingBackend(ge::Backend& inner) : in_(inner) {}

  void set_profiling(bool on) { profiling_ = on; }
  void clear() { totals_.clear(); }
  const std::map<std::string, std::pair<double, long>>& totals() const { return totals_; }

  std::string name() const override { return in_.name(); }
  ge::Result<ge::DeviceBuffer> alloc(size_t bytes) override { return in_.alloc(bytes); }
  void free_memory(void* p) override { in_.free_memory(p); }
  void upload(void* dst, const void* src, size_t bytes) override {
    timed("upload", [&] { in_.upload(dst, src, bytes); });
  }
  void download(void* dst, const void* src, size_t bytes) override {
    timed("download", [&] { in_.download(dst, src, bytes); });
  }
  ge::Status synchronize() override { return in_.synchronize(); }
  ge::Result<std::unique_ptr<ge::PackedWeight>> pack_weight(const ge::QuantWeight& w) override {
    return in_.pack_weight(w);
  }
  ge::Result<std::unique_ptr<ge::KvCache>> create_kv_cache(const std::vector<ge::KvLayerSpec>& l) override {
    return in_.create_kv_cache(l);
  }
  ge::Result<std::unique_ptr<ge::PackedWeight>> synthesize_weight(const ge::QuantWeight& like, uint64_t seed) override {
    return in_.synthesize_weight(like, seed);
  }
  void embed(const int32_t* t, int64_t n, const ge::PackedWeight& table, float s, float* out) override {
    timed("embed", [&] { in_.embed(t, n, table, s, out); });
  }
  void matmul(const float* x, int64_t m, const ge::PackedWeight& w, float* y) override {
    char key[96];
    std::snprintf(key, sizeof(key), "matmul M=%-3lld %6lldx%-6lld", static_cast<long long>(m),
                  static_cast<long long>(w.rows()), static_cast<long long>(w.cols()));
    timed(key, [&] { in_.matmul(x, m, w, y); });
  }
  void rms_norm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y) override {
    timed("norm", [&] { in_.rms_norm(x, w, rows, n, eps, y); });
  }
  void add_rms_norm(float* x, const float* a, const float* w, int64_t rows, int64_t n, float eps) override {
    timed("norm", [&] { in_.add_rms_norm(x, a, w, rows, n, eps); });
  }
  void rope(float* x, int64_t t, int64_t h, int64_t d, const int32_t* pos, const float* f) override {
    timed("rope", [&] { in_.rope(x, t, h, d, pos, f); });
  }
  void gelu_tanh_mul(const float* g, const float* u, int64_t n, float* out) override {
    timed("elementwise", [&] { in_.gelu_tanh_mul(g, u, n, out); });
  }
  void add(const float* a, const float* b, int64_t n, float* out) override {
    timed("elementwise", [&] { in_.add(a, b, n, out); });
  }
  void scale(float* x, int64_t n, float s) override {
    timed("elementwise", [&] { in_.scale(x, n, s); });
  }
  void softcap(float* x, int64_t n, float cap) override {
    timed("elementwise", [&] { in_.softcap(x, n, cap); });
  }
  void add_rms_norm_then_norm(float* x, const float* a, const float* wp, float s, const float* wn, int64_t rows,
                              int64_t n, float eps, float* y) override {
    timed("norm", [&] { in_.add_rms_norm_then_norm(x, a, wp, s, wn, rows, n, eps, y); });
  }
  void kv_store(ge::KvCache& c, int32_t layer, const float* k, const float* v, int64_t n,
                const int32_t* pos) override {
    timed("kv_store", [&] { in_.kv_store(c, layer, k, v, n, pos); });
  }
  void attention_prologue(ge::KvCache& c, int32_t layer, const ge::AttentionPrologue& p) override {
    timed("attention_prologue (norms+rope+kv_store)", [&] { in_.attention_prologue(c, layer, p); });
  }
  void attention(const ge::KvCache& c, int32_t layer, const float* q, int64_t n, const int32_t* pos,
                 const ge::AttentionParams& p, float* out) override {
    timed("attention", [&] { in_.attention(c, layer, q, n, pos, p, out); });
  }
  void kv_store_batch(const std::vector<ge::KvCache*>& c, int32_t layer, const float* k, const float* v, int64_t n_kv,
                      int64_t d, const int32_t* pos) override {
    timed("kv_store_batch", [&] { in_.kv_store_batch(c, layer, k, v, n_kv, d, pos); });
  }
  void attention_prologue_batch(const std::vector<ge::KvCache*>& c, int32_t layer,
                                const ge::AttentionPrologue& p) override {
    timed("attention_prologue_batch (norms+rope+kv_store)", [&] { in_.attention_prologue_batch(c, layer, p); });
  }
  void attention_batch(const std::vector<ge::KvCache*>& c, int32_t layer, const float* q, const int32_t* pos,
                       const ge::AttentionParams& p, float* out) override {
    timed("attention_batch", [&] { in_.attention_batch(c, layer, q, pos, p, out); });
  }
  ge::Result<ge::BackendMemoryInfo> memory_info() override { return in_.memory_info(); }

 private:
  template <typename F>
  void timed(const std::string& key, F&& f) {
    if (!profiling_) {
      f();
      return;
    }
    const Clock::time_point t0 = Clock::now();
    f();
    (void)in_.synchronize();
    auto& e = totals_[key];
    e.first += ms_since(t0);
    e.second += 1;
  }

  ge::Backend& in_;
  bool profiling_ = false;
  std::map<std::string, std::pair<double, long>> totals_;
};

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::atoi(item.c_str()));
  return v;
}

int fail(const ge::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
  return 1;
}


// Decode attention and its prologue alone on the 31B's layer shapes (sliding: d 256, 16 KV heads,
// GQA 2, window 1024; full: d 512, 4 KV heads, GQA 8), N sequences at context ctx, `iters` calls
// queued back to back and timed together (no sync per call, as in a decode step). The caches are
// zero-filled: the kernels read the same bytes whatever the values. GB/s counts the K and V bytes of
// the visible keys.
int attention_micro(ge::Backend& b, const std::vector<int>& contexts, const std::vector<int>& ns, int iters,
                    bool probes) {
  struct Shape {
    const char* name;
    int d, n_kv, group, window;
  };
  // Probes (--micro-probes 1): the full layer's rows with GQA 2 (fewer registers per thread, more
  // CTAs per SM) and with one KV head (rows contiguous instead of 4 KiB apart).
  std::vector<Shape> shapes = {{"sliding", 256, 16, 2, 1024}, {"full", 512, 4, 8, 0}};
  if (probes) {
    shapes.push_back({"full_g2", 512, 4, 2, 0});
    shapes.push_back({"full_kv1", 512, 1, 8, 0});
  }
  std::printf("\ndecode attention alone (%d calls back to back per row)\n", iters);
  std::printf("  %-8s %6s %4s %12s %12s %10s %14s %10s %10s\n", "layer", "ctx", "N", "attn_us", "us/seq", "GB/s",
              "prologue_us", "graph_us", "graph_GB/s");
  for (const Shape& sh : shapes) {
    for (int ctx : contexts) {
      for (int n : ns) {
        const int64_t vis = sh.window > 0 ? std::min(ctx, sh.window) : ctx;
        // The model's rings: window + max chunk for sliding layers, the context length for full ones.
        const int32_t cap = sh.window > 0 ? sh.window + 512 : ctx + 512;
        const double cache_gb = static_cast<double>(n) * cap * sh.n_kv * sh.d * 4 / 1e9;
        if (cache_gb > 24.0) continue;  // keep the device run short
        ge::KvLayerSpec spec;
        spec.n_kv_heads = sh.n_kv;
        spec.head_dim = sh.d;
        spec.sliding_window = sh.window;
        spec.capacity = cap;
        std::vector<std::unique_ptr<ge::KvCache>> caches;
        std::vector<ge::KvCache*> ptrs;
        for (int s = 0; s < n; ++s) {
          auto c = b.create_kv_cache({spec});
          if (!c.is_ok()) return fail(c.status());
          ptrs.push_back(c->get());
          caches.push_back(std::move(c).value());
        }
        const int n_heads = sh.n_kv * sh.group;
        const int64_t q_elems = int64_t{n} * n_heads * sh.d, kv_elems = int64_t{n} * sh.n_kv * sh.d;
        std::vector<float> host_q(static_cast<size_t>(q_elems), 0.01f), host_kv(static_cast<size_t>(kv_elems), 0.02f);
        std::vector<float> ones(static_cast<size_t>(sh.d), 1.0f), freq(static_cast<size_t>(sh.d / 2), 1e-3f);
        std::vector<int32_t> host_pos(static_cast<size_t>(n), ctx - 1);
        auto q = b.alloc(host_q.size() * 4), q2 = b.alloc(host_q.size() * 4), out = b.alloc(host_q.size() * 4);
        auto k = b.alloc(host_kv.size() * 4), v = b.alloc(host_kv.size() * 4);
        auto nw = b.alloc(ones.size() * 4), fr = b.alloc(freq.size() * 4), pos = b.alloc(host_pos.size() * 4);
        if (!q.is_ok() || !q2.is_ok() || !out.is_ok() || !k.is_ok() || !v.is_ok() || !nw.is_ok() || !fr.is_ok() ||
            !pos.is_ok())
          return fail(ge::out_of_memory("attention micro buffers"));
        b.upload(q->data(), host_q.data(), host_q.size() * 4);
        b.upload(q2->data(), host_q.data(), host_q.size() * 4);
        b.upload(nw->data(), ones.data(), ones.size() * 4);
        b.upload(fr->data(), freq.data(), freq.size() * 4);
        b.upload(pos->data(), host_pos.data(), host_pos.size() * 4);
        ge::AttentionParams p;
        p.n_heads = n_heads;
        p.n_kv_heads = sh.n_kv;
        p.head_dim = sh.d;
        p.sliding_window = sh.window;
        p.scale = 1.0f;
        auto attend = [&] {
          if (n == 1) b.attention(*ptrs[0], 0, q->f32(), 1, pos->i32(), p, out->f32());
          else b.attention_batch(ptrs, 0, q->f32(), pos->i32(), p, out->f32());
        };
        ge::AttentionPrologue pro;
        pro.q = q2->f32();
        pro.k = k->f32();
        pro.v = v->f32();
        pro.q_norm = nw->f32();
        pro.k_norm = nw->f32();
        pro.k_eq_v = sh.window == 0;
        pro.v_norm = true;
        pro.inv_freq = fr->f32();
        pro.positions = pos->i32();
        pro.n_tokens = n;
        pro.n_heads = n_heads;
        pro.n_kv = sh.n_kv;
        pro.head_dim = sh.d;
        b.upload(k->data(), host_kv.data(), host_kv.size() * 4);
        b.upload(v->data(), host_kv.data(), host_kv.size() * 4);
        // Repeated calls rework their own (finite) outputs: q is rewritten in place, k / v clobbered.
        auto prologue = [&] {
          if (n == 1) b.attention_prologue(*ptrs[0], 0, pro);
          else b.attention_prologue_batch(ptrs, 0, pro);
        };
        attend();
        prologue();
        if (ge::Status st = b.synchronize(); !st.is_ok()) return fail(st);
        Clock::time_point t0 = Clock::now();
        for (int i = 0; i < iters; ++i) attend();
        if (ge::Status st = b.synchronize(); !st.is_ok()) return fail(st);
        const double attn_us = 1e3 * ms_since(t0) / iters;
        t0 = Clock::now();
        for (int i = 0; i < iters; ++i) prologue();
        if (ge::Status st = b.synchronize(); !st.is_ok()) return fail(st);
        const double pro_us = 1e3 * ms_since(t0) / iters;
        // One sequence: the same calls recorded in a graph (as the decode step runs them), so
        // launch costs drop out: the kernels' own time per call.
        double graph_us = 0.0;
        if (n == 1 && b.begin_capture().is_ok()) {
          for (int i = 0; i < iters; ++i) attend();
          auto g = b.end_capture(out->data(), sizeof(float));
          float sink = 0.0f;
          if (g.is_ok() && (*g)->replay(&sink).is_ok()) {
            t0 = Clock::now();
            if ((*g)->replay(&sink).is_ok()) graph_us = 1e3 * ms_since(t0) / iters;
          }
        }
        const double bytes = static_cast<double>(n) * vis * sh.n_kv * sh.d * 2 * 2;
        std::printf("  %-8s %6d %4d %12.2f %12.2f %10.1f %14.2f %10.2f %10.1f\n", sh.name, ctx, n, attn_us,
                    attn_us / n, bytes / (attn_us * 1e3), pro_us, graph_us,
                    graph_us > 0 ? bytes / (graph_us * 1e3) : 0.0);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  std::string preset = "gemma-4-31b";
  int depth = 128, reps = 5, batch_ops = 1;
  std::vector<int> ns = {1, 2, 4, 8, 16, 17, 32, 64};
  std::vector<int> profile_ns = {1, 16};
  std::vector<int> micro_ctx, micro_ns = {1, 16, 64};
  int micro_iters = 200, micro_probes = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--preset") preset = argv[i + 1];
    else if (k == "--depth") depth = std::atoi(argv[i + 1]);
    else if (k == "--reps") reps = std::atoi(argv[i + 1]);
    else if (k == "--batch-ops") batch_ops = std::atoi(argv[i + 1]);
    else if (k == "--ns") ns = parse_list(argv[i + 1]);
    else if (k == "--profile") profile_ns = parse_list(argv[i + 1]);
    else if (k == "--attn-micro") micro_ctx = parse_list(argv[i + 1]);
    else if (k == "--micro-ns") micro_ns = parse_list(argv[i + 1]);
    else if (k == "--micro-iters") micro_iters = std::atoi(argv[i + 1]);
    else if (k == "--micro-probes") micro_probes = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (depth < 1 || depth > 448 || reps < 1) {
    std::fprintf(stderr, "--depth must be 1..448, --reps >= 1\n");
    return 2;
  }
  int max_n = 1;
  for (int n : ns) max_n = std::max(max_n, n);
  for (int n : profile_ns) max_n = std::max(max_n, n);

  auto cb = ge::create_backend("cuda", 0);
  if (!cb.is_ok()) return fail(cb.status());
  auto* cuda = dynamic_cast<ge::CudaBackend*>(cb->get());
  std::printf("device: %s\n", cuda ? cuda->device_name().c_str() : "?");
  if (!micro_ctx.empty()) return attention_micro(**cb, micro_ctx, micro_ns, std::max(1, micro_iters), micro_probes != 0);
  TimingBackend tb(**cb);

  auto cfg = ge::preset_config(preset);
  if (!cfg.is_ok()) return fail(cfg.status());
  const int32_t max_chunk = std::max(512, max_n);
  Clock::time_point t0 = Clock::now();
  auto model_r = ge::GemmaModel::create_synthetic(*cfg, ge::QuantType::kQ4_0, 0, tb, max_chunk, 1234);
  if (!model_r.is_ok()) return fail(model_r.status());
  auto model = std::move(model_r).value();
  std::printf("model %s q4_0 synthetic: %.1f GB packed, built in %.1f s, max_chunk %d\n", preset.c_str(),
              model->packed_weight_bytes() / 1e9, ms_since(t0) / 1e3, max_chunk);
  const int32_t V = cfg->vocab_size;
  model->set_decode_batching(batch_ops != 0);
  std::printf("decode batch ops: %s\n", batch_ops != 0 ? "on" : "off (attention per sequence)");

  // N caches, each prefilled with `depth` tokens (several sequences per forward_batch call).
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok_dist(1, V - 1);
  std::vector<std::unique_ptr<ge::KvCache>> caches;
  std::vector<int32_t> pos(static_cast<size_t>(max_n), depth);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(max_n));
  t0 = Clock::now();
  for (int s = 0; s < max_n; ++s) {
    auto c = model->create_kv_cache(512);
    if (!c.is_ok()) return fail(c.status());
    caches.push_back(std::move(c).value());
    for (int t = 0; t < depth; ++t) prompts[static_cast<size_t>(s)].push_back(tok_dist(rng));
  }
  const int per_call = std::max(1, max_chunk / depth);
  for (int s = 0; s < max_n; s += per_call) {
    std::vector<ge::SequenceChunk> chunks;
    for (int k = s; k < std::min(max_n, s + per_call); ++k)
      chunks.push_back({caches[static_cast<size_t>(k)].get(), prompts[static_cast<size_t>(k)].data(), depth, 0,
                        ge::LogitsMode::kNone});
    if (ge::Status st = model->forward_batch(chunks, nullptr); !st.is_ok()) return fail(st);
  }
  std::printf("prefilled %d caches x %d tokens in %.1f s\n", max_n, depth, ms_since(t0) / 1e3);

  std::vector<float> logits(static_cast<size_t>(max_n) * static_cast<size_t>(V));
  std::vector<int32_t> next(static_cast<size_t>(max_n));
  for (auto& t : next) t = tok_dist(rng);
  auto step = [&](int n) -> ge::Status {
    std::vector<ge::SequenceChunk> chunks;
    for (int k = 0; k < n; ++k)
      chunks.push_back({caches[static_cast<size_t>(k)].get(), &next[static_cast<size_t>(k)], 1,
                        pos[static_cast<size_t>(k)], ge::LogitsMode::kLast});
    GE_RETURN_IF_ERROR(model->forward_batch(chunks, logits.data()));
    for (int k = 0; k < n; ++k) ++pos[static_cast<size_t>(k)];
    return ge::Status();
  };

  double t1_ms = 0;
  std::printf("\n%4s %10s %10s %12s %10s\n", "N", "step_ms", "min_ms", "ms/token", "x_vs_N1");
  for (int n : ns) {
    if (ge::Status st = step(n); !st.is_ok()) return fail(st);  // warm-up (scratch sizing)
    std::vector<double> v;
    for (int r = 0; r < reps; ++r) {
      const Clock::time_point ts = Clock::now();
      if (ge::Status st = step(n); !st.is_ok()) return fail(st);
      v.push_back(ms_since(ts));
    }
    std::sort(v.begin(), v.end());
    const double med = v[v.size() / 2];
    if (n == 1) t1_ms = med;
    std::printf("%4d %10.2f %10.2f %12.3f %10.2f\n", n, med, v.front(), med / n,
                t1_ms > 0 ? n * t1_ms / med : 0.0);
    std::fflush(stdout);
  }

  for (int n : profile_ns) {
    tb.clear();
    tb.set_profiling(true);
    const int preps = 2;
    double wall = 0;
    for (int r = 0; r < preps; ++r) {
      const Clock::time_point ts = Clock::now();
      if (ge::Status st = step(n); !st.is_ok()) return fail(st);
      wall += ms_since(ts);
    }
    tb.set_profiling(false);
    std::printf("\nper-op profile, N = %d (synchronised after every op; per step, mean of %d): wall %.2f ms\n", n,
                preps, wall / preps);
    std::printf("  %-44s %10s %8s %10s\n", "op class", "ms/step", "calls", "us/call");
    double sum = 0;
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [k, e] : tb.totals()) rows.push_back({e.first, k});
    std::sort(rows.rbegin(), rows.rend());
    for (const auto& [ms, k] : rows) {
      const auto& e = tb.totals().at(k);
      std::printf("  %-44s %10.3f %8ld %10.1f\n", k.c_str(), ms / preps, e.second / preps, 1e3 * ms / e.second);
      sum += ms / preps;
    }
    std::printf("  %-44s %10.3f\n", "sum of ops", sum);
    std::fflush(stdout);
  }

  // Host sampler (the scheduler's path): 16 rows of logits with the default parameters.
  {
    const int rows = std::min(16, max_n);
    ge::SamplingParams sp;
    sp.has_seed = true;
    sp.seed = 1;
    std::vector<ge::Sampler> samplers;
    for (int r = 0; r < rows; ++r) samplers.emplace_back(sp);
    std::vector<int32_t> history(128, 5);
    std::vector<float> work(logits.size());
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      std::copy(logits.begin(), logits.end(), work.begin());
      const Clock::time_point ts = Clock::now();
      for (int r = 0; r < rows; ++r)
        (void)samplers[static_cast<size_t>(r)].sample(
            std::span<float>(work.data() + static_cast<size_t>(r) * V, static_cast<size_t>(V)), history);
      best = std::min(best, ms_since(ts));
    }
    std::printf("\nhost Sampler (temperature 1, top_k 64, top_p 0.95): %d rows x %d logits: %.2f ms (best of 5)\n",
                rows, V, best);
    ge::SamplingParams greedy = sp;
    greedy.temperature = 0.0f;
    ge::Sampler g(greedy);
    best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      const Clock::time_point ts = Clock::now();
      for (int r = 0; r < rows; ++r)
        (void)g.sample(std::span<float>(work.data() + static_cast<size_t>(r) * V, static_cast<size_t>(V)), history);
      best = std::min(best, ms_since(ts));
    }
    std::printf("host Sampler greedy: %d rows: %.2f ms (best of 5)\n", rows, best);
  }
  return 0;
}
