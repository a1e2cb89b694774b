// CompletionStream: detokenize, cut at stop strings, split the reply, hand the output over.
#include "server/completion_stream.h"

#include <random>

#include "tokenizer/utf8.h"

namespace ge::server {

std::string StreamResult::finish_reason() const {
  if (reason == FinishReason::kError) return "error";
  if (has_tool_calls) return "tool_calls";
  return finish_reason_name(reason);
}

std::string make_tool_call_id() {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof(kChars) - 1)];
  return id;
}

CompletionStream::CompletionStream(const Tokenizer& tokenizer, Options options)
    : tokenizer_(tokenizer), options_(std::move(options)), detok_(tokenizer, /*skip_special=*/true) {
  if (!options_.stop.empty()) stopper_.emplace(options_.stop);
  if (options_.chat) {
    parser_.emplace(options_.format, options_.starts_in_reasoning);
    // A forced tool call: the prompt already opened it, the parser must see it too.
    if (!options_.forced_prefix.empty()) append(parser_->push(options_.forced_prefix));
  }
}

LogprobEntry CompletionStream::entry(int32_t id, float logprob) const {
  LogprobEntry e;
  std::string raw;
  tokenizer_.append_piece(id, /*skip_special=*/false, /*first=*/false, &raw);
  e.bytes.assign(raw.begin(), raw.end());
  utf8::append_sanitized(raw, /*final=*/true, &e.token);
  e.logprob = logprob;
  return e;
}

bool CompletionStream::on_token(const TokenEvent& ev) {
  if (options_.logprobs) {
    LogprobEntry e = entry(ev.id, ev.logprob);
    for (const TokenLogprob& t : ev.top) e.top.push_back(entry(t.id, t.logprob));
    std::lock_guard<std::mutex> lk(mu_);
    pending_.logprobs.push_back(std::move(e));
  }
  if (!stopped_) process_text(detok_.push(ev.id));
  cv_.notify_all();
  return !stopped_;
}

void CompletionStream::process_text(std::string text) {
  if (stopper_) {
    chat::StopStringMatcher::Result r = stopper_->push(text);
    text = std::move(r.text);
    if (r.stopped) stopped_ = true;
  }
  if (text.empty()) return;
  if (parser_) {
    append(parser_->push(text));
  } else {
    std::lock_guard<std::mutex> lk(mu_);
    pending_.content += text;
  }
}

void CompletionStream::append(chat::ReplyDelta d) {
  if (d.empty()) return;
  std::lock_guard<std::mutex> lk(mu_);
  pending_.content += d.content;
  pending_.reasoning += d.reasoning;
  for (chat::ToolCall& c : d.tool_calls) {
    c.id = make_tool_call_id();
    pending_.tool_calls.push_back(std::move(c));
    result_.has_tool_calls = true;
  }
}

void CompletionStream::on_finish(FinishReason reason, const Status& error, const RequestTiming& timing) {
  if (!stopped_) {
    // Whatever the detokenizer and the stop matcher held back (an unfinished UTF-8 sequence
    // becomes U+FFFD) belongs to the output.
    process_text(detok_.flush());
    if (!stopped_ && stopper_) {
      std::string tail = stopper_->flush();
      if (parser_)
        append(parser_->push(tail));
      else if (!tail.empty()) {
        std::lock_guard<std::mutex> lk(mu_);
        pending_.content += tail;
      }
    }
  }
  if (parser_) append(parser_->flush());
  {
    std::lock_guard<std::mutex> lk(mu_);
    result_.reason = reason;
    result_.error = error;
    result_.timing = timing;
    finished_ = true;
  }
  cv_.notify_all();
}

bool CompletionStream::take(StreamOutput* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  if (pending_.empty() && !finished_) cv_.wait_for(lk, timeout, [&] { return !pending_.empty() || finished_; });
  out->content += pending_.content;
  out->reasoning += pending_.reasoning;
  for (chat::ToolCall& c : pending_.tool_calls) out->tool_calls.push_back(std::move(c));
  for (LogprobEntry& e : pending_.logprobs) out->logprobs.push_back(std::move(e));
  pending_ = StreamOutput();
  return finished_;
}

StreamResult CompletionStream::result() const {
  std::lock_guard<std::mutex> lk(mu_);
  return result_;
}

}  // namespace ge::server
