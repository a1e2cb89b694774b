// Configs of published Gemma models by name, for synthetic-weight benchmarks (`gemma bench
// --synthetic gemma-4-31b`) and `gemma synth`. Values from gemma-spec.md §1.1 / §5.1.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/gemma_config.h"

namespace ge {

Result<GemmaConfig> preset_config(const std::string& name);  // "gemma-4-31b", "gemma-3-270m", "gemma-3-1b"
std::vector<std::string> preset_names();

}  // namespace ge
