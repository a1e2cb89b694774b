// GGUF v3 writer: metadata of every value type (nested arrays included) and tensors, laid out
// with general.alignment (default 32) and written through a temporary file renamed on success.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/gguf_reader.h"

namespace ge::gguf {

// One encoded metadata value: its type and the bytes that follow the type tag in the file.
class Value {
 public:
  static Value uint8(uint8_t v);
  static Value int8(int8_t v);
  static Value uint16(uint16_t v);
  static Value int16(int16_t v);
  static Value uint32(uint32_t v);
  static Value int32(int32_t v);
  static Value float32(float v);
  static Value boolean(bool v);
  static Value string(std::string_view v);
  static Value uint64(uint64_t v);
  static Value int64(int64_t v);
  static Value float64(double v);

  // Arrays of scalars (the element type follows the C++ type).
  static Value array(std::span<const uint8_t> v);
  static Value array(std::span<const int8_t> v);
  static Value array(std::span<const uint16_t> v);
  static Value array(std::span<const int16_t> v);
  static Value array(std::span<const uint32_t> v);
  static Value array(std::span<const int32_t> v);
  static Value array(std::span<const float> v);
  static Value array(std::span<const uint64_t> v);
  static Value array(std::span<const int64_t> v);
  static Value array(std::span<const double> v);
  static Value bool_array(const std::vector<bool>& v);
  static Value string_array(const std::vector<std::string>& v);
  // Array of already-built values, all of type `elem_type` (arrays of arrays nest this way).
  // Returns an error if an element has another type.
  static Result<Value> array_of(ValueType elem_type, const std::vector<Value>& elems);
  // A value copied verbatim from a reader (bytes as returned by GgufFile::raw_value).
  static Value raw(const RawValue& raw);

  ValueType type() const { return type_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  Value(ValueType type, std::vector<uint8_t> bytes) : type_(type), bytes_(std::move(bytes)) {}
  template <typename T>
  static Value scalar_array(ValueType elem, std::span<const T> v);

  ValueType type_ = ValueType::kUint8;
  std::vector<uint8_t> bytes_;
};

class GgufWriter {
 public:
  // Sets `key`; a key set twice keeps its first position and takes the last value.
  void set(std::string_view key, Value value);
  // Copies one key/value verbatim from a parsed file; not_found if the key is missing.
  Status copy_from(const GgufFile& src, std::string_view key);
  bool has(std::string_view key) const;

  // Adds a tensor whose bytes the writer keeps. `ne` is in ggml order (ne[0] = row length) and
  // data.size() must equal the size implied by the type and dims.
  Status add_tensor(std::string_view name, uint32_t ggml_type, std::vector<int64_t> ne, std::vector<uint8_t> data);
  // Same, but borrows `data`, which must stay valid until the last write()/serialize().
  Status add_tensor_view(std::string_view name, uint32_t ggml_type, std::vector<int64_t> ne, const uint8_t* data,
                         uint64_t size);

  // The whole file in memory (tests, small files).
  Result<std::vector<uint8_t>> serialize() const;
  // Writes `path` via `path.tmp-XXXXXX` in the same folder, renamed over `path` on success.
  Status write(const std::string& path) const;

 private:
  struct KeyValue {
    std::string key;
    Value value;
  };
  struct Tensor {
    std::string name;
    uint32_t ggml_type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> owned;
    const uint8_t* data;  // owned.data() or the caller's bytes
    uint64_t size;
  };

  Status add(std::string_view name, uint32_t ggml_type, std::vector<int64_t> ne, std::vector<uint8_t> owned,
             const uint8_t* data, uint64_t size);
  Result<uint64_t> alignment() const;
  // Header, key/values, tensor infos and the padding up to the data section.
  Result<std::vector<uint8_t>> build_header(uint64_t* alignment) const;

  std::vector<KeyValue> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace ge::gguf
