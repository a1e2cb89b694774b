// safetensors header validation. Every rule of the reference crate (safetensors/src/tensor.rs) is
// re-implemented here: a C++ loader that parses without validating is how MLX and others got OOB
// reads. Where this reader is stricter than the reference, the comment says so.
#include "formats/safetensors_reader.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_set>
#include <utility>

#include "core/checked_math.h"

namespace ge::safetensors {
namespace {

using nlohmann::json;

constexpr uint64_t kLengthPrefixBytes = 8;

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kF64, "F64", 8}, {DType::kF32, "F32", 4},        {DType::kF16, "F16", 2},        {DType::kBF16, "BF16", 2},
    {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},        {DType::kI16, "I16", 2},        {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},   {DType::kBool, "BOOL", 1},      {DType::kU16, "U16", 2},        {DType::kU32, "U32", 4},
    {DType::kU64, "U64", 8}, {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E5M2, "F8_E5M2", 1},
};

// Dtypes the reference format defines but this engine does not read (sub-byte and exotic floats).
// They are reported as unsupported rather than malformed.
constexpr const char* kKnownUnsupportedDTypes[] = {"F4",          "F6_E2M3",     "F6_E3M2", "F8_E8M0",
                                                   "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"};

// Thrown only from the parse callback below and caught in parse_json_strict.
struct StrictJsonError : std::exception {
  explicit StrictJsonError(std::string m) : message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
  std::string message;
};

// Returns the byte offset of the first invalid UTF-8 sequence, or nullopt when `s` is valid
// (overlong forms, surrogates and code points above U+10FFFF are invalid, as in Rust's from_utf8).
std::optional<size_t> find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::nullopt;
}

uint64_t read_le_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// JSON integers that fit a u64 and carry no sign or fraction. serde_json (the reference) parses
// "-0", "4.0" and "4e0" as floats and refuses them where an integer is expected; nlohmann marks
// exactly the sign-free integer literals as number_unsigned, so the same inputs are refused here.
bool get_u64(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  *out = v.get<uint64_t>();
  return true;
}

const char* json_kind(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_unsigned()) return "an unsigned integer";
  if (v.is_number_integer()) return "a negative integer";
  if (v.is_number_float()) return "a non-integer number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "an unknown JSON value";
}

Status header_error(const std::string& what) { return format_error("safetensors header: " + what); }

struct ParsedEntry {
  TensorInfo info;
  uint64_t begin = 0;
  uint64_t end = 0;
};

Result<ParsedEntry> parse_tensor_entry(const std::string& name, const json& v) {
  const std::string where = "tensor " + quote_name(name);
  if (!v.is_object()) {
    // Stricter than the reference, which also accepts serde's array form ["F32", [..], [..]].
    return header_error(where + " is " + json_kind(v) + ", expected an object with dtype, shape, data_offsets");
  }
  // Unknown fields are ignored, as in the reference.
  auto dtype_it = v.find("dtype");
  auto shape_it = v.find("shape");
  auto offsets_it = v.find("data_offsets");
  if (dtype_it == v.end()) return header_error(where + " has no \"dtype\"");
  if (shape_it == v.end()) return header_error(where + " has no \"shape\"");
  if (offsets_it == v.end()) return header_error(where + " has no \"data_offsets\"");

  ParsedEntry e;
  e.info.name = name;
  if (!dtype_it->is_string()) return header_error(where + ": dtype is " + json_kind(*dtype_it) + ", expected a string");
  const std::string& dtype_str = dtype_it->get_ref<const std::string&>();
  bool found = false;
  for (const DTypeEntry& d : kDTypes) {
    if (dtype_str == d.name) {
      e.info.dtype = d.dtype;
      found = true;
      break;
    }
  }
  if (!found) {
    for (const char* u : kKnownUnsupportedDTypes) {
      if (dtype_str == u)
        return unsupported("safetensors: " + where + " has dtype " + u + ", which this engine does not read");
    }
    return header_error(where + " has unknown dtype " + quote_name(dtype_str));
  }

  if (!shape_it->is_array()) return header_error(where + ": shape is " + json_kind(*shape_it) + ", expected an array");
  if (shape_it->size() > kMaxRank) {
    return header_error(where + " has rank " + std::to_string(shape_it->size()) + ", above the limit of " +
                        std::to_string(kMaxRank));
  }
  uint64_t numel = 1;
  for (const json& d : *shape_it) {
    uint64_t dim;
    if (!get_u64(d, &dim)) {
      return header_error(where + ": shape entry is " + std::string(json_kind(d)) +
                          ", expected a non-negative integer");
    }
    // int64 is what the rest of the engine indexes with; the product check below bounds it anyway.
    if (dim > static_cast<uint64_t>(INT64_MAX) || !mul_ok(numel, dim, &numel)) {
      return header_error(where + ": shape element count overflows");
    }
    e.info.shape.push_back(static_cast<int64_t>(dim));
  }
  if (!mul_ok(numel, dtype_size(e.info.dtype), &e.info.nbytes)) {
    return header_error(where + ": byte size overflows");
  }

  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return header_error(where + ": data_offsets must be an array [begin, end]");
  }
  if (!get_u64((*offsets_it)[0], &e.begin) || !get_u64((*offsets_it)[1], &e.end)) {
    return header_error(where + ": data_offsets must be non-negative integers");
  }
  return e;
}

}  // namespace

size_t dtype_size(DType dtype) {
  for (const DTypeEntry& d : kDTypes) {
    if (d.dtype == dtype) return d.size;
  }
  GE_CHECK_MSG(false, "unknown safetensors dtype");
}

const char* dtype_name(DType dtype) {
  for (const DTypeEntry& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  GE_CHECK_MSG(false, "unknown safetensors dtype");
}

std::string quote_name(std::string_view name) {
  constexpr size_t kMaxShown = 80;
  std::string out = "'";
  for (size_t i = 0; i < name.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  if (name.size() > kMaxShown) out += "...";
  out += "'";
  return out;
}

Result<json> parse_json_strict(std::string_view text, std::string_view what) {
  const std::string prefix = std::string(what) + ": ";
  if (auto bad = find_invalid_utf8(text)) {
    return format_error(prefix + "invalid UTF-8 at byte " + std::to_string(*bad));
  }
  // nlohmann stops at a NUL byte as if the input ended there, so "{...}\0<anything>" would parse;
  // JSON allows no raw NUL anywhere, and the reference rejects it.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return format_error(prefix + "NUL byte at offset " + std::to_string(nul));
  }
  // nlohmann silently skips a byte-order mark; the reference (serde_json) rejects it.
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") {
    return format_error(prefix + "starts with a byte-order mark");
  }
  // One set of seen keys per open object, innermost last.
  std::vector<std::unordered_set<std::string>> open_objects;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          throw StrictJsonError("nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        }
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string()) {
          const std::string& key = parsed.get_ref<const std::string&>();
          if (!open_objects.back().insert(key).second) {
            throw StrictJsonError("duplicate key " + quote_name(key));
          }
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const StrictJsonError& e) {
    return format_error(prefix + e.message);
  } catch (const json::exception& e) {
    return format_error(prefix + "invalid JSON: " + e.what());
  } catch (const std::bad_alloc&) {
    return out_of_memory(prefix + "out of memory while parsing JSON");
  }
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  GE_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::open(path));
  Result<SafetensorsFile> parsed = parse_impl(mapped.data(), mapped.size());
  if (!parsed.is_ok()) {
    const Status& s = parsed.status();
    return Status(s.code(), "'" + path + "': " + s.message());
  }
  SafetensorsFile file = std::move(parsed).value();
  // The views point into the mapping; moving the MappedFile keeps its address.
  file.file_ = std::move(mapped);
  file.path_ = path;
  return file;
}

Result<SafetensorsFile> SafetensorsFile::parse(const uint8_t* data, uint64_t size) {
  if (data == nullptr && size != 0) return invalid_argument("safetensors: null buffer of non-zero size");
  return parse_impl(data, size);
}

Result<SafetensorsFile> SafetensorsFile::parse_impl(const uint8_t* data, uint64_t size) {
  if (size < kLengthPrefixBytes) {
    return format_error("safetensors: file is " + std::to_string(size) +
                        " bytes, too small for the 8-byte header length");
  }
  const uint64_t n = read_le_u64(data);
  if (n > kMaxHeaderBytes) {
    return format_error("safetensors: header length " + std::to_string(n) + " exceeds the limit of " +
                        std::to_string(kMaxHeaderBytes) + " bytes");
  }
  uint64_t header_end;
  if (!add_ok(kLengthPrefixBytes, n, &header_end) || header_end > size) {
    return format_error("safetensors: header length " + std::to_string(n) + " runs past the end of the " +
                        std::to_string(size) + "-byte file (truncated?)");
  }
  const std::string_view text(reinterpret_cast<const char*>(data + kLengthPrefixBytes), n);
  if (auto bad = find_invalid_utf8(text)) return header_error("invalid UTF-8 at byte " + std::to_string(*bad));
  // The format requires '{' first; JSON whitespace before it is tolerated as the reference does.
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text[first] != '{') {
    return header_error("does not start with '{' (not a JSON object)");
  }
  GE_ASSIGN_OR_RETURN(json root, parse_json_strict(text, "safetensors header"));
  if (!root.is_object()) return header_error(std::string("is ") + json_kind(root) + ", expected a JSON object");

  SafetensorsFile file;
  file.header_bytes_ = n;
  std::vector<ParsedEntry> entries;
  try {
    entries.reserve(root.size());
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string& key = it.key();
      const json& value = it.value();
      if (key == "__metadata__") {
        if (value.is_null()) continue;  // serde's Option<...>: null means absent
        if (!value.is_object()) {
          return header_error(std::string("__metadata__ is ") + json_kind(value) + ", expected an object of strings");
        }
        for (auto m = value.begin(); m != value.end(); ++m) {
          if (!m.value().is_string()) {
            return header_error("__metadata__ entry " + quote_name(m.key()) + " is " + json_kind(m.value()) +
                                ", expected a string");
          }
          file.metadata_.emplace(m.key(), m.value().get<std::string>());
        }
        continue;
      }
      GE_ASSIGN_OR_RETURN(ParsedEntry entry, parse_tensor_entry(key, value));
      entries.push_back(std::move(entry));
    }
  } catch (const std::bad_alloc&) {
    return out_of_memory("safetensors: out of memory while reading the header");
  }

  // Tensors must tile the data region exactly: sorted by offsets, each begins where the previous
  // ended, and the last ends at the end of the file. Zero-size tensors may share an offset (the
  // reference writer produces that), but cannot sit inside another tensor.
  std::stable_sort(entries.begin(), entries.end(), [](const ParsedEntry& a, const ParsedEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const ParsedEntry& e : entries) {
    const std::string where = "tensor " + quote_name(e.info.name);
    if (e.end < e.begin) {
      return header_error(where + " has data_offsets end " + std::to_string(e.end) + " before begin " +
                          std::to_string(e.begin));
    }
    if (e.begin != covered) {
      return header_error(where + " begins at " + std::to_string(e.begin) + " but the previous tensor ends at " +
                          std::to_string(covered) + (e.begin > covered ? " (gap)" : " (overlap)"));
    }
    if (e.end - e.begin != e.info.nbytes) {
      return header_error(where + " spans " + std::to_string(e.end - e.begin) + " bytes but its dtype and shape need " +
                          std::to_string(e.info.nbytes));
    }
    covered = e.end;
  }
  const uint64_t data_bytes = size - header_end;
  if (covered != data_bytes) {
    return header_error("tensors cover " + std::to_string(covered) + " bytes but the data region is " +
                        std::to_string(data_bytes) + " bytes" +
                        (covered < data_bytes ? " (trailing bytes)" : " (file truncated)"));
  }

  const uint8_t* region = data + header_end;
  file.tensors_.reserve(entries.size());
  for (ParsedEntry& e : entries) {
    e.info.data = region + e.begin;
    file.index_.emplace(e.info.name, file.tensors_.size());
    file.tensors_.push_back(std::move(e.info));
  }
  return file;
}

}  // namespace ge::safetensors
