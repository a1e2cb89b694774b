// POST /v1/chat/completions and /v1/completions: validate, build the prompt, check it against the
// slot context, submit to the scheduler, then answer whole or as server-sent events while watching
// for a client that went away.
#include <httplib.h>

#include <random>

#include "server/completion_stream.h"
#include "server/connection_probe.h"
#include "server/server_impl.h"

namespace ge::server {

using nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kPollInterval{20};
constexpr std::chrono::seconds kPingInterval{10};

std::string random_id(const char* prefix) {
  static const char kHex[] = "0123456789abcdef";
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kHex[rng() % 16];
  return id;
}

bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Cancels the request when the response is dropped without having seen the end (the client went
// away before the body was written, or the server is shutting down).
struct CancelOnDrop {
  std::vector<std::shared_ptr<RequestHandle>> handles;  // one per choice
  CancelOnDrop() = default;
  CancelOnDrop(const CancelOnDrop&) = delete;
  CancelOnDrop& operator=(const CancelOnDrop&) = delete;
  ~CancelOnDrop() { cancel(); }
  void cancel() {
    for (auto& h : handles) h->cancel();
  }
};

// Usage of n choices: the prompt once, the completions of all; timings of the first choice, with
// the generated count of all and the longest decode.
RequestTiming merged_timing(const std::vector<StreamResult>& results) {
  RequestTiming t = results.empty() ? RequestTiming{} : results[0].timing;
  for (size_t i = 1; i < results.size(); ++i) {
    t.generated_tokens += results[i].timing.generated_tokens;
    t.decode_ms = std::max(t.decode_ms, results[i].timing.decode_ms);
  }
  return t;
}

ApiError context_error(int64_t n_prompt, int64_t max_new, int64_t n_ctx, bool prompt_only, const char* prompt_param) {
  ApiError e = invalid_request(
      prompt_only ? "the prompt has " + std::to_string(n_prompt) + " tokens but the context holds " +
                        std::to_string(n_ctx) + " (at least one token must be left to generate)"
                  : "the prompt (" + std::to_string(n_prompt) + " tokens) plus max_tokens (" + std::to_string(max_new) +
                        ") exceeds the context of " + std::to_string(n_ctx) + " tokens",
      prompt_only ? prompt_param : "max_tokens", "context_length_exceeded");
  e.extra = json{{"n_prompt_tokens", n_prompt}, {"n_ctx", n_ctx}};
  if (!prompt_only) e.extra["max_tokens"] = max_new;
  return e;
}

}  // namespace

void ServerImpl::handle_generation(const httplib::Request& req, const std::string& body_text, httplib::Response& res,
                                   bool chat_mode) {
  if (state_ != State::kReady) return send_unavailable(res);
  json body;
  if (auto e = parse_body(body_text, limits_, &body)) return send_error(res, *e);
  const Tokenizer& tok = engine_->tokenizer();

  GenerationOptions opt;
  CompletionStream::Options so;
  std::vector<int32_t> prompt;
  std::string echo_text;
  if (chat_mode) {
    ChatRequest cr;
    if (auto e = parse_chat_request(body, limits_, engine_->default_sampling(), &cr)) return send_error(res, *e);
    chat::ChatOptions co;
    co.enable_thinking = cr.enable_thinking;
    if (cr.tool_choice != ToolChoice::kNone) co.tools = cr.tools;
    Result<std::string> text = chat::render_chat(format_, cr.messages, co);
    if (!text.is_ok()) return send_error(res, invalid_request(text.status().message(), "messages"));
    // tool_choice "required" or a named function: the prompt opens the call, so the model can only
    // write one (Gemma 4's syntax; Gemma 3 has no tools and refused them above).
    std::string forced;
    if (format_ == chat::ChatFormat::kGemma4 && cr.tool_choice == ToolChoice::kRequired) forced = "<|tool_call>";
    if (format_ == chat::ChatFormat::kGemma4 && cr.tool_choice == ToolChoice::kNamed)
      forced = "<|tool_call>call:" + cr.tool_name + "{";
    *text += forced;
    so.chat = true;
    so.format = format_;
    so.forced_prefix = forced;
    so.starts_in_reasoning = ends_with(*text, "<|channel>thought\n");
    prompt = tok.encode(*text, /*add_bos=*/false, /*parse_special=*/true);
    opt = std::move(cr.options);
  } else {
    CompletionRequest cr;
    if (auto e = parse_completion_request(body, limits_, engine_->default_sampling(), &cr)) return send_error(res, *e);
    if (cr.prompt_text) {
      prompt = tok.encode(*cr.prompt_text, /*add_bos=*/false, /*parse_special=*/true);
      if (tok.bos_id() >= 0 && (prompt.empty() || prompt[0] != tok.bos_id()))
        prompt.insert(prompt.begin(), tok.bos_id());
      if (cr.echo) echo_text = *cr.prompt_text;
    } else {
      prompt = std::move(cr.prompt_tokens);
      if (cr.echo) echo_text = tok.decode(prompt, /*skip_special=*/true);
    }
    opt = std::move(cr.options);
  }

  // Context: at least one token must be left to generate; an explicit max_tokens must fit whole.
  const int64_t n_ctx = options_.scheduler.context_len;
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  const char* prompt_param = chat_mode ? "messages" : "prompt";
  if (n_prompt >= n_ctx) return send_error(res, context_error(n_prompt, 0, n_ctx, true, prompt_param));
  const int64_t max_new = opt.max_tokens.value_or(n_ctx - n_prompt);
  if (n_prompt + max_new > n_ctx) return send_error(res, context_error(n_prompt, max_new, n_ctx, false, prompt_param));

  so.stop = opt.stop;
  so.logprobs = opt.top_logprobs >= 0;
  // n choices: n sequences of the same prompt in n slots, choice i sampled with seed + i.
  const int n = std::max(1, opt.n);
  auto guard = std::make_shared<CancelOnDrop>();
  std::vector<std::shared_ptr<CompletionStream>> streams;
  for (int i = 0; i < n; ++i) {
    auto stream = std::make_shared<CompletionStream>(tok, so);
    GenerationRequest g;
    g.prompt = prompt;
    g.sampling = opt.sampling;
    if (g.sampling.has_seed) g.sampling.seed += static_cast<uint64_t>(i);
    g.max_new_tokens = static_cast<int32_t>(max_new);
    if (!opt.ignore_eos) g.stop_ids = engine_->stop_token_ids();
    g.logit_bias = opt.logit_bias;
    g.top_logprobs = opt.top_logprobs;
    if (opt.json_schema) g.constraint = std::make_shared<JsonTokenConstraint>(opt.json_schema, token_bytes_);
    g.on_token = [stream](const TokenEvent& ev) { return stream->on_token(ev); };
    g.on_finish = [stream](FinishReason r, const Status& s, const RequestTiming& t) { stream->on_finish(r, s, t); };
    Submission sub = scheduler_->submit(std::move(g));
    if (sub.admission != Admission::kAccepted) {
      guard.reset();  // cancels the choices already queued
      if (sub.admission == Admission::kQueueFull) {
        ApiError e;
        e.http_status = 429;
        e.type = "rate_limit_error";
        e.code = "queue_full";
        e.message = "the server is busy (" + sub.status.message() + "); retry later";
        res.set_header("Retry-After", "1");
        return send_error(res, e);
      }
      if (sub.admission == Admission::kInvalid) return send_error(res, invalid_request(sub.status.message()));
      ApiError e;
      e.http_status = 503;
      e.type = "unavailable_error";
      e.message = "the engine is not running";
      return send_error(res, e);
    }
    guard->handles.push_back(sub.handle);
    streams.push_back(std::move(stream));
  }

  const ConnectionProbe probe(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  const ResponseMeta meta{random_id(chat_mode ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)),
                          options_.model_name};
  const bool logprobs = so.logprobs;
  auto failure = [](const StreamResult& r, int http_status_cancelled) {
    ApiError e;
    e.http_status = r.reason == FinishReason::kError ? 500 : http_status_cancelled;
    e.type = r.reason == FinishReason::kError ? "server_error" : "unavailable_error";
    e.message = r.reason == FinishReason::kError ? "generation failed: " + r.error.message()
                                                 : "the request was cancelled (server shutting down)";
    return e;
  };

  if (!opt.stream) {
    std::vector<StreamOutput> all(static_cast<size_t>(n));
    std::vector<StreamResult> results;
    for (int i = 0; i < n; ++i) {
      while (!streams[static_cast<size_t>(i)]->take(&all[static_cast<size_t>(i)], kPollInterval)) {
        if (probe.peer_closed()) {
          guard->cancel();
          res.status = 499;  // nobody is listening; logged only
          return;
        }
      }
      results.push_back(streams[static_cast<size_t>(i)]->result());
    }
    guard->handles.clear();
    for (const StreamResult& r : results)
      if (r.reason == FinishReason::kError || r.reason == FinishReason::kCancelled) return send_error(res, failure(r, 503));
    json j;
    json choices = json::array();
    for (int i = 0; i < n; ++i) {
      const size_t k = static_cast<size_t>(i);
      json one = chat_mode ? chat_completion_json(meta, all[k], results[k], logprobs)
                           : text_completion_json(meta, echo_text + all[k].content, all[k], results[k], logprobs);
      one["choices"][0]["index"] = i;
      choices.push_back(std::move(one["choices"][0]));
      if (i == 0) j = std::move(one);
    }
    j["choices"] = std::move(choices);
    const RequestTiming t = merged_timing(results);
    j["usage"] = usage_json(t);
    j["timings"] = timings_json(t);
    res.set_content(dump_json(j), "application/json");
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  const bool include_usage = opt.include_usage;
  res.set_chunked_content_provider("text/event-stream", [=](size_t, httplib::DataSink& sink) {
    auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
    auto indexed = [](json j, int i) {
      j["choices"][0]["index"] = i;
      return j;
    };
    bool ok = true;
    for (int i = 0; i < n && ok; ++i) {
      if (chat_mode)
        ok = write(sse_event(indexed(chat_chunk_json(meta, json{{"role", "assistant"}, {"content", ""}}), i)));
      else if (!echo_text.empty())
        ok = write(sse_event(indexed(text_chunk_json(meta, echo_text), i)));
    }
    std::vector<int> tool_index(static_cast<size_t>(n), 0);
    std::vector<size_t> text_offset(static_cast<size_t>(n), echo_text.size());
    std::vector<bool> finished(static_cast<size_t>(n), false);
    std::vector<StreamResult> results(static_cast<size_t>(n));
    int open = n;
    bool failed = false;
    // One waiting take per round; with several choices the others only collect what is there.
    const auto wait = n == 1 ? kPollInterval : std::chrono::milliseconds(2);
    auto last_write = std::chrono::steady_clock::now();
    while (ok && open > 0 && !failed) {
      bool wrote = false;
      for (int i = 0; i < n && ok; ++i) {
        const size_t k = static_cast<size_t>(i);
        if (finished[k]) continue;
        StreamOutput out;
        const bool done = streams[k]->take(&out, wait);
        if (!out.empty()) {
          wrote = true;
          if (chat_mode) {
            json delta = chat_delta_json(out, tool_index[k]);
            tool_index[k] += static_cast<int>(out.tool_calls.size());
            const json lp = logprobs && !out.logprobs.empty() ? chat_logprobs_json(out.logprobs) : json(nullptr);
            if (!delta.empty() || !lp.is_null()) ok = write(sse_event(indexed(chat_chunk_json(meta, delta, "", lp), i)));
          } else {
            const json lp = logprobs && !out.logprobs.empty() ? completion_logprobs_json(out.logprobs, text_offset[k])
                                                              : json(nullptr);
            text_offset[k] += out.content.size();
            ok = write(sse_event(indexed(text_chunk_json(meta, out.content, "", lp), i)));
          }
        }
        if (!done || !ok) continue;
        finished[k] = true;
        --open;
        results[k] = streams[k]->result();
        const StreamResult& r = results[k];
        if (r.reason == FinishReason::kError || r.reason == FinishReason::kCancelled) {
          ApiError e = failure(r, 500);
          e.type = "server_error";
          write(sse_event(e.body()));
          failed = true;  // the stream ends here; the other choices are cancelled
          break;
        } else if (chat_mode) {
          ok = write(sse_event(indexed(chat_chunk_json(meta, json::object(), r.finish_reason()), i)));
        } else {
          ok = write(sse_event(indexed(text_chunk_json(meta, "", r.finish_reason()), i)));
        }
        wrote = true;
      }
      const auto now = std::chrono::steady_clock::now();
      if (wrote) {
        last_write = now;
      } else if (ok && now - last_write > kPingInterval) {
        // An SSE comment keeps proxies from timing out a request that waits in the queue or
        // in a long prefill, and finds a vanished client through the failed write.
        ok = write(": ping\n\n");
        last_write = now;
      }
      if (ok && open > 0 && !failed && probe.peer_closed()) ok = false;
    }
    if (!ok) {
      guard->cancel();
      return false;
    }
    if (failed) guard->cancel();
    if (include_usage && !failed)
      write(sse_event(usage_chunk_json(meta, chat_mode ? "chat.completion.chunk" : "text_completion",
                                       merged_timing(results))));
    write("data: [DONE]\n\n");
    guard->handles.clear();
    sink.done();
    return true;
  });
}

}  // namespace ge::server
