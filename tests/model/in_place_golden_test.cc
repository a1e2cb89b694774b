// The golden Q4_0 / Q8_0 GGUF models (tests/data/golden) on the "cpu" backend with weights used in
// place from the mapping: logits vs transformers' (run on the dequantized weights) and vs the
// repacked path, and no packed copy of any matrix.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "model/checkpoint.h"
#include "model/gemma_model.h"

namespace ge {
namespace {

const std::string kGolden = std::string(GE_TEST_DATA_DIR) + "/golden/";

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(in.good()) << path;
  const std::streamsize n = in.tellg();
  std::vector<float> v(static_cast<size_t>(std::max<std::streamsize>(n, 0)) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), n);
  return v;
}

struct RunResult {
  std::vector<float> logits;
  size_t packed_bytes = 0;
  uint64_t file_bytes = 0;
};

RunResult run(const std::string& path, const std::vector<int32_t>& tokens, cpu::WeightPlacement placement) {
  RunResult r;
  auto cp = Checkpoint::open(path);
  EXPECT_TRUE(cp.is_ok()) << cp.status().to_string();
  if (!cp.is_ok()) return r;
  auto backend = create_backend("cpu", 2);
  EXPECT_TRUE(backend.is_ok());
  EXPECT_TRUE(cpu::set_weight_placement(**backend, placement));
  auto model = GemmaModel::create((*cp)->config(), (*cp)->weights(), **backend, 16);
  EXPECT_TRUE(model.is_ok()) << model.status().to_string();
  if (!model.is_ok()) return r;
  auto cache = (*model)->create_kv_cache(static_cast<int32_t>(tokens.size()));
  EXPECT_TRUE(cache.is_ok());
  const int64_t V = (*cp)->config().vocab_size;
  r.logits.resize(tokens.size() * static_cast<size_t>(V));
  for (int32_t p = 0; p < static_cast<int32_t>(tokens.size()); p += 16) {
    const int32_t n = std::min<int32_t>(16, static_cast<int32_t>(tokens.size()) - p);
    Status s = (*model)->forward(**cache, tokens.data() + p, n, p, LogitsMode::kAll,
                                 r.logits.data() + static_cast<size_t>(p) * static_cast<size_t>(V));
    EXPECT_TRUE(s.is_ok()) << s.to_string();
  }
  r.packed_bytes = (*model)->packed_weight_bytes();
  r.file_bytes = (*cp)->weight_bytes();
  return r;
}

struct Case {
  std::string model, file, logits;
};

class InPlaceGolden : public ::testing::TestWithParam<Case> {};

// The bound is derived as golden_test.cc derives it for the repacked "cpu" path: activation rounding
// may move the logits no more than quantizing the weights did (transformers' logits on the quantized
// vs the f32 weights), and may flip no more argmaxes. In place and repacked use the same int16
// activations, so they must also agree within that bound.
TEST_P(InPlaceGolden, MatchesTransformersAndRepackedPath) {
  const Case& c = GetParam();
  const std::string dir = kGolden + c.model;
  std::ifstream in(dir + "/tokens.json");
  ASSERT_TRUE(in.good()) << dir;
  const nlohmann::json j = nlohmann::json::parse(in);
  const std::vector<int32_t> tokens = j.at("tokens").get<std::vector<int32_t>>();
  const int64_t V = j.at("n_vocab").get<int64_t>();
  const std::vector<float> ref = read_f32(dir + "/" + c.logits);
  const std::vector<float> f32 = read_f32(dir + "/logits.f32");
  ASSERT_EQ(ref.size(), tokens.size() * static_cast<size_t>(V));
  ASSERT_EQ(f32.size(), ref.size());

  const RunResult in_place = run(dir + "/" + c.file, tokens, cpu::WeightPlacement::kInPlace);
  const RunResult repacked = run(dir + "/" + c.file, tokens, cpu::WeightPlacement::kRepack);
  ASSERT_EQ(in_place.logits.size(), ref.size());
  ASSERT_EQ(repacked.logits.size(), ref.size());
  // Matrices in place hold nothing; only the repacked path holds a copy.
  EXPECT_EQ(in_place.packed_bytes, 0u);
  EXPECT_GE(repacked.packed_bytes, in_place.file_bytes / 2);

  const auto top = [&](const float* row) { return std::max_element(row, row + V) - row; };
  float tol = 0.0f, max_err = 0.0f, max_vs_repacked = 0.0f;
  size_t weight_flips = 0, flips = 0, flips_vs_repacked = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* a = in_place.logits.data() + t * static_cast<size_t>(V);
    const float* b = ref.data() + t * static_cast<size_t>(V);
    const float* p = repacked.logits.data() + t * static_cast<size_t>(V);
    const float* f = f32.data() + t * static_cast<size_t>(V);
    for (int64_t i = 0; i < V; ++i) {
      tol = std::max(tol, std::fabs(b[i] - f[i]));
      max_err = std::max(max_err, std::fabs(a[i] - b[i]));
      max_vs_repacked = std::max(max_vs_repacked, std::fabs(a[i] - p[i]));
    }
    weight_flips += top(b) != top(f);
    flips += top(a) != top(b);
    flips_vs_repacked += top(a) != top(p);
  }
  EXPECT_LE(max_err, tol);
  EXPECT_LE(max_vs_repacked, tol);
  EXPECT_LE(flips, weight_flips);
  EXPECT_LE(flips_vs_repacked, weight_flips);
  RecordProperty("max_abs_logit_error", std::to_string(max_err));
  RecordProperty("max_abs_vs_repacked", std::to_string(max_vs_repacked));
}

INSTANTIATE_TEST_SUITE_P(Golden, InPlaceGolden,
                         ::testing::Values(Case{"gemma3_tiny", "model-q8_0.gguf", "logits-q8_0.f32"},
                                           Case{"gemma3_tiny", "model-q4_0.gguf", "logits-q4_0.f32"},
                                           Case{"gemma3_tiny_noscale", "model-q4_0.gguf", "logits-q4_0.f32"},
                                           Case{"gemma4_tiny", "model-q8_0.gguf", "logits-q8_0.f32"},
                                           Case{"gemma4_tiny", "model-q4_0.gguf", "logits-q4_0.f32"},
                                           Case{"gemma4_tiny_nokeqv", "model-q4_0.gguf", "logits-q4_0.f32"}),
                         [](const auto& info) {
                           std::string n = info.param.model + "_" + info.param.file;
                           std::replace_if(n.begin(), n.end(), [](char ch) { return !std::isalnum(ch); }, '_');
                           return n;
                         });

}  // namespace
}  // namespace ge
