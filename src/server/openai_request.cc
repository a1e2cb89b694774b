// Request validation for /v1/chat/completions, /v1/completions, /tokenize and /detokenize.
#include "server/openai_request.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace ge::server {

using nlohmann::json;

json ApiError::body() const {
  json e = extra.is_object() ? extra : json::object();
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? json(nullptr) : json(param);
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return json{{"error", e}};
}

ApiError invalid_request(std::string message, std::string param, std::string code) {
  ApiError e;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

namespace {

// Reads optional members of one JSON object with type and range checks. Absent or null members
// keep the caller's default. The first failure is kept; later calls then do nothing.
class Fields {
 public:
  Fields(const json& obj, std::string prefix = "") : obj_(obj), prefix_(std::move(prefix)) {}

  const json* find(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const char* key) const { return find(key) != nullptr; }

  void boolean(const char* key, bool* out) {
    const json* v = find(key);
    if (!v || error_) return;
    if (!v->is_boolean()) return fail(key, "must be a boolean");
    *out = v->get<bool>();
  }
  void string(const char* key, std::string* out, size_t max_bytes = 1 << 20) {
    const json* v = find(key);
    if (!v || error_) return;
    if (!v->is_string()) return fail(key, "must be a string");
    if (v->get_ref<const std::string&>().size() > max_bytes)
      return fail(key, "is longer than " + std::to_string(max_bytes) + " bytes");
    *out = v->get<std::string>();
  }
  void integer(const char* key, int64_t lo, int64_t hi, std::optional<int64_t>* out) {
    const json* v = find(key);
    if (!v || error_) return;
    // Integers beyond int64 parse as unsigned or as floating point: both are out of range here.
    if (!v->is_number_integer() || (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)))
      return fail(key, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi)
      return fail(key, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                           std::to_string(x));
    *out = x;
  }
  void integer(const char* key, int64_t lo, int64_t hi, int32_t* out) {
    std::optional<int64_t> x;
    integer(key, lo, hi, &x);
    if (x) *out = static_cast<int32_t>(*x);
  }
  // lo_open: the lower bound itself is refused.
  void number(const char* key, double lo, double hi, float* out, bool lo_open = false) {
    const json* v = find(key);
    if (!v || error_) return;
    const std::string range = std::string(lo_open ? "(" : "[") + fmt(lo) + ", " + fmt(hi) + "]";
    if (!v->is_number()) return fail(key, "must be a number in " + range);
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo)) return fail(key, "must be a number in " + range);
    *out = static_cast<float>(x);
  }

  void fail(const std::string& key, const std::string& what) {
    if (error_) return;
    error_ = invalid_request("'" + prefix_ + key + "' " + what, prefix_ + key);
  }
  void fail_with(ApiError e) {
    if (!error_) error_ = std::move(e);
  }
  std::optional<ApiError>& error() { return error_; }

 private:
  static std::string fmt(double v) {
    std::string s = std::to_string(v);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  const json& obj_;
  std::string prefix_;
  std::optional<ApiError> error_;
};

// Fields shared by both completion endpoints.
void parse_generation_options(Fields& f, const json& body, const RequestLimits& limits, const SamplingParams& defaults,
                              GenerationOptions* o) {
  o->sampling = defaults;
  f.string("model", &o->model, 1024);
  f.boolean("stream", &o->stream);
  if (const json* so = f.find("stream_options")) {
    if (!so->is_object()) {
      f.fail("stream_options", "must be an object");
    } else {
      Fields sf(*so, "stream_options.");
      sf.boolean("include_usage", &o->include_usage);
      if (sf.error()) f.fail_with(*sf.error());
    }
  }
  constexpr int64_t kMaxTokens = std::numeric_limits<int32_t>::max();
  f.integer("max_tokens", 1, kMaxTokens, &o->max_tokens);
  f.integer("max_completion_tokens", 1, kMaxTokens, &o->max_tokens);
  SamplingParams& s = o->sampling;
  f.number("temperature", 0.0, 2.0, &s.temperature);
  f.number("top_p", 0.0, 1.0, &s.top_p, /*lo_open=*/true);
  f.integer("top_k", 0, 1 << 24, &s.top_k);
  f.number("min_p", 0.0, 1.0, &s.min_p);
  f.number("presence_penalty", -2.0, 2.0, &s.presence_penalty);
  f.number("frequency_penalty", -2.0, 2.0, &s.frequency_penalty);
  f.number("repetition_penalty", 0.0, 10.0, &s.repetition_penalty, true);
  f.number("repeat_penalty", 0.0, 10.0, &s.repetition_penalty, true);
  if (const json* seed = f.find("seed")) {
    if (!seed->is_number_integer()) {
      f.fail("seed", "must be an integer in [-2^63, 2^64 - 1]");
    } else {
      // Negative seeds (some clients send -1) are taken modulo 2^64 like any other value.
      s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
      s.has_seed = true;
    }
  }
  f.integer("n", 1, std::max(1, limits.max_n), &o->n);
  f.boolean("ignore_eos", &o->ignore_eos);

  if (const json* stop = f.find("stop")) {
    std::vector<std::string> stops;
    if (stop->is_string()) {
      stops.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > static_cast<size_t>(limits.max_stop))
        f.fail("stop", "has more than " + std::to_string(limits.max_stop) + " entries");
      for (const json& x : *stop) {
        if (!x.is_string()) {
          f.fail("stop", "must be a string or an array of strings");
          break;
        }
        stops.push_back(x.get<std::string>());
      }
    } else {
      f.fail("stop", "must be a string or an array of strings");
    }
    for (const std::string& x : stops)
      if (x.size() > static_cast<size_t>(limits.max_stop_bytes))
        f.fail("stop", "entries must be at most " + std::to_string(limits.max_stop_bytes) + " bytes");
    for (std::string& x : stops)
      if (!x.empty()) o->stop.push_back(std::move(x));
  }

  if (const json* lb = f.find("logit_bias")) {
    if (!lb->is_object()) {
      f.fail("logit_bias", "must be an object mapping token ids to numbers");
    } else if (lb->size() > static_cast<size_t>(limits.max_logit_bias)) {
      f.fail("logit_bias", "has more than " + std::to_string(limits.max_logit_bias) + " entries");
    } else {
      for (auto it = lb->begin(); it != lb->end() && !f.error(); ++it) {
        const std::string& key = it.key();
        char* end = nullptr;
        errno = 0;
        const long long id = std::strtoll(key.c_str(), &end, 10);
        if (key.empty() || *end != '\0' || errno == ERANGE || id < 0 || id >= limits.n_vocab) {
          f.fail("logit_bias",
                 "key '" + key.substr(0, 32) + "' is not a token id in [0, " + std::to_string(limits.n_vocab) + ")");
          break;
        }
        if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < -100.0 ||
            it->get<double>() > 100.0) {
          f.fail("logit_bias", "values must be numbers in [-100, 100]");
          break;
        }
        o->logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(it->get<double>()));
      }
    }
  }
  (void)body;
}

std::optional<ApiError> content_text(const json& content, const std::string& param, std::string* out) {
  if (content.is_null()) return std::nullopt;
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) return invalid_request("'" + param + "' must be a string or an array of parts", param);
  for (const json& part : content) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      return invalid_request("'" + param + "' parts must be objects with a 'type'", param);
    const std::string type = part["type"].get<std::string>();
    if (type != "text")
      return invalid_request(
          "'" + param + "': content of type '" + type.substr(0, 64) + "' is not supported (text only)", param);
    if (!part.contains("text") || !part["text"].is_string())
      return invalid_request("'" + param + "': a text part needs a string 'text'", param);
    *out += part["text"].get<std::string>();
  }
  return std::nullopt;
}

std::optional<ApiError> parse_message(const json& m, size_t i, chat::Message* out) {
  const std::string p = "messages[" + std::to_string(i) + "]";
  if (!m.is_object()) return invalid_request("'" + p + "' must be an object", p);
  auto role = m.find("role");
  if (role == m.end() || !role->is_string()) return invalid_request("'" + p + ".role' must be a string", p + ".role");
  out->role = role->get<std::string>();
  if (out->role != "system" && out->role != "developer" && out->role != "user" && out->role != "assistant" &&
      out->role != "tool")
    return invalid_request("'" + p + ".role' must be one of system, developer, user, assistant, tool", p + ".role");
  if (auto c = m.find("content"); c != m.end())
    if (auto e = content_text(*c, p + ".content", &out->content)) return e;
  Fields f(m, p + ".");
  f.string("reasoning_content", &out->reasoning);
  if (out->reasoning.empty()) f.string("reasoning", &out->reasoning);
  f.string("tool_call_id", &out->tool_call_id, 256);
  f.string("name", &out->tool_name, 256);
  if (f.error()) return f.error();
  if (out->role != "assistant" || !f.has("tool_calls")) return std::nullopt;
  const json& calls = *f.find("tool_calls");
  if (!calls.is_array()) return invalid_request("'" + p + ".tool_calls' must be an array", p + ".tool_calls");
  for (size_t k = 0; k < calls.size(); ++k) {
    const std::string q = p + ".tool_calls[" + std::to_string(k) + "]";
    const json& c = calls[k];
    if (!c.is_object() || !c.contains("function") || !c["function"].is_object())
      return invalid_request("'" + q + "' must be an object with a 'function' object", q);
    const json& fn = c["function"];
    if (!fn.contains("name") || !fn["name"].is_string() || fn["name"].get_ref<const std::string&>().empty())
      return invalid_request("'" + q + ".function.name' must be a non-empty string", q + ".function.name");
    chat::ToolCall tc;
    tc.name = fn["name"].get<std::string>();
    if (c.contains("id") && c["id"].is_string()) tc.id = c["id"].get<std::string>();
    tc.arguments = json::object();
    if (fn.contains("arguments") && !fn["arguments"].is_null()) {
      const json& a = fn["arguments"];
      if (a.is_string()) {
        // OpenAI sends the arguments as JSON text; text that is not JSON is passed on verbatim.
        json parsed = json::parse(a.get<std::string>(), nullptr, /*allow_exceptions=*/false);
        tc.arguments = parsed.is_discarded() ? a : parsed;
      } else if (a.is_object()) {
        tc.arguments = a;
      } else {
        return invalid_request("'" + q + ".function.arguments' must be a string", q + ".function.arguments");
      }
    }
    out->tool_calls.push_back(std::move(tc));
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_body(std::string_view body, const RequestLimits& limits, json* out) {
  // Nesting depth outside strings, counted before parsing.
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (ch == '\\')
        escaped = true;
      else if (ch == '"')
        in_string = false;
      continue;
    }
    if (ch == '"')
      in_string = true;
    else if (ch == '[' || ch == '{') {
      if (++depth > limits.max_json_depth)
        return invalid_request("the request body nests JSON deeper than " + std::to_string(limits.max_json_depth) +
                               " levels");
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return invalid_request("the request body is not valid JSON (or not valid UTF-8)", "", "invalid_json");
  if (!j.is_object()) return invalid_request("the request body must be a JSON object");
  *out = std::move(j);
  return std::nullopt;
}

std::optional<ApiError> parse_chat_request(const json& body, const RequestLimits& limits,
                                           const SamplingParams& defaults, ChatRequest* out) {
  Fields f(body);
  parse_generation_options(f, body, limits, defaults, &out->options);
  if (f.error()) return f.error();
  std::optional<bool> logprobs;
  if (const json* v = f.find("logprobs")) {
    if (!v->is_boolean()) return invalid_request("'logprobs' must be a boolean", "logprobs");
    logprobs = v->get<bool>();
  }
  f.integer("top_logprobs", 0, limits.max_top_logprobs, &out->options.top_logprobs);
  if (f.error()) return f.error();
  if (f.has("top_logprobs") && logprobs != true)
    return invalid_request("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  if (logprobs == true && out->options.top_logprobs < 0) out->options.top_logprobs = 0;

  const json* msgs = f.find("messages");
  if (msgs == nullptr) return invalid_request("'messages' is required", "messages");
  if (!msgs->is_array() || msgs->empty()) return invalid_request("'messages' must be a non-empty array", "messages");
  if (msgs->size() > static_cast<size_t>(limits.max_messages))
    return invalid_request("'messages' has more than " + std::to_string(limits.max_messages) + " entries", "messages");
  for (size_t i = 0; i < msgs->size(); ++i) {
    chat::Message m;
    if (auto e = parse_message((*msgs)[i], i, &m)) return e;
    out->messages.push_back(std::move(m));
  }

  if (const json* tools = f.find("tools")) {
    if (!tools->is_array()) return invalid_request("'tools' must be an array", "tools");
    if (tools->size() > static_cast<size_t>(limits.max_tools))
      return invalid_request("'tools' has more than " + std::to_string(limits.max_tools) + " entries", "tools");
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string p = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("type") || t["type"] != "function" || !t.contains("function") ||
          !t["function"].is_object())
        return invalid_request("'" + p + "' must be {\"type\": \"function\", \"function\": {...}}", p);
      const json& fn = t["function"];
      if (!fn.contains("name") || !fn["name"].is_string() || fn["name"].get_ref<const std::string&>().empty() ||
          fn["name"].get_ref<const std::string&>().size() > 256)
        return invalid_request("'" + p + ".function.name' must be a non-empty string", p + ".function.name");
      if (fn.contains("description") && !fn["description"].is_string() && !fn["description"].is_null())
        return invalid_request("'" + p + ".function.description' must be a string", p + ".function.description");
      if (fn.contains("parameters") && !fn["parameters"].is_object() && !fn["parameters"].is_null())
        return invalid_request("'" + p + ".function.parameters' must be an object", p + ".function.parameters");
    }
    out->tools = *tools;
  }
  if (const json* tc = f.find("tool_choice")) {
    if (tc->is_string()) {
      const std::string v = tc->get<std::string>();
      if (v == "auto")
        out->tool_choice = ToolChoice::kAuto;
      else if (v == "none")
        out->tool_choice = ToolChoice::kNone;
      else if (v == "required")
        out->tool_choice = ToolChoice::kRequired;
      else
        return invalid_request("'tool_choice' must be none, auto, required or a function", "tool_choice");
    } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object() &&
               (*tc)["function"].contains("name") && (*tc)["function"]["name"].is_string()) {
      out->tool_choice = ToolChoice::kNamed;
      out->tool_name = (*tc)["function"]["name"].get<std::string>();
      bool known = false;
      for (const json& t : out->tools) known |= t["function"]["name"] == out->tool_name;
      if (!known) return invalid_request("'tool_choice' names a function that is not in 'tools'", "tool_choice");
    } else {
      return invalid_request("'tool_choice' must be none, auto, required or a function", "tool_choice");
    }
    if (out->tool_choice != ToolChoice::kNone && out->tool_choice != ToolChoice::kAuto && out->tools.empty())
      return invalid_request("'tool_choice' requires 'tools'", "tool_choice");
  }
  bool parallel_tool_calls = true;  // accepted; every call the model writes is returned
  f.boolean("parallel_tool_calls", &parallel_tool_calls);
  if (const json* kw = f.find("chat_template_kwargs")) {
    if (!kw->is_object()) return invalid_request("'chat_template_kwargs' must be an object", "chat_template_kwargs");
    Fields kf(*kw, "chat_template_kwargs.");
    kf.boolean("enable_thinking", &out->enable_thinking);
    if (kf.error()) return kf.error();
  }
  if (const json* rf = f.find("response_format")) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
      return invalid_request("'response_format' must be an object with a 'type'", "response_format");
    const std::string type = (*rf)["type"].get<std::string>();
    if (type == "json_object") {
      out->options.json_schema = std::make_shared<const JsonSchema>(any_json_object_schema());
    } else if (type == "json_schema") {
      auto js = rf->find("json_schema");
      if (js == rf->end() || !js->is_object() || !js->contains("schema") || !(*js)["schema"].is_object())
        return invalid_request("'response_format.json_schema' must be an object with a 'schema' object",
                               "response_format.json_schema");
      Result<JsonSchema> schema = compile_json_schema((*js)["schema"]);
      if (!schema.is_ok())
        return invalid_request("'response_format': " + schema.status().message(), "response_format.json_schema");
      out->options.json_schema = std::make_shared<const JsonSchema>(std::move(schema).value());
    } else if (type != "text") {
      return invalid_request("'response_format' type must be text, json_object or json_schema, got '" +
                                 type.substr(0, 64) + "'",
                             "response_format");
    }
    if (out->options.json_schema && (out->tool_choice == ToolChoice::kRequired || out->tool_choice == ToolChoice::kNamed))
      return invalid_request("'response_format' json output cannot be combined with a forced tool call",
                             "response_format");
    if (out->options.json_schema && out->enable_thinking)
      return invalid_request("'response_format' json output cannot be combined with thinking", "response_format");
  }
  return f.error();
}

std::optional<ApiError> parse_completion_request(const json& body, const RequestLimits& limits,
                                                 const SamplingParams& defaults, CompletionRequest* out) {
  Fields f(body);
  parse_generation_options(f, body, limits, defaults, &out->options);
  f.boolean("echo", &out->echo);
  f.integer("logprobs", 0, 5, &out->options.top_logprobs);
  std::optional<int64_t> best_of;
  f.integer("best_of", 1, 1, &best_of);
  if (f.error()) return f.error();
  if (const json* s = f.find("suffix"); s && !(s->is_string() && s->get_ref<const std::string&>().empty()))
    return invalid_request("'suffix' is not supported", "suffix");
  // OpenAI's default for this endpoint.
  if (!out->options.max_tokens) out->options.max_tokens = 16;

  const json* p = f.find("prompt");
  if (p == nullptr) return invalid_request("'prompt' is required", "prompt");
  auto token_array = [&](const json& a) -> std::optional<ApiError> {
    if (a.size() > static_cast<size_t>(limits.max_prompt_ids))
      return invalid_request("'prompt' has too many tokens", "prompt");
    for (const json& x : a) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= limits.n_vocab ||
          (x.is_number_unsigned() && x.get<uint64_t>() >= static_cast<uint64_t>(limits.n_vocab)))
        return invalid_request("'prompt' token ids must be integers in [0, " + std::to_string(limits.n_vocab) + ")",
                               "prompt");
      out->prompt_tokens.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
    if (out->prompt_tokens.empty()) return invalid_request("'prompt' is empty", "prompt");
    return std::nullopt;
  };
  if (p->is_string()) {
    out->prompt_text = p->get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    if (auto e = token_array(*p)) return e;
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    out->prompt_text = (*p)[0].get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_array()) {
    if (auto e = token_array((*p)[0])) return e;
  } else if (p->is_array() && p->size() > 1) {
    return invalid_request("'prompt' holds several prompts; send one per request", "prompt");
  } else {
    return invalid_request("'prompt' must be a string, an array of token ids, or a one-element array of either",
                           "prompt");
  }
  return std::nullopt;
}

std::optional<ApiError> parse_tokenize_request(const json& body, TokenizeRequest* out) {
  Fields f(body);
  const json* c = f.find("content");
  if (c == nullptr || !c->is_string()) return invalid_request("'content' must be a string", "content");
  out->content = c->get<std::string>();
  f.boolean("add_special", &out->add_special);
  f.boolean("parse_special", &out->parse_special);
  f.boolean("with_pieces", &out->with_pieces);
  return f.error();
}

std::optional<ApiError> parse_detokenize_request(const json& body, const RequestLimits& limits,
                                                 DetokenizeRequest* out) {
  auto t = body.find("tokens");
  if (t == body.end() || !t->is_array()) return invalid_request("'tokens' must be an array of token ids", "tokens");
  if (t->size() > static_cast<size_t>(limits.max_prompt_ids)) return invalid_request("'tokens' is too long", "tokens");
  for (const json& x : *t) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= limits.n_vocab ||
        (x.is_number_unsigned() && x.get<uint64_t>() >= static_cast<uint64_t>(limits.n_vocab)))
      return invalid_request("'tokens' must hold integers in [0, " + std::to_string(limits.n_vocab) + ")", "tokens");
    out->tokens.push_back(static_cast<int32_t>(x.get<int64_t>()));
  }
  return std::nullopt;
}

}  // namespace ge::server
