// `gemma synth` files: small presets round-trip through the loader (config, tensor types, vocab),
// the model runs on them with finite logits, and hostile options are clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "formats/gguf_reader.h"
#include "model/checkpoint.h"
#include "model/gemma_model.h"
#include "model/model_presets.h"
#include "model/synthetic_gguf.h"

namespace ge {
namespace {

namespace fs = std::filesystem;

class SynthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ge_synth_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(SynthTest, SmallPresetsRoundTripThroughTheLoader) {
  struct C {
    std::string preset;
    QuantType quant, expect;  // expect: the type of a 640/1152-column matrix after K-quant fallback
    int32_t layers;
  };
  const C cases[] = {{"gemma-3-270m", QuantType::kQ4_0, QuantType::kQ4_0, 2},
                     {"gemma-3-270m", QuantType::kQ8_0, QuantType::kQ8_0, 1},
                     {"gemma-3-270m", QuantType::kQ4_K, QuantType::kQ5_0, 1},
                     {"gemma-3-1b", QuantType::kQ6_K, QuantType::kQ8_0, 1}};
  for (const C& c : cases) {
    SCOPED_TRACE(c.preset + " " + quant_type_name(c.quant));
    SynthOptions o;
    o.preset = c.preset;
    o.quant = c.quant;
    o.layers = c.layers;
    o.seed = 7;
    o.n_threads = 2;
    const std::string out = path(c.preset + "-" + quant_type_name(c.quant) + ".gguf");
    auto r = write_synthetic_gguf(out, o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->output_bytes, fs::file_size(out));
    auto cp = Checkpoint::open(out);
    ASSERT_TRUE(cp.is_ok()) << cp.status().to_string();
    auto want = preset_config(c.preset);
    ASSERT_TRUE(want.is_ok());
    const GemmaConfig& got = (*cp)->config();
    EXPECT_EQ(got.hidden_size, want->hidden_size);
    EXPECT_EQ(got.intermediate_size, want->intermediate_size);
    EXPECT_EQ(got.vocab_size, want->vocab_size);
    EXPECT_EQ(got.num_hidden_layers, c.layers);
    EXPECT_EQ(got.num_attention_heads, want->num_attention_heads);
    EXPECT_EQ((*cp)->weights().layers[0].q_proj.type, c.expect);
    EXPECT_EQ((*cp)->weights().embed_tokens.type, c.expect);
    // The vocabulary (the tokenizer itself is exercised by tests/cli): one token per embedding row.
    auto toks = (*cp)->gguf()->get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(toks.is_ok());
    EXPECT_EQ(static_cast<int64_t>(toks->size()), want->vocab_size);
    // The model runs and the random weights keep the logits finite and not all equal.
    auto backend = create_backend("cpu", 2);
    ASSERT_TRUE(backend.is_ok());
    auto model = GemmaModel::create(got, (*cp)->weights(), **backend, 8);
    ASSERT_TRUE(model.is_ok()) << model.status().to_string();
    auto cache = (*model)->create_kv_cache(8);
    ASSERT_TRUE(cache.is_ok());
    const std::vector<int32_t> ids = {2, 300, 301, 302};
    std::vector<float> logits(static_cast<size_t>(got.vocab_size));
    ASSERT_TRUE((*model)->forward(**cache, ids.data(), 4, 0, LogitsMode::kLast, logits.data()).is_ok());
    float lo = logits[0], hi = logits[0];
    for (float v : logits) {
      ASSERT_TRUE(std::isfinite(v));
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    EXPECT_GT(hi - lo, 1e-3f);
  }
}

TEST_F(SynthTest, SameSeedSameBytesAndGemma4Keys) {
  SynthOptions o;
  o.preset = "gemma-4-31b";
  o.layers = 1;
  o.n_threads = 1;
  ASSERT_TRUE(write_synthetic_gguf(path("a.gguf"), o).is_ok());
  o.n_threads = 2;
  ASSERT_TRUE(write_synthetic_gguf(path("b.gguf"), o).is_ok());
  auto a = gguf::GgufFile::open(path("a.gguf"));
  auto b = gguf::GgufFile::open(path("b.gguf"));
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->get_string("general.architecture").value(), "gemma4");
  const gguf::TensorInfo* ta = a->find_tensor("blk.0.ffn_down.weight");
  const gguf::TensorInfo* tb = b->find_tensor("blk.0.ffn_down.weight");
  ASSERT_TRUE(ta != nullptr && tb != nullptr);
  ASSERT_EQ(ta->nbytes, tb->nbytes);
  EXPECT_EQ(std::memcmp(ta->data, tb->data, ta->nbytes), 0) << "bytes depend on the thread count";
  EXPECT_EQ(ta->ne[0], 21504);
  EXPECT_EQ(ta->ne[1], 5376);
}

TEST_F(SynthTest, VocabOnlyAndCopiedTokenizer) {
  SynthOptions o;
  o.preset = "gemma-3-270m";
  o.vocab_only = true;
  auto r = write_synthetic_gguf(path("vocab.gguf"), o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->n_tensors, 0);
  auto f = gguf::GgufFile::open(path("vocab.gguf"));
  ASSERT_TRUE(f.is_ok());
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->get_string("tokenizer.ggml.model").value(), "llama");
  EXPECT_EQ(f->get_string("general.architecture").value(), "gemma3");
  // A model file takes its tokenizer from that file.
  o.vocab_only = false;
  o.layers = 1;
  o.tokenizer_gguf = path("vocab.gguf");
  r = write_synthetic_gguf(path("copied.gguf"), o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto g = gguf::GgufFile::open(path("copied.gguf"));
  ASSERT_TRUE(g.is_ok());
  auto got = g->get_string_array("tokenizer.ggml.tokens");
  auto want = f->get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(got.is_ok() && want.is_ok());
  EXPECT_EQ(*got, *want);
}

TEST_F(SynthTest, HostileOptionsAreClearErrors) {
  auto expect_error = [&](const SynthOptions& o, const std::string& out, const std::string& needle) {
    auto r = write_synthetic_gguf(out, o);
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().to_string();
  };
  SynthOptions o;
  o.preset = "gemma-3-270m";
  o.layers = 1;
  SynthOptions bad = o;
  bad.preset = "gemma-9-9000b";
  expect_error(bad, path("x.gguf"), "unknown model preset");
  bad = o;
  bad.layers = 19;
  expect_error(bad, path("x.gguf"), "--layers");
  bad = o;
  bad.layers = -1;
  expect_error(bad, path("x.gguf"), "--layers");
  bad = o;
  bad.quant = QuantType::kQ5_K;
  expect_error(bad, path("x.gguf"), "--quant");
  bad = o;
  bad.tokenizer_gguf = path("missing.gguf");
  expect_error(bad, path("x.gguf"), "--tokenizer");
  expect_error(o, "", "output");
  expect_error(o, path("no/such/dir/x.gguf"), "");
  // An existing file is kept unless forced; nothing is left behind by failures.
  ASSERT_TRUE(write_synthetic_gguf(path("x.gguf"), o).is_ok());
  expect_error(o, path("x.gguf"), "exists");
  o.force = true;
  EXPECT_TRUE(write_synthetic_gguf(path("x.gguf"), o).is_ok());
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  // A tokenizer file that is not a GGUF.
  {
    FILE* f = std::fopen(path("junk.gguf").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("not a gguf at all", f);
    std::fclose(f);
  }
  o.force = false;
  o.tokenizer_gguf = path("junk.gguf");
  expect_error(o, path("y.gguf"), "--tokenizer");
}

}  // namespace
}  // namespace ge
