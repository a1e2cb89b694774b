// A safetensors checkpoint that may be split into shards: one file, a directory holding
// model.safetensors, or a directory holding model.safetensors.index.json plus its shard files.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/safetensors_reader.h"

namespace ge::safetensors {

inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
// The index is a small JSON file (a few hundred KB for the largest public checkpoints).
inline constexpr uint64_t kMaxIndexBytes = 64ull << 20;

class SafetensorsModel {
 public:
  // `path` is a .safetensors file, an index .json file, or a directory. In a directory
  // model.safetensors wins over the index, as in Hugging Face transformers. With an index, every
  // weight_map entry must exist in its shard, every shard tensor must be listed under that shard,
  // and shard names must be plain file names inside the directory (no '/', '\', "..").
  static Result<SafetensorsModel> open(const std::string& path);

  const TensorInfo* find(std::string_view name) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  size_t num_tensors() const { return locations_.size(); }

  size_t num_shards() const { return shards_.size(); }
  const SafetensorsFile& shard(size_t i) const { return shards_.at(i); }
  // The "__metadata__" of shard i (torchao keeps its per-tensor metadata there).
  const std::map<std::string, std::string>& shard_metadata(size_t i) const { return shards_.at(i).metadata(); }
  // The shard holding `name`, if any.
  std::optional<size_t> shard_of(std::string_view name) const;

  // True when opened through an index file.
  bool sharded() const { return sharded_; }
  // The index's "metadata" object; strings as-is, other values as compact JSON (e.g. total_size).
  const std::map<std::string, std::string>& index_metadata() const { return index_metadata_; }

 private:
  struct Location {
    size_t shard = 0;
    size_t tensor = 0;  // position in shards_[shard].tensors()
  };

  static Result<SafetensorsModel> open_single(const std::string& file);
  static Result<SafetensorsModel> open_index(const std::string& index_path);

  std::vector<SafetensorsFile> shards_;
  std::map<std::string, Location, std::less<>> locations_;
  std::map<std::string, std::string> index_metadata_;
  bool sharded_ = false;
};

// Why a shard file name from an index is unsafe to open, or an empty string if it is a plain
// file name. Exposed for tests.
std::string check_shard_name(std::string_view name);

}  // namespace ge::safetensors
