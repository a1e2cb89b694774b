// Load-time packing is lossless for everything `gemma quantize` writes: every matrix of the torchao
// and GGUF outputs, packed by the CPU backend through the Backend interface and read back row by row
// (embedding lookup with scale 1), equals the source view's reference dequantization bit for bit.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/checkpoint_writer.h"
#include "quant/dequantize.h"
#include "quantize_test_util.h"

namespace ge {
namespace {

namespace fs = std::filesystem;

// Rows of `w` as the backend's packed form gives them: embed() of every row id with scale 1.
std::vector<float> packed_rows(Backend& b, const PackedWeight& p) {
  const int64_t rows = p.rows(), cols = p.cols();
  std::vector<int32_t> ids(static_cast<size_t>(rows));
  std::iota(ids.begin(), ids.end(), 0);
  Result<DeviceBuffer> tok = b.alloc(ids.size() * sizeof(int32_t));
  Result<DeviceBuffer> out = b.alloc(static_cast<size_t>(rows * cols) * sizeof(float));
  EXPECT_TRUE(tok.is_ok() && out.is_ok());
  b.upload(tok->data(), ids.data(), ids.size() * sizeof(int32_t));
  b.embed(tok->i32(), rows, p, 1.0f, out->f32());
  std::vector<float> host(static_cast<size_t>(rows * cols));
  b.download(host.data(), out->data(), host.size() * sizeof(float));
  EXPECT_TRUE(b.synchronize().is_ok());
  return host;
}

// Packs every matrix of the checkpoint and compares; returns how many matrices of each type were seen.
std::map<QuantType, int> expect_lossless(const std::string& path, Backend& b, int max_layers = 1 << 30,
                                         bool with_embedding = true) {
  std::map<QuantType, int> seen;
  Result<std::unique_ptr<Checkpoint>> cp = Checkpoint::open(path);
  EXPECT_TRUE(cp.is_ok()) << cp.status().to_string();
  if (!cp.is_ok()) return seen;
  const ModelWeights& w = (*cp)->weights();
  std::vector<std::pair<std::string, const QuantWeight*>> mats;
  if (with_embedding) mats.push_back({"embed_tokens", &w.embed_tokens});
  if (w.lm_head.data != nullptr) mats.push_back({"lm_head", &w.lm_head});
  for (size_t i = 0; i < w.layers.size() && static_cast<int>(i) < max_layers; ++i) {
    const LayerWeights& l = w.layers[i];
    for (const QuantWeight* m : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) {
      if (m->data != nullptr) mats.push_back({"layer " + std::to_string(i), m});
    }
  }
  for (const auto& [name, m] : mats) {
    Result<std::unique_ptr<PackedWeight>> p = b.pack_weight(*m);
    EXPECT_TRUE(p.is_ok()) << name << ": " << p.status().to_string();
    if (!p.is_ok()) continue;
    const std::vector<float> want = test::decode_all(*m);
    const std::vector<float> got = packed_rows(b, **p);
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
        << path << " " << name << " " << quant_type_name(m->type) << " [" << m->rows << ", " << m->cols << "]";
    seen[m->type]++;
  }
  return seen;
}

TEST(PackingLossless, EveryQuantizerOutputOnTheCpuBackend) {
  Result<std::unique_ptr<Backend>> backend = create_backend("cpu", 2);
  ASSERT_TRUE(backend.is_ok());
  std::map<QuantType, int> seen;
  auto merge = [&](const std::map<QuantType, int>& s) {
    for (const auto& [t, n] : s) seen[t] += n;
  };
  const std::string g3 = test::kGoldenDir + "gemma3_tiny";
  const std::string g4 = test::kGoldenDir + "gemma4_tiny";  // its 256-column o_proj takes real K-quants
  struct TorchaoCase {
    const char* tag;
    int64_t group;
    QuantMethod method;
    RecipeKind recipe;
    bool int4_head;
  };
  for (const TorchaoCase& c : {TorchaoCase{"g32", 32, QuantMethod::kMinMax, RecipeKind::kDefault, false},
                               TorchaoCase{"g64hqq", 64, QuantMethod::kHqq, RecipeKind::kSensitive, true}}) {
    SCOPED_TRACE(c.tag);
    const fs::path out = test::scratch_dir(c.tag);
    QuantizeOptions o;
    o.recipe.group_size = c.group;
    o.recipe.method = c.method;
    o.recipe.kind = c.recipe;
    o.recipe.int4_lm_head = c.int4_head;
    // (Group 128 needs K ≥ 128 everywhere; the tiny models have K = 64. The packer's g128 path is
    // covered by tests/kernels.)
    Result<QuantizeReport> r = quantize_checkpoint(g3, out.string(), o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    merge(expect_lossless(out.string(), **backend));
  }
  for (QuantType t : {QuantType::kQ4_0, QuantType::kQ8_0, QuantType::kQ4_K, QuantType::kQ6_K}) {
    SCOPED_TRACE(quant_type_name(t));
    const fs::path out = test::scratch_dir(quant_type_name(t));
    QuantizeOptions o;
    o.format = ExportFormat::kGguf;
    o.gguf_type = t;
    const std::string file = (out / "m.gguf").string();
    Result<QuantizeReport> r = quantize_checkpoint(g4, file, o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    merge(expect_lossless(file, **backend));
  }
  // Every encoding the quantizer writes went through the packer at least once.
  for (QuantType t : {QuantType::kInt4Group, QuantType::kInt8Group, QuantType::kQ4_0, QuantType::kQ5_0,
                      QuantType::kQ8_0, QuantType::kQ4_K, QuantType::kQ6_K}) {
    EXPECT_GT(seen[t], 0) << quant_type_name(t);
  }
}

// The real Gemma 3 270M Q4_K_M file: the Q5_0 / Q8_0 / Q4_K / Q6_K matrices of its first layers
// pack losslessly too (the 262144-row embedding is left out to keep the test fast).
TEST(PackingLossless, RealModelGguf) {
  const char* path = std::getenv("GE_TEST_MODEL");
  if (path == nullptr) GTEST_SKIP() << "GE_TEST_MODEL is not set";
  ASSERT_TRUE(fs::exists(path)) << "GE_TEST_MODEL='" << path << "' is not readable";
  Result<std::unique_ptr<Backend>> backend = create_backend("cpu", 2);
  ASSERT_TRUE(backend.is_ok());
  const std::map<QuantType, int> seen = expect_lossless(path, **backend, /*max_layers=*/2, /*with_embedding=*/false);
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ5_0, QuantType::kQ4_K, QuantType::kQ6_K}) {
    EXPECT_GT(seen.count(t), 0u) << quant_type_name(t);
  }
}

}  // namespace
}  // namespace ge
