// CompletionStream fed scripted token ids (the tiny chat model's vocabulary): reasoning and content
// split, tool calls with ids, stop strings across tokens, UTF-8 held back and flushed, logprobs.
#include "server/completion_stream.h"

#include <gtest/gtest.h>

#include "runtime/engine.h"

namespace ge::server {
namespace {

const char* kModel = GE_SOURCE_DIR "/tests/server/data/gemma4-tiny-chat.gguf";

class CompletionStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EngineOptions o;
    o.n_threads = 1;
    Result<std::unique_ptr<Engine>> e = Engine::load(kModel, o);
    ASSERT_TRUE(e.is_ok()) << e.status().to_string();
    engine_ = std::move(e).value().release();
  }
  static void TearDownTestSuite() { delete engine_; }

  const Tokenizer& tok() const { return engine_->tokenizer(); }
  int32_t id(const std::string& piece) const {
    auto i = tok().find_token(piece);
    EXPECT_TRUE(i.has_value()) << piece;
    return i.value_or(0);
  }
  // Feeds the pieces; returns how many were accepted before the stream asked to stop.
  size_t feed(CompletionStream& s, const std::vector<std::string>& pieces, float logprob = -0.5f) {
    size_t n = 0;
    for (const std::string& p : pieces) {
      TokenEvent ev;
      ev.id = id(p);
      ev.index = static_cast<int32_t>(n);
      ev.logprob = logprob;
      ev.top = {{ev.id, logprob}, {id("<pad>"), -3.0f}};
      ++n;
      if (!s.on_token(ev)) break;
    }
    return n;
  }
  StreamOutput finish(CompletionStream& s, FinishReason why = FinishReason::kStop) {
    RequestTiming t;
    t.generated_tokens = 1;
    s.on_finish(why, Status::ok(), t);
    StreamOutput out;
    EXPECT_TRUE(s.take(&out, std::chrono::milliseconds(0)));
    return out;
  }

  static Engine* engine_;
};

Engine* CompletionStreamTest::engine_ = nullptr;

CompletionStream::Options chat_options() {
  CompletionStream::Options o;
  o.chat = true;
  o.format = chat::ChatFormat::kGemma4;
  return o;
}

TEST_F(CompletionStreamTest, ReasoningAndContentSplit) {
  CompletionStream s(tok(), chat_options());
  feed(s, {"<|channel>", "thought\n", "I\u2581should", "\u2581say\u2581hello.", "<channel|>"});
  StreamOutput mid;
  EXPECT_FALSE(s.take(&mid, std::chrono::milliseconds(0)));
  EXPECT_EQ(mid.reasoning, "I should say hello.");
  EXPECT_EQ(mid.content, "");
  feed(s, {"Hello", "\u2581from"});
  StreamOutput out = finish(s);
  EXPECT_EQ(out.content, "Hello from");
  EXPECT_EQ(out.reasoning, "");
  EXPECT_EQ(s.result().finish_reason(), "stop");
}

TEST_F(CompletionStreamTest, ToolCallsGetIdsAndFinishReason) {
  CompletionStream s(tok(), chat_options());
  feed(s, {"<|tool_call>", "call:get_weather{city:", "<|\"|>", "Paris<|\"|>,days:3}", "<tool_call|>"});
  StreamOutput out = finish(s);
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].name, "get_weather");
  EXPECT_EQ(out.tool_calls[0].arguments, nlohmann::json({{"city", "Paris"}, {"days", 3}}));
  EXPECT_EQ(out.tool_calls[0].id.rfind("call_", 0), 0u);
  EXPECT_EQ(out.tool_calls[0].id.size(), 29u);
  EXPECT_EQ(out.content, "");
  EXPECT_EQ(s.result().finish_reason(), "tool_calls");
}

TEST_F(CompletionStreamTest, ForcedPrefixOpensTheCall) {
  CompletionStream::Options o = chat_options();
  o.forced_prefix = "<|tool_call>";
  CompletionStream s(tok(), o);
  feed(s, {"call:get_weather{city:", "<|\"|>", "Paris<|\"|>,days:3}", "<tool_call|>"});
  StreamOutput out = finish(s);
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].arguments["city"], "Paris");
}

TEST_F(CompletionStreamTest, UnclosedToolCallStaysText) {
  CompletionStream s(tok(), chat_options());
  feed(s, {"<|tool_call>", "call:get_weather{city:"});
  StreamOutput out = finish(s, FinishReason::kLength);
  EXPECT_TRUE(out.tool_calls.empty());
  EXPECT_NE(out.content.find("call:get_weather"), std::string::npos);
  EXPECT_EQ(s.result().finish_reason(), "length");
}

TEST_F(CompletionStreamTest, StopStringAcrossTokens) {
  CompletionStream::Options o;
  o.stop = {"ne tw", "zzz"};
  CompletionStream s(tok(), o);
  const size_t n = feed(s, {"\u2581one", "\u2581two", "\u2581three"});
  EXPECT_EQ(n, 2u);  // the stream asked to stop at the token that completed the stop string
  StreamOutput out = finish(s);
  EXPECT_EQ(out.content, " o");
}

TEST_F(CompletionStreamTest, HeldBackStopPrefixIsReleasedAtTheEnd) {
  CompletionStream::Options o;
  o.stop = {" twox"};
  CompletionStream s(tok(), o);
  feed(s, {"\u2581one", "\u2581two"});
  StreamOutput mid;
  s.take(&mid, std::chrono::milliseconds(0));
  EXPECT_EQ(mid.content, " one");  // " two" may still begin the stop string
  StreamOutput out = finish(s, FinishReason::kLength);
  EXPECT_EQ(out.content, " two");
}

TEST_F(CompletionStreamTest, PartialUtf8IsHeldThenReplaced) {
  {
    CompletionStream s(tok(), CompletionStream::Options());
    feed(s, {"\u25815", "<0xE2>", "<0x82>"});
    StreamOutput mid;
    s.take(&mid, std::chrono::milliseconds(0));
    EXPECT_EQ(mid.content, " 5");
    StreamOutput out = finish(s, FinishReason::kLength);
    EXPECT_EQ(out.content, "\xEF\xBF\xBD");  // one U+FFFD for the truncated sequence
  }
  {
    CompletionStream s(tok(), CompletionStream::Options());
    feed(s, {"<0xE2>", "<0x82>", "<0xAC>"});
    EXPECT_EQ(finish(s).content, "\xE2\x82\xAC");
  }
}

TEST_F(CompletionStreamTest, Logprobs) {
  CompletionStream::Options o;
  o.logprobs = true;
  CompletionStream s(tok(), o);
  feed(s, {"\u2581one", "<0xE2>"}, -0.25f);
  StreamOutput out = finish(s);
  ASSERT_EQ(out.logprobs.size(), 2u);
  EXPECT_EQ(out.logprobs[0].token, " one");
  EXPECT_FLOAT_EQ(out.logprobs[0].logprob, -0.25f);
  ASSERT_EQ(out.logprobs[0].top.size(), 2u);
  EXPECT_EQ(out.logprobs[0].top[1].token, "<pad>");
  EXPECT_EQ(out.logprobs[1].bytes, std::vector<uint8_t>{0xE2});
  EXPECT_EQ(out.logprobs[1].token, "\xEF\xBF\xBD");  // not UTF-8 on its own
}

TEST_F(CompletionStreamTest, TakeTimesOutWithoutOutput) {
  CompletionStream s(tok(), CompletionStream::Options());
  StreamOutput out;
  EXPECT_FALSE(s.take(&out, std::chrono::milliseconds(5)));
  EXPECT_TRUE(out.empty());
  s.on_finish(FinishReason::kCancelled, Status::ok(), RequestTiming());
  EXPECT_TRUE(s.take(&out, std::chrono::milliseconds(5)));
  EXPECT_EQ(s.result().reason, FinishReason::kCancelled);
}

}  // namespace
}  // namespace ge::server
