// Output checks shared by the checkpoint writers (quantize, GGUF -> HF export).
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>

#include "core/status.h"

namespace ge {

// An existing output is replaced only with `force`; a directory in its place is always an error.
inline Status check_output_free(const std::string& op, const std::string& path, bool force) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return invalid_argument(op + ": output '" + path + "' is a directory");
  if (std::filesystem::exists(path, ec) && !force) {
    return invalid_argument(op + ": output '" + path + "' already exists (use --force to replace it)");
  }
  return Status::ok();
}

// 0 = one thread per hardware thread.
inline int resolve_threads(int n) {
  return n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace ge
