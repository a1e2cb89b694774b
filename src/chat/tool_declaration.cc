// Gemma 4 tool declarations, mirroring the chat template's format_function_declaration and
// format_parameters macros step by step (including where they emit unbalanced braces).
#include "chat/tool_declaration.h"

#include <string_view>
#include <vector>

#include "chat/python_text.h"
#include "chat/tool_call_syntax.h"

namespace ge::chat {
namespace {

using nlohmann::json;

constexpr int kMaxSchemaDepth = 64;

bool is_standard_key(std::string_view key) {
  return key == "description" || key == "type" || key == "properties" || key == "required" ||
         key == "nullable";
}

// `value[key]` rendered as text: str() of the member, "" for Undefined.
std::string item_text(const json& value, std::string_view key) {
  const json* item = py::get_item(value, key);
  return item ? py::str(*item) : std::string();
}

bool item_truthy(const json& value, std::string_view key) {
  const json* item = py::get_item(value, key);
  return item && py::truthy(*item);
}

// `value['type'] | upper`.
std::string upper_type(const json& value) { return py::upper(item_text(value, "type")); }

void append_quoted(std::string* out, std::string_view text) {
  out->append(kToolQuote);
  out->append(text);
  out->append(kToolQuote);
}

// `[<|"|>a<|"|>,<|"|>b<|"|>]` body for `for item in list`; false where Python cannot iterate.
bool append_quoted_list(const json& list, std::string* out) {
  std::vector<std::string> items;
  if (!py::iterate_as_strings(list, &items)) return false;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out->push_back(',');
    append_quoted(out, items[i]);
  }
  return true;
}

// The template's `{%- if add_comma %},{%- else -%}{%- set add_comma = true -%}{% endif -%}`.
void comma(bool* add_comma, std::string* out) {
  if (*add_comma) {
    out->push_back(',');
  } else {
    *add_comma = true;
  }
}

Status format_parameters(const json& properties, int depth, std::string* out);

Status format_items(const json& items, int depth, std::string* out) {
  bool found_first = false;
  for (const auto& [item_key, item_value] : py::dictsort(items)) {
    if (item_value->is_null()) continue;
    if (found_first) out->push_back(',');
    found_first = true;
    if (*item_key == "properties") {
      out->append("properties:{");
      if (item_value->is_object()) GE_RETURN_IF_ERROR(format_parameters(*item_value, depth + 1, out));
      out->push_back('}');
    } else if (*item_key == "required") {
      out->append("required:[");
      if (!append_quoted_list(*item_value, out)) {
        return invalid_argument("render_chat: tool schema 'items.required' is not iterable");
      }
      out->push_back(']');
    } else if (*item_key == "type") {
      out->append("type:");
      if (item_value->is_string()) {
        out->append(format_tool_value(json(py::upper(item_value->get<std::string>())), true));
      } else {
        // `x | map('upper')` yields nothing for a falsy x (0, false) and raises for other
        // non-iterables.
        std::vector<std::string> types;
        if (py::truthy(*item_value) && !py::iterate_as_strings(*item_value, &types)) {
          return invalid_argument("render_chat: tool schema 'items.type' is not iterable");
        }
        json upper_list = json::array();
        for (const auto& t : types) upper_list.push_back(py::upper(t));
        out->append(format_tool_value(upper_list, true));
      }
    } else {
      out->append(*item_key);
      out->push_back(':');
      out->append(format_tool_value(*item_value, true));
    }
  }
  return Status::ok();
}

// format_parameters(properties): one "key:{...}" entry per non-standard key.
Status format_parameters(const json& properties, int depth, std::string* out) {
  if (depth > kMaxSchemaDepth) {
    return invalid_argument("render_chat: tool schema nested deeper than 64 levels");
  }
  if (!properties.is_object()) {
    return invalid_argument("render_chat: tool schema 'properties' is not an object");
  }
  bool found_first = false;
  for (const auto& [key_ptr, value_ptr] : py::dictsort(properties)) {
    const std::string& key = *key_ptr;
    const json& value = *value_ptr;
    if (is_standard_key(key)) continue;
    bool add_comma = false;
    if (found_first) out->push_back(',');
    found_first = true;
    out->append(key);
    out->append(":{");
    if (item_truthy(value, "description")) {
      out->append("description:");
      append_quoted(out, item_text(value, "description"));
      add_comma = true;
    }
    const std::string type = upper_type(value);
    if (type == "STRING") {
      if (item_truthy(value, "enum")) {
        comma(&add_comma, out);
        out->append("enum:");
        out->append(format_tool_value(*py::get_item(value, "enum"), true));
      }
    } else if (type == "ARRAY") {
      const json* items = py::get_item(value, "items");
      if (items && items->is_object() && !items->empty()) {
        comma(&add_comma, out);
        out->append("items:{");
        GE_RETURN_IF_ERROR(format_items(*items, depth, out));
        out->push_back('}');
      }
    }
    if (item_truthy(value, "nullable")) {
      comma(&add_comma, out);
      out->append("nullable:true");
    }
    if (type == "OBJECT") {
      // `value['properties'] is defined and is mapping`, else the property's own keys.
      const json* nested = py::get_item(value, "properties");
      comma(&add_comma, out);
      out->append("properties:{");
      GE_RETURN_IF_ERROR(format_parameters(nested && nested->is_object() ? *nested : value,
                                           depth + 1, out));
      out->push_back('}');
      if (item_truthy(value, "required")) {
        comma(&add_comma, out);
        out->append("required:[");
        if (!append_quoted_list(*py::get_item(value, "required"), out)) {
          return invalid_argument("render_chat: tool schema 'required' is not iterable");
        }
        out->push_back(']');
      }
    }
    comma(&add_comma, out);
    out->append("type:");
    append_quoted(out, type);
    out->push_back('}');
  }
  return Status::ok();
}

}  // namespace

Result<std::string> format_tool_declaration(const json& tool) {
  const json* function = py::get_item(tool, "function");
  if (function == nullptr || !function->is_object()) {
    return invalid_argument(
        "render_chat: each tool must be an object {\"type\": \"function\", \"function\": {...}}");
  }
  std::string out = "declaration:";
  out.append(item_text(*function, "name"));
  out.append("{description:");
  append_quoted(&out, item_text(*function, "description"));
  const json* params = py::get_item(*function, "parameters");
  if (params && py::truthy(*params)) {
    out.append(",parameters:{");
    if (item_truthy(*params, "properties")) {
      out.append("properties:{");
      GE_RETURN_IF_ERROR(format_parameters(*py::get_item(*params, "properties"), 0, &out));
      out.append("},");
    }
    if (item_truthy(*params, "required")) {
      out.append("required:[");
      if (!append_quoted_list(*py::get_item(*params, "required"), &out)) {
        return invalid_argument("render_chat: tool 'parameters.required' is not iterable");
      }
      out.append("],");
    }
    if (item_truthy(*params, "type")) {
      out.append("type:");
      append_quoted(&out, py::upper(item_text(*params, "type")));
      out.push_back('}');
    }
  }
  if (function->contains("response")) {
    const json& response = (*function)["response"];
    out.append(",response:{");
    if (item_truthy(response, "description")) {
      out.append("description:");
      append_quoted(&out, item_text(response, "description"));
      out.push_back(',');
    }
    if (upper_type(response) == "OBJECT") {
      out.append("type:");
      append_quoted(&out, "OBJECT");
      out.push_back('}');
    }
  }
  out.push_back('}');
  return out;
}

}  // namespace ge::chat
