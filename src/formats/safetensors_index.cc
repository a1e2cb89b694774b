// Sharded safetensors checkpoints (model.safetensors.index.json). The index comes from the same
// untrusted download as the shards, so shard names are confined to the directory and the index
// and the shards must agree exactly on which tensor lives where.
#include "formats/safetensors_index.h"

#include <filesystem>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <utility>

#include "core/mapped_file.h"

namespace ge::safetensors {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

std::string check_shard_name(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.find('/') != std::string_view::npos || name.find('\\') != std::string_view::npos) {
    return "contains a path separator";
  }
  if (name.find("..") != std::string_view::npos) return "contains \"..\"";
  if (name.find('\0') != std::string_view::npos) return "contains a NUL byte";
  if (name == ".") return "names the directory itself";
  return std::string();
}

const TensorInfo* SafetensorsModel::find(std::string_view name) const {
  auto it = locations_.find(name);
  if (it == locations_.end()) return nullptr;
  return &shards_[it->second.shard].tensors()[it->second.tensor];
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> out;
  out.reserve(locations_.size());
  for (const auto& [name, loc] : locations_) out.push_back(name);
  return out;
}

std::optional<size_t> SafetensorsModel::shard_of(std::string_view name) const {
  auto it = locations_.find(name);
  if (it == locations_.end()) return std::nullopt;
  return it->second.shard;
}

Result<SafetensorsModel> SafetensorsModel::open(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) {
    if (file_exists(p / kSingleFileName)) return open_single((p / kSingleFileName).string());
    if (file_exists(p / kIndexFileName)) return open_index((p / kIndexFileName).string());
    return not_found("safetensors: directory '" + path + "' holds neither " + kSingleFileName + " nor " +
                     kIndexFileName);
  }
  if (ends_with(path, ".json")) return open_index(path);
  return open_single(path);
}

Result<SafetensorsModel> SafetensorsModel::open_single(const std::string& file) {
  GE_ASSIGN_OR_RETURN(SafetensorsFile shard, SafetensorsFile::open(file));
  SafetensorsModel model;
  for (size_t i = 0; i < shard.tensors().size(); ++i) {
    model.locations_.emplace(shard.tensors()[i].name, Location{0, i});
  }
  model.shards_.push_back(std::move(shard));
  return model;
}

Result<SafetensorsModel> SafetensorsModel::open_index(const std::string& index_path) {
  const std::string what = "safetensors index '" + index_path + "'";
  GE_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path, kMaxIndexBytes));
  GE_ASSIGN_OR_RETURN(json root, parse_json_strict(text, what));
  if (!root.is_object()) return format_error(what + ": expected a JSON object");

  SafetensorsModel model;
  model.sharded_ = true;
  // weight_map: tensor name -> shard file name. Shards are opened in name order, so shard indices
  // do not depend on the order of the JSON.
  std::map<std::string, std::vector<std::string>> tensors_by_shard;
  try {
    if (auto meta = root.find("metadata"); meta != root.end() && !meta->is_null()) {
      if (!meta->is_object()) return format_error(what + ": \"metadata\" must be an object");
      for (auto it = meta->begin(); it != meta->end(); ++it) {
        model.index_metadata_[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
      }
    }
    auto wm = root.find("weight_map");
    if (wm == root.end() || !wm->is_object()) return format_error(what + ": \"weight_map\" must be an object");
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) {
        return format_error(what + ": weight_map entry " + quote_name(it.key()) + " is not a file name string");
      }
      const std::string& shard_name = it->get_ref<const std::string&>();
      if (std::string why = check_shard_name(shard_name); !why.empty()) {
        return format_error(what + ": shard name " + quote_name(shard_name) + " for tensor " + quote_name(it.key()) +
                            " " + why + "; shards must be plain file names in the index's directory");
      }
      tensors_by_shard[shard_name].push_back(it.key());
    }
  } catch (const std::bad_alloc&) {
    return out_of_memory(what + ": out of memory while reading the index");
  }
  if (tensors_by_shard.empty()) return format_error(what + ": weight_map is empty");

  const fs::path dir = fs::path(index_path).parent_path();
  for (const auto& [shard_name, listed] : tensors_by_shard) {
    const size_t shard_index = model.shards_.size();
    GE_ASSIGN_OR_RETURN(SafetensorsFile shard, SafetensorsFile::open((dir / shard_name).string()));
    for (const std::string& name : listed) {
      if (shard.find(name) == nullptr) {
        return format_error(what + ": tensor " + quote_name(name) + " is mapped to shard " + quote_name(shard_name) +
                            ", which does not contain it");
      }
    }
    std::set<std::string_view> listed_set(listed.begin(), listed.end());
    for (size_t i = 0; i < shard.tensors().size(); ++i) {
      const std::string& name = shard.tensors()[i].name;
      // A tensor the index does not map here is either unlisted or a second copy of one mapped to
      // another shard; loaders disagree on which copy wins, so neither is accepted.
      if (listed_set.count(name) == 0) {
        return format_error(what + ": shard " + quote_name(shard_name) + " holds tensor " + quote_name(name) +
                            ", which the weight_map does not assign to it");
      }
      model.locations_.emplace(name, Location{shard_index, i});
    }
    model.shards_.push_back(std::move(shard));
  }
  return model;
}

}  // namespace ge::safetensors
