// OpenAI-style request bodies -> validated requests: every field the server reads is type- and
// range-checked, and a failure becomes an OpenAI-shaped error naming the parameter. No HTTP here.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/chat_template.h"
#include "sampling/sampler.h"
#include "server/json_constraint.h"

namespace ge::server {

// {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;                                // empty -> null
  std::string code;                                 // empty -> null
  nlohmann::json extra = nlohmann::json::object();  // more members of "error" (n_prompt_tokens, ...)
  nlohmann::json body() const;
};

ApiError invalid_request(std::string message, std::string param = "", std::string code = "");

// Limits on what one request may ask for (reliability.md §3: explicit caps on every field).
struct RequestLimits {
  int64_t n_vocab = 0;
  int32_t max_json_depth = 64;
  int32_t max_stop = 16;
  int32_t max_stop_bytes = 512;
  int32_t max_logit_bias = 1024;
  int32_t max_tools = 128;
  int32_t max_messages = 4096;
  int32_t max_top_logprobs = 20;
  int64_t max_prompt_ids = 1 << 22;  // token arrays in /v1/completions and /detokenize
  int32_t max_n = 1;                 // choices per request (the server's slot count)
};

// Fields shared by chat and text completions.
struct GenerationOptions {
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<int64_t> max_tokens;
  SamplingParams sampling;
  std::vector<std::string> stop;
  std::vector<std::pair<int32_t, float>> logit_bias;
  int32_t top_logprobs = -1;  // -1: no logprobs
  // Choices, each its own sequence sampled with seed + index (when a seed is given).
  int32_t n = 1;
  bool ignore_eos = false;  // generate max_tokens whatever the model samples (load tests)
  // response_format json_object / json_schema: the reply is constrained to this; null for text.
  std::shared_ptr<const JsonSchema> json_schema;
};

enum class ToolChoice { kAuto, kNone, kRequired, kNamed };

struct ChatRequest {
  GenerationOptions options;
  std::vector<chat::Message> messages;
  nlohmann::json tools = nlohmann::json::array();
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_name;  // kNamed
  bool enable_thinking = false;
};

struct CompletionRequest {
  GenerationOptions options;
  std::optional<std::string> prompt_text;  // a string prompt, or
  std::vector<int32_t> prompt_tokens;      // a token-id prompt
  bool echo = false;
};

struct TokenizeRequest {
  std::string content;
  bool add_special = false;
  bool parse_special = true;
  bool with_pieces = false;
};

struct DetokenizeRequest {
  std::vector<int32_t> tokens;
};

// Parses a body as a JSON object after checking its nesting depth (deeply nested input is refused
// before the parser sees it). nlohmann rejects ill-formed UTF-8 and lone surrogate escapes.
std::optional<ApiError> parse_body(std::string_view body, const RequestLimits& limits, nlohmann::json* out);

// `defaults` are the engine's sampling defaults; request fields override them.
std::optional<ApiError> parse_chat_request(const nlohmann::json& body, const RequestLimits& limits,
                                           const SamplingParams& defaults, ChatRequest* out);
std::optional<ApiError> parse_completion_request(const nlohmann::json& body, const RequestLimits& limits,
                                                 const SamplingParams& defaults, CompletionRequest* out);
std::optional<ApiError> parse_tokenize_request(const nlohmann::json& body, TokenizeRequest* out);
std::optional<ApiError> parse_detokenize_request(const nlohmann::json& body, const RequestLimits& limits,
                                                 DetokenizeRequest* out);

}  // namespace ge::server
