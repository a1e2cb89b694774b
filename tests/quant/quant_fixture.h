// Readers for the binary fixtures written by scripts/gen_quant_fixtures.py (format documented at
// the top of that script), shared by the tests of tests/quant.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "quant/quant_type.h"

namespace ge::testing {

inline std::string quant_data_path(const std::string& name) {
  return std::string(GE_TEST_DATA_DIR) + "/quant/" + name;
}

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// GGUF on-disk type ids of the encodings the fixtures cover.
inline std::optional<QuantType> quant_type_from_ggml(uint32_t id) {
  switch (id) {
    case 0: return QuantType::kF32;
    case 1: return QuantType::kF16;
    case 2: return QuantType::kQ4_0;
    case 6: return QuantType::kQ5_0;
    case 8: return QuantType::kQ8_0;
    case 12: return QuantType::kQ4_K;
    case 13: return QuantType::kQ5_K;
    case 14: return QuantType::kQ6_K;
    case 30: return QuantType::kBF16;
    default: return std::nullopt;
  }
}

// Sequential little-endian reader that records the first overrun instead of reading past the end.
class ByteCursor {
 public:
  explicit ByteCursor(const std::vector<uint8_t>& bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  const uint8_t* take(uint64_t n) {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      return nullptr;
    }
    const uint8_t* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T read() {
    T v{};
    if (const uint8_t* p = take(sizeof(T))) std::memcpy(&v, p, sizeof(T));
    return v;
  }
  template <typename T>
  std::vector<T> read_array(uint64_t count) {
    std::vector<T> out;
    if (count > remaining() / sizeof(T)) {
      ok_ = false;
      return out;
    }
    if (count == 0) return out;
    out.resize(count);
    if (const uint8_t* p = take(count * sizeof(T))) std::memcpy(out.data(), p, count * sizeof(T));
    return out;
  }

 private:
  const std::vector<uint8_t>& bytes_;
  uint64_t pos_ = 0;
  bool ok_ = true;
};

// One block fixture (<name>.bin): encoded rows with their expected decoding, and quantizer
// inputs with the bytes gguf.quants produced for them.
struct BlockFixture {
  QuantType type = QuantType::kF32;
  uint32_t cols = 0;
  uint32_t decode_rows = 0;
  uint32_t quant_rows = 0;
  uint32_t row_bytes = 0;
  std::vector<uint8_t> encoded;    // [decode_rows, row_bytes]
  std::vector<float> decoded;      // [decode_rows, cols]
  std::vector<float> quant_input;  // [quant_rows, cols]
  std::vector<uint8_t> quantized;  // [quant_rows, row_bytes]
};

// Returns an error message, or "" on success.
inline std::string load_block_fixture(const std::string& name, BlockFixture* out) {
  const std::string path = quant_data_path(name);
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.empty()) return "cannot read " + path + " (run scripts/gen_quant_fixtures.py)";
  ByteCursor cur(bytes);
  const uint8_t* magic = cur.take(4);
  if (magic == nullptr || std::memcmp(magic, "GEQF", 4) != 0) return path + ": bad magic";
  const uint32_t version = cur.read<uint32_t>();
  const uint32_t ggml_type = cur.read<uint32_t>();
  out->cols = cur.read<uint32_t>();
  out->decode_rows = cur.read<uint32_t>();
  out->quant_rows = cur.read<uint32_t>();
  out->row_bytes = cur.read<uint32_t>();
  cur.read<uint32_t>();
  if (!cur.ok() || version != 1) return path + ": bad header";
  const std::optional<QuantType> type = quant_type_from_ggml(ggml_type);
  if (!type) return path + ": unknown ggml type " + std::to_string(ggml_type);
  out->type = *type;
  const uint64_t d = out->decode_rows, q = out->quant_rows;
  out->encoded = cur.read_array<uint8_t>(d * out->row_bytes);
  out->decoded = cur.read_array<float>(d * out->cols);
  out->quant_input = cur.read_array<float>(q * out->cols);
  out->quantized = cur.read_array<uint8_t>(q * out->row_bytes);
  if (!cur.ok() || cur.remaining() != 0) return path + ": size does not match its header";
  return "";
}

// 64-bit FNV-1a, as the generator hashes the model rows.
inline uint64_t fnv1a64(const uint8_t* p, uint64_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace ge::testing
