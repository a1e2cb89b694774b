// GGUF v2/v3 reader. The whole file is validated once at open (every count, length, offset and
// tensor size is checked against the bytes present); metadata values stay in the mapped bytes as
// (type, offset, count) and are decoded on request, so a 262144-entry vocab costs nothing until read.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"

namespace ge::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8,
  kUint16,
  kInt16,
  kUint32,
  kInt32,
  kFloat32,
  kBool,
  kString,
  kArray,
  kUint64,
  kInt64,
  kFloat64,
};

// "u8", "string", "array", ...; "unknown" outside the enum.
const char* value_type_name(ValueType type);

// Limits on what a file may declare (beyond "fits in the bytes present").
inline constexpr uint64_t kMaxKeyValues = 1u << 16;       // metadata key/value pairs
inline constexpr uint64_t kMaxTensors = 1u << 16;         // tensor infos
inline constexpr uint64_t kMaxStringBytes = 1ull << 30;   // one string
inline constexpr uint64_t kMaxArrayElements = 1ull << 30; // one array
inline constexpr int kMaxArrayDepth = 4;                  // array of array of ... (1 = flat array)
inline constexpr uint64_t kMaxTensorNameBytes = 63;       // ggml's GGML_MAX_NAME (64) incl. NUL
inline constexpr uint64_t kMaxAlignment = 1u << 20;
inline constexpr uint64_t kDefaultAlignment = 32;

struct TensorInfo {
  std::string name;
  uint32_t ggml_type = 0;   // a known GgmlType id
  std::vector<int64_t> ne;  // ggml order, ne[0] = row length; 1..4 dims, each > 0
  uint64_t offset = 0;      // relative to the data section, a multiple of alignment()
  uint64_t nbytes = 0;      // from type and dims; [data, data + nbytes) lies inside the file
  const uint8_t* data = nullptr;
};

// The encoded bytes of one value, as stored after its type tag (used to copy metadata verbatim).
struct RawValue {
  ValueType type;
  const uint8_t* data;
  uint64_t size;
};

class GgufFile {
 public:
  GgufFile() = default;
  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  // Maps `path` and parses it; the GgufFile owns the mapping and tensor data points into it.
  static Result<GgufFile> open(const std::string& path);
  // Parses bytes owned by the caller, which must outlive the GgufFile.
  static Result<GgufFile> parse(const uint8_t* data, uint64_t size);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  // Start of the data section (may equal or exceed file_size() when there are no tensors).
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  bool has(std::string_view key) const;
  std::optional<ValueType> type_of(std::string_view key) const;
  // Element type of an array value; nullopt for missing keys and non-arrays.
  std::optional<ValueType> array_type_of(std::string_view key) const;

  Result<std::string> get_string(std::string_view key) const;
  Result<uint64_t> get_uint(std::string_view key) const;  // any unsigned or non-negative signed int
  Result<int64_t> get_int(std::string_view key) const;    // any int that fits in int64
  Result<double> get_float(std::string_view key) const;   // f32/f64 (and ints)
  Result<bool> get_bool(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_f32_array(std::string_view key) const;    // f32 or f64 elements
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;  // any integer element type
  Result<std::vector<bool>> get_bool_array(std::string_view key) const;
  uint64_t array_size(std::string_view key) const;  // 0 if missing or not an array
  std::optional<RawValue> raw_value(std::string_view key) const;

  std::vector<std::string> keys() const;  // file order
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

 private:
  struct Entry {
    std::string key;
    ValueType type;
    uint64_t offset;  // of the value bytes (after the type tag)
    uint64_t size;    // encoded bytes of the value
    // Arrays: element type and count; elements start at offset + 12.
    ValueType elem_type = ValueType::kUint8;
    uint64_t count = 0;
  };
  class Parser;

  const Entry* find(std::string_view key) const;
  Result<const Entry*> find_typed(std::string_view key, const char* want) const;
  Result<const Entry*> find_array(std::string_view key, const char* want) const;

  std::unique_ptr<MappedFile> file_;  // null when parsing borrowed bytes
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> entry_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace ge::gguf
