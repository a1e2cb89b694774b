// gemma quantize end to end on the tiny golden checkpoints: what is written loads through
// Checkpoint::open with exactly the bytes the quantizers produce for the source tensors, GGUF files
// pass llama.cpp's gguf reader, GGUF → HF dequantization round-trips, and bad input fails cleanly.
#include "model/checkpoint_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/dtype.h"
#include "formats/gguf_reader.h"
#include "formats/safetensors_index.h"
#include "formats/torchao_meta.h"
#include "formats/torchao_writer.h"
#include "model/checkpoint.h"
#include "quant/quantize.h"
#include "quant/hqq.h"
#include "quantize_test_util.h"
#include "tokenizer/tokenizer.h"

namespace ge {
namespace {

namespace fs = std::filesystem;
using test::decode_all;
using test::kGoldenDir;

std::unique_ptr<Checkpoint> open_or_die(const std::string& path) {
  Result<std::unique_ptr<Checkpoint>> cp = Checkpoint::open(path);
  EXPECT_TRUE(cp.is_ok()) << path << ": " << cp.status().to_string();
  return cp.is_ok() ? std::move(cp).value() : nullptr;
}

// Every matrix of the logical weight set, paired by role.
std::vector<std::pair<std::string, const QuantWeight*>> matrices(const ModelWeights& w) {
  std::vector<std::pair<std::string, const QuantWeight*>> out = {{"embed_tokens", &w.embed_tokens}};
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    out.push_back({p + "q_proj", &l.q_proj});
    out.push_back({p + "k_proj", &l.k_proj});
    if (l.v_proj.data != nullptr) out.push_back({p + "v_proj", &l.v_proj});
    out.push_back({p + "o_proj", &l.o_proj});
    out.push_back({p + "gate_proj", &l.gate_proj});
    out.push_back({p + "up_proj", &l.up_proj});
    out.push_back({p + "down_proj", &l.down_proj});
  }
  return out;
}

void expect_same_config(const GemmaConfig& a, const GemmaConfig& b) {
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_NEAR(a.query_scale, b.query_scale, 1e-6f * a.query_scale);
  EXPECT_EQ(a.final_logit_softcapping, b.final_logit_softcapping);
  EXPECT_FLOAT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (int32_t i = 0; i < a.num_hidden_layers; ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const LayerConfig &x = a.layers[static_cast<size_t>(i)], &y = b.layers[static_cast<size_t>(i)];
    EXPECT_EQ(x.sliding, y.sliding);
    EXPECT_EQ(x.head_dim, y.head_dim);
    EXPECT_EQ(x.num_key_value_heads, y.num_key_value_heads);
    EXPECT_EQ(x.k_eq_v, y.k_eq_v);
    EXPECT_EQ(a.rope_inv_freq(i), b.rope_inv_freq(i));
  }
}

QuantizeReport quantize_or_die(const std::string& in, const std::string& out, const QuantizeOptions& o) {
  Result<QuantizeReport> r = quantize_checkpoint(in, out, o);
  EXPECT_TRUE(r.is_ok()) << in << " → " << out << ": " << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : QuantizeReport{};
}

// The INT4 bytes the quantizer gives for a whole source matrix (the tiny models fit one chunk).
Int4GroupData expected_int4(const QuantWeight& src, int64_t gs, QuantMethod m) {
  const std::vector<float> x = decode_all(src);
  Result<Int4GroupData> q = m == QuantMethod::kHqq ? quantize_int4_group_hqq(x.data(), src.rows, src.cols, gs)
                                                   : quantize_int4_group_minmax(x.data(), src.rows, src.cols, gs);
  EXPECT_TRUE(q.is_ok());
  return std::move(q).value();
}

void expect_int4_equal(const QuantWeight& got, const Int4GroupData& want, const std::string& what) {
  ASSERT_EQ(got.type, QuantType::kInt4Group) << what;
  ASSERT_EQ(got.group_size, want.group_size) << what;
  const size_t groups = want.scale.size();
  EXPECT_EQ(std::memcmp(got.data, want.qdata.data(), want.qdata.size()), 0) << what;
  EXPECT_EQ(std::memcmp(got.scale, want.scale.data(), groups * 2), 0) << what;
  EXPECT_EQ(std::memcmp(got.zero, want.zero.data(), groups * 2), 0) << what;
}

void expect_int8_equal(const QuantWeight& got, const QuantWeight& src, int64_t gs, const std::string& what) {
  ASSERT_EQ(got.type, QuantType::kInt8Group) << what;
  ASSERT_EQ(got.group_size, gs) << what;
  const std::vector<float> x = decode_all(src);
  Result<Int8GroupData> q = quantize_int8_group_symmetric(x.data(), src.rows, src.cols, gs);
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(std::memcmp(got.data, q->qdata.data(), q->qdata.size()), 0) << what;
  EXPECT_EQ(std::memcmp(got.scale, q->scale.data(), q->scale.size() * 2), 0) << what;
  EXPECT_EQ(std::memcmp(got.zero, q->zero.data(), q->zero.size()), 0) << what;
}

void expect_norms_close(const ModelWeights& got, const ModelWeights& src) {
  // Stored as bf16: each multiplier within bf16 rounding of the source's.
  auto close = [](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-2f * std::max(1.0f, std::fabs(b[i]))) << what;
  };
  close(got.norm, src.norm, "norm");
  for (size_t i = 0; i < src.layers.size(); ++i) {
    close(got.layers[i].input_layernorm, src.layers[i].input_layernorm, "input_layernorm");
    close(got.layers[i].q_norm, src.layers[i].q_norm, "q_norm");
    close(got.layers[i].post_feedforward_layernorm, src.layers[i].post_feedforward_layernorm, "post_ffw");
    EXPECT_EQ(got.layers[i].layer_scalar, round_bf16(src.layers[i].layer_scalar));
  }
}

TEST(QuantizeCheckpoint, TorchaoOutputLoadsWithTheQuantizersBytes) {
  for (const char* model : test::kGoldenModels) {
    for (QuantMethod method : {QuantMethod::kMinMax, QuantMethod::kHqq}) {
      SCOPED_TRACE(std::string(model) + " " + quant_method_name(method));
      const std::string src_dir = kGoldenDir + model;
      const fs::path out = test::scratch_dir(std::string(model) + quant_method_name(method));
      QuantizeOptions o;
      o.recipe.method = method;
      o.n_threads = 2;
      const QuantizeReport r = quantize_or_die(src_dir, out.string(), o);
      EXPECT_EQ(r.output_file, (out / "model.safetensors").string());
      EXPECT_TRUE(fs::exists(out / "config.json"));
      EXPECT_EQ(test::read_text(out / "config.json"), test::read_text(src_dir + "/config.json"));
      EXPECT_EQ(test::count_temp_files(out), 0);
      auto src = open_or_die(src_dir);
      auto got = open_or_die(out.string());
      ASSERT_TRUE(src && got);
      EXPECT_EQ(got->format(), CheckpointFormat::kTorchao);
      expect_same_config(got->config(), src->config());
      EXPECT_EQ(got->weights().lm_head.data, nullptr) << "the default recipe keeps the head tied";
      const auto want = matrices(src->weights());
      const auto have = matrices(got->weights());
      ASSERT_EQ(want.size(), have.size());
      for (size_t i = 0; i < want.size(); ++i) {
        if (i == 0) {
          expect_int8_equal(*have[i].second, *want[i].second, src->config().hidden_size, have[i].first);
        } else {
          expect_int4_equal(*have[i].second, expected_int4(*want[i].second, 32, method), have[i].first);
        }
      }
      expect_norms_close(got->weights(), src->weights());
      // torchao's own metadata checker accepts every entry.
      Result<safetensors::SafetensorsFile> f = safetensors::SafetensorsFile::open(r.output_file);
      ASSERT_TRUE(f.is_ok());
      Result<std::vector<safetensors::TorchaoTensor>> meta = safetensors::read_torchao_tensors(*f);
      ASSERT_TRUE(meta.is_ok()) << meta.status().to_string();
      EXPECT_EQ(meta->size(), r.tensors.size());
    }
  }
}

TEST(QuantizeCheckpoint, SensitiveRecipeUntiedHeadAndGroupSize) {
  const std::string src_dir = kGoldenDir + "gemma3_tiny";  // 7 layers: edge layers 0 and 6
  const fs::path out = test::scratch_dir("sensitive");
  QuantizeOptions o;
  o.recipe.kind = RecipeKind::kSensitive;
  o.recipe.group_size = 64;
  o.recipe.int4_lm_head = true;
  quantize_or_die(src_dir, out.string(), o);
  auto src = open_or_die(src_dir);
  auto got = open_or_die(out.string());
  ASSERT_TRUE(src && got);
  const ModelWeights& w = got->weights();
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const bool edge = i == 0 || i == 6;
    SCOPED_TRACE("layer " + std::to_string(i));
    for (const QuantWeight* m : {&w.layers[i].v_proj, &w.layers[i].down_proj}) {
      EXPECT_EQ(m->type, edge ? QuantType::kInt8Group : QuantType::kInt4Group);
      EXPECT_EQ(m->group_size, edge ? 32 : 64);
    }
    EXPECT_EQ(w.layers[i].q_proj.type, QuantType::kInt4Group);
    EXPECT_EQ(w.layers[i].q_proj.group_size, 64);
  }
  expect_int8_equal(w.layers[0].down_proj, src->weights().layers[0].down_proj, 32, "layer 0 down_proj");
  // The head is an INT4 copy of the embedding; the embedding stays INT8 per row.
  ASSERT_NE(w.lm_head.data, nullptr);
  expect_int4_equal(w.lm_head, expected_int4(src->weights().embed_tokens, 64, QuantMethod::kMinMax), "lm_head");
  EXPECT_EQ(w.embed_tokens.type, QuantType::kInt8Group);
}

TEST(QuantizeCheckpoint, GgufOutputLoadsWithGgmlQuantizerBytes) {
  const std::pair<QuantType, const char*> types[] = {
      {QuantType::kQ4_0, "q4_0"}, {QuantType::kQ8_0, "q8_0"}, {QuantType::kQ4_K, "q4_k"}, {QuantType::kQ6_K, "q6_k"}};
  for (const char* model : test::kGoldenModels) {
    const std::string src_dir = kGoldenDir + model;
    auto src = open_or_die(src_dir);
    ASSERT_TRUE(src);
    for (const auto& [type, tname] : types) {
      SCOPED_TRACE(std::string(model) + " " + tname);
      const fs::path dir = test::scratch_dir(std::string(model) + tname);
      const std::string path = (dir / "model.gguf").string();
      QuantizeOptions o;
      o.format = ExportFormat::kGguf;
      o.gguf_type = type;
      quantize_or_die(src_dir, path, o);
      auto got = open_or_die(path);
      ASSERT_TRUE(got);
      expect_same_config(got->config(), src->config());
      const auto want = matrices(src->weights());
      const auto have = matrices(got->weights());
      ASSERT_EQ(want.size(), have.size());
      for (size_t i = 0; i < want.size(); ++i) {
        const QuantWeight& s = *want[i].second;
        QuantType t = i == 0 ? QuantType::kQ8_0 : type;  // the embedding is the recipe's INT8 → Q8_0
        if (s.cols % 256 != 0 && t == QuantType::kQ4_K) t = QuantType::kQ5_0;
        if (s.cols % 256 != 0 && t == QuantType::kQ6_K) t = QuantType::kQ8_0;
        ASSERT_EQ(have[i].second->type, t) << have[i].first;
        const std::vector<float> x = decode_all(s);
        std::vector<uint8_t> bytes(row_bytes(t, s.cols).value() * static_cast<uint64_t>(s.rows));
        ASSERT_TRUE(quantize_rows(t, x.data(), s.rows, s.cols, bytes.data()).is_ok());
        EXPECT_EQ(std::memcmp(have[i].second->data, bytes.data(), bytes.size()), 0) << have[i].first;
      }
      // Norms are f32 multipliers (Gemma 3's +1 baked in), exactly what the HF loader computes.
      EXPECT_EQ(got->weights().norm, src->weights().norm);
      for (size_t l = 0; l < src->weights().layers.size(); ++l) {
        EXPECT_EQ(got->weights().layers[l].k_norm, src->weights().layers[l].k_norm);
        EXPECT_EQ(got->weights().layers[l].pre_feedforward_layernorm,
                  src->weights().layers[l].pre_feedforward_layernorm);
        EXPECT_EQ(got->weights().layers[l].layer_scalar, src->weights().layers[l].layer_scalar);
      }
    }
  }
}

// The GGUF files, read back by llama.cpp's own Python reader (gguf package): names, keys, shapes,
// bytes against gguf.quants. CI installs the package (scripts/requirements-test.txt).
TEST(QuantizeCheckpoint, GgufPassesTheGgufPythonReader) {
  const std::pair<const char*, const char*> cases[] = {
      {"gemma3_tiny", "q4_0"}, {"gemma4_tiny", "q4_k"}, {"gemma4_tiny_nokeqv", "q6_k"}, {"gemma3_tiny_noscale", "q8_0"}};
  for (const auto& [model, type] : cases) {
    SCOPED_TRACE(std::string(model) + " " + type);
    const fs::path dir = test::scratch_dir(std::string(model) + type);
    const std::string path = (dir / "model.gguf").string();
    QuantizeOptions o;
    o.format = ExportFormat::kGguf;
    o.gguf_type = std::string(type) == "q4_0"   ? QuantType::kQ4_0
                  : std::string(type) == "q4_k" ? QuantType::kQ4_K
                  : std::string(type) == "q6_k" ? QuantType::kQ6_K
                                                : QuantType::kQ8_0;
    quantize_or_die(kGoldenDir + model, path, o);
    const std::string cmd = "python3 " + std::string(GE_SOURCE_DIR) + "/scripts/check_gguf_export.py '" + path +
                            "' '" + kGoldenDir + model + "' > '" + (dir / "check.log").string() + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    EXPECT_EQ(rc, 0) << "scripts/check_gguf_export.py failed (needs python3 with numpy, gguf, safetensors):\n"
                     << test::read_text(dir / "check.log");
  }
}

TEST(QuantizeCheckpoint, GgufTokenizerCopiedOrConverted) {
  const std::string src_dir = kGoldenDir + "gemma4_tiny";
  const std::string donor = kGoldenDir + "gemma4_tiny/model-q4_0.gguf";
  const fs::path dir = test::scratch_dir("tok");
  QuantizeOptions o;
  o.format = ExportFormat::kGguf;
  o.gguf_type = QuantType::kQ8_0;
  o.tokenizer_gguf = donor;
  quantize_or_die(src_dir, (dir / "copied.gguf").string(), o);
  Result<gguf::GgufFile> a = gguf::GgufFile::open((dir / "copied.gguf").string());
  Result<gguf::GgufFile> b = gguf::GgufFile::open(donor);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  Result<Tokenizer> ta = Tokenizer::from_gguf(*a);
  Result<Tokenizer> tb = Tokenizer::from_gguf(*b);
  ASSERT_TRUE(ta.is_ok()) << ta.status().to_string();
  ASSERT_TRUE(tb.is_ok());
  EXPECT_EQ(ta->encode("the quick brown fox", true, false), tb->encode("the quick brown fox", true, false));
  EXPECT_EQ(a->get_string_array("tokenizer.ggml.merges").value(), b->get_string_array("tokenizer.ggml.merges").value());

  // A tokenizer.json beside the input is converted (Gemma 4: BPE with its merge list).
  const fs::path hf = test::scratch_dir("hf");
  fs::copy_file(src_dir + "/config.json", hf / "config.json");
  fs::copy_file(src_dir + "/model.safetensors", hf / "model.safetensors");
  const std::string tj = std::string(GE_TEST_DATA_DIR) + "/tokenizer/tiny_tokenizer.json";
  fs::copy_file(tj, hf / "tokenizer.json");
  o.tokenizer_gguf.clear();
  quantize_or_die(hf.string(), (dir / "converted.gguf").string(), o);
  Result<gguf::GgufFile> c = gguf::GgufFile::open((dir / "converted.gguf").string());
  ASSERT_TRUE(c.is_ok());
  Result<Tokenizer> from_gguf = Tokenizer::from_gguf(*c);
  Result<Tokenizer> from_json = Tokenizer::from_hf_json(tj);
  ASSERT_TRUE(from_gguf.is_ok()) << from_gguf.status().to_string();
  ASSERT_TRUE(from_json.is_ok());
  EXPECT_EQ(from_gguf->n_vocab(), from_json->n_vocab());
  for (const char* text : {"hello world", "The quick brown fox jumps", "  spaces\tand\nnewlines", "ünïcödé ☃ 123"}) {
    EXPECT_EQ(from_gguf->encode(text, false, false), from_json->encode(text, false, false)) << text;
  }
  // Malformed tokenizer.json files are errors, not crashes.
  const char* bad[] = {
      R"({"model": {"type": "BPE", "vocab": {"a": 9223372036854775807}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []}})",
      R"({"model": {"type": "Unigram", "vocab": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}})",
      R"([1, 2)",
  };
  for (const char* text : bad) {
    test::write_text(hf / "tokenizer.json", text);
    Result<QuantizeReport> r = quantize_checkpoint(hf.string(), (dir / "bad.gguf").string(), o);
    EXPECT_FALSE(r.is_ok()) << text;
    EXPECT_FALSE(fs::exists(dir / "bad.gguf")) << text;
  }
}

TEST(DequantizeGguf, RoundTripsThroughAnHfDirectory) {
  const std::pair<const char*, const char*> cases[] = {{"gemma4_tiny", "model-f32.gguf"},
                                                       {"gemma3_tiny", "model-q8_0.gguf"},
                                                       {"gemma4_tiny_nokeqv", "model-q4_0.gguf"}};
  for (const auto& [model, file] : cases) {
    for (bool bf16 : {false, true}) {
      SCOPED_TRACE(std::string(model) + "/" + file + (bf16 ? " bf16" : " f32"));
      const std::string gguf = kGoldenDir + model + "/" + file;
      const fs::path out = test::scratch_dir(std::string(model) + (bf16 ? "bf16" : "f32"));
      Status s = dequantize_gguf_to_hf(gguf, out.string(), bf16, /*force=*/true, 2);
      ASSERT_TRUE(s.is_ok()) << s.to_string();
      auto a = open_or_die(gguf);
      auto b = open_or_die(out.string());
      ASSERT_TRUE(a && b);
      EXPECT_EQ(b->format(), CheckpointFormat::kSafetensors);
      expect_same_config(b->config(), a->config());
      const auto ma = matrices(a->weights());
      const auto mb = matrices(b->weights());
      ASSERT_EQ(ma.size(), mb.size());
      for (size_t i = 0; i < ma.size(); ++i) {
        std::vector<float> want = decode_all(*ma[i].second);
        if (bf16)
          for (float& v : want) v = round_bf16(v);
        EXPECT_EQ(decode_all(*mb[i].second), want) << ma[i].first;
      }
      // Gemma 3 norms go out as w = m − 1 and come back as 1 + w.
      for (size_t i = 0; i < a->weights().norm.size(); ++i) {
        EXPECT_NEAR(b->weights().norm[i], a->weights().norm[i], bf16 ? 1e-2 : 1e-6);
      }
      for (size_t l = 0; l < a->weights().layers.size(); ++l) {
        EXPECT_NEAR(b->weights().layers[l].layer_scalar, a->weights().layers[l].layer_scalar, bf16 ? 1e-2 : 0.0);
      }
    }
  }
}

TEST(HfConfigJson, RoundTripsEveryGoldenConfig) {
  for (const char* model : test::kGoldenModels) {
    SCOPED_TRACE(model);
    Result<GemmaConfig> c = config_from_hf_json(test::read_text(kGoldenDir + model + "/config.json"));
    ASSERT_TRUE(c.is_ok());
    Result<std::string> text = hf_config_json(*c);
    ASSERT_TRUE(text.is_ok()) << text.status().to_string();
    Result<GemmaConfig> back = config_from_hf_json(*text);
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    expect_same_config(*back, *c);
    EXPECT_EQ(back->eos_token_ids, c->eos_token_ids);
    EXPECT_EQ(back->tie_word_embeddings, c->tie_word_embeddings);
  }
}

// ---------------------------------------------------------------- bad input

// An HF directory holding `config` and the golden model's tensors, edited by `edit` (which may
// drop, retype or add tensors) — written with the plain safetensors writer.
struct TensorEdit {
  std::string drop;
  std::string retype_to_i8;
  std::string add_extra;
  std::string reshape;
};

fs::path make_hf_dir(const std::string& tag, const std::string& config_text, const TensorEdit& e) {
  const fs::path dir = test::scratch_dir(tag);
  test::write_text(dir / "config.json", config_text);
  Result<safetensors::SafetensorsModel> m =
      safetensors::SafetensorsModel::open(kGoldenDir + "gemma3_tiny/model.safetensors");
  EXPECT_TRUE(m.is_ok());
  safetensors::TorchaoWriter w(/*torchao_metadata=*/false);
  std::vector<std::pair<std::string, const safetensors::TensorInfo*>> kept;
  for (const std::string& name : m->names()) {
    if (name == e.drop) continue;
    const safetensors::TensorInfo* t = m->find(name);
    if (name == e.retype_to_i8) {
      EXPECT_TRUE(w.add_plain(name, safetensors::DType::kI8, t->shape).is_ok());
    } else if (name == e.reshape) {
      EXPECT_TRUE(w.add_plain(name, t->dtype, {t->shape[0] / 2, t->shape[1] * 2}).is_ok());
      kept.push_back({name, t});
    } else {
      EXPECT_TRUE(w.add_plain(name, t->dtype, t->shape).is_ok());
      kept.push_back({name, t});
    }
  }
  if (!e.add_extra.empty()) {
    EXPECT_TRUE(w.add_plain(e.add_extra, safetensors::DType::kF32, {4}).is_ok());
  }
  EXPECT_TRUE(w.open((dir / "model.safetensors").string()).is_ok());
  for (const auto& [name, t] : kept) EXPECT_TRUE(w.write(*w.slot(name), 0, t->data, t->nbytes).is_ok());
  EXPECT_TRUE(w.commit().is_ok());
  return dir;
}

void expect_fails(const std::string& in, const QuantizeOptions& o, const std::string& needle) {
  const fs::path out = test::scratch_dir("out");
  Result<QuantizeReport> r = quantize_checkpoint(in, (out / "q").string(), o);
  ASSERT_FALSE(r.is_ok()) << "expected an error mentioning '" << needle << "'";
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().to_string();
  EXPECT_FALSE(fs::exists(out / "q" / "model.safetensors"));
  if (fs::exists(out / "q")) {
    EXPECT_EQ(test::count_temp_files(out / "q"), 0);
  }
}

TEST(QuantizeCheckpoint, BadInputIsAClearError) {
  const std::string cfg = test::read_text(kGoldenDir + "gemma3_tiny/config.json");
  QuantizeOptions o;
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  expect_fails(make_hf_dir("missing", cfg, {q, "", "", ""}).string(), o, "no tensor");
  expect_fails(make_hf_dir("dtype", cfg, {"", "model.layers.2.input_layernorm.weight", "", ""}).string(), o, "I8");
  expect_fails(make_hf_dir("extra", cfg, {"", "", "model.layers.0.router.scale", ""}).string(), o, "router");
  expect_fails(make_hf_dir("shape", cfg, {"", "", "", q}).string(), o, "shape");
  std::string llama = cfg;
  llama.replace(llama.find("gemma3_text"), 11, "llama");
  expect_fails(make_hf_dir("arch", llama, {}).string(), o, "llama");
  // A group the rows cannot hold: K = 64 with 128-wide groups.
  o.recipe.group_size = 128;
  expect_fails(kGoldenDir + "gemma3_tiny", o, "group size");
  o.recipe.group_size = 32;
  // K-quants need no divisibility (they fall back), but Q4_0 on rows that are not a multiple of 32 would;
  // an already-quantized input is refused.
  const fs::path once = test::scratch_dir("once");
  quantize_or_die(kGoldenDir + "gemma3_tiny", once.string(), o);
  expect_fails(once.string(), o, "already quantized");
  expect_fails(kGoldenDir + "nonexistent", o, "does not exist");
  expect_fails(kGoldenDir + "gemma3_tiny/model-q4_0.gguf", o, "--dequantize-gguf");
}

TEST(QuantizeCheckpoint, ExistingOutputNeedsForce) {
  const fs::path out = test::scratch_dir("exists");
  QuantizeOptions o;
  quantize_or_die(kGoldenDir + "gemma3_tiny", out.string(), o);
  const auto before = fs::last_write_time(out / "model.safetensors");
  Result<QuantizeReport> r = quantize_checkpoint(kGoldenDir + "gemma3_tiny", out.string(), o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("--force"), std::string::npos) << r.status().to_string();
  EXPECT_EQ(fs::last_write_time(out / "model.safetensors"), before);
  o.force = true;
  o.recipe.method = QuantMethod::kHqq;
  quantize_or_die(kGoldenDir + "gemma3_tiny", out.string(), o);
  EXPECT_EQ(test::count_temp_files(out), 0);
  // GGUF: same rule for the file.
  o.format = ExportFormat::kGguf;
  o.force = false;
  const std::string g = (out / "m.gguf").string();
  quantize_or_die(kGoldenDir + "gemma3_tiny", g, o);
  EXPECT_FALSE(quantize_checkpoint(kGoldenDir + "gemma3_tiny", g, o).is_ok());
  // The output directory must not be the input directory.
  o.format = ExportFormat::kTorchao;
  o.force = true;
  EXPECT_FALSE(quantize_checkpoint(out.string() + "/../" + out.filename().string(), out.string(), o).is_ok());
}

}  // namespace
}  // namespace ge

namespace ge {
namespace {

// Quantizing at load time gives exactly the weights of the written checkpoint, loaded back.
TEST(QuantizeModelWeights, EqualsTheWrittenCheckpoint) {
  for (const char* model : {"gemma3_tiny", "gemma4_tiny"}) {
    SCOPED_TRACE(model);
    const std::string src_dir = kGoldenDir + model;
    QuantizeOptions o;
    o.recipe.kind = RecipeKind::kSensitive;
    o.recipe.method = QuantMethod::kHqq;
    o.recipe.int4_lm_head = true;
    const fs::path out = test::scratch_dir(model);
    quantize_or_die(src_dir, out.string(), o);
    auto src = open_or_die(src_dir);
    auto file = open_or_die(out.string());
    ASSERT_TRUE(src && file);
    Result<std::unique_ptr<QuantizedModelWeights>> mem =
        quantize_model_weights(src->config(), src->weights(), o.recipe, 2);
    ASSERT_TRUE(mem.is_ok()) << mem.status().to_string();
    const ModelWeights& a = (*mem)->weights();
    const ModelWeights& b = file->weights();
    auto m_a = matrices(a), m_b = matrices(b);
    m_a.push_back({"lm_head", &a.lm_head});
    m_b.push_back({"lm_head", &b.lm_head});
    ASSERT_EQ(m_a.size(), m_b.size());
    for (size_t i = 0; i < m_a.size(); ++i) {
      const QuantWeight &x = *m_a[i].second, &y = *m_b[i].second;
      ASSERT_EQ(x.type, y.type) << m_a[i].first;
      ASSERT_EQ(x.group_size, y.group_size) << m_a[i].first;
      EXPECT_EQ(decode_all(x), decode_all(y)) << m_a[i].first;
    }
    EXPECT_EQ(a.embed_scale, b.embed_scale);
    EXPECT_GT((*mem)->bytes(), 0u);
    // A checkpoint that is already quantized is refused.
    EXPECT_FALSE(quantize_model_weights(file->config(), file->weights(), o.recipe, 1).is_ok());
  }
}

}  // namespace
}  // namespace ge
