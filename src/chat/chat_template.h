// Chat turns -> prompt text for Gemma 3 and Gemma 4, byte-identical to the published Jinja chat
// templates rendered by Python jinja2 (as transformers' apply_chat_template does). Works on text
// only: the caller tokenizes the result with special-token parsing on.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ge::chat {

struct ToolCall {
  std::string id;
  std::string name;
  nlohmann::json arguments;  // usually an object; a string is inserted verbatim by the template
};

struct Message {
  std::string role;  // "system" | "developer" | "user" | "assistant" | "tool"
  std::string content;
  std::string reasoning;             // assistant thoughts, if any
  std::vector<ToolCall> tool_calls;  // assistant
  std::string tool_name;             // tool results: the function that produced them
  std::string tool_call_id;          // tool results: which call they answer
};

struct ChatOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = false;
  nlohmann::json tools = nlohmann::json::array();  // OpenAI-style [{type, function:{name, ...}}]
};

enum class ChatFormat { kGemma3, kGemma4 };

// Renders the conversation as the model's prompt (it starts with "<bos>").
//
// kGemma4 follows google/gemma-4-31B-it's chat_template.jinja (the revision shipped in
// shared/data/chat-templates/google-gemma-4-31B-it.jinja, which llama.cpp and ollama call the
// canonical one: tool results as role "tool" messages are folded into the model turn). kGemma3
// follows the google/gemma-3-*-it tokenizer_config chat_template (tests/data/chat/gemma3.jinja).
//
// The template sees each Message as {"role", "content"} plus, when non-empty, "reasoning",
// "tool_calls" ([{"id"?, "type": "function", "function": {"name", "arguments"}}]), "name" (from
// tool_name) and "tool_call_id"; empty strings are left out. Errors (kInvalidArgument):
//   * no messages; a role outside the five above;
//   * tools or tool-call arguments nested deeper than 128 levels (jinja2 would hit Python's
//     recursion limit);
//   * where the template raises: Gemma 3 roles not alternating user/assistant, a Gemma 4 tool
//     result whose call cannot be named (no tool_name and no matching tool_call_id), malformed
//     tool declarations;
//   * Gemma 3 has no tool or developer role: tools, tool calls, "tool" and "developer" messages
//     and a system message after the first are rejected rather than silently dropped.
// Known limits of byte identity: keys equal up to case keep nlohmann's byte order (Python keeps
// insertion order); case mapping (dictsort's lower(), schema types' upper()) covers ASCII,
// Latin-1, Greek and basic Cyrillic only; Python repr() of non-ASCII strings escapes a fixed list
// of non-printable code points (python_text.h).
Result<std::string> render_chat(ChatFormat format, const std::vector<Message>& messages,
                                const ChatOptions& opts);

// Text of the tokens that end a reply: Gemma 3 {"<eos>", "<end_of_turn>"}; Gemma 4 {"<eos>",
// "<turn|>", "<|tool_response>"} (the last one: the model yields after emitting tool calls).
const std::vector<std::string>& stop_token_texts(ChatFormat format);

}  // namespace ge::chat
