// Model output -> content, reasoning and tool calls, whole or streamed. Gemma 4 writes thoughts as
// <|channel>thought\n...<channel|> and calls as <|tool_call>call:NAME{key:value,...}<tool_call|>;
// Gemma 3 writes plain text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_template.h"

namespace ge::chat {

struct ParsedReply {
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;  // ids are left empty: the caller assigns them
};

// What one push() adds to the reply. Concatenating every delta's content (reasoning) gives the
// final ParsedReply's content (reasoning); tool calls arrive whole, once their closing marker
// has been seen.
struct ReplyDelta {
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;
  bool empty() const { return content.empty() && reasoning.empty() && tool_calls.empty(); }
};

// Parses generated text (what follows the generation prompt), streamed in arbitrary pieces.
//   * Reasoning: every <|channel>...<channel|> span; a leading "thought\n" (or "thought" right
//     before <channel|>) is dropped; several spans are joined with "\n". An unclosed span (the
//     limit hit mid-thought) is reasoning up to the end.
//   * Tool calls (Gemma 4): <|tool_call>call:NAME{...}<tool_call|> with arguments in the
//     template's syntax (see tool_call_syntax.h). A call that does not parse, or is not closed
//     by the end, is kept verbatim as content.
//   * The reply ends at <turn|>, <|tool_response> or <eos> (Gemma 3: <end_of_turn>, <eos>);
//     anything after is ignored. Stray channel markers are dropped, never shown as content.
//   * Content and reasoning are trimmed of ASCII whitespace at both ends: leading whitespace is
//     dropped and trailing whitespace held back until more text follows.
// A possible partial marker at the end of a piece (such as "<|chan") is held back until the
// next piece decides it, so no delta ever carries a piece of a marker.
class ReplyStreamParser {
 public:
  // starts_in_reasoning: the prompt already opened the thought channel (it ends in
  // "<|channel>thought\n"), so the text is reasoning until <channel|>.
  explicit ReplyStreamParser(ChatFormat format, bool starts_in_reasoning = false);

  ReplyDelta push(std::string_view text_delta);
  // End of generation: releases held-back text (a partial marker that never completed is text).
  ReplyDelta flush();
  // The whole reply; calls flush() first if needed. The parser can be reused after reset().
  ParsedReply finish();
  void reset();

  // True once an end marker was seen; later pushes return empty deltas.
  bool done() const { return mode_ == Mode::kDone; }

 private:
  enum class Mode { kContent, kReasoning, kToolCall, kDone };

  void process(ReplyDelta* delta, bool at_end);
  void process_content(ReplyDelta* delta, bool at_end);
  void process_reasoning(ReplyDelta* delta, bool at_end);
  void process_tool_call(ReplyDelta* delta, bool at_end);
  void emit_content(std::string_view text, ReplyDelta* delta);
  void emit_reasoning(std::string_view text, ReplyDelta* delta);
  void emit_tool_call_or_text(std::string_view body, bool closed, ReplyDelta* delta);

  ChatFormat format_;
  bool starts_in_reasoning_;
  Mode mode_ = Mode::kContent;
  bool flushed_ = false;
  bool expect_thought_label_ = false;  // just after <|channel>
  std::string buf_;                    // text not yet decided
  std::string content_ws_;             // trailing whitespace held back
  std::string reasoning_ws_;
  ParsedReply reply_;
};

// One-shot form of ReplyStreamParser.
ParsedReply parse_reply(ChatFormat format, std::string_view generated_text);

}  // namespace ge::chat
