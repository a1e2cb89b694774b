// GGUF v3 serialization: header, key/values in insertion order, tensor infos with offsets that
// tile the data section (each tensor padded to the alignment), then the tensor bytes.
#include "formats/gguf_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

#include "core/checked_math.h"
#include "formats/ggml_types.h"

namespace ge::gguf {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

constexpr uint32_t kVersion = 3;

template <typename T>
void put(std::vector<uint8_t>* out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->insert(out->end(), b, b + sizeof(T));
}

void put_string(std::vector<uint8_t>* out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out->insert(out->end(), s.begin(), s.end());
}

void put_array_header(std::vector<uint8_t>* out, ValueType elem, uint64_t count) {
  put<uint32_t>(out, static_cast<uint32_t>(elem));
  put<uint64_t>(out, count);
}

template <typename T>
std::vector<uint8_t> scalar_bytes(T v) {
  std::vector<uint8_t> b;
  put<T>(&b, v);
  return b;
}

Status write_all(int fd, const uint8_t* p, uint64_t n, const std::string& path) {
  while (n > 0) {
    const size_t chunk = n > (1u << 30) ? (1u << 30) : static_cast<size_t>(n);
    const ssize_t w = ::write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("gguf writer: cannot write '" + path + "': " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<uint64_t>(w);
  }
  return Status::ok();
}

}  // namespace

Value Value::uint8(uint8_t v) { return Value(ValueType::kUint8, scalar_bytes(v)); }
Value Value::int8(int8_t v) { return Value(ValueType::kInt8, scalar_bytes(v)); }
Value Value::uint16(uint16_t v) { return Value(ValueType::kUint16, scalar_bytes(v)); }
Value Value::int16(int16_t v) { return Value(ValueType::kInt16, scalar_bytes(v)); }
Value Value::uint32(uint32_t v) { return Value(ValueType::kUint32, scalar_bytes(v)); }
Value Value::int32(int32_t v) { return Value(ValueType::kInt32, scalar_bytes(v)); }
Value Value::float32(float v) { return Value(ValueType::kFloat32, scalar_bytes(v)); }
Value Value::boolean(bool v) { return Value(ValueType::kBool, scalar_bytes<uint8_t>(v ? 1 : 0)); }
Value Value::uint64(uint64_t v) { return Value(ValueType::kUint64, scalar_bytes(v)); }
Value Value::int64(int64_t v) { return Value(ValueType::kInt64, scalar_bytes(v)); }
Value Value::float64(double v) { return Value(ValueType::kFloat64, scalar_bytes(v)); }

Value Value::string(std::string_view v) {
  std::vector<uint8_t> b;
  put_string(&b, v);
  return Value(ValueType::kString, std::move(b));
}

template <typename T>
Value Value::scalar_array(ValueType elem, std::span<const T> v) {
  std::vector<uint8_t> b;
  b.reserve(12 + v.size_bytes());
  put_array_header(&b, elem, v.size());
  for (const T& x : v) put<T>(&b, x);
  return Value(ValueType::kArray, std::move(b));
}

Value Value::array(std::span<const uint8_t> v) { return scalar_array(ValueType::kUint8, v); }
Value Value::array(std::span<const int8_t> v) { return scalar_array(ValueType::kInt8, v); }
Value Value::array(std::span<const uint16_t> v) { return scalar_array(ValueType::kUint16, v); }
Value Value::array(std::span<const int16_t> v) { return scalar_array(ValueType::kInt16, v); }
Value Value::array(std::span<const uint32_t> v) { return scalar_array(ValueType::kUint32, v); }
Value Value::array(std::span<const int32_t> v) { return scalar_array(ValueType::kInt32, v); }
Value Value::array(std::span<const float> v) { return scalar_array(ValueType::kFloat32, v); }
Value Value::array(std::span<const uint64_t> v) { return scalar_array(ValueType::kUint64, v); }
Value Value::array(std::span<const int64_t> v) { return scalar_array(ValueType::kInt64, v); }
Value Value::array(std::span<const double> v) { return scalar_array(ValueType::kFloat64, v); }

Value Value::bool_array(const std::vector<bool>& v) {
  std::vector<uint8_t> b;
  put_array_header(&b, ValueType::kBool, v.size());
  for (bool x : v) b.push_back(x ? 1 : 0);
  return Value(ValueType::kArray, std::move(b));
}

Value Value::string_array(const std::vector<std::string>& v) {
  std::vector<uint8_t> b;
  put_array_header(&b, ValueType::kString, v.size());
  for (const std::string& s : v) put_string(&b, s);
  return Value(ValueType::kArray, std::move(b));
}

Result<Value> Value::array_of(ValueType elem_type, const std::vector<Value>& elems) {
  std::vector<uint8_t> b;
  put_array_header(&b, elem_type, elems.size());
  for (size_t i = 0; i < elems.size(); ++i) {
    if (elems[i].type() != elem_type) {
      return invalid_argument(std::string("gguf writer: array element ") + std::to_string(i) + " has type " +
                              value_type_name(elems[i].type()) + ", expected " + value_type_name(elem_type));
    }
    b.insert(b.end(), elems[i].bytes().begin(), elems[i].bytes().end());
  }
  return Value(ValueType::kArray, std::move(b));
}

Value Value::raw(const RawValue& raw) {
  return Value(raw.type, std::vector<uint8_t>(raw.data, raw.data + raw.size));
}

void GgufWriter::set(std::string_view key, Value value) {
  for (KeyValue& kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  kvs_.push_back(KeyValue{std::string(key), std::move(value)});
}

bool GgufWriter::has(std::string_view key) const {
  for (const KeyValue& kv : kvs_) {
    if (kv.key == key) return true;
  }
  return false;
}

Status GgufWriter::copy_from(const GgufFile& src, std::string_view key) {
  const std::optional<RawValue> raw = src.raw_value(key);
  if (!raw) return not_found("gguf writer: key '" + std::string(key) + "' not found in the source file");
  set(key, Value::raw(*raw));
  return Status::ok();
}

Status GgufWriter::add_tensor(std::string_view name, uint32_t ggml_type, std::vector<int64_t> ne,
                              std::vector<uint8_t> data) {
  const uint64_t size = data.size();
  return add(name, ggml_type, std::move(ne), std::move(data), nullptr, size);
}

Status GgufWriter::add_tensor_view(std::string_view name, uint32_t ggml_type, std::vector<int64_t> ne,
                                   const uint8_t* data, uint64_t size) {
  if (data == nullptr) return invalid_argument("gguf writer: tensor '" + std::string(name) + "' has null data");
  return add(name, ggml_type, std::move(ne), {}, data, size);
}

Status GgufWriter::add(std::string_view name, uint32_t ggml_type, std::vector<int64_t> ne, std::vector<uint8_t> owned,
                       const uint8_t* data, uint64_t size) {
  const std::string n(name);
  if (n.empty() || n.size() > kMaxTensorNameBytes) {
    return invalid_argument("gguf writer: tensor name '" + n + "' must be 1.." + std::to_string(kMaxTensorNameBytes) +
                            " bytes");
  }
  for (const Tensor& t : tensors_) {
    if (t.name == n) return invalid_argument("gguf writer: duplicate tensor name '" + n + "'");
  }
  for (int64_t d : ne) {
    if (d <= 0) return invalid_argument("gguf writer: tensor '" + n + "' has a non-positive dim");
  }
  auto nbytes = ggml_tensor_nbytes(ggml_type, ne.data(), static_cast<int>(ne.size()));
  if (!nbytes.is_ok()) return invalid_argument("gguf writer: tensor '" + n + "': " + nbytes.status().message());
  if (nbytes.value() != size) {
    return invalid_argument("gguf writer: tensor '" + n + "' has " + std::to_string(size) + " bytes, its " +
                            ggml_type_name(ggml_type) + " shape needs " + std::to_string(nbytes.value()));
  }
  tensors_.push_back(Tensor{n, ggml_type, std::move(ne), std::move(owned), data, size});
  return Status::ok();
}

Result<uint64_t> GgufWriter::alignment() const {
  for (const KeyValue& kv : kvs_) {
    if (kv.key != "general.alignment") continue;
    if (kv.value.type() != ValueType::kUint32) {
      return invalid_argument("gguf writer: general.alignment must be u32");
    }
    uint32_t a;
    std::memcpy(&a, kv.value.bytes().data(), sizeof a);
    if (a == 0 || !std::has_single_bit(a) || a > kMaxAlignment) {
      return invalid_argument("gguf writer: general.alignment " + std::to_string(a) + " is not a power of two <= " +
                              std::to_string(kMaxAlignment));
    }
    return static_cast<uint64_t>(a);
  }
  return kDefaultAlignment;
}

Result<std::vector<uint8_t>> GgufWriter::build_header(uint64_t* alignment_out) const {
  GE_ASSIGN_OR_RETURN(const uint64_t align, alignment());
  std::vector<uint8_t> out;
  out.insert(out.end(), {'G', 'G', 'U', 'F'});
  put<uint32_t>(&out, kVersion);
  put<uint64_t>(&out, tensors_.size());
  put<uint64_t>(&out, kvs_.size());
  for (const KeyValue& kv : kvs_) {
    if (kv.key.empty()) return invalid_argument("gguf writer: empty key");
    put_string(&out, kv.key);
    put<uint32_t>(&out, static_cast<uint32_t>(kv.value.type()));
    out.insert(out.end(), kv.value.bytes().begin(), kv.value.bytes().end());
  }
  // Each tensor starts at the padded end of the previous one, so offsets tile the data section.
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(&out, t.name);
    put<uint32_t>(&out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<int64_t>(&out, d);
    put<uint32_t>(&out, t.ggml_type);
    put<uint64_t>(&out, offset);
    uint64_t padded;
    if (!pad_ok(t.size, align, &padded) || !add_ok(offset, padded, &offset)) {
      return invalid_argument("gguf writer: total tensor data size overflows");
    }
  }
  uint64_t data_start;
  if (!pad_ok(out.size(), align, &data_start)) return invalid_argument("gguf writer: header size overflows");
  out.resize(data_start, 0);
  *alignment_out = align;
  return out;
}

Result<std::vector<uint8_t>> GgufWriter::serialize() const {
  uint64_t align = 0;
  GE_ASSIGN_OR_RETURN(std::vector<uint8_t> out, build_header(&align));
  for (const Tensor& t : tensors_) {
    const uint8_t* p = t.owned.empty() ? t.data : t.owned.data();
    out.insert(out.end(), p, p + t.size);
    uint64_t padded;
    if (!pad_ok(out.size(), align, &padded)) return invalid_argument("gguf writer: file size overflows");
    out.resize(padded, 0);
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  uint64_t align = 0;
  GE_ASSIGN_OR_RETURN(const std::vector<uint8_t> header, build_header(&align));
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    return io_error("gguf writer: cannot create a temporary file next to '" + path + "': " + std::strerror(errno));
  }
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  Status s = write_all(fd, header.data(), header.size(), tmp);
  if (!s.is_ok()) return fail(s);
  uint64_t pos = header.size();
  static const uint8_t kZeros[kMaxAlignment > 4096 ? 4096 : kMaxAlignment] = {};
  for (const Tensor& t : tensors_) {
    const uint8_t* p = t.owned.empty() ? t.data : t.owned.data();
    s = write_all(fd, p, t.size, tmp);
    if (!s.is_ok()) return fail(s);
    pos += t.size;
    uint64_t padded;
    if (!pad_ok(pos, align, &padded)) return fail(invalid_argument("gguf writer: file size overflows"));
    for (uint64_t pad = padded - pos; pad > 0;) {
      const uint64_t n = pad < sizeof(kZeros) ? pad : sizeof(kZeros);
      s = write_all(fd, kZeros, n, tmp);
      if (!s.is_ok()) return fail(s);
      pad -= n;
    }
    pos = padded;
  }
  // mkstemp creates the file 0600; a model file is an ordinary readable file.
  if (::fchmod(fd, 0644) != 0) {
    return fail(io_error("gguf writer: cannot chmod '" + tmp + "': " + std::strerror(errno)));
  }
  if (::fsync(fd) != 0) return fail(io_error("gguf writer: cannot sync '" + tmp + "': " + std::strerror(errno)));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return io_error("gguf writer: cannot close '" + tmp + "': " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return io_error("gguf writer: cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(e));
  }
  return Status::ok();
}

}  // namespace ge::gguf
