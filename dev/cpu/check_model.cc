// Checks the "cpu" backend on a real checkpoint: every weight must pack losslessly (each row
// decodes bit for bit to dequantize_row), and the int8-activation matmul error against "cpu-ref"
// is reported per weight type (relative L2 error per output row, Gaussian activations).
// Usage: check_model MODEL.gguf   (built by dev/cpu/run_bench.sh --check MODEL)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_packed_weight.h"
#include "model/checkpoint.h"
#include "quant/dequantize.h"

namespace {

struct Stats {
  int tensors = 0;
  double sum_rel = 0.0, max_rel = 0.0;
  int64_t rows = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: check_model MODEL\n");
    return 2;
  }
  auto ckpt = ge::Checkpoint::open(argv[1]);
  if (!ckpt.is_ok()) {
    std::fprintf(stderr, "%s\n", ckpt.status().to_string().c_str());
    return 1;
  }
  const ge::ModelWeights& mw = (*ckpt)->weights();
  std::vector<std::pair<std::string, const ge::QuantWeight*>> all;
  all.push_back({"embed_tokens", &mw.embed_tokens});
  if (mw.lm_head.data != nullptr) all.push_back({"lm_head", &mw.lm_head});
  for (size_t l = 0; l < mw.layers.size(); ++l) {
    const ge::LayerWeights& lw = mw.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    for (auto [n, w] : {std::pair{"q_proj", &lw.q_proj}, {"k_proj", &lw.k_proj}, {"v_proj", &lw.v_proj},
                        {"o_proj", &lw.o_proj}, {"gate_proj", &lw.gate_proj}, {"up_proj", &lw.up_proj},
                        {"down_proj", &lw.down_proj}}) {
      if (w->data != nullptr) all.push_back({p + n, w});
    }
  }
  std::unique_ptr<ge::Backend> fast(ge::create_cpu_backend(2));
  std::unique_ptr<ge::Backend> ref(ge::create_cpu_reference_backend(2));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::map<std::string, Stats> by_type;
  int failures = 0;
  for (const auto& [name, w] : all) {
    auto pf = fast->pack_weight(*w);
    auto pr = ref->pack_weight(*w);
    if (!pf.is_ok() || !pr.is_ok()) {
      std::fprintf(stderr, "%s: pack failed\n", name.c_str());
      return 1;
    }
    const auto& packed = static_cast<const ge::cpu::CpuPackedWeight&>(**pf);
    std::vector<float> a(static_cast<size_t>(w->cols)), b(static_cast<size_t>(w->cols));
    for (int64_t r = 0; r < w->rows; ++r) {
      ge::dequantize_row(*w, r, a.data());
      packed.dequantize_row(r, b.data());
      if (std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0) {
        std::fprintf(stderr, "%s: row %lld differs after packing\n", name.c_str(), static_cast<long long>(r));
        ++failures;
        break;
      }
    }
    const int64_t m = 4;
    std::vector<float> x(static_cast<size_t>(m * w->cols));
    for (auto& v : x) v = normal(rng);
    std::vector<float> yf(static_cast<size_t>(m * w->rows)), yr(yf.size());
    fast->matmul(x.data(), m, **pf, yf.data());
    ref->matmul(x.data(), m, **pr, yr.data());
    Stats& s = by_type[ge::quant_type_name(w->type)];
    ++s.tensors;
    for (int64_t t = 0; t < m; ++t) {
      double num = 0, den = 0;
      for (int64_t r = 0; r < w->rows; ++r) {
        const double d = yf[t * w->rows + r] - yr[t * w->rows + r];
        num += d * d;
        den += static_cast<double>(yr[t * w->rows + r]) * yr[t * w->rows + r];
      }
      const double rel = std::sqrt(num / std::max(den, 1e-30));
      s.sum_rel += rel;
      s.max_rel = std::max(s.max_rel, rel);
      ++s.rows;
    }
  }
  std::printf("%zu weights packed; lossless: %s\n", all.size(), failures == 0 ? "all rows bit-exact" : "FAILED");
  std::printf("%-10s %8s %14s %14s\n", "type", "tensors", "mean row rel", "max row rel");
  for (const auto& [type, s] : by_type) {
    std::printf("%-10s %8d %14.5f %14.5f\n", type.c_str(), s.tensors, s.sum_rel / s.rows, s.max_rel);
  }
  return failures == 0 ? 0 : 1;
}
