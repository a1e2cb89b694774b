// OpenAI-shaped response bodies: chat.completion (+ chunks), text_completion (+ chunks), usage with
// llama.cpp-style timings, logprobs in both the chat and the legacy completions layout, SSE framing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/completion_stream.h"

namespace ge::server {

struct ResponseMeta {
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;
  std::string model;
};

// Serializes without ever throwing: ill-formed UTF-8 in strings is replaced by U+FFFD.
std::string dump_json(const nlohmann::json& j);
// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& j);

nlohmann::json usage_json(const RequestTiming& t);
nlohmann::json timings_json(const RequestTiming& t);
nlohmann::json tool_call_json(const chat::ToolCall& c);

// Chat layout: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}.
nlohmann::json chat_logprobs_json(const std::vector<LogprobEntry>& entries);
// Legacy completions layout: {tokens, token_logprobs, top_logprobs: [{token: lp}], text_offset};
// `offset` is the text length before the first entry.
nlohmann::json completion_logprobs_json(const std::vector<LogprobEntry>& entries, size_t offset);

// Non-streaming bodies. `out` holds everything the request produced.
nlohmann::json chat_completion_json(const ResponseMeta& meta, const StreamOutput& out, const StreamResult& r,
                                    bool logprobs);
nlohmann::json text_completion_json(const ResponseMeta& meta, const std::string& text, const StreamOutput& out,
                                    const StreamResult& r, bool logprobs);

// One streamed chat chunk with `delta`; finish_reason null unless given.
nlohmann::json chat_chunk_json(const ResponseMeta& meta, nlohmann::json delta, const std::string& finish_reason = "",
                               const nlohmann::json& logprobs = nullptr);
// The delta of one take(): content, reasoning_content and tool calls numbered from `first_tool_index`.
nlohmann::json chat_delta_json(const StreamOutput& out, int first_tool_index);
nlohmann::json text_chunk_json(const ResponseMeta& meta, const std::string& text, const std::string& finish_reason = "",
                               const nlohmann::json& logprobs = nullptr);
// The last chunk of a stream with stream_options.include_usage: no choices, usage and timings.
nlohmann::json usage_chunk_json(const ResponseMeta& meta, const char* object, const RequestTiming& t);

}  // namespace ge::server
