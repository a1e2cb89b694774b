// Reader for one .safetensors file: validates the whole header the way the reference (Rust) crate
// does before any tensor byte is touched, then exposes name -> (dtype, shape, bytes) views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"

namespace ge::safetensors {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool, kU16, kU32, kU64, kF8E4M3, kF8E5M2 };

// Bytes per element (every supported dtype is a whole number of bytes).
size_t dtype_size(DType dtype);
// The header spelling: "F32", "BF16", "F8_E4M3", ...
const char* dtype_name(DType dtype);

// Limits. The header cap is the reference crate's MAX_HEADER_SIZE. The reference has no rank or
// nesting limit of its own beyond serde_json's recursion limit of 128; real checkpoints use rank
// <= 5 and depth 3, so both are capped well below anything that costs memory or stack.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
inline constexpr size_t kMaxRank = 8;
inline constexpr int kMaxJsonDepth = 64;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;     // outermost first, row-major; [] is a scalar
  const uint8_t* data = nullptr;  // in the data region; only valid for nbytes (zero-size: do not read)
  uint64_t nbytes = 0;            // == product(shape) * dtype_size(dtype)
};

class SafetensorsFile {
 public:
  // Maps the file read-only and validates it; the returned object owns the mapping.
  static Result<SafetensorsFile> open(const std::string& path);
  // Validates an in-memory file image; the returned object borrows `data`, which must outlive it.
  static Result<SafetensorsFile> parse(const uint8_t* data, uint64_t size);

  // Ordered by data offset (the order the bytes appear in the file).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(std::string_view name) const;
  // The header's "__metadata__" object (string -> string); empty when absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The path given to open(); empty after parse().
  const std::string& path() const { return path_; }
  // N: the JSON header length in bytes.
  uint64_t header_bytes() const { return header_bytes_; }

 private:
  static Result<SafetensorsFile> parse_impl(const uint8_t* data, uint64_t size);

  MappedFile file_;
  std::string path_;
  uint64_t header_bytes_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// Strict JSON parse shared by the safetensors header, the shard index and the torchao metadata
// strings: rejects duplicate object keys at any depth (parsers disagree on which one wins, so a
// checker and a loader could see different files), nesting deeper than kMaxJsonDepth, invalid
// UTF-8 and a leading byte-order mark. `what` names the document in error messages.
Result<nlohmann::json> parse_json_strict(std::string_view text, std::string_view what);

// A printable, length-capped rendering of a name taken from a file, for error messages.
std::string quote_name(std::string_view name);

}  // namespace ge::safetensors
