// Reads the real Gemma 3 270M Q4_K_M GGUF (path in GE_TEST_MODEL). Expected values were taken once
// from gguf-py's GGUFReader (gguf 0.19.0) on the same file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/gguf_reader.h"
#include "formats/gguf_writer.h"

namespace ge::gguf {
namespace {

template <typename T>
T must(Result<T> r) {
  if (!r.is_ok()) throw std::runtime_error("unexpected error: " + r.status().to_string());
  return std::move(r).value();
}

class GgufModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* path = std::getenv("GE_TEST_MODEL");
    if (path == nullptr || *path == '\0') return;
    auto r = GgufFile::open(path);
    if (r.is_ok()) {
      file_ = new GgufFile(std::move(r).value());
    } else {
      error_ = new std::string(r.status().to_string());
    }
  }
  static void TearDownTestSuite() {
    delete file_;
    delete error_;
    file_ = nullptr;
    error_ = nullptr;
  }
  void SetUp() override {
    const char* path = std::getenv("GE_TEST_MODEL");
    if (path == nullptr || *path == '\0') GTEST_SKIP() << "GE_TEST_MODEL is not set";
    ASSERT_EQ(error_, nullptr) << "GE_TEST_MODEL=" << path << " cannot be read as GGUF: " << *error_;
    ASSERT_NE(file_, nullptr);
  }
  const GgufFile& f() const { return *file_; }

  static GgufFile* file_;
  static std::string* error_;
};

GgufFile* GgufModel::file_ = nullptr;
std::string* GgufModel::error_ = nullptr;

TEST_F(GgufModel, Header) {
  EXPECT_EQ(f().version(), 3u);
  EXPECT_EQ(f().alignment(), 32u);
  EXPECT_EQ(f().file_size(), 253113024u);
  EXPECT_EQ(f().data_offset(), 6525120u);
  EXPECT_EQ(f().keys().size(), 33u);
  EXPECT_EQ(f().tensors().size(), 236u);
  EXPECT_EQ(f().keys().front(), "general.architecture");
  EXPECT_EQ(f().keys().back(), "general.file_type");
}

TEST_F(GgufModel, Gemma3Metadata) {
  EXPECT_EQ(must(f().get_string("general.architecture")), "gemma3");
  EXPECT_EQ(must(f().get_string("general.name")), "Gemma 3 270m");
  EXPECT_EQ(must(f().get_string("general.size_label")), "270M");
  EXPECT_EQ(must(f().get_string_array("general.tags")),
            (std::vector<std::string>{"gemma3", "gemma", "google", "text-generation"}));
  EXPECT_EQ(f().type_of("gemma3.context_length"), ValueType::kUint32);
  EXPECT_EQ(must(f().get_uint("gemma3.context_length")), 32768u);
  EXPECT_EQ(must(f().get_uint("gemma3.embedding_length")), 640u);
  EXPECT_EQ(must(f().get_uint("gemma3.block_count")), 18u);
  EXPECT_EQ(must(f().get_uint("gemma3.feed_forward_length")), 2048u);
  EXPECT_EQ(must(f().get_uint("gemma3.attention.head_count")), 4u);
  EXPECT_EQ(must(f().get_uint("gemma3.attention.head_count_kv")), 1u);
  EXPECT_EQ(must(f().get_uint("gemma3.attention.key_length")), 256u);
  EXPECT_EQ(must(f().get_uint("gemma3.attention.value_length")), 256u);
  EXPECT_EQ(must(f().get_uint("gemma3.attention.sliding_window")), 512u);
  EXPECT_EQ(f().type_of("gemma3.rope.freq_base"), ValueType::kFloat32);
  EXPECT_EQ(must(f().get_float("gemma3.rope.freq_base")), 1000000.0);
  EXPECT_EQ(must(f().get_float("gemma3.attention.layer_norm_rms_epsilon")), static_cast<double>(1e-6f));
  EXPECT_EQ(must(f().get_uint("general.file_type")), 15u);
  EXPECT_EQ(must(f().get_uint("general.quantization_version")), 2u);
  EXPECT_FALSE(f().has("general.alignment"));
}

TEST_F(GgufModel, TokenizerMetadata) {
  EXPECT_EQ(must(f().get_string("tokenizer.ggml.model")), "llama");
  EXPECT_EQ(must(f().get_string("tokenizer.ggml.pre")), "default");
  EXPECT_EQ(f().array_type_of("tokenizer.ggml.tokens"), ValueType::kString);
  EXPECT_EQ(f().array_type_of("tokenizer.ggml.scores"), ValueType::kFloat32);
  EXPECT_EQ(f().array_type_of("tokenizer.ggml.token_type"), ValueType::kInt32);
  EXPECT_EQ(f().array_size("tokenizer.ggml.tokens"), 262144u);

  const std::vector<std::string> tokens = must(f().get_string_array("tokenizer.ggml.tokens"));
  ASSERT_EQ(tokens.size(), 262144u);
  EXPECT_EQ(tokens[0], "<pad>");
  EXPECT_EQ(tokens[1], "<eos>");
  EXPECT_EQ(tokens[2], "<bos>");
  EXPECT_EQ(tokens[3], "<unk>");
  EXPECT_EQ(tokens[106], "<end_of_turn>");
  EXPECT_EQ(tokens[107], "\n");
  EXPECT_EQ(tokens[1000], "put");
  EXPECT_EQ(tokens[262143], "<unused6241>");
  size_t total = 0;
  for (const std::string& t : tokens) total += t.size();
  EXPECT_EQ(total, 2315366u);

  const std::vector<float> scores = must(f().get_f32_array("tokenizer.ggml.scores"));
  ASSERT_EQ(scores.size(), 262144u);
  EXPECT_EQ(scores[0], -1000.0f);
  EXPECT_EQ(scores[1000], -506.0f);
  EXPECT_EQ(scores[262143], -1000.0f);

  const std::vector<int64_t> types = must(f().get_int_array("tokenizer.ggml.token_type"));
  ASSERT_EQ(types.size(), 262144u);
  EXPECT_EQ(types[0], 3);
  EXPECT_EQ(types[106], 3);
  EXPECT_EQ(types[1000], 1);

  EXPECT_EQ(must(f().get_uint("tokenizer.ggml.bos_token_id")), 2u);
  EXPECT_EQ(must(f().get_uint("tokenizer.ggml.eos_token_id")), 1u);
  EXPECT_EQ(must(f().get_uint("tokenizer.ggml.unknown_token_id")), 3u);
  EXPECT_EQ(must(f().get_uint("tokenizer.ggml.padding_token_id")), 0u);
  EXPECT_TRUE(must(f().get_bool("tokenizer.ggml.add_bos_token")));
  EXPECT_FALSE(must(f().get_bool("tokenizer.ggml.add_eos_token")));
  EXPECT_FALSE(must(f().get_bool("tokenizer.ggml.add_space_prefix")));
}

TEST_F(GgufModel, TensorInfos) {
  struct Want {
    const char* name;
    GgmlType type;
    std::vector<int64_t> ne;
    uint64_t offset;
    uint64_t nbytes;
  };
  const Want wants[] = {
      {"output_norm.weight", GgmlType::kF32, {640}, 0, 2560},
      {"token_embd.weight", GgmlType::kQ8_0, {640, 262144}, 2560, 178257920},
      {"blk.0.attn_k.weight", GgmlType::kQ5_0, {640, 256}, 178260480, 112640},
      {"blk.0.attn_k_norm.weight", GgmlType::kF32, {256}, 178373120, 1024},
      {"blk.0.attn_output.weight", GgmlType::kQ4_K, {1024, 640}, 178376704, 368640},
      {"blk.17.ffn_up.weight", GgmlType::kQ5_0, {640, 2048}, 245681664, 901120},
      {"blk.17.post_ffw_norm.weight", GgmlType::kF32, {640}, 246585344, 2560},
  };
  for (const Want& w : wants) {
    const TensorInfo* t = f().find_tensor(w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->ggml_type, ggml_id(w.type)) << w.name;
    EXPECT_EQ(t->ne, w.ne) << w.name;
    EXPECT_EQ(t->offset, w.offset) << w.name;
    EXPECT_EQ(t->nbytes, w.nbytes) << w.name;
  }
  EXPECT_EQ(f().tensors().front().name, "output_norm.weight");
  EXPECT_EQ(f().tensors().back().name, "blk.17.post_ffw_norm.weight");

  // First 8 bytes of output_norm.weight as gguf-py shows them.
  const uint8_t want_bytes[8] = {0x00, 0x00, 0xe4, 0x40, 0x00, 0x00, 0x19, 0x41};
  EXPECT_EQ(std::memcmp(f().find_tensor("output_norm.weight")->data, want_bytes, 8), 0);

  std::map<uint32_t, int> histogram;
  for (const TensorInfo& t : f().tensors()) ++histogram[t.ggml_type];
  EXPECT_EQ(histogram, (std::map<uint32_t, int>{{0, 109}, {6, 81}, {8, 10}, {12, 27}, {14, 9}}));
  // The data section is tiled: the last tensor ends, padded, at the end of the file.
  const TensorInfo& last = f().tensors().back();
  EXPECT_EQ(f().data_offset() + last.offset + last.nbytes, f().file_size());
}

// What `gemma quantize` will do: copy every key verbatim, then re-read.
TEST_F(GgufModel, MetadataCopiesThroughWriter) {
  GgufWriter w;
  for (const std::string& k : f().keys()) ASSERT_TRUE(w.copy_from(f(), k).is_ok()) << k;
  const TensorInfo* norm = f().find_tensor("output_norm.weight");
  ASSERT_TRUE(w.add_tensor_view(norm->name, norm->ggml_type, norm->ne, norm->data, norm->nbytes).is_ok());
  const std::vector<uint8_t> bytes = must(w.serialize());
  GgufFile copy = must(GgufFile::parse(bytes.data(), bytes.size()));
  EXPECT_EQ(copy.keys(), f().keys());
  EXPECT_EQ(must(copy.get_string_array("tokenizer.ggml.tokens")), must(f().get_string_array("tokenizer.ggml.tokens")));
  EXPECT_EQ(must(copy.get_f32_array("tokenizer.ggml.scores")), must(f().get_f32_array("tokenizer.ggml.scores")));
  EXPECT_EQ(must(copy.get_uint("gemma3.block_count")), 18u);
  ASSERT_EQ(copy.tensors().size(), 1u);
  EXPECT_EQ(std::memcmp(copy.tensors()[0].data, norm->data, norm->nbytes), 0);
}

}  // namespace
}  // namespace ge::gguf
