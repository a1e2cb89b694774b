// Request validation without HTTP: accepted fields land in the request, every malformed field gives
// an OpenAI-shaped 400 naming the parameter, and hostile bodies (deep nesting, bad UTF-8) are refused.
#include "server/openai_request.h"

#include <gtest/gtest.h>

namespace ge::server {
namespace {

using nlohmann::json;

RequestLimits limits() {
  RequestLimits l;
  l.n_vocab = 1000;
  return l;
}

std::optional<ApiError> chat(const std::string& text, ChatRequest* out = nullptr) {
  ChatRequest local;
  json body;
  if (auto e = parse_body(text, limits(), &body)) return e;
  return parse_chat_request(body, limits(), SamplingParams(), out ? out : &local);
}

TEST(OpenAiRequest, ChatFieldsAreRead) {
  ChatRequest r;
  auto e = chat(R"({"model": "m", "stream": true, "stream_options": {"include_usage": true},
      "messages": [{"role": "system", "content": "sys"},
                   {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                   {"role": "assistant", "content": null, "reasoning_content": "hmm",
                    "tool_calls": [{"id": "c1", "type": "function",
                                    "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "42"}],
      "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 3, "min_p": 0.1,
      "presence_penalty": 1, "frequency_penalty": -1, "seed": -1, "stop": "END",
      "logprobs": true, "top_logprobs": 4, "logit_bias": {"5": -100, "7": 2.5},
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}},
      "chat_template_kwargs": {"enable_thinking": true}, "user": "ignored"})",
                &r);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(r.options.model, "m");
  EXPECT_TRUE(r.options.stream);
  EXPECT_TRUE(r.options.include_usage);
  EXPECT_EQ(r.options.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.options.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.options.sampling.top_p, 0.9f);
  EXPECT_EQ(r.options.sampling.top_k, 3);
  EXPECT_FLOAT_EQ(r.options.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.options.sampling.presence_penalty, 1.0f);
  EXPECT_FLOAT_EQ(r.options.sampling.frequency_penalty, -1.0f);
  EXPECT_TRUE(r.options.sampling.has_seed);
  EXPECT_EQ(r.options.sampling.seed, UINT64_MAX);  // -1 modulo 2^64
  EXPECT_EQ(r.options.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.options.top_logprobs, 4);
  ASSERT_EQ(r.options.logit_bias.size(), 2u);
  EXPECT_EQ(r.options.logit_bias[0].first, 5);
  EXPECT_FLOAT_EQ(r.options.logit_bias[0].second, -100.0f);
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.messages[2].reasoning, "hmm");
  ASSERT_EQ(r.messages[2].tool_calls.size(), 1u);
  EXPECT_EQ(r.messages[2].tool_calls[0].name, "f");
  EXPECT_EQ(r.messages[2].tool_calls[0].arguments, json({{"x", 1}}));
  EXPECT_EQ(r.messages[3].tool_call_id, "c1");
  EXPECT_EQ(r.tool_choice, ToolChoice::kNamed);
  EXPECT_EQ(r.tool_name, "f");
  EXPECT_TRUE(r.enable_thinking);
}

TEST(OpenAiRequest, ChoicesAndResponseFormat) {
  const std::string m = R"("messages": [{"role": "user", "content": "x"}])";
  RequestLimits l = limits();
  l.max_n = 4;
  auto parse = [&](const std::string& text, ChatRequest* r) {
    json body;
    EXPECT_FALSE(parse_body(text, l, &body));
    return parse_chat_request(body, l, SamplingParams(), r);
  };
  ChatRequest r;
  EXPECT_FALSE(parse("{" + m + R"(, "n": 4, "ignore_eos": true, "response_format": {"type": "text"}})", &r));
  EXPECT_EQ(r.options.n, 4);
  EXPECT_TRUE(r.options.ignore_eos);
  EXPECT_EQ(r.options.json_schema, nullptr);
  ChatRequest too_many;
  auto e = parse("{" + m + R"(, "n": 5})", &too_many);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "n");
  EXPECT_NE(e->message.find("[1, 4]"), std::string::npos) << e->message;
  ChatRequest obj;
  EXPECT_FALSE(parse("{" + m + R"(, "response_format": {"type": "json_object"}})", &obj));
  ASSERT_NE(obj.options.json_schema, nullptr);
  EXPECT_EQ(obj.options.json_schema->nodes[0].kind, JsonSchema::Kind::kObject);
  ChatRequest schema;
  EXPECT_FALSE(parse("{" + m + R"(, "response_format": {"type": "json_schema", "json_schema": {"name": "p",
      "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}})", &schema));
  ASSERT_NE(schema.options.json_schema, nullptr);
  const JsonSchema& js = *schema.options.json_schema;
  const JsonSchema::Node& root = js.nodes[static_cast<size_t>(js.root)];
  ASSERT_EQ(root.keys, std::vector<std::string>{"a"});
  EXPECT_TRUE(root.required[0]);
  EXPECT_EQ(js.nodes[static_cast<size_t>(root.values[0])].kind, JsonSchema::Kind::kInteger);
  // Thinking and forced tool calls do not combine with JSON output.
  ChatRequest think;
  e = parse("{" + m + R"(, "chat_template_kwargs": {"enable_thinking": true}, "response_format": {"type": "json_object"}})",
            &think);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "response_format");
}

TEST(OpenAiRequest, DefaultsComeFromTheEngine) {
  SamplingParams d;
  d.temperature = 0.3f;
  d.top_k = 9;
  ChatRequest r;
  json body = json::parse(R"({"messages": [{"role": "user", "content": "x"}], "top_k": 2})");
  ASSERT_FALSE(parse_chat_request(body, limits(), d, &r));
  EXPECT_FLOAT_EQ(r.options.sampling.temperature, 0.3f);
  EXPECT_EQ(r.options.sampling.top_k, 2);
  EXPECT_FALSE(r.options.max_tokens.has_value());
  EXPECT_EQ(r.options.top_logprobs, -1);
}

TEST(OpenAiRequest, BadFieldsNameTheirParameter) {
  const std::string m = R"("messages": [{"role": "user", "content": "x"}])";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{" + m + R"(, "temperature": "hot"})", "temperature"},
      {"{" + m + R"(, "temperature": 2.5})", "temperature"},
      {"{" + m + R"(, "top_p": 0})", "top_p"},
      {"{" + m + R"(, "top_k": -1})", "top_k"},
      {"{" + m + R"(, "max_tokens": 0})", "max_tokens"},
      {"{" + m + R"(, "max_tokens": 99999999999})", "max_tokens"},
      {"{" + m + R"(, "max_tokens": 18446744073709551615})", "max_tokens"},
      {"{" + m + R"(, "n": 2})", "n"},
      {"{" + m + R"(, "seed": 1.5})", "seed"},
      {"{" + m + R"(, "seed": 123456789012345678901234567890})", "seed"},
      {"{" + m + R"(, "stop": [1]})", "stop"},
      {"{" + m + R"(, "logit_bias": {"1000": 1}})", "logit_bias"},
      {"{" + m + R"(, "logit_bias": {"01x": 1}})", "logit_bias"},
      {"{" + m + R"(, "logit_bias": {"1": 1e300}})", "logit_bias"},
      {"{" + m + R"(, "top_logprobs": 3})", "top_logprobs"},
      {"{" + m + R"(, "logprobs": true, "top_logprobs": 21})", "top_logprobs"},
      {"{" + m + R"(, "tools": [{"type": "function", "function": {"name": 3}}]})", "tools[0].function.name"},
      {"{" + m + R"(, "tool_choice": "required"})", "tool_choice"},
      {"{" + m + R"(, "response_format": {"type": "json_schema"}})", "response_format.json_schema"},
      {"{" + m + R"(, "response_format": {"type": "yaml"}})", "response_format"},
      {"{" + m + R"(, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object",
          "properties": {"a": {"minLength": 1}}}}}})", "response_format.json_schema"},
      {"{" + m + R"(, "ignore_eos": 1})", "ignore_eos"},
      {"{" + m + R"(, "chat_template_kwargs": {"enable_thinking": 1}})", "chat_template_kwargs.enable_thinking"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content"},
      {R"({"messages": [{"role": "robot", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]})",
       "messages[0].tool_calls[0].function.name"},
      {R"({"messages": []})", "messages"},
      {R"({})", "messages"},
  };
  for (const auto& [text, param] : cases) {
    auto e = chat(text);
    ASSERT_TRUE(e) << text;
    EXPECT_EQ(e->http_status, 400) << text;
    EXPECT_EQ(e->param, param) << text;
    const json b = e->body();
    EXPECT_EQ(b["error"]["type"], "invalid_request_error");
    EXPECT_EQ(b["error"]["param"], param);
    EXPECT_TRUE(b["error"].contains("code"));
  }
}

TEST(OpenAiRequest, HostileBodies) {
  json out;
  EXPECT_TRUE(parse_body(std::string(100, '['), limits(), &out));  // depth
  EXPECT_TRUE(parse_body(std::string(10000, '{'), limits(), &out));
  // Brackets inside strings do not count as nesting.
  EXPECT_FALSE(parse_body(R"({"a": ")" + std::string(1000, '[') + R"("})", limits(), &out));
  EXPECT_TRUE(parse_body("{\"a\": \"\xff\"}", limits(), &out));   // ill-formed UTF-8
  EXPECT_TRUE(parse_body(R"({"a": "\ud800"})", limits(), &out));  // lone surrogate
  EXPECT_TRUE(parse_body(R"({"a": NaN})", limits(), &out));
  EXPECT_TRUE(parse_body("", limits(), &out));
  EXPECT_TRUE(parse_body("[]", limits(), &out));
  EXPECT_FALSE(parse_body(R"({"a": "\ud83d\ude00"})", limits(), &out));  // a proper surrogate pair
}

TEST(OpenAiRequest, CompletionPrompts) {
  auto parse = [](const std::string& text, CompletionRequest* r) {
    json body = json::parse(text);
    return parse_completion_request(body, limits(), SamplingParams(), r);
  };
  CompletionRequest r;
  ASSERT_FALSE(parse(R"({"prompt": "hi", "echo": true, "logprobs": 2})", &r));
  EXPECT_EQ(r.prompt_text, "hi");
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.options.top_logprobs, 2);
  EXPECT_EQ(r.options.max_tokens, 16);  // OpenAI's default for this endpoint
  r = CompletionRequest();
  ASSERT_FALSE(parse(R"({"prompt": [[2, 5, 999]]})", &r));
  EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{2, 5, 999}));
  r = CompletionRequest();
  ASSERT_FALSE(parse(R"({"prompt": ["one"]})", &r));
  EXPECT_EQ(r.prompt_text, "one");
  for (const char* bad :
       {R"({"prompt": [1000]})", R"({"prompt": [-1]})", R"({"prompt": [1.0]})", R"({"prompt": ["a", "b"]})",
        R"({"prompt": {}})", R"({"prompt": []})", R"({"prompt": [[]]})", R"({"prompt": "x", "best_of": 3})",
        R"({"prompt": "x", "suffix": "s"})", R"({"prompt": [18446744073709551615]})"}) {
    CompletionRequest c;
    auto e = parse(bad, &c);
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->http_status, 400);
  }
}

TEST(OpenAiRequest, TokenizeAndDetokenize) {
  TokenizeRequest t;
  ASSERT_FALSE(parse_tokenize_request(json::parse(R"({"content": "x", "with_pieces": true})"), &t));
  EXPECT_TRUE(t.with_pieces);
  EXPECT_TRUE(t.parse_special);
  EXPECT_TRUE(parse_tokenize_request(json::parse(R"({"content": 1})"), &t));
  DetokenizeRequest d;
  ASSERT_FALSE(parse_detokenize_request(json::parse(R"({"tokens": [0, 999]})"), limits(), &d));
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{0, 999}));
  DetokenizeRequest bad;
  EXPECT_TRUE(parse_detokenize_request(json::parse(R"({"tokens": [1000]})"), limits(), &bad));
  EXPECT_TRUE(parse_detokenize_request(json::parse(R"({"tokens": ["1"]})"), limits(), &bad));
}

}  // namespace
}  // namespace ge::server
