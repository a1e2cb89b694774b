// Where one prefill forward pass of a synthetic model spends its time on the CUDA backend, per op class:
// every Backend op is forwarded to the CUDA backend and, while profiling, followed by a synchronisation,
// so an op's host wall time is its launch plus its device work. Also the unprofiled pass time.
//   prefill_profile [--preset gemma-4-31b] [--quant q4_0] [--tokens 2048] [--reps 3]
// Build: dev/cuda/prefill_build.sh [build-dir] (builds prefill_bench and this).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "model/gemma_model.h"
#include "model/model_presets.h"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

class ProfilingBackend : public ge::Backend {
 public:
  explicit ProfilingBackend(ge::Backend& inner) : in_(inner) {}
  void set_profiling(bool on) { on_ = on; }
  void clear() { totals_.clear(); }
  const std::map<std::string, std::pair<double, long>>& totals() const { return totals_; }

  std::string name() const override { return in_.name(); }
  ge::Result<ge::DeviceBuffer> alloc(size_t bytes) override { return in_.alloc(bytes); }
  void free_memory(void* p) override { in_.free_memory(p); }
  void upload(void* d, const void* s, size_t n) override { timed("upload", [&] { in_.upload(d, s, n); }); }
  void download(void* d, const void* s, size_t n) override { timed("download", [&] { in_.download(d, s, n); }); }
  ge::Status synchronize() override { return in_.synchronize(); }
  ge::Result<std::unique_ptr<ge::PackedWeight>> pack_weight(const ge::QuantWeight& w) override { return in_.pack_weight(w); }
  ge::Result<std::unique_ptr<ge::KvCache>> create_kv_cache(const std::vector<ge::KvLayerSpec>& l) override {
    return in_.create_kv_cache(l);
  }
  ge::Result<std::unique_ptr<ge::PackedWeight>> synthesize_weight(const ge::QuantWeight& like, uint64_t seed) override {
    return in_.synthesize_weight(like, seed);
  }
  ge::Result<ge::BackendMemoryInfo> memory_info() override { return in_.memory_info(); }
  void embed(const int32_t* t, int64_t n, const ge::PackedWeight& w, float s, float* o) override {
    timed("embed", [&] { in_.embed(t, n, w, s, o); });
  }
  void matmul(const float* x, int64_t m, const ge::PackedWeight& w, float* y) override {
    timed(shape_key("matmul", m, w), [&] { in_.matmul(x, m, w, y); });
  }
  void matmul_shared_input(const float* x, int64_t m, std::span<const ge::MatmulOutput> outs) override {
    timed(shape_key("matmul shared x" + std::to_string(outs.size()), m, *outs[0].w),
          [&] { in_.matmul_shared_input(x, m, outs); });
  }
  void rms_norm(const float* x, const float* w, int64_t r, int64_t n, float e, float* y) override {
    timed("rms_norm", [&] { in_.rms_norm(x, w, r, n, e, y); });
  }
  void add_rms_norm(float* x, const float* a, const float* w, int64_t r, int64_t n, float e) override {
    timed("add_rms_norm", [&] { in_.add_rms_norm(x, a, w, r, n, e); });
  }
  void rope(float* x, int64_t t, int64_t h, int64_t d, const int32_t* p, const float* f) override {
    timed("rope", [&] { in_.rope(x, t, h, d, p, f); });
  }
  void gelu_tanh_mul(const float* g, const float* u, int64_t n, float* o) override {
    timed("gelu_tanh_mul", [&] { in_.gelu_tanh_mul(g, u, n, o); });
  }
  void add(const float* a, const float* b, int64_t n, float* o) override { timed("add", [&] { in_.add(a, b, n, o); }); }
  void scale(float* x, int64_t n, float s) override { timed("scale", [&] { in_.scale(x, n, s); }); }
  void softcap(float* x, int64_t n, float c) override { timed("softcap", [&] { in_.softcap(x, n, c); }); }
  void add_rms_norm_then_norm(float* x, const float* a, const float* wp, float s, const float* wn, int64_t r, int64_t n,
                              float e, float* y) override {
    timed("add_rms_norm_then_norm", [&] { in_.add_rms_norm_then_norm(x, a, wp, s, wn, r, n, e, y); });
  }
  void kv_store(ge::KvCache& c, int32_t l, const float* k, const float* v, int64_t n, const int32_t* p) override {
    timed("kv_store", [&] { in_.kv_store(c, l, k, v, n, p); });
  }
  void attention_prologue(ge::KvCache& c, int32_t l, const ge::AttentionPrologue& p) override {
    timed("attention_prologue", [&] { in_.attention_prologue(c, l, p); });
  }
  void attention(const ge::KvCache& c, int32_t l, const float* q, int64_t n, const int32_t* pos,
                 const ge::AttentionParams& p, float* o) override {
    timed(p.sliding_window > 0 ? "attention sliding" : "attention full", [&] { in_.attention(c, l, q, n, pos, p, o); });
  }

 private:
  static std::string shape_key(const std::string& what, int64_t m, const ge::PackedWeight& w) {
    char key[128];
    std::snprintf(key, sizeof(key), "%s M=%lld %lldx%lld", what.c_str(), static_cast<long long>(m),
                  static_cast<long long>(w.rows()), static_cast<long long>(w.cols()));
    return key;
  }
  template <typename F>
  void timed(const std::string& key, F&& f) {
    if (!on_) {
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
  bool on_ = false;
  std::map<std::string, std::pair<double, long>> totals_;
};

int fail(const ge::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset = "gemma-4-31b", quant = "q4_0";
  int tokens = 2048, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--preset") preset = argv[i + 1];
    else if (k == "--quant") quant = argv[i + 1];
    else if (k == "--tokens") tokens = std::atoi(argv[i + 1]);
    else if (k == "--reps") reps = std::atoi(argv[i + 1]);
  }
  if (tokens < 1 || tokens > 65536 || reps < 1) return fail(ge::invalid_argument("--tokens 1..65536, --reps >= 1"));
  auto created = ge::create_cuda_backend();
  if (!created.is_ok()) return fail(created.status());
  std::unique_ptr<ge::Backend> cuda = std::move(created).value();
  ProfilingBackend pb(*cuda);
  auto cfg = ge::preset_config(preset);
  if (!cfg.is_ok()) return fail(cfg.status());
  const ge::QuantType type = quant == "int4-g32" ? ge::QuantType::kInt4Group : ge::QuantType::kQ4_0;
  const int64_t group = quant == "int4-g32" ? 32 : 0;
  auto model_r = ge::GemmaModel::create_synthetic(*cfg, type, group, pb, tokens, 1234);
  if (!model_r.is_ok()) return fail(model_r.status());
  ge::GemmaModel& model = **model_r;
  std::vector<int32_t> toks(static_cast<size_t>(tokens));
  for (int i = 0; i < tokens; ++i) toks[static_cast<size_t>(i)] = 3 + (i * 7919) % 200000;
  std::vector<float> logits(static_cast<size_t>(cfg->vocab_size));
  auto pass = [&]() -> double {
    auto cache = model.create_kv_cache(tokens + 1);
    if (!cache.is_ok()) {
      fail(cache.status());
      std::exit(1);
    }
    const Clock::time_point t0 = Clock::now();
    ge::Status s = model.forward(**cache, toks.data(), tokens, 0, ge::LogitsMode::kLast, logits.data());
    if (!s.is_ok()) {
      fail(s);
      std::exit(1);
    }
    return ms_since(t0);
  };
  pass();  // warm-up: scratch sizing, GEMM algorithm choice
  std::vector<double> plain;
  for (int r = 0; r < reps; ++r) plain.push_back(pass());
  std::sort(plain.begin(), plain.end());
  pb.set_profiling(true);
  double profiled = 0;
  for (int r = 0; r < reps; ++r) profiled += pass();
  pb.set_profiling(false);
  std::printf("%s %s, one forward pass of %d tokens: %.1f ms (median of %d, %.0f tok/s); profiled %.1f ms\n",
              preset.c_str(), quant.c_str(), tokens, plain[plain.size() / 2], reps,
              tokens / (plain[plain.size() / 2] * 1e-3), profiled / reps);
  std::vector<std::pair<double, std::string>> rows;
  double total = 0;
  for (const auto& [k, v] : pb.totals()) {
    rows.push_back({v.first / reps, k + " (" + std::to_string(v.second / reps) + " calls)"});
    total += v.first / reps;
  }
  std::sort(rows.rbegin(), rows.rend());
  std::printf("per op class, ms per pass (synchronised after every op):\n");
  for (const auto& [ms, k] : rows) std::printf("  %8.2f  %5.1f%%  %s\n", ms, 100.0 * ms / total, k.c_str());
  return 0;
}
