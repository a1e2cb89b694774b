// GGUF parsing and validation. Model files are untrusted: every number read from the file is
// checked against the bytes that remain before it sizes a loop, an allocation or a pointer.
#include "formats/gguf_reader.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <new>

#include "core/checked_math.h"
#include "formats/ggml_types.h"

namespace ge::gguf {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMaxValueType = static_cast<uint32_t>(ValueType::kFloat64);
// Smallest encodings, used to reject counts that cannot fit in the bytes left before looping.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;               // key len, 1-byte key, type, u8
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // name, n_dims, ne[0], type, offset
constexpr uint64_t kArrayHeaderBytes = 4 + 8;                  // element type, count

// Encoded size of a fixed-size scalar; 0 for string and array.
uint64_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
      return 8;
    case ValueType::kString:
    case ValueType::kArray:
      return 0;
  }
  return 0;
}

uint64_t min_encoded_size(ValueType t) {
  if (t == ValueType::kString) return 8;
  if (t == ValueType::kArray) return kArrayHeaderBytes;
  return scalar_size(t);
}

bool is_integer(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kUint16:
    case ValueType::kInt16:
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kUint64:
    case ValueType::kInt64:
      return true;
    default:
      return false;
  }
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// An integer element widened without loss: signed types fill `s`, unsigned types fill `u`.
struct IntValue {
  bool is_signed;
  int64_t s;
  uint64_t u;
};

IntValue decode_int(ValueType t, const uint8_t* p) {
  switch (t) {
    case ValueType::kUint8: return {false, 0, load<uint8_t>(p)};
    case ValueType::kInt8: return {true, load<int8_t>(p), 0};
    case ValueType::kUint16: return {false, 0, load<uint16_t>(p)};
    case ValueType::kInt16: return {true, load<int16_t>(p), 0};
    case ValueType::kUint32: return {false, 0, load<uint32_t>(p)};
    case ValueType::kInt32: return {true, load<int32_t>(p), 0};
    case ValueType::kUint64: return {false, 0, load<uint64_t>(p)};
    case ValueType::kInt64: return {true, load<int64_t>(p), 0};
    default: return {false, 0, 0};
  }
}

// Keys and names come from the file: escape them before they reach a message or a terminal.
std::string quoted(std::string_view s) {
  constexpr size_t kMaxShown = 96;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > kMaxShown) out += "...";
  out += "'";
  return out;
}

std::string u64s(uint64_t v) { return std::to_string(v); }

}  // namespace

const char* value_type_name(ValueType type) {
  switch (type) {
    case ValueType::kUint8: return "u8";
    case ValueType::kInt8: return "i8";
    case ValueType::kUint16: return "u16";
    case ValueType::kInt16: return "i16";
    case ValueType::kUint32: return "u32";
    case ValueType::kInt32: return "i32";
    case ValueType::kFloat32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "u64";
    case ValueType::kInt64: return "i64";
    case ValueType::kFloat64: return "f64";
  }
  return "unknown";
}

// One pass over the header, key/values and tensor infos, then the data-section checks.
class GgufFile::Parser {
 public:
  explicit Parser(GgufFile* f) : f_(f), data_(f->data_), size_(f->size_) {}

  Status run() {
    GE_RETURN_IF_ERROR(parse_header());
    GE_RETURN_IF_ERROR(parse_key_values());
    GE_RETURN_IF_ERROR(parse_alignment());
    GE_RETURN_IF_ERROR(parse_tensor_infos());
    return check_tensor_data();
  }

 private:
  uint64_t remaining() const { return size_ - pos_; }

  // What is being read, for error messages; only turned into text when something is wrong
  // (the happy path reads 262144-entry vocab arrays through here).
  struct What {
    const char* field;                 // "array count"
    std::string_view subject = {};     // key or tensor name, if known
    const char* subject_kind = "key";  // "key" or "tensor"
    std::string text() const {
      std::string s = field;
      if (!subject.empty()) s += std::string(" of ") + subject_kind + " " + quoted(subject);
      return s;
    }
  };

  Status need(uint64_t n, const What& what) const {
    if (n > remaining()) {
      return format_error("gguf: truncated file: " + what.text() + " needs " + u64s(n) + " bytes at offset " +
                          u64s(pos_) + ", only " + u64s(remaining()) + " remain (size " + u64s(size_) + ")");
    }
    return Status::ok();
  }
  template <typename T>
  Status read(T* out, const What& what) {
    GE_RETURN_IF_ERROR(need(sizeof(T), what));
    *out = load<T>(data_ + pos_);
    pos_ += sizeof(T);
    return Status::ok();
  }
  Status skip(uint64_t n, const What& what) {
    GE_RETURN_IF_ERROR(need(n, what));
    pos_ += n;
    return Status::ok();
  }
  // Reads a u64 length and returns a view of that many bytes.
  Status read_string(std::string_view* out, const What& what) {
    uint64_t len;
    GE_RETURN_IF_ERROR(read(&len, what));
    if (len > kMaxStringBytes) {
      return format_error("gguf: " + what.text() + ": length " + u64s(len) + " exceeds the limit of " +
                          u64s(kMaxStringBytes) + " bytes");
    }
    GE_RETURN_IF_ERROR(need(len, what));
    *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return Status::ok();
  }

  Status parse_header() {
    if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0) {
      std::string magic;
      if (size_ > 0) magic.assign(reinterpret_cast<const char*>(data_), std::min<uint64_t>(size_, 4));
      return format_error("gguf: bad magic " + quoted(magic) + " (expected 'GGUF'): not a GGUF file");
    }
    pos_ = 4;
    uint32_t version;
    GE_RETURN_IF_ERROR(read(&version, {"header version"}));
    if (version == 1) {
      return unsupported("gguf: version 1 files are not supported (only v2 and v3); re-convert the model");
    }
    if (version != 0 && (version & 0xffffu) == 0) {
      return unsupported("gguf: version field " + u64s(version) +
                         " looks byte-swapped: big-endian GGUF files are not supported");
    }
    if (version != 2 && version != 3) {
      return unsupported("gguf: version " + u64s(version) + " is not supported (only v2 and v3)");
    }
    f_->version_ = version;
    GE_RETURN_IF_ERROR(read(&n_tensors_, {"header tensor count"}));
    GE_RETURN_IF_ERROR(read(&n_kv_, {"header key/value count"}));
    if (n_kv_ > kMaxKeyValues) {
      return format_error("gguf: key/value count " + u64s(n_kv_) + " exceeds the limit of " + u64s(kMaxKeyValues));
    }
    if (n_tensors_ > kMaxTensors) {
      return format_error("gguf: tensor count " + u64s(n_tensors_) + " exceeds the limit of " + u64s(kMaxTensors));
    }
    // Both counts are small now, so these products cannot overflow.
    if (n_kv_ * kMinKvBytes + n_tensors_ * kMinTensorInfoBytes > remaining()) {
      return format_error("gguf: " + u64s(n_kv_) + " key/values and " + u64s(n_tensors_) +
                          " tensor infos cannot fit in the " + u64s(remaining()) + " bytes after the header");
    }
    return Status::ok();
  }

  Status parse_key_values() {
    f_->entries_.reserve(n_kv_);
    for (uint64_t i = 0; i < n_kv_; ++i) {
      std::string_view key;
      GE_RETURN_IF_ERROR(read_string(&key, {"key string"}));
      if (key.empty()) return format_error("gguf: key/value #" + u64s(i) + " has an empty key");
      if (f_->entry_index_.find(key) != f_->entry_index_.end()) {
        return format_error("gguf: duplicate key " + quoted(key));
      }
      uint32_t raw_type;
      GE_RETURN_IF_ERROR(read(&raw_type, {"value type", key}));
      if (raw_type > kMaxValueType) {
        return format_error("gguf: key " + quoted(key) + " has unknown value type " + u64s(raw_type));
      }
      Entry e;
      e.key = std::string(key);
      e.type = static_cast<ValueType>(raw_type);
      e.offset = pos_;
      GE_RETURN_IF_ERROR(skip_value(e.type, 1, key));
      e.size = pos_ - e.offset;
      if (e.type == ValueType::kArray) {
        e.elem_type = static_cast<ValueType>(load<uint32_t>(data_ + e.offset));
        e.count = load<uint64_t>(data_ + e.offset + 4);
      }
      f_->entry_index_.emplace(e.key, f_->entries_.size());
      f_->entries_.push_back(std::move(e));
    }
    return Status::ok();
  }

  // Validates one value of `type` at pos_ and moves past it. `level` is the array nesting level
  // the value would have if it is an array (1 for a key's own array).
  Status skip_value(ValueType type, int level, std::string_view key) {
    const uint64_t fixed = scalar_size(type);
    if (type == ValueType::kBool) {
      GE_RETURN_IF_ERROR(need(1, {"bool value", key}));
      if (data_[pos_] > 1) {
        return format_error("gguf: key " + quoted(key) + " has bool byte " + u64s(data_[pos_]) + " (must be 0 or 1)");
      }
      pos_ += 1;
      return Status::ok();
    }
    if (fixed != 0) return skip(fixed, {"scalar value", key});
    if (type == ValueType::kString) {
      std::string_view s;
      return read_string(&s, {"string value", key});
    }
    // Array: element type, count, elements.
    if (level > kMaxArrayDepth) {
      return format_error("gguf: key " + quoted(key) + " nests arrays deeper than " + u64s(kMaxArrayDepth) + " levels");
    }
    uint32_t raw_elem;
    GE_RETURN_IF_ERROR(read(&raw_elem, {"array element type", key}));
    if (raw_elem > kMaxValueType) {
      return format_error("gguf: key " + quoted(key) + " has unknown array element type " + u64s(raw_elem));
    }
    const ValueType elem = static_cast<ValueType>(raw_elem);
    uint64_t count;
    GE_RETURN_IF_ERROR(read(&count, {"array count", key}));
    if (count > kMaxArrayElements) {
      return format_error("gguf: key " + quoted(key) + " array count " + u64s(count) + " exceeds the limit of " +
                          u64s(kMaxArrayElements));
    }
    uint64_t min_bytes;
    if (!mul_ok(count, min_encoded_size(elem), &min_bytes) || min_bytes > remaining()) {
      return format_error("gguf: key " + quoted(key) + " array of " + u64s(count) + " " + value_type_name(elem) +
                          " cannot fit in the " + u64s(remaining()) + " bytes left at offset " + u64s(pos_));
    }
    if (elem == ValueType::kArray && level >= kMaxArrayDepth) {
      return format_error("gguf: key " + quoted(key) + " nests arrays deeper than " + u64s(kMaxArrayDepth) + " levels");
    }
    const uint64_t elem_fixed = scalar_size(elem);
    if (elem_fixed != 0 && elem != ValueType::kBool) {
      pos_ += min_bytes;  // checked against remaining() above
      return Status::ok();
    }
    for (uint64_t i = 0; i < count; ++i) GE_RETURN_IF_ERROR(skip_value(elem, level + 1, key));
    return Status::ok();
  }

  Status parse_alignment() {
    auto it = f_->entry_index_.find(std::string_view("general.alignment"));
    if (it == f_->entry_index_.end()) return Status::ok();
    const Entry& e = f_->entries_[it->second];
    if (e.type != ValueType::kUint32) {
      return format_error(std::string("gguf: general.alignment has type ") + value_type_name(e.type) +
                          ", expected u32");
    }
    const uint32_t a = load<uint32_t>(data_ + e.offset);
    if (a == 0 || !std::has_single_bit(a) || a > kMaxAlignment) {
      return format_error("gguf: general.alignment " + u64s(a) + " must be a power of two in [1, " +
                          u64s(kMaxAlignment) + "]");
    }
    f_->alignment_ = a;
    return Status::ok();
  }

  Status parse_tensor_infos() {
    f_->tensors_.reserve(n_tensors_);
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      std::string_view name;
      GE_RETURN_IF_ERROR(read_string(&name, {"tensor name"}));
      if (name.empty()) return format_error("gguf: tensor info #" + u64s(i) + " has an empty name");
      if (name.size() > kMaxTensorNameBytes) {
        return format_error("gguf: tensor name " + quoted(name) + " is " + u64s(name.size()) +
                            " bytes long (limit " + u64s(kMaxTensorNameBytes) + ")");
      }
      if (f_->tensor_index_.find(name) != f_->tensor_index_.end()) {
        return format_error("gguf: duplicate tensor name " + quoted(name));
      }
      const std::string tname = "tensor " + quoted(name);
      uint32_t n_dims;
      GE_RETURN_IF_ERROR(read(&n_dims, {"n_dims", name, "tensor"}));
      if (n_dims == 0 || n_dims > static_cast<uint32_t>(kGgmlMaxDims)) {
        return format_error("gguf: " + tname + ": n_dims " + u64s(n_dims) + " is outside [1, " +
                            u64s(kGgmlMaxDims) + "]");
      }
      TensorInfo t;
      t.name = std::string(name);
      t.ne.resize(n_dims);
      for (uint32_t d = 0; d < n_dims; ++d) {
        GE_RETURN_IF_ERROR(read(&t.ne[d], {"dims", name, "tensor"}));
        if (t.ne[d] <= 0) {
          return format_error("gguf: " + tname + ": ne[" + u64s(d) + "] = " + std::to_string(t.ne[d]) +
                              " must be positive");
        }
      }
      GE_RETURN_IF_ERROR(read(&t.ggml_type, {"ggml type", name, "tensor"}));
      GE_RETURN_IF_ERROR(read(&t.offset, {"data offset", name, "tensor"}));
      if (ggml_type_info(t.ggml_type) == nullptr) {
        return format_error("gguf: " + tname + ": unknown or removed ggml type id " + u64s(t.ggml_type));
      }
      auto nbytes = ggml_tensor_nbytes(t.ggml_type, t.ne.data(), static_cast<int>(n_dims));
      if (!nbytes.is_ok()) {
        return Status(nbytes.status().code(), "gguf: " + tname + ": " + nbytes.status().message());
      }
      t.nbytes = nbytes.value();
      if (t.offset % f_->alignment_ != 0) {
        return format_error("gguf: " + tname + ": data offset " + u64s(t.offset) +
                            " is not a multiple of the alignment " +
                            u64s(f_->alignment_));
      }
      f_->tensor_index_.emplace(t.name, f_->tensors_.size());
      f_->tensors_.push_back(std::move(t));
    }
    return Status::ok();
  }

  Status check_tensor_data() {
    if (!pad_ok(pos_, f_->alignment_, &f_->data_offset_)) {
      return format_error("gguf: data section offset overflows");
    }
    if (f_->tensors_.empty()) return Status::ok();
    if (f_->data_offset_ > size_) {
      return format_error("gguf: data section starts at " + u64s(f_->data_offset_) + ", past end of file (size " +
                          u64s(size_) + ")");
    }
    std::vector<size_t> order(f_->tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) {
      TensorInfo& t = f_->tensors_[i];
      uint64_t begin, end;
      if (!add_ok(f_->data_offset_, t.offset, &begin)) {
        return format_error("gguf: tensor " + quoted(t.name) + ": data offset " + u64s(t.offset) +
                            " overflows past the data section start " + u64s(f_->data_offset_));
      }
      const bool end_ok = add_ok(begin, t.nbytes, &end);
      if (!end_ok || end > size_) {
        const std::string end_text = end_ok ? u64s(end) : u64s(begin) + "+" + u64s(t.nbytes);
        return format_error("gguf: tensor " + quoted(t.name) + ": data [" + u64s(begin) + ", " + end_text +
                            ") extends past end of file (size " + u64s(size_) + ")");
      }
      t.data = data_ + begin;
      order[i] = i;
    }
    const auto& ts = f_->tensors_;
    std::sort(order.begin(), order.end(), [&ts](size_t a, size_t b) { return ts[a].offset < ts[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const TensorInfo& prev = ts[order[k - 1]];
      const TensorInfo& cur = ts[order[k]];
      if (cur.offset < prev.offset + prev.nbytes) {  // both lie in the file, so nothing overflows
        const uint64_t base = f_->data_offset_;
        return format_error("gguf: tensor " + quoted(cur.name) + ": data [" + u64s(base + cur.offset) + ", " +
                            u64s(base + cur.offset + cur.nbytes) + ") overlaps tensor " + quoted(prev.name) + " [" +
                            u64s(base + prev.offset) + ", " + u64s(base + prev.offset + prev.nbytes) + ")");
      }
    }
    return Status::ok();
  }

  GgufFile* f_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
};

Result<GgufFile> GgufFile::parse(const uint8_t* data, uint64_t size) {
  if (data == nullptr && size != 0) return invalid_argument("gguf: parse called with null data");
  GgufFile f;
  f.data_ = data;
  f.size_ = size;
  try {
    Parser parser(&f);
    GE_RETURN_IF_ERROR(parser.run());
  } catch (const std::bad_alloc&) {
    return out_of_memory("gguf: out of memory while parsing the metadata");
  }
  return f;
}

Result<GgufFile> GgufFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  if (!mapped.is_ok()) return Status(mapped.status().code(), "gguf: " + mapped.status().message());
  auto file = std::make_unique<MappedFile>(std::move(mapped).value());
  auto parsed = parse(file->data(), file->size());
  if (!parsed.is_ok()) {
    std::string msg = parsed.status().message();
    if (msg.rfind("gguf: ", 0) == 0) msg = msg.substr(6);
    return Status(parsed.status().code(), "gguf: " + path + ": " + msg);
  }
  GgufFile f = std::move(parsed).value();
  f.file_ = std::move(file);  // the mapping does not move, so tensor data pointers stay valid
  return f;
}

const GgufFile::Entry* GgufFile::find(std::string_view key) const {
  auto it = entry_index_.find(key);
  return it == entry_index_.end() ? nullptr : &entries_[it->second];
}

bool GgufFile::has(std::string_view key) const { return find(key) != nullptr; }

std::optional<ValueType> GgufFile::type_of(std::string_view key) const {
  const Entry* e = find(key);
  if (e == nullptr) return std::nullopt;
  return e->type;
}

std::optional<ValueType> GgufFile::array_type_of(std::string_view key) const {
  const Entry* e = find(key);
  if (e == nullptr || e->type != ValueType::kArray) return std::nullopt;
  return e->elem_type;
}

uint64_t GgufFile::array_size(std::string_view key) const {
  const Entry* e = find(key);
  return e != nullptr && e->type == ValueType::kArray ? e->count : 0;
}

std::optional<RawValue> GgufFile::raw_value(std::string_view key) const {
  const Entry* e = find(key);
  if (e == nullptr) return std::nullopt;
  return RawValue{e->type, data_ + e->offset, e->size};
}

std::vector<std::string> GgufFile::keys() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(e.key);
  return out;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<const GgufFile::Entry*> GgufFile::find_typed(std::string_view key, const char* want) const {
  const Entry* e = find(key);
  if (e == nullptr) return not_found("gguf: key " + quoted(key) + " not found");
  if (e->type == ValueType::kArray) {
    return format_error("gguf: key " + quoted(key) + " is an array of " + value_type_name(e->elem_type) +
                        ", expected " + want);
  }
  return e;
}

Result<const GgufFile::Entry*> GgufFile::find_array(std::string_view key, const char* want) const {
  const Entry* e = find(key);
  if (e == nullptr) return not_found("gguf: key " + quoted(key) + " not found");
  if (e->type != ValueType::kArray) {
    return format_error("gguf: key " + quoted(key) + " has type " + value_type_name(e->type) +
                        ", expected an array of " +
                        want);
  }
  return e;
}

Result<std::string> GgufFile::get_string(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_typed(key, "string"));
  if (e->type != ValueType::kString) {
    return format_error("gguf: key " + quoted(key) + " has type " + value_type_name(e->type) + ", expected string");
  }
  const uint64_t len = load<uint64_t>(data_ + e->offset);
  return std::string(reinterpret_cast<const char*>(data_ + e->offset + 8), len);
}

Result<uint64_t> GgufFile::get_uint(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_typed(key, "an unsigned integer"));
  if (!is_integer(e->type)) {
    return format_error("gguf: key " + quoted(key) + " has type " + value_type_name(e->type) +
                        ", expected an unsigned integer");
  }
  const IntValue v = decode_int(e->type, data_ + e->offset);
  if (!v.is_signed) return v.u;
  if (v.s < 0) {
    return format_error("gguf: key " + quoted(key) + " is " + std::to_string(v.s) + ", expected a non-negative value");
  }
  return static_cast<uint64_t>(v.s);
}

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_typed(key, "an integer"));
  if (!is_integer(e->type)) {
    return format_error("gguf: key " + quoted(key) + " has type " + value_type_name(e->type) + ", expected an integer");
  }
  const IntValue v = decode_int(e->type, data_ + e->offset);
  if (v.is_signed) return v.s;
  if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return format_error("gguf: key " + quoted(key) + " value " + u64s(v.u) + " does not fit in int64");
  }
  return static_cast<int64_t>(v.u);
}

Result<double> GgufFile::get_float(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_typed(key, "a number"));
  const uint8_t* p = data_ + e->offset;
  if (e->type == ValueType::kFloat32) return static_cast<double>(load<float>(p));
  if (e->type == ValueType::kFloat64) return load<double>(p);
  if (is_integer(e->type)) {
    const IntValue v = decode_int(e->type, p);
    return v.is_signed ? static_cast<double>(v.s) : static_cast<double>(v.u);
  }
  return format_error("gguf: key " + quoted(key) + " has type " + value_type_name(e->type) + ", expected a number");
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_typed(key, "bool"));
  if (e->type != ValueType::kBool) {
    return format_error("gguf: key " + quoted(key) + " has type " + value_type_name(e->type) + ", expected bool");
  }
  return data_[e->offset] != 0;
}

Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_array(key, "string"));
  if (e->elem_type != ValueType::kString) {
    return format_error("gguf: key " + quoted(key) + " is an array of " + value_type_name(e->elem_type) +
                        ", expected an array of string");
  }
  try {
    std::vector<std::string> out;
    out.reserve(e->count);
    // The parse pass validated every length; the walk stays inside the value's own bytes.
    const uint8_t* p = data_ + e->offset + kArrayHeaderBytes;
    const uint8_t* end = data_ + e->offset + e->size;
    for (uint64_t i = 0; i < e->count; ++i) {
      GE_CHECK(static_cast<uint64_t>(end - p) >= 8);
      const uint64_t len = load<uint64_t>(p);
      p += 8;
      GE_CHECK(len <= static_cast<uint64_t>(end - p));
      out.emplace_back(reinterpret_cast<const char*>(p), len);
      p += len;
    }
    return out;
  } catch (const std::bad_alloc&) {
    return out_of_memory("gguf: out of memory reading string array " + quoted(key));
  }
}

Result<std::vector<float>> GgufFile::get_f32_array(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_array(key, "f32"));
  const uint8_t* p = data_ + e->offset + kArrayHeaderBytes;
  try {
    std::vector<float> out(e->count);
    if (e->elem_type == ValueType::kFloat32) {
      if (e->count != 0) std::memcpy(out.data(), p, e->count * sizeof(float));
    } else if (e->elem_type == ValueType::kFloat64) {
      for (uint64_t i = 0; i < e->count; ++i) out[i] = static_cast<float>(load<double>(p + 8 * i));
    } else {
      return format_error("gguf: key " + quoted(key) + " is an array of " + value_type_name(e->elem_type) +
                          ", expected an array of f32");
    }
    return out;
  } catch (const std::bad_alloc&) {
    return out_of_memory("gguf: out of memory reading array " + quoted(key));
  }
}

Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_array(key, "integer"));
  if (!is_integer(e->elem_type)) {
    return format_error("gguf: key " + quoted(key) + " is an array of " + value_type_name(e->elem_type) +
                        ", expected an array of integers");
  }
  const uint64_t w = scalar_size(e->elem_type);
  const uint8_t* p = data_ + e->offset + kArrayHeaderBytes;
  try {
    std::vector<int64_t> out(e->count);
    for (uint64_t i = 0; i < e->count; ++i) {
      const IntValue v = decode_int(e->elem_type, p + w * i);
      if (!v.is_signed && v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return format_error("gguf: key " + quoted(key) + " element " + u64s(i) + " = " + u64s(v.u) +
                            " does not fit in int64");
      }
      out[i] = v.is_signed ? v.s : static_cast<int64_t>(v.u);
    }
    return out;
  } catch (const std::bad_alloc&) {
    return out_of_memory("gguf: out of memory reading array " + quoted(key));
  }
}

Result<std::vector<bool>> GgufFile::get_bool_array(std::string_view key) const {
  GE_ASSIGN_OR_RETURN(const Entry* e, find_array(key, "bool"));
  if (e->elem_type != ValueType::kBool) {
    return format_error("gguf: key " + quoted(key) + " is an array of " + value_type_name(e->elem_type) +
                        ", expected an array of bool");
  }
  const uint8_t* p = data_ + e->offset + kArrayHeaderBytes;
  try {
    std::vector<bool> out(e->count);
    for (uint64_t i = 0; i < e->count; ++i) out[i] = p[i] != 0;
    return out;
  } catch (const std::bad_alloc&) {
    return out_of_memory("gguf: out of memory reading array " + quoted(key));
  }
}

}  // namespace ge::gguf
