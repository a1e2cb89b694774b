// Sharded safetensors checkpoints: single file, directory with model.safetensors, directory with
// an index; the index must agree with its shards and cannot point outside its directory.
#include "formats/safetensors_index.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "safetensors_test_util.h"

namespace ge::safetensors {
namespace {

namespace fs = std::filesystem;
using testing::pattern_bytes;
using testing::write_file;
using testing::write_image;
using testing::write_text;

// Two shards of a tiny model plus the index that maps them.
fs::path make_sharded_dir(const std::string& tag, const std::string& weight_map_json) {
  const fs::path dir = testing::scratch_dir(tag);
  write_file(dir / "model-00001-of-00002.safetensors",
             write_image({{"model.embed_tokens.weight", "BF16", {4, 2}, pattern_bytes(16, 1)},
                          {"model.layers.0.input_layernorm.weight", "F32", {2}, pattern_bytes(8, 2)}},
                         {{"format", "pt"}, {"shard", "1"}}));
  write_file(dir / "model-00002-of-00002.safetensors",
             write_image({{"model.layers.0.mlp.down_proj.weight", "BF16", {2, 2}, pattern_bytes(8, 3)}},
                         {{"format", "pt"}, {"shard", "2"}}));
  write_text(dir / kIndexFileName,
             R"({"metadata": {"total_size": 32, "format": "pt"}, "weight_map": )" + weight_map_json + "}");
  return dir;
}

const char* kGoodMap = R"({
  "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
  "model.layers.0.input_layernorm.weight": "model-00001-of-00002.safetensors",
  "model.layers.0.mlp.down_proj.weight": "model-00002-of-00002.safetensors"})";

TEST(SafetensorsIndex, OpensAShardedDirectory) {
  const fs::path dir = make_sharded_dir("good", kGoodMap);
  Result<SafetensorsModel> r = SafetensorsModel::open(dir.string());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const SafetensorsModel& m = r.value();
  EXPECT_TRUE(m.sharded());
  ASSERT_EQ(m.num_shards(), 2u);
  EXPECT_EQ(m.num_tensors(), 3u);
  EXPECT_EQ(m.names(), (std::vector<std::string>{"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                                                 "model.layers.0.mlp.down_proj.weight"}));
  const TensorInfo* down = m.find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(down->data[3], pattern_bytes(8, 3)[3]);
  const TensorInfo* embed = m.find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->data[15], pattern_bytes(16, 1)[15]);
  EXPECT_EQ(m.find("model.norm.weight"), nullptr);
  // Shards are ordered by file name; each keeps its own metadata.
  EXPECT_EQ(m.shard_of("model.layers.0.mlp.down_proj.weight"), 1u);
  EXPECT_EQ(m.shard_of("model.embed_tokens.weight"), 0u);
  EXPECT_FALSE(m.shard_of("nope").has_value());
  EXPECT_EQ(m.shard_metadata(0).at("shard"), "1");
  EXPECT_EQ(m.shard_metadata(1).at("shard"), "2");
  EXPECT_EQ(m.index_metadata().at("total_size"), "32");
  EXPECT_EQ(m.index_metadata().at("format"), "pt");

  // The index file itself is also accepted as the path; moving the model keeps the views.
  Result<SafetensorsModel> by_index = SafetensorsModel::open((dir / kIndexFileName).string());
  ASSERT_TRUE(by_index.is_ok()) << by_index.status().to_string();
  SafetensorsModel moved = std::move(by_index).value();
  EXPECT_EQ(moved.find("model.layers.0.mlp.down_proj.weight")->data[3], pattern_bytes(8, 3)[3]);
}

TEST(SafetensorsIndex, OpensASingleFileOrADirectoryHoldingOne) {
  const fs::path dir = testing::scratch_dir("single");
  write_file(dir / kSingleFileName, write_image({{"w", "F16", {3}, pattern_bytes(6, 4)}}, {{"format", "pt"}}));
  for (const fs::path& p : {dir, dir / kSingleFileName}) {
    Result<SafetensorsModel> r = SafetensorsModel::open(p.string());
    ASSERT_TRUE(r.is_ok()) << p << ": " << r.status().to_string();
    EXPECT_FALSE(r->sharded());
    EXPECT_EQ(r->num_shards(), 1u);
    EXPECT_EQ(r->names(), std::vector<std::string>{"w"});
    EXPECT_EQ(r->find("w")->nbytes, 6u);
    EXPECT_EQ(r->shard_metadata(0).at("format"), "pt");
    EXPECT_TRUE(r->index_metadata().empty());
  }
}

TEST(SafetensorsIndex, ReportsAnEmptyDirectoryAsNotFound) {
  const fs::path dir = testing::scratch_dir("empty");
  Result<SafetensorsModel> r = SafetensorsModel::open(dir.string());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(kIndexFileName), std::string::npos);
}

TEST(SafetensorsIndex, RejectsShardNamesThatLeaveTheDirectory) {
  const fs::path dir = make_sharded_dir("traversal", kGoodMap);
  // A valid shard where "../" would land, so only the name check can refuse it.
  const fs::path outside = dir.parent_path() / "ge_st_outside.safetensors";
  write_file(outside, write_image({{"model.embed_tokens.weight", "BF16", {4, 2}, pattern_bytes(16, 1)}}));
  fs::create_directories(dir / "sub");
  write_file(dir / "sub" / "model.safetensors",
             write_image({{"model.embed_tokens.weight", "BF16", {4, 2}, pattern_bytes(16, 1)}}));
  const std::vector<std::string> names = {"../ge_st_outside.safetensors",
                                          outside.string(),
                                          "sub/model.safetensors",
                                          "sub\\\\model.safetensors",
                                          "..",
                                          ".",
                                          "./model-00001-of-00002.safetensors"};
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    write_text(dir / kIndexFileName, R"({"weight_map": {"model.embed_tokens.weight": ")" + name + R"("}})");
    Result<SafetensorsModel> r = SafetensorsModel::open(dir.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kFormatError);
    EXPECT_NE(r.status().message().find("plain file names"), std::string::npos) << r.status().message();
  }
  fs::remove(outside);
  EXPECT_EQ(check_shard_name("model-00001-of-00002.safetensors"), "");
  EXPECT_NE(check_shard_name(""), "");
  EXPECT_NE(check_shard_name(std::string("a\0b", 3)), "");
}

struct BadIndexCase {
  const char* name;
  std::string weight_map;  // JSON value of "weight_map"
  StatusCode code;
  const char* message;
};

TEST(SafetensorsIndex, RejectsIndexesThatDisagreeWithTheirShards) {
  const std::string s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors";
  const std::vector<BadIndexCase> cases = {
      {"tensor not in its shard",
       R"({"model.embed_tokens.weight": ")" + s1 + R"(", "model.layers.0.input_layernorm.weight": ")" + s1 +
           R"(", "model.layers.0.mlp.down_proj.weight": ")" + s1 + R"("})",
       StatusCode::kFormatError, "does not contain it"},
      {"tensor missing from the map",
       R"({"model.embed_tokens.weight": ")" + s1 + R"(", "model.layers.0.mlp.down_proj.weight": ")" + s2 + R"("})",
       StatusCode::kFormatError, "does not assign"},
      {"missing shard file", R"({"model.embed_tokens.weight": "model-00003-of-00003.safetensors"})",
       StatusCode::kNotFound, "model-00003-of-00003"},
      {"shard name not a string", R"({"model.embed_tokens.weight": 1})", StatusCode::kFormatError,
       "not a file name string"},
      {"weight_map not an object", R"(["a"])", StatusCode::kFormatError, "weight_map"},
      {"empty weight_map", R"({})", StatusCode::kFormatError, "empty"},
      {"duplicate tensor in the map",
       R"({"model.embed_tokens.weight": ")" + s1 + R"(", "model.embed_tokens.weight": ")" + s2 + R"("})",
       StatusCode::kFormatError, "duplicate key"},
  };
  for (const BadIndexCase& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path dir = make_sharded_dir("bad", c.weight_map);
    Result<SafetensorsModel> r = SafetensorsModel::open(dir.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
  }
}

TEST(SafetensorsIndex, RejectsMalformedIndexJsonAndBadShards) {
  const fs::path dir = make_sharded_dir("json", kGoodMap);
  write_text(dir / kIndexFileName, R"({"weight_map": {"a": "b.safetensors"})");
  Result<SafetensorsModel> r = SafetensorsModel::open(dir.string());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("invalid JSON"), std::string::npos) << r.status().message();

  write_text(dir / kIndexFileName, R"({"metadata": [], "weight_map": {}})");
  r = SafetensorsModel::open(dir.string());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("\"metadata\""), std::string::npos) << r.status().message();

  // A corrupt shard fails the whole model and names the shard.
  const fs::path dir2 = make_sharded_dir("corrupt", kGoodMap);
  write_file(dir2 / "model-00002-of-00002.safetensors", testing::raw_image("{\"x\":1}"));
  r = SafetensorsModel::open(dir2.string());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFormatError);
  EXPECT_NE(r.status().message().find("model-00002-of-00002.safetensors"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace ge::safetensors
