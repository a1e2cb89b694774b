// torchao metadata: parses the JSON strings torchao's flatten_tensor_state_dict writes into
// __metadata__ and checks each weight's parts against the layout its type promises, so loaders
// can index qdata/scale/zero without re-checking shapes.
#include "formats/torchao_meta.h"

#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <utility>

#include "core/checked_math.h"

namespace ge::safetensors {
namespace {

using nlohmann::json;

constexpr std::string_view kInt4 = "Int4Tensor";
constexpr std::string_view kIntx = "IntxUnpackedToInt8Tensor";
constexpr std::string_view kPlain = "Tensor";
// On torchao's allow-list but not readable by this engine.
constexpr std::string_view kOtherTorchaoTypes[] = {
    "Float8Tensor", "Int4TilePackedTo4dTensor", "Int8Tensor", "Int4PlainInt32Tensor", "MXTensor", "NVFP4Tensor"};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

class EntryChecker {
 public:
  EntryChecker(const SafetensorsFile& file, TorchaoTensor* out) : file_(file), out_(out) {
    where_ = "torchao: " + quote_name(out->fqn) + " (" + out->type + ")";
  }

  Status fail(const std::string& what) const { return format_error(where_ + ": " + what); }
  Status unsupported_error(const std::string& what) const { return unsupported(where_ + ": " + what); }

  // A list of positive integers that fit int64 (block_size, shape).
  Result<std::vector<int64_t>> int_list(const json& data, const char* key, bool required) const {
    std::vector<int64_t> v;
    auto it = data.find(key);
    if (it == data.end() || it->is_null()) {
      if (required) return fail(std::string("_data has no \"") + key + "\"");
      return v;
    }
    if (!it->is_array() || it->size() > kMaxRank)
      return fail(std::string("\"") + key + "\" must be a short integer list");
    for (const json& x : *it) {
      if (!x.is_number_unsigned() || x.get<uint64_t>() == 0 || x.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        return fail(std::string("\"") + key + "\" entries must be positive integers");
      }
      v.push_back(static_cast<int64_t>(x.get<uint64_t>()));
    }
    return v;
  }

  // The torchao encoding of a torch.dtype: {"_type": "torch.dtype", "_data": "int8"}.
  Result<std::string> torch_dtype(const json& data, const char* key) const {
    auto it = data.find(key);
    if (it == data.end() || it->is_null()) return std::string();
    auto t = it->is_object() ? it->find("_type") : it->end();
    auto d = it->is_object() ? it->find("_data") : it->end();
    if (t == it->end() || d == it->end() || *t != "torch.dtype" || !d->is_string()) {
      return fail(std::string("\"") + key + "\" is not an encoded torch.dtype");
    }
    return d->get<std::string>();
  }

  Status check_part(const char* part, DType dtype, const std::vector<int64_t>& shape) const {
    const TensorInfo* t = out_->parts.at(part);
    if (t->dtype != dtype || t->shape != shape) {
      return fail(std::string(part) + " is " + dtype_name(t->dtype) + " " + shape_str(t->shape) + ", expected " +
                  dtype_name(dtype) + " " + shape_str(shape));
    }
    return Status::ok();
  }

  // block_size must be [1, gs] with gs dividing K.
  Status check_groups(int64_t k) {
    if (out_->block_size.size() != 2 || out_->block_size[0] != 1) {
      return unsupported_error("block_size " + shape_str(out_->block_size) + " is not per-row groups [1, gs]");
    }
    out_->group_size = out_->block_size[1];
    if (k % out_->group_size != 0) {
      return fail("K = " + std::to_string(k) + " is not a multiple of the group size " +
                  std::to_string(out_->group_size));
    }
    return Status::ok();
  }

  Status check_int4(const json& data) {
    GE_ASSIGN_OR_RETURN(out_->shape, int_list(data, "shape", true));
    GE_ASSIGN_OR_RETURN(out_->block_size, int_list(data, "block_size", true));
    if (out_->shape.size() != 2) return unsupported_error("shape " + shape_str(out_->shape) + " is not 2-D");
    GE_ASSIGN_OR_RETURN(std::string act, torch_dtype(data, "activation_dtype"));
    if (!act.empty() && act != "bfloat16") {
      return unsupported_error("activation_dtype " + quote_name(act) +
                               " (only bfloat16 activations; other modes store signed nibbles)");
    }
    const int64_t n = out_->shape[0], k = out_->shape[1];
    if (k % 2 != 0) return fail("K = " + std::to_string(k) + " is odd; int4 qdata packs two values per byte");
    GE_RETURN_IF_ERROR(check_groups(k));
    const int64_t groups = k / out_->group_size;
    out_->bits = 4;
    GE_RETURN_IF_ERROR(check_part("qdata", DType::kU8, {n, k / 2}));
    GE_RETURN_IF_ERROR(check_part("scale", DType::kBF16, {groups, n}));
    return check_part("zero_point", DType::kBF16, {groups, n});
  }

  Status check_intx(const json& data) {
    // torchao does not store the logical shape for this type: it is the qdata shape.
    const TensorInfo* q = out_->parts.at("qdata");
    if (q->shape.size() != 2) return unsupported_error("qdata shape " + shape_str(q->shape) + " is not 2-D");
    out_->shape = q->shape;
    GE_ASSIGN_OR_RETURN(std::vector<int64_t> declared, int_list(data, "shape", false));
    if (!declared.empty() && declared != out_->shape) {
      return fail("shape " + shape_str(declared) + " disagrees with qdata " + shape_str(out_->shape));
    }
    GE_ASSIGN_OR_RETURN(out_->block_size, int_list(data, "block_size", true));
    GE_ASSIGN_OR_RETURN(std::string target, torch_dtype(data, "target_dtype"));
    if (target.size() != 4 || target.compare(0, 3, "int") != 0 || target[3] < '1' || target[3] > '8') {
      return unsupported_error("target_dtype " + quote_name(target) + " (expected int1..int8)");
    }
    out_->bits = target[3] - '0';
    if (auto a = data.find("activation_quantization"); a != data.end() && !a->is_null()) {
      return unsupported_error("activation_quantization is set (weight-only checkpoints only)");
    }
    if (auto a = data.find("apply_int8_act_asym_per_token_quant"); a != data.end() && *a != false) {
      return unsupported_error("apply_int8_act_asym_per_token_quant is set (weight-only checkpoints only)");
    }
    const int64_t n = out_->shape[0], k = out_->shape[1];
    GE_RETURN_IF_ERROR(check_groups(k));
    const int64_t groups = k / out_->group_size;
    GE_RETURN_IF_ERROR(check_part("qdata", DType::kI8, {n, k}));
    GE_RETURN_IF_ERROR(check_part("scale", DType::kBF16, {n, groups}));
    return check_part("zero_point", DType::kI8, {n, groups});
  }

  // Resolves `_tensor_data_names` to tensors named `<module>._<attr>_<part>`.
  Status collect_parts(const json& entry) {
    const size_t dot = out_->fqn.rfind('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == out_->fqn.size()) {
      return fail("a quantized name must be <module>.<attribute>");
    }
    const std::string prefix = out_->fqn.substr(0, dot) + "._" + out_->fqn.substr(dot + 1) + "_";
    auto names = entry.find("_tensor_data_names");
    if (names == entry.end() || !names->is_array()) return fail("no \"_tensor_data_names\" list");
    for (const json& name : *names) {
      if (!name.is_string()) return fail("\"_tensor_data_names\" holds a non-string");
      const std::string& part = name.get_ref<const std::string&>();
      if (part == "act_pre_scale") return unsupported_error("act_pre_scale is not supported");
      if (part != "qdata" && part != "scale" && part != "zero_point") {
        return fail("unknown tensor part " + quote_name(part));
      }
      const TensorInfo* t = file_.find(prefix + part);
      if (t == nullptr) return fail("part tensor " + quote_name(prefix + part) + " is missing from the file");
      if (!out_->parts.emplace(part, t).second) return fail("part " + quote_name(part) + " is listed twice");
    }
    for (const char* required : {"qdata", "scale", "zero_point"}) {
      if (out_->parts.count(required) == 0) return fail(std::string("no ") + required + " part");
    }
    return Status::ok();
  }

  Status check(const json& entry) {
    if (out_->type == kPlain) {
      const TensorInfo* t = file_.find(out_->fqn);
      if (t == nullptr) return fail("tensor is missing from the file");
      out_->parts.emplace("data", t);
      out_->shape = t->shape;
      return Status::ok();
    }
    auto data = entry.find("_data");
    if (data == entry.end() || !data->is_object()) return fail("no \"_data\" object");
    GE_RETURN_IF_ERROR(collect_parts(entry));
    return out_->type == kInt4 ? check_int4(*data) : check_intx(*data);
  }

 private:
  const SafetensorsFile& file_;
  TorchaoTensor* out_;
  std::string where_;
};

Result<std::vector<TorchaoTensor>> read_all(const SafetensorsFile& file, const std::string& names_text) {
  const auto& meta = file.metadata();
  GE_ASSIGN_OR_RETURN(json names, parse_json_strict(names_text, "torchao metadata \"tensor_names\""));
  if (!names.is_array()) return format_error("torchao: \"tensor_names\" is not a JSON list");
  std::vector<TorchaoTensor> out;
  std::set<std::string> seen;
  for (const json& name : names) {
    if (!name.is_string()) return format_error("torchao: \"tensor_names\" holds a non-string entry");
    TorchaoTensor t;
    t.fqn = name.get<std::string>();
    if (!seen.insert(t.fqn).second)
      return format_error("torchao: " + quote_name(t.fqn) + " is listed twice in \"tensor_names\"");
    auto m = meta.find(t.fqn);
    if (m == meta.end()) return format_error("torchao: " + quote_name(t.fqn) + " has no metadata entry");
    GE_ASSIGN_OR_RETURN(json entry, parse_json_strict(m->second, "torchao metadata for " + quote_name(t.fqn)));
    if (!entry.is_object()) return format_error("torchao: metadata for " + quote_name(t.fqn) + " is not a JSON object");
    auto type = entry.find("_type");
    if (type == entry.end() || !type->is_string())
      return format_error("torchao: " + quote_name(t.fqn) + " has no \"_type\"");
    t.type = type->get<std::string>();
    if (t.type != kInt4 && t.type != kIntx && t.type != kPlain) {
      for (std::string_view other : kOtherTorchaoTypes) {
        if (t.type == other)
          return unsupported("torchao: " + quote_name(t.fqn) + " has type " + t.type +
                             ", which this engine does not read");
      }
      return format_error("torchao: " + quote_name(t.fqn) + " has type " + quote_name(t.type) +
                          ", which is not an allow-listed torchao type");
    }
    EntryChecker checker(file, &t);
    GE_RETURN_IF_ERROR(checker.check(entry));
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

Result<std::vector<TorchaoTensor>> read_torchao_tensors(const SafetensorsFile& file) {
  auto it = file.metadata().find("tensor_names");
  if (it == file.metadata().end()) return std::vector<TorchaoTensor>();
  try {
    return read_all(file, it->second);
  } catch (const json::exception& e) {
    // Every access above is type-checked first; this is a backstop for the adapter boundary.
    return format_error(std::string("torchao: malformed metadata: ") + e.what());
  } catch (const std::bad_alloc&) {
    return out_of_memory("torchao: out of memory while reading metadata");
  }
}

}  // namespace ge::safetensors
