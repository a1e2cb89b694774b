// Response JSON builders.
#include "server/openai_response.h"

namespace ge::server {

using nlohmann::json;

std::string dump_json(const json& j) {
  try {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (const json::exception&) {
    return R"({"error":{"message":"response serialization failed","type":"server_error","param":null,"code":null}})";
  }
}

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

json usage_json(const RequestTiming& t) {
  return json{{"prompt_tokens", t.prompt_tokens},
              {"completion_tokens", t.generated_tokens},
              {"total_tokens", t.prompt_tokens + t.generated_tokens},
              {"prompt_tokens_details", {{"cached_tokens", t.cached_tokens}}}};
}

json timings_json(const RequestTiming& t) {
  const int64_t prompt_n = t.prompt_tokens - t.cached_tokens;
  auto rate = [](double n, double ms) { return ms > 0 ? n * 1000.0 / ms : 0.0; };
  return json{
      {"cache_n", t.cached_tokens},
      {"prompt_n", prompt_n},
      {"prompt_ms", t.prompt_ms},
      {"prompt_per_second", rate(static_cast<double>(prompt_n), t.prompt_ms)},
      {"predicted_n", t.generated_tokens},
      {"predicted_ms", t.decode_ms},
      // The first token comes from the prompt's logits; decode steps make the rest.
      {"predicted_per_second", rate(static_cast<double>(std::max<int64_t>(0, t.generated_tokens - 1)), t.decode_ms)},
      {"queue_ms", t.queue_ms},
      {"ttft_ms", t.ttft_ms}};
}

json tool_call_json(const chat::ToolCall& c) {
  const std::string args = c.arguments.is_string() ? c.arguments.get<std::string>() : dump_json(c.arguments);
  return json{{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", args}}}};
}

namespace {

json bytes_json(const std::vector<uint8_t>& b) {
  json a = json::array();
  for (uint8_t x : b) a.push_back(x);
  return a;
}

}  // namespace

json chat_logprobs_json(const std::vector<LogprobEntry>& entries) {
  json content = json::array();
  for (const LogprobEntry& e : entries) {
    json top = json::array();
    for (const LogprobEntry& t : e.top)
      top.push_back(json{{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes_json(t.bytes)}});
    content.push_back(
        json{{"token", e.token}, {"logprob", e.logprob}, {"bytes", bytes_json(e.bytes)}, {"top_logprobs", top}});
  }
  return json{{"content", content}};
}

json completion_logprobs_json(const std::vector<LogprobEntry>& entries, size_t offset) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (const LogprobEntry& e : entries) {
    tokens.push_back(e.token);
    lps.push_back(e.logprob);
    json top = json::object();
    for (const LogprobEntry& t : e.top) top[t.token] = t.logprob;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += e.token.size();
  }
  return json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_completion_json(const ResponseMeta& meta, const StreamOutput& out, const StreamResult& r, bool logprobs) {
  json msg = {{"role", "assistant"}};
  msg["content"] = out.content.empty() && !out.tool_calls.empty() ? json(nullptr) : json(out.content);
  if (!out.reasoning.empty()) msg["reasoning_content"] = out.reasoning;
  if (!out.tool_calls.empty()) {
    json calls = json::array();
    for (const chat::ToolCall& c : out.tool_calls) calls.push_back(tool_call_json(c));
    msg["tool_calls"] = calls;
  }
  json choice = {{"index", 0}, {"message", msg}, {"finish_reason", r.finish_reason()}};
  choice["logprobs"] = logprobs ? chat_logprobs_json(out.logprobs) : json(nullptr);
  return json{{"id", meta.id},
              {"object", "chat.completion"},
              {"created", meta.created},
              {"model", meta.model},
              {"choices", json::array({choice})},
              {"usage", usage_json(r.timing)},
              {"timings", timings_json(r.timing)},
              {"system_fingerprint", "gemma-engine"}};
}

json text_completion_json(const ResponseMeta& meta, const std::string& text, const StreamOutput& out,
                          const StreamResult& r, bool logprobs) {
  json choice = {{"index", 0}, {"text", text}, {"finish_reason", r.finish_reason()}};
  choice["logprobs"] =
      logprobs ? completion_logprobs_json(out.logprobs, text.size() - out.content.size()) : json(nullptr);
  return json{{"id", meta.id},
              {"object", "text_completion"},
              {"created", meta.created},
              {"model", meta.model},
              {"choices", json::array({choice})},
              {"usage", usage_json(r.timing)},
              {"timings", timings_json(r.timing)},
              {"system_fingerprint", "gemma-engine"}};
}

json chat_chunk_json(const ResponseMeta& meta, json delta, const std::string& finish_reason, const json& logprobs) {
  json choice = {{"index", 0}, {"delta", std::move(delta)}, {"logprobs", logprobs}};
  choice["finish_reason"] = finish_reason.empty() ? json(nullptr) : json(finish_reason);
  return json{{"id", meta.id},       {"object", "chat.completion.chunk"},    {"created", meta.created},
              {"model", meta.model}, {"system_fingerprint", "gemma-engine"}, {"choices", json::array({choice})}};
}

json chat_delta_json(const StreamOutput& out, int first_tool_index) {
  json d = json::object();
  if (!out.content.empty()) d["content"] = out.content;
  if (!out.reasoning.empty()) d["reasoning_content"] = out.reasoning;
  if (!out.tool_calls.empty()) {
    json calls = json::array();
    int index = first_tool_index;
    for (const chat::ToolCall& c : out.tool_calls) {
      json j = tool_call_json(c);
      j["index"] = index++;
      calls.push_back(j);
    }
    d["tool_calls"] = calls;
  }
  return d;
}

json text_chunk_json(const ResponseMeta& meta, const std::string& text, const std::string& finish_reason,
                     const json& logprobs) {
  json choice = {{"index", 0}, {"text", text}, {"logprobs", logprobs}};
  choice["finish_reason"] = finish_reason.empty() ? json(nullptr) : json(finish_reason);
  return json{{"id", meta.id},       {"object", "text_completion"},          {"created", meta.created},
              {"model", meta.model}, {"system_fingerprint", "gemma-engine"}, {"choices", json::array({choice})}};
}

json usage_chunk_json(const ResponseMeta& meta, const char* object, const RequestTiming& t) {
  return json{{"id", meta.id},
              {"object", object},
              {"created", meta.created},
              {"model", meta.model},
              {"choices", json::array()},
              {"usage", usage_json(t)},
              {"timings", timings_json(t)}};
}

}  // namespace ge::server
