// generation_config.json -> SamplingParams. nlohmann::json is used without exceptions here: every
// value is type-checked before it is read.
#include "sampling/generation_config.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace ge {
namespace {

using nlohmann::json;

Status read_float(const json& config, const char* key, float* out) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return Status::ok();
  if (!it->is_number()) {
    return invalid_argument(std::string("generation_config: '") + key + "' must be a number, got " +
                            it->type_name());
  }
  const double v = it->get<double>();
  if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max()) {
    return invalid_argument(std::string("generation_config: '") + key + "' is out of range");
  }
  *out = static_cast<float>(v);
  return Status::ok();
}

}  // namespace

Result<SamplingParams> sampling_from_generation_config(const json& config) {
  if (!config.is_object()) {
    return invalid_argument("generation_config: expected a JSON object");
  }
  SamplingParams p;
  GE_RETURN_IF_ERROR(read_float(config, "temperature", &p.temperature));
  GE_RETURN_IF_ERROR(read_float(config, "top_p", &p.top_p));
  GE_RETURN_IF_ERROR(read_float(config, "min_p", &p.min_p));
  GE_RETURN_IF_ERROR(read_float(config, "repetition_penalty", &p.repetition_penalty));
  auto top_k = config.find("top_k");
  if (top_k != config.end() && !top_k->is_null()) {
    if (!top_k->is_number_integer()) {
      return invalid_argument(std::string("generation_config: 'top_k' must be an integer, got ") +
                              top_k->type_name());
    }
    if (top_k->is_number_unsigned() ? top_k->get<uint64_t>() > INT32_MAX
                                    : (top_k->get<int64_t>() > INT32_MAX ||
                                       top_k->get<int64_t>() < INT32_MIN)) {
      return invalid_argument("generation_config: 'top_k' is out of range");
    }
    p.top_k = static_cast<int32_t>(top_k->get<int64_t>());
  }
  auto do_sample = config.find("do_sample");
  if (do_sample != config.end() && !do_sample->is_null()) {
    if (!do_sample->is_boolean()) {
      return invalid_argument("generation_config: 'do_sample' must be true or false");
    }
    if (!do_sample->get<bool>()) p.temperature = 0.0f;
  }
  Status s = validate(p);
  if (!s.is_ok()) return invalid_argument("generation_config: " + s.message());
  return p;
}

Result<SamplingParams> sampling_from_generation_config_text(std::string_view json_text) {
  json config = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return format_error("generation_config: not a JSON object");
  }
  return sampling_from_generation_config(config);
}

}  // namespace ge
