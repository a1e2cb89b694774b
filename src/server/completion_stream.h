// One request's output pipeline: token ids → text (streaming detokenizer, whole UTF-8 only) → user
// stop strings → for chat, the reply parser (content / reasoning / tool calls); plus logprobs. It is
// the request's sink on the engine thread; the HTTP thread drains what it has produced.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chat/reply_parser.h"
#include "chat/stop_string_matcher.h"
#include "runtime/scheduler.h"
#include "tokenizer/streaming_detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ge::server {

struct LogprobEntry {
  std::string token;           // the piece as UTF-8 (ill-formed bytes replaced by U+FFFD)
  std::vector<uint8_t> bytes;  // the piece's raw bytes
  float logprob = 0.0f;
  std::vector<LogprobEntry> top;  // alternatives, most likely first (their own `top` is empty)
};

// Output produced since the last take().
struct StreamOutput {
  std::string content;
  std::string reasoning;
  std::vector<chat::ToolCall> tool_calls;  // whole calls, ids assigned ("call_...")
  std::vector<LogprobEntry> logprobs;
  bool empty() const { return content.empty() && reasoning.empty() && tool_calls.empty() && logprobs.empty(); }
};

struct StreamResult {
  FinishReason reason = FinishReason::kStop;
  Status error;
  RequestTiming timing;
  bool has_tool_calls = false;
  // OpenAI finish_reason: "tool_calls" when the reply holds calls, else "stop" / "length" / "error".
  std::string finish_reason() const;
};

class CompletionStream {
 public:
  struct Options {
    bool chat = false;  // parse the reply (reasoning, tool calls); else plain text
    chat::ChatFormat format = chat::ChatFormat::kGemma4;
    bool starts_in_reasoning = false;  // the prompt ends inside the thought channel
    std::string forced_prefix;         // reply text the prompt already holds (a forced tool call)
    std::vector<std::string> stop;     // user stop strings, matched on the generated text
    bool logprobs = false;
  };

  // `tokenizer` must outlive the stream.
  CompletionStream(const Tokenizer& tokenizer, Options options);

  // Engine thread (the scheduler's on_token / on_finish). on_token returns false once a stop string
  // has completed.
  bool on_token(const TokenEvent& ev);
  void on_finish(FinishReason reason, const Status& error, const RequestTiming& timing);

  // Moves the pending output into *out, first waiting up to `timeout` while there is none. Returns
  // true once the request has finished and nothing is left to take.
  bool take(StreamOutput* out, std::chrono::milliseconds timeout);
  // Valid once take() returned true.
  StreamResult result() const;

 private:
  void process_text(std::string text);
  void append(chat::ReplyDelta d);
  LogprobEntry entry(int32_t id, float logprob) const;

  const Tokenizer& tokenizer_;
  Options options_;
  // Engine-thread state.
  StreamingDetokenizer detok_;
  std::optional<chat::StopStringMatcher> stopper_;
  std::optional<chat::ReplyStreamParser> parser_;
  bool stopped_ = false;
  // Shared with the reader.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  StreamOutput pending_;
  bool finished_ = false;
  StreamResult result_;
};

// Random OpenAI-style tool call id: "call_" and 24 alphanumerics.
std::string make_tool_call_id();

}  // namespace ge::server
