// Helpers shared by the safetensors tests: a tiny writer producing well-formed file images, raw
// image assembly for hostile cases, and scratch directories.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ge::safetensors::testing {

using Bytes = std::vector<uint8_t>;

// 8-byte little-endian length `n` (default: the header's size) + header text + data.
inline Bytes raw_image(const std::string& header, const Bytes& data = {}, std::optional<uint64_t> length = {}) {
  const uint64_t n = length.value_or(header.size());
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

struct TensorSpec {
  std::string name;
  std::string dtype;  // header spelling
  std::vector<int64_t> shape;
  Bytes bytes;  // must be product(shape) * element size
};

// A well-formed image: tensors tiled in the given order, optional __metadata__, header padded
// with spaces to `align` bytes as the reference writer does.
inline Bytes write_image(const std::vector<TensorSpec>& tensors,
                         const std::map<std::string, std::string>& metadata = {}, size_t align = 8) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  Bytes data;
  for (const TensorSpec& t : tensors) {
    const uint64_t begin = data.size();
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  while (text.size() % align != 0) text += ' ';
  return raw_image(text, data);
}

inline Bytes pattern_bytes(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + 31 * i);
  return b;
}

inline void write_file(const std::filesystem::path& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

// A fresh empty directory under the test temp dir, named after the running test.
inline std::filesystem::path scratch_dir(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                              ("ge_st_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" + tag);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace ge::safetensors::testing
