// libFuzzer target for the GGUF reader: parses arbitrary bytes, then reads every key through its
// typed getter and touches both ends of every tensor's data, so ASan sees any bad pointer.
//
// Build (from the repository root; clang-14 with libFuzzer):
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
//     -Isrc tests/fuzz/gguf_fuzz.cc src/formats/gguf_reader.cc src/formats/ggml_types.cc \
//     src/core/status.cc src/core/mapped_file.cc -o /tmp/gguf_fuzz
// Seed corpus and run (60 s, 2 GiB RSS limit):
//   mkdir -p /tmp/gguf_corpus && cp tests/data/gguf/*.gguf /tmp/gguf_corpus/
//   /tmp/gguf_fuzz -max_total_time=60 -rss_limit_mb=2048 -max_len=65536 /tmp/gguf_corpus
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "formats/ggml_types.h"
#include "formats/gguf_reader.h"

namespace {

using ge::gguf::GgufFile;
using ge::gguf::ValueType;

// An invariant the reader promises for every file it accepts; a violation is a finding.
void require(bool cond) {
  if (!cond) std::abort();
}

void touch_key(const GgufFile& f, const std::string& key) {
  const std::optional<ValueType> type = f.type_of(key);
  require(type.has_value());
  switch (*type) {
    case ValueType::kString: require(f.get_string(key).is_ok()); break;
    case ValueType::kBool: require(f.get_bool(key).is_ok()); break;
    case ValueType::kFloat32:
    case ValueType::kFloat64: require(f.get_float(key).is_ok()); break;
    case ValueType::kArray: {
      const ValueType elem = *f.array_type_of(key);
      if (elem == ValueType::kString) {
        auto r = f.get_string_array(key);
        require(r.is_ok() && r.value().size() == f.array_size(key));
      } else if (elem == ValueType::kBool) {
        require(f.get_bool_array(key).is_ok());
      } else if (elem == ValueType::kFloat32 || elem == ValueType::kFloat64) {
        require(f.get_f32_array(key).is_ok());
      } else if (elem != ValueType::kArray) {
        (void)f.get_int_array(key);  // u64 elements above INT64_MAX are a clean error
      }
      break;
    }
    default:
      (void)f.get_int(key);
      (void)f.get_uint(key);
      require(f.get_float(key).is_ok());
  }
  require(f.raw_value(key).has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = GgufFile::parse(data, size);
  if (!parsed.is_ok()) {
    require(!parsed.status().message().empty());
    return 0;
  }
  const GgufFile& f = parsed.value();
  for (const std::string& key : f.keys()) touch_key(f, key);
  volatile uint8_t sink = 0;
  for (const ge::gguf::TensorInfo& t : f.tensors()) {
    require(f.find_tensor(t.name) == &t);
    auto nbytes = ge::ggml_tensor_nbytes(t.ggml_type, t.ne.data(), static_cast<int>(t.ne.size()));
    require(nbytes.is_ok() && nbytes.value() == t.nbytes && t.nbytes > 0);
    require(t.data >= data + f.data_offset() && t.data + t.nbytes <= data + size);
    sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
  }
  (void)sink;
  return 0;
}
