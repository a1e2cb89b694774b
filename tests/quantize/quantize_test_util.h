// Helpers shared by the quantize tests: the tiny golden checkpoints, scratch directories and a
// float view of a source tensor.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "quant/dequantize.h"
#include "quant/quant_type.h"

namespace ge::test {

inline const std::string kGoldenDir = std::string(GE_TEST_DATA_DIR) + "/golden/";
inline const char* const kGoldenModels[] = {"gemma3_tiny", "gemma3_tiny_noscale", "gemma4_tiny",
                                            "gemma4_tiny_nokeqv"};

// A fresh empty directory named after the running test.
inline std::filesystem::path scratch_dir(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                              ("ge_quantize_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" + tag);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Every row of a weight view decoded to fp32, [rows · cols].
inline std::vector<float> decode_all(const QuantWeight& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r) dequantize_row(w, r, out.data() + r * w.cols);
  return out;
}

// Files left under `dir` whose name contains ".tmp" (a write that did not clean up).
inline int count_temp_files(const std::filesystem::path& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename().string().find(".tmp") != std::string::npos) ++n;
  }
  return n;
}

}  // namespace ge::test
