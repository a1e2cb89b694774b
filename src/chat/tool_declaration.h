// Gemma 4 tool declarations: an OpenAI-style tool (JSON schema parameters) rendered the way the
// chat template's format_function_declaration / format_parameters macros write it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ge::chat {

// Returns "declaration:NAME{description:<|\"|>...<|\"|>,parameters:{...}}" for one entry of the
// tools list (the text between <|tool> and <tool|>). The entry must be an object with a
// "function" object; everything below that follows the template, including its quirks (schema
// keywords it does not know become nested "properties"). Fails where jinja2 raises (a truthy
// non-object "properties" in "parameters", iterating a number or boolean).
Result<std::string> format_tool_declaration(const nlohmann::json& tool);

}  // namespace ge::chat
