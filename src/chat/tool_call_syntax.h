// Gemma 4's tool value syntax, both directions: the template's format_argument serialisation
// ({key:<|"|>text<|"|>,n:3,ok:true,list:[...]}) and the parser that turns a model's tool call back
// into JSON.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ge::chat {

inline constexpr std::string_view kToolQuote = "<|\"|>";

// The template's format_argument(value, escape_keys): strings wrapped in <|"|>, true/false, objects
// in dictsort order with bare keys (or <|"|>-quoted keys when escape_keys), arrays, and Python
// str() for anything else (numbers; null prints as None).
std::string format_tool_value(const nlohmann::json& value, bool escape_keys);

// What the template writes between "call:NAME{" and "}": an object's members as key:value joined
// by ',' (bare keys), a string verbatim, nothing for other types.
std::string format_tool_call_arguments(const nlohmann::json& arguments);

// Parses one value in that syntax. Accepts <|"|>strings<|"|> (taken verbatim, no escapes), objects
// with bare or <|"|>-quoted keys, arrays, JSON numbers (and Python's inf/nan spellings are
// refused), true/false, null/None; whitespace between tokens is skipped. Any other text is an
// error. Nesting is limited to 128 levels.
Result<nlohmann::json> parse_tool_value(std::string_view text);

// Parses the argument object of a call, "{...}" including the braces, into a JSON object.
Result<nlohmann::json> parse_tool_call_arguments(std::string_view text);

}  // namespace ge::chat
