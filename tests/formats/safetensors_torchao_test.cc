// torchao metadata: the fixture written by torchao itself (scripts/gen_torchao_fixture.py) is
// read and its weights dequantized to the values computed in Python; malformed metadata and
// inconsistent part layouts are refused with a clear status.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/torchao_meta.h"
#include "safetensors_test_util.h"

namespace ge::safetensors {
namespace {

using nlohmann::json;
using testing::Bytes;
using testing::pattern_bytes;
using testing::TensorSpec;
using testing::write_image;

std::string data_path(const char* name) { return std::string(GE_TEST_DATA_DIR) + "/safetensors/" + name; }

uint16_t u16_at(const uint8_t* p, int64_t i) {
  uint16_t v;
  std::memcpy(&v, p + 2 * i, 2);
  return v;
}

// w[n][k] in f32 from the torchao parts, following the documented layouts.
std::vector<float> dequantize(const TorchaoTensor& t) {
  const int64_t n = t.shape[0], k = t.shape[1], gs = t.group_size;
  const TensorInfo* q = t.parts.at("qdata");
  const TensorInfo* s = t.parts.at("scale");
  const TensorInfo* z = t.parts.at("zero_point");
  std::vector<float> w(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = c / gs;
      float qv, scale, zero;
      if (t.type == "Int4Tensor") {
        const uint8_t byte = q->data[r * (k / 2) + c / 2];
        qv = static_cast<float>(c % 2 == 0 ? byte & 0x0f : byte >> 4);  // even k in the low nibble
        scale = bf16_to_f32(u16_at(s->data, g * n + r));                // [K/gs, N]
        zero = bf16_to_f32(u16_at(z->data, g * n + r));
      } else {
        qv = static_cast<float>(static_cast<int8_t>(q->data[r * k + c]));
        scale = bf16_to_f32(u16_at(s->data, r * (k / gs) + g));  // [N, K/gs]
        zero = static_cast<float>(static_cast<int8_t>(z->data[r * (k / gs) + g]));
      }
      w[static_cast<size_t>(r * k + c)] = (qv - zero) * scale;
    }
  }
  return w;
}

TEST(SafetensorsTorchao, ReadsTheTorchaoFixture) {
  Result<SafetensorsFile> file = SafetensorsFile::open(data_path("torchao_small.safetensors"));
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  Result<SafetensorsFile> expected = SafetensorsFile::open(data_path("torchao_expected.safetensors"));
  ASSERT_TRUE(expected.is_ok()) << expected.status().to_string();
  Result<std::vector<TorchaoTensor>> r = read_torchao_tensors(file.value());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 4u);

  // In "tensor_names" order.
  const TorchaoTensor& q_proj = (*r)[0];
  EXPECT_EQ(q_proj.fqn, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q_proj.type, "Int4Tensor");
  EXPECT_EQ(q_proj.shape, (std::vector<int64_t>{6, 64}));
  EXPECT_EQ(q_proj.block_size, (std::vector<int64_t>{1, 32}));
  EXPECT_EQ(q_proj.group_size, 32);
  EXPECT_EQ(q_proj.bits, 4);
  EXPECT_EQ(q_proj.parts.at("qdata")->name, "model.layers.0.self_attn.q_proj._weight_qdata");
  EXPECT_EQ(q_proj.parts.at("scale")->shape, (std::vector<int64_t>{2, 6}));

  const TorchaoTensor& down = (*r)[1];
  EXPECT_EQ(down.type, "IntxUnpackedToInt8Tensor");
  EXPECT_EQ(down.shape, (std::vector<int64_t>{4, 96}));
  EXPECT_EQ(down.group_size, 32);
  EXPECT_EQ(down.bits, 8);
  EXPECT_EQ(down.parts.at("zero_point")->dtype, DType::kI8);

  const TorchaoTensor& embed = (*r)[2];
  EXPECT_EQ(embed.fqn, "model.embed_tokens.weight");
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{10, 16}));
  EXPECT_EQ(embed.group_size, 16);  // one group per row
  EXPECT_EQ(embed.parts.at("scale")->shape, (std::vector<int64_t>{10, 1}));

  const TorchaoTensor& norm = (*r)[3];
  EXPECT_EQ(norm.type, "Tensor");
  EXPECT_EQ(norm.shape, std::vector<int64_t>{64});
  EXPECT_TRUE(norm.block_size.empty());
  ASSERT_EQ(norm.parts.count("data"), 1u);
  EXPECT_EQ(norm.parts.at("data"), file->find("model.layers.0.input_layernorm.weight"));

  // The layout reading reproduces the values computed in Python from the same bf16 parts.
  for (const TorchaoTensor* t : {&q_proj, &down, &embed}) {
    SCOPED_TRACE(t->fqn);
    const TensorInfo* ref = expected->find(t->fqn);
    ASSERT_NE(ref, nullptr);
    ASSERT_EQ(ref->dtype, DType::kF32);
    const std::vector<float> w = dequantize(*t);
    ASSERT_EQ(ref->nbytes, w.size() * sizeof(float));
    size_t mismatches = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      float e;
      std::memcpy(&e, ref->data + 4 * i, 4);
      if (std::abs(w[i] - e) > 1e-6f * (1.0f + std::abs(e))) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0u);
  }
}

TEST(SafetensorsTorchao, PlainFilesHaveNoTorchaoTensors) {
  const Bytes image = write_image({{"w", "BF16", {2}, pattern_bytes(4, 1)}}, {{"format", "pt"}});
  Result<SafetensorsFile> f = SafetensorsFile::parse(image.data(), image.size());
  ASSERT_TRUE(f.is_ok());
  Result<std::vector<TorchaoTensor>> r = read_torchao_tensors(f.value());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->empty());
}

// A synthetic torchao file: Int4 "a.weight" [4, 64] and Intx "b.weight" [4, 64], group 32.
struct Synth {
  std::vector<TensorSpec> tensors;
  json meta_a = {{"_type", "Int4Tensor"},
                 {"_data", {{"block_size", {1, 32}}, {"shape", {4, 64}}}},
                 {"_tensor_data_names", {"qdata", "scale", "zero_point"}}};
  json meta_b = {{"_type", "IntxUnpackedToInt8Tensor"},
                 {"_data",
                  {{"target_dtype", {{"_type", "torch.dtype"}, {"_data", "int8"}}},
                   {"block_size", {1, 32}},
                   {"dtype", {{"_type", "torch.dtype"}, {"_data", "bfloat16"}}},
                   {"activation_quantization", nullptr}}},
                 {"_tensor_data_names", {"qdata", "scale", "zero_point"}}};
  std::map<std::string, std::string> extra_meta;
  std::string tensor_names = R"(["a.weight", "b.weight"])";

  Synth() {
    set("a._weight_qdata", "U8", {4, 32});
    set("a._weight_scale", "BF16", {2, 4});
    set("a._weight_zero_point", "BF16", {2, 4});
    set("b._weight_qdata", "I8", {4, 64});
    set("b._weight_scale", "BF16", {4, 2});
    set("b._weight_zero_point", "I8", {4, 2});
  }
  void set(const std::string& name, const std::string& dtype, std::vector<int64_t> shape) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const size_t esize = (dtype == "U8" || dtype == "I8") ? 1 : 2;
    TensorSpec spec{name, dtype, shape, pattern_bytes(static_cast<size_t>(numel) * esize, 7)};
    for (TensorSpec& t : tensors) {
      if (t.name == name) {
        t = spec;
        return;
      }
    }
    tensors.push_back(spec);
  }
  void drop(const std::string& name) {
    std::erase_if(tensors, [&](const TensorSpec& t) { return t.name == name; });
  }
  Result<std::vector<TorchaoTensor>> read(Bytes* storage) const {
    std::map<std::string, std::string> meta = {
        {"tensor_names", tensor_names}, {"a.weight", meta_a.dump()}, {"b.weight", meta_b.dump()}};
    for (const auto& [k, v] : extra_meta) meta[k] = v;
    *storage = write_image(tensors, meta);
    Result<SafetensorsFile> f = SafetensorsFile::parse(storage->data(), storage->size());
    if (!f.is_ok()) return f.status();
    return read_torchao_tensors(f.value());
  }
};

TEST(SafetensorsTorchao, SyntheticBaselineIsValid) {
  Synth s;
  Bytes storage;
  Result<std::vector<TorchaoTensor>> r = s.read(&storage);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].shape, (std::vector<int64_t>{4, 64}));
  EXPECT_EQ((*r)[1].shape, (std::vector<int64_t>{4, 64}));
  EXPECT_EQ((*r)[1].bits, 8);
}

struct BadCase {
  const char* name;
  void (*edit)(Synth&);
  StatusCode code;
  const char* message;
};

TEST(SafetensorsTorchao, RejectsInconsistentMetadataAndLayouts) {
  const StatusCode kFmt = StatusCode::kFormatError, kUns = StatusCode::kUnsupported;
  const std::vector<BadCase> cases = {
      {"tensor_names not JSON", [](Synth& s) { s.tensor_names = "[a.weight"; }, kFmt, "invalid JSON"},
      {"tensor_names not a list", [](Synth& s) { s.tensor_names = R"({"a": 1})"; }, kFmt, "not a JSON list"},
      {"tensor_names non-string", [](Synth& s) { s.tensor_names = R"([1])"; }, kFmt, "non-string"},
      {"tensor_names duplicate", [](Synth& s) { s.tensor_names = R"(["a.weight", "a.weight"])"; }, kFmt,
       "listed twice"},
      {"no metadata entry", [](Synth& s) { s.tensor_names = R"(["c.weight"])"; }, kFmt, "no metadata entry"},
      {"entry not an object", [](Synth& s) { s.meta_a = json::array({1}); }, kFmt, "not a JSON object"},
      {"entry without _type", [](Synth& s) { s.meta_a.erase("_type"); }, kFmt, "no \"_type\""},
      {"type not allow-listed", [](Synth& s) { s.meta_a["_type"] = "builtins.eval"; }, kFmt, "not an allow-listed"},
      {"Float8Tensor", [](Synth& s) { s.meta_a["_type"] = "Float8Tensor"; }, kUns, "Float8Tensor"},
      {"no _data", [](Synth& s) { s.meta_a.erase("_data"); }, kFmt, "no \"_data\""},
      {"no _tensor_data_names", [](Synth& s) { s.meta_a.erase("_tensor_data_names"); }, kFmt, "_tensor_data_names"},
      {"unknown part", [](Synth& s) { s.meta_a["_tensor_data_names"].push_back("bias"); }, kFmt, "unknown tensor part"},
      {"act_pre_scale", [](Synth& s) { s.meta_a["_tensor_data_names"].push_back("act_pre_scale"); }, kUns,
       "act_pre_scale"},
      {"part listed twice", [](Synth& s) { s.meta_a["_tensor_data_names"].push_back("scale"); }, kFmt, "listed twice"},
      {"zero_point not listed",
       [](Synth& s) {
         s.meta_a["_tensor_data_names"] = {"qdata", "scale"};
       },
       kFmt, "no zero_point part"},
      {"part tensor missing", [](Synth& s) { s.drop("a._weight_zero_point"); }, kFmt, "missing from the file"},
      {"quantized name without a dot",
       [](Synth& s) {
         s.tensor_names = R"(["aweight"])";
         s.extra_meta["aweight"] = s.meta_a.dump();
       },
       kFmt, "<module>.<attribute>"},
      {"int4 qdata int8",
       [](Synth& s) {
         s.set("a._weight_qdata", "I8", {4, 32});
       },
       kFmt, "qdata is I8 [4, 32]"},
      {"int4 qdata unpacked",
       [](Synth& s) {
         s.set("a._weight_qdata", "U8", {4, 64});
       },
       kFmt, "expected U8 [4, 32]"},
      {"int4 scale not transposed",
       [](Synth& s) {
         s.set("a._weight_scale", "BF16", {4, 2});
       },
       kFmt, "scale is BF16 [4, 2], expected BF16 [2, 4]"},
      {"int4 zero int8",
       [](Synth& s) {
         s.set("a._weight_zero_point", "I8", {2, 4});
       },
       kFmt, "zero_point is I8"},
      {"int4 no shape", [](Synth& s) { s.meta_a["_data"].erase("shape"); }, kFmt, "no \"shape\""},
      {"int4 shape 3-D",
       [](Synth& s) {
         s.meta_a["_data"]["shape"] = {2, 4, 64};
       },
       kUns, "not 2-D"},
      {"int4 shape negative",
       [](Synth& s) {
         s.meta_a["_data"]["shape"] = {4, -64};
       },
       kFmt, "positive integers"},
      {"int4 odd K",
       [](Synth& s) {
         s.meta_a["_data"]["shape"] = {4, 63};
       },
       kFmt, "odd"},
      {"group does not divide K",
       [](Synth& s) {
         s.meta_a["_data"]["block_size"] = {1, 48};
       },
       kFmt, "not a multiple of the group size 48"},
      {"group size zero",
       [](Synth& s) {
         s.meta_a["_data"]["block_size"] = {1, 0};
       },
       kFmt, "positive integers"},
      {"block_size not per-row",
       [](Synth& s) {
         s.meta_a["_data"]["block_size"] = {2, 32};
       },
       kUns, "[1, gs]"},
      {"block_size missing", [](Synth& s) { s.meta_a["_data"].erase("block_size"); }, kFmt, "no \"block_size\""},
      {"int4 fp8 activations",
       [](Synth& s) {
         s.meta_a["_data"]["activation_dtype"] = {{"_type", "torch.dtype"}, {"_data", "float8_e4m3fn"}};
       },
       kUns, "activation_dtype"},
      {"activation_dtype not a dtype", [](Synth& s) { s.meta_a["_data"]["activation_dtype"] = "bfloat16"; }, kFmt,
       "not an encoded torch.dtype"},
      {"intx qdata uint8",
       [](Synth& s) {
         s.set("b._weight_qdata", "U8", {4, 64});
       },
       kFmt, "qdata is U8"},
      {"intx scale transposed",
       [](Synth& s) {
         s.set("b._weight_scale", "BF16", {2, 4});
       },
       kFmt, "scale is BF16 [2, 4], expected BF16 [4, 2]"},
      {"intx zero bf16",
       [](Synth& s) {
         s.set("b._weight_zero_point", "BF16", {4, 2});
       },
       kFmt, "zero_point is BF16 [4, 2], expected I8 [4, 2]"},
      {"intx qdata 1-D", [](Synth& s) { s.set("b._weight_qdata", "I8", {256}); }, kUns, "not 2-D"},
      {"intx shape disagrees",
       [](Synth& s) {
         s.meta_b["_data"]["shape"] = {4, 32};
       },
       kFmt, "disagrees"},
      {"intx unsigned target",
       [](Synth& s) {
         s.meta_b["_data"]["target_dtype"] = {{"_type", "torch.dtype"}, {"_data", "uint4"}};
       },
       kUns, "target_dtype"},
      {"intx no target", [](Synth& s) { s.meta_b["_data"].erase("target_dtype"); }, kUns, "target_dtype"},
      {"intx activation quant", [](Synth& s) { s.meta_b["_data"]["activation_quantization"] = "int8_asym_per_token"; },
       kUns, "activation_quantization"},
      {"plain tensor missing",
       [](Synth& s) {
         s.tensor_names = R"(["norm.weight"])";
         s.extra_meta["norm.weight"] = R"({"_type": "Tensor"})";
       },
       kFmt, "missing from the file"},
      {"duplicate key in an entry",
       [](Synth& s) { s.extra_meta["a.weight"] = R"({"_type": "Tensor", "_type": "Int4Tensor"})"; }, kFmt,
       "duplicate key"},
  };
  ASSERT_GE(cases.size(), 20u);
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    Synth s;
    c.edit(s);
    Bytes storage;
    Result<std::vector<TorchaoTensor>> r = s.read(&storage);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace ge::safetensors
