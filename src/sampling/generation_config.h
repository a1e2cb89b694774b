// Sampling defaults from a Hugging Face generation_config.json (Gemma 4 IT ships do_sample true,
// temperature 1.0, top_k 64, top_p 0.95).
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "sampling/sampler.h"

namespace ge {

// Reads temperature, top_k, top_p, min_p and repetition_penalty; absent or null fields keep the
// SamplingParams defaults. do_sample == false means greedy (temperature 0). A field of the wrong
// type, or values validate() rejects, give kInvalidArgument naming the field.
Result<SamplingParams> sampling_from_generation_config(const nlohmann::json& config);
// Same, from the file's text (kFormatError if it is not a JSON object).
Result<SamplingParams> sampling_from_generation_config_text(std::string_view json_text);

}  // namespace ge
