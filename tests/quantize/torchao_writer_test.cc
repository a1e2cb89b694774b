// The streaming torchao writer: metadata spelled exactly as torchao writes it (compared with the
// torchao-written fixture), a layout the engine's reader and metadata checker accept, and the
// temporary-file discipline.
#include "formats/torchao_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <cstring>

#include "formats/safetensors_reader.h"
#include "formats/torchao_meta.h"
#include "quantize_test_util.h"

namespace ge::safetensors {
namespace {

const std::string kFixture = std::string(GE_TEST_DATA_DIR) + "/safetensors/torchao_small.safetensors";

TEST(TorchaoWriter, MetadataMatchesWhatTorchaoWrites) {
  Result<SafetensorsFile> fixture = SafetensorsFile::open(kFixture);
  ASSERT_TRUE(fixture.is_ok()) << fixture.status().to_string();
  // The fixture's four tensors, declared with the same shapes.
  TorchaoWriter w;
  ASSERT_TRUE(w.add_int4("model.layers.0.self_attn.q_proj.weight", 6, 64, 32).is_ok());
  ASSERT_TRUE(w.add_intx("model.layers.0.mlp.down_proj.weight", 4, 96, 32).is_ok());
  ASSERT_TRUE(w.add_intx("model.embed_tokens.weight", 10, 16, 16).is_ok());
  ASSERT_TRUE(w.add_plain("model.layers.0.input_layernorm.weight", DType::kBF16, {64}).is_ok());
  const auto dir = test::scratch_dir("meta");
  ASSERT_TRUE(w.open((dir / "model.safetensors").string()).is_ok());
  ASSERT_TRUE(w.commit().is_ok());
  Result<SafetensorsFile> ours = SafetensorsFile::open((dir / "model.safetensors").string());
  ASSERT_TRUE(ours.is_ok()) << ours.status().to_string();
  // Every metadata string, tensor_names included, is byte-identical to torchao's json.dumps output.
  EXPECT_EQ(ours->metadata(), fixture->metadata());
  // Same part tensors with the same dtypes and shapes.
  ASSERT_EQ(ours->tensors().size(), fixture->tensors().size());
  for (const TensorInfo& t : fixture->tensors()) {
    const TensorInfo* o = ours->find(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    EXPECT_EQ(o->dtype, t.dtype) << t.name;
    EXPECT_EQ(o->shape, t.shape) << t.name;
  }
  // And the same data order as safetensors' save_file (by dtype, widest first, then by name).
  for (size_t i = 0; i < fixture->tensors().size(); ++i) {
    EXPECT_EQ(ours->tensors()[i].name, fixture->tensors()[i].name) << i;
  }
}

TEST(TorchaoWriter, WrittenBytesReadBackThroughTheTorchaoChecker) {
  const auto dir = test::scratch_dir("rw");
  const std::string path = (dir / "model.safetensors").string();
  TorchaoWriter w;
  ASSERT_TRUE(w.add_int4("layers.0.mlp.up_proj.weight", 8, 128, 64).is_ok());
  ASSERT_TRUE(w.add_intx("embed_tokens.weight", 5, 32, 32).is_ok());
  ASSERT_TRUE(w.add_plain("norm.weight", DType::kBF16, {32}).is_ok());
  ASSERT_TRUE(w.add_plain("layers.0.layer_scalar", DType::kBF16, {1}).is_ok());
  ASSERT_TRUE(w.open(path).is_ok());
  // Fill each tensor with a distinct byte pattern, written in two pieces, back half first.
  EXPECT_EQ(TorchaoWriter::part_name("layers.0.mlp.up_proj.weight", "qdata"), "layers.0.mlp.up_proj._weight_qdata");
  const std::vector<std::string> names = {TorchaoWriter::part_name("layers.0.mlp.up_proj.weight", "qdata"),
           TorchaoWriter::part_name("layers.0.mlp.up_proj.weight", "scale"),
           TorchaoWriter::part_name("layers.0.mlp.up_proj.weight", "zero_point"),
           TorchaoWriter::part_name("embed_tokens.weight", "qdata"),
           TorchaoWriter::part_name("embed_tokens.weight", "scale"),
           TorchaoWriter::part_name("embed_tokens.weight", "zero_point"),
           "norm.weight",
           "layers.0.layer_scalar"};
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorSlot* s = w.slot(names[i]);
    ASSERT_NE(s, nullptr) << names[i];
    if (s->dtype == DType::kBF16) {
      EXPECT_EQ(s->offset % 2, 0u) << "bf16 data must be 2-byte aligned";
    }
    std::vector<uint8_t> bytes(s->nbytes);
    for (size_t b = 0; b < bytes.size(); ++b) bytes[b] = static_cast<uint8_t>(i * 37 + b);
    const uint64_t half = s->nbytes / 2;
    ASSERT_TRUE(w.write(*s, half, bytes.data() + half, s->nbytes - half).is_ok());
    ASSERT_TRUE(w.write(*s, 0, bytes.data(), half).is_ok());
    EXPECT_FALSE(w.write(*s, 1, bytes.data(), s->nbytes).is_ok()) << "a write past the tensor must fail";
  }
  EXPECT_EQ(w.slot("nope"), nullptr);
  EXPECT_FALSE(std::filesystem::exists(path)) << "nothing appears under the final name before commit";
  ASSERT_TRUE(w.commit().is_ok());
  EXPECT_EQ(test::count_temp_files(dir), 0);
  Result<SafetensorsFile> f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorInfo* t = f->find(names[i]);
    ASSERT_NE(t, nullptr);
    for (uint64_t b = 0; b < t->nbytes; ++b) ASSERT_EQ(t->data[b], static_cast<uint8_t>(i * 37 + b)) << names[i];
  }
  Result<std::vector<TorchaoTensor>> meta = read_torchao_tensors(*f);
  ASSERT_TRUE(meta.is_ok()) << meta.status().to_string();
  ASSERT_EQ(meta->size(), 4u);
  EXPECT_EQ((*meta)[0].type, "Int4Tensor");
  EXPECT_EQ((*meta)[0].group_size, 64);
  EXPECT_EQ((*meta)[0].shape, (std::vector<int64_t>{8, 128}));
  EXPECT_EQ((*meta)[1].type, "IntxUnpackedToInt8Tensor");
  EXPECT_EQ((*meta)[1].bits, 8);
  EXPECT_EQ((*meta)[2].type, "Tensor");
}

TEST(TorchaoWriter, RejectsBadDeclarations) {
  TorchaoWriter w;
  EXPECT_FALSE(w.add_int4("a.weight", 4, 63, 32).is_ok());   // odd K, not a multiple of the group
  EXPECT_FALSE(w.add_int4("a.weight", 4, 96, 64).is_ok());   // K not a multiple of the group
  EXPECT_FALSE(w.add_int4("weight", 4, 64, 32).is_ok());     // no module
  EXPECT_FALSE(w.add_intx("b.weight", 4, 64, 32, 9).is_ok());  // bits
  EXPECT_FALSE(w.add_intx("b.weight", 0, 64, 32).is_ok());
  EXPECT_FALSE(w.add_plain("c", DType::kBF16, {-1}).is_ok());
  ASSERT_TRUE(w.add_plain("c", DType::kBF16, {4}).is_ok());
  EXPECT_FALSE(w.add_plain("c", DType::kBF16, {4}).is_ok());  // twice
  TorchaoWriter plain(/*torchao_metadata=*/false);
  EXPECT_FALSE(plain.add_int4("a.weight", 4, 64, 32).is_ok());
}

TEST(TorchaoWriter, UncommittedFileIsRemoved) {
  const auto dir = test::scratch_dir("abandon");
  {
    TorchaoWriter w;
    ASSERT_TRUE(w.add_plain("x", DType::kF32, {16}).is_ok());
    ASSERT_TRUE(w.open((dir / "model.safetensors").string()).is_ok());
    EXPECT_EQ(test::count_temp_files(dir), 1);
  }
  EXPECT_EQ(test::count_temp_files(dir), 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors"));
}

TEST(TorchaoWriter, PlainFileHasNoTorchaoMetadata) {
  const auto dir = test::scratch_dir("plain");
  TorchaoWriter w(/*torchao_metadata=*/false);
  w.set_metadata("format", "pt");
  ASSERT_TRUE(w.add_plain("model.norm.weight", DType::kF32, {3}).is_ok());
  ASSERT_TRUE(w.open((dir / "m.safetensors").string()).is_ok());
  const float v[3] = {1.0f, -2.0f, 0.5f};
  ASSERT_TRUE(w.write(*w.slot("model.norm.weight"), 0, v, sizeof(v)).is_ok());
  ASSERT_TRUE(w.commit().is_ok());
  Result<SafetensorsFile> f = SafetensorsFile::open((dir / "m.safetensors").string());
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(f->metadata().count("tensor_names"), 0u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(std::memcmp(f->find("model.norm.weight")->data, v, sizeof(v)), 0);
}

}  // namespace
}  // namespace ge::safetensors
