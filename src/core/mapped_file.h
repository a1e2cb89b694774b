// Read-only memory map of a model file (weights are used in place, never copied to the heap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace ge {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Maps the whole file read-only. An empty file maps to size 0 with a null data pointer.
  static Result<MappedFile> open(const std::string& path);

  // Pins the pages in RAM (mlock); fails with a message naming RLIMIT_MEMLOCK when refused.
  Status lock();
  // Hints sequential read-ahead (used while packing weights at load time).
  void advise_sequential() const;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release();

  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool locked_ = false;
  std::string path_;
};

// Reads a whole (small) text file, e.g. config.json.
Result<std::string> read_text_file(const std::string& path, uint64_t max_bytes = 256u << 20);

}  // namespace ge
