// render_chat: the Gemma 3 and Gemma 4 chat templates re-expressed in C++, statement by statement,
// so that the output is byte-identical to jinja2 (checked against tests/data/chat fixtures).
#include "chat/chat_template.h"

#include <string_view>
#include <utility>
#include <vector>

#include "chat/python_text.h"
#include "chat/tool_call_syntax.h"
#include "chat/tool_declaration.h"

namespace ge::chat {
namespace {

using nlohmann::json;

// Every recursive walk below (schema rendering, Python repr, tool value syntax) is bounded by
// this: deeper JSON is refused up front, checked without recursion.
constexpr size_t kMaxJsonDepth = 128;

bool json_depth_within(const json& root, size_t limit) {
  std::vector<std::pair<const json*, size_t>> stack = {{&root, 1}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    if (depth > limit) return false;
    for (const auto& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return true;
}

bool is_known_role(std::string_view role) {
  return role == "system" || role == "developer" || role == "user" || role == "assistant" ||
         role == "tool";
}

Status check_roles(const std::vector<Message>& messages) {
  if (messages.empty()) return invalid_argument("render_chat: the conversation has no messages");
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!is_known_role(messages[i].role)) {
      return invalid_argument("render_chat: message " + std::to_string(i) + " has unknown role '" +
                              messages[i].role +
                              "' (expected system, developer, user, assistant or tool)");
    }
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Gemma 3 (google/gemma-3-*-it tokenizer_config chat_template).

Result<std::string> render_gemma3(const std::vector<Message>& messages, const ChatOptions& opts) {
  if (opts.tools.is_array() ? !opts.tools.empty() : !opts.tools.is_null()) {
    return invalid_argument("render_chat: the Gemma 3 chat format has no tool declarations");
  }
  std::string out = "<bos>";
  // The template prepends the first system message, untrimmed, to the first user turn.
  std::string first_user_prefix;
  size_t begin = 0;
  if (messages[0].role == "system") {
    first_user_prefix = messages[0].content + "\n\n";
    begin = 1;
  }
  for (size_t i = begin; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const size_t index = i - begin;
    if (m.role != "user" && m.role != "assistant") {
      return invalid_argument("render_chat: the Gemma 3 chat format has no '" + m.role +
                              "' turn (message " + std::to_string(i) +
                              "); only a leading system message, then user/assistant");
    }
    if ((m.role == "user") != (index % 2 == 0)) {
      return invalid_argument(
          "render_chat: Conversation roles must alternate user/assistant/user/assistant/... "
          "(message " +
          std::to_string(i) + " is '" + m.role + "')");
    }
    if (!m.tool_calls.empty()) {
      return invalid_argument("render_chat: the Gemma 3 chat format has no tool calls (message " +
                              std::to_string(i) + ")");
    }
    out += "<start_of_turn>";
    out += m.role == "assistant" ? "model" : "user";
    out += "\n";
    if (i == begin) out += first_user_prefix;
    out += py::strip(m.content);
    out += "<end_of_turn>\n";
  }
  if (opts.add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Gemma 4 (google/gemma-4-31B-it chat_template.jinja).

// strip_thinking(text): drops every "<|channel>...<channel|>" span, then trims.
std::string strip_thinking(std::string_view text) {
  static constexpr std::string_view kOpen = "<|channel>";
  static constexpr std::string_view kClose = "<channel|>";
  std::string result;
  size_t pos = 0;
  while (true) {  // text.split('<channel|>')
    const size_t close = text.find(kClose, pos);
    const std::string_view part =
        text.substr(pos, close == std::string_view::npos ? std::string_view::npos : close - pos);
    const size_t open = part.find(kOpen);
    result.append(open == std::string_view::npos ? part : part.substr(0, open));
    if (close == std::string_view::npos) break;
    pos = close + kClose.size();
  }
  return std::string(py::strip(result));
}

std::string tool_response_block(std::string_view tool_name, std::string_view body) {
  std::string out = "<|tool_response>response:";
  out += tool_name;
  out += "{value:";
  out += format_tool_value(json(std::string(body)), /*escape_keys=*/false);
  out += "}<tool_response|>";
  return out;
}

enum class PrevType { kNone, kThink, kTool, kToolCall, kToolResponse };

Result<std::string> render_gemma4(const std::vector<Message>& messages, const ChatOptions& opts) {
  if (!opts.tools.is_null() && !opts.tools.is_array()) {
    return invalid_argument("render_chat: 'tools' must be an array of tool objects");
  }
  const bool has_tools = opts.tools.is_array() && !opts.tools.empty();
  std::string out = "<bos>";
  PrevType prev_type = PrevType::kNone;
  size_t begin = 0;
  const bool first_is_system = messages[0].role == "system" || messages[0].role == "developer";
  if (opts.enable_thinking || has_tools || first_is_system) {
    out += "<|turn>system\n";
    if (opts.enable_thinking) {
      out += "<|think|>\n";
      prev_type = PrevType::kThink;
    }
    if (first_is_system) {
      out += py::strip(messages[0].content);
      begin = 1;
    }
    if (has_tools) {
      for (size_t t = 0; t < opts.tools.size(); ++t) {
        auto decl = format_tool_declaration(opts.tools[t]);
        if (!decl.is_ok()) {
          return invalid_argument(decl.status().message() + " (tools[" + std::to_string(t) + "])");
        }
        out += "<|tool>";
        out += py::strip(decl.value());
        out += "<tool|>";
      }
      prev_type = PrevType::kTool;
    }
    out += "<turn|>\n";
  }

  // Indices below are positions in loop_messages (the messages after a leading system one).
  const size_t n = messages.size() - begin;
  auto at = [&](size_t k) -> const Message& { return messages[begin + k]; };
  long last_user_idx = -1;
  for (size_t k = 0; k < n; ++k) {
    if (at(k).role == "user") last_user_idx = static_cast<long>(k);
  }

  for (size_t k = 0; k < n; ++k) {
    const Message& m = at(k);
    if (m.role == "tool") continue;  // folded into the preceding assistant message below
    prev_type = PrevType::kNone;
    const std::string role = m.role == "assistant" ? "model" : m.role;

    // A model message right after another assistant message (tool results in between are
    // skipped) continues the same model turn.
    const Message* prev_non_tool = nullptr;
    for (size_t j = k; j-- > 0;) {
      if (at(j).role != "tool") {
        prev_non_tool = &at(j);
        break;
      }
    }
    const bool continue_same_turn =
        role == "model" && prev_non_tool != nullptr && prev_non_tool->role == "assistant";
    if (!continue_same_turn) out += "<|turn>" + role + "\n";

    if (!m.reasoning.empty() && static_cast<long>(k) > last_user_idx && !m.tool_calls.empty()) {
      out += "<|channel>thought\n" + m.reasoning + "\n<channel|>";
    }

    if (!m.tool_calls.empty()) {
      for (const ToolCall& call : m.tool_calls) {
        out += "<|tool_call>call:" + call.name + "{";
        out += format_tool_call_arguments(call.arguments);
        out += "}<tool_call|>";
      }
      prev_type = PrevType::kToolCall;
    }

    bool wrote_tool_response = false;
    if (!m.tool_calls.empty()) {
      // Forward-scan the consecutive tool messages that answer these calls.
      for (size_t r = k + 1; r < n && at(r).role == "tool"; ++r) {
        const Message& result = at(r);
        const std::string* name = result.tool_name.empty() ? nullptr : &result.tool_name;
        for (const ToolCall& call : m.tool_calls) {
          if (call.id == result.tool_call_id) name = &call.name;  // the last match wins
        }
        if (name == nullptr) {
          return invalid_argument("render_chat: tool message " + std::to_string(begin + r) +
                                  " names no function: set tool_name or a tool_call_id that "
                                  "matches a preceding tool call");
        }
        out += tool_response_block(*name, result.content);
        wrote_tool_response = true;
        prev_type = PrevType::kToolResponse;
      }
    }

    out += role == "model" ? strip_thinking(m.content) : std::string(py::strip(m.content));

    if (prev_type == PrevType::kToolCall && !wrote_tool_response) {
      out += "<|tool_response>";
    } else if (!(wrote_tool_response && m.content.empty())) {
      out += "<turn|>\n";
    }
  }

  if (opts.add_generation_prompt && prev_type != PrevType::kToolResponse &&
      prev_type != PrevType::kToolCall) {
    out += "<|turn>model\n";
    if (!opts.enable_thinking) out += "<|channel>thought\n<channel|>";
  }
  return out;
}

}  // namespace

Result<std::string> render_chat(ChatFormat format, const std::vector<Message>& messages,
                                const ChatOptions& opts) {
  GE_RETURN_IF_ERROR(check_roles(messages));
  if (!json_depth_within(opts.tools, kMaxJsonDepth)) {
    return invalid_argument("render_chat: 'tools' is nested deeper than 128 levels");
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    for (const ToolCall& call : messages[i].tool_calls) {
      if (!json_depth_within(call.arguments, kMaxJsonDepth)) {
        return invalid_argument("render_chat: tool call arguments in message " +
                                std::to_string(i) + " are nested deeper than 128 levels");
      }
    }
  }
  switch (format) {
    case ChatFormat::kGemma3:
      return render_gemma3(messages, opts);
    case ChatFormat::kGemma4:
      return render_gemma4(messages, opts);
  }
  return invalid_argument("render_chat: unknown chat format");
}

const std::vector<std::string>& stop_token_texts(ChatFormat format) {
  static const std::vector<std::string> kGemma3 = {"<eos>", "<end_of_turn>"};
  static const std::vector<std::string> kGemma4 = {"<eos>", "<turn|>", "<|tool_response>"};
  return format == ChatFormat::kGemma3 ? kGemma3 : kGemma4;
}

}  // namespace ge::chat
