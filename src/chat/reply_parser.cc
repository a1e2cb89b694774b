// Streaming reply parser: splits generated text into content, reasoning and tool calls while
// holding back anything that could still turn out to be a marker.
#include "chat/reply_parser.h"

#include <algorithm>
#include <array>
#include <span>
#include <utility>

#include "chat/tool_call_syntax.h"

namespace ge::chat {
namespace {

constexpr std::string_view kChannelOpen = "<|channel>";
constexpr std::string_view kChannelClose = "<channel|>";
constexpr std::string_view kToolCallOpen = "<|tool_call>";
constexpr std::string_view kToolCallClose = "<tool_call|>";
constexpr std::string_view kThoughtLabel = "thought";

// Gemma 4 markers the parser acts on, and the ones that end the reply.
constexpr std::array<std::string_view, 7> kGemma4Markers = {
    kChannelOpen, kChannelClose, kToolCallOpen, kToolCallClose, "<turn|>", "<|tool_response>",
    "<eos>"};
constexpr std::array<std::string_view, 2> kGemma3Markers = {"<end_of_turn>", "<eos>"};

bool is_end_marker(std::string_view m) {
  return m == "<turn|>" || m == "<|tool_response>" || m == "<eos>" || m == "<end_of_turn>";
}

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim_ascii(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ascii_space(s.back())) s.remove_suffix(1);
  return s;
}

std::span<const std::string_view> markers_for(ChatFormat format) {
  if (format == ChatFormat::kGemma3) return kGemma3Markers;
  return kGemma4Markers;
}

struct Found {
  size_t pos = std::string_view::npos;
  std::string_view marker;
};

// Earliest occurrence in `text` of any marker in `set`.
Found find_marker(std::string_view text, std::span<const std::string_view> set) {
  Found best;
  for (std::string_view m : set) {
    const size_t pos = text.find(m);
    if (pos < best.pos) best = Found{pos, m};
  }
  return best;
}

// Length of the longest suffix of `text` that is a proper prefix of a marker in `set`.
size_t partial_marker_length(std::string_view text, std::span<const std::string_view> set) {
  size_t max_len = 0;
  for (std::string_view m : set) max_len = std::max(max_len, m.size());
  const size_t window = std::min(text.size(), max_len - 1);
  for (size_t len = window; len > 0; --len) {
    const std::string_view tail = text.substr(text.size() - len);
    if (tail.front() != '<') continue;
    for (std::string_view m : set) {
      if (m.size() > len && m.substr(0, len) == tail) return len;
    }
  }
  return 0;
}

// Appends `text` to a trimmed stream: `out` gets what can be shown now, `pending_ws` keeps
// trailing whitespace until non-space text follows; leading whitespace of the stream is dropped.
void append_trimmed(std::string_view text, bool started, std::string* pending_ws,
                    std::string* out) {
  if (!started) {
    while (!text.empty() && is_ascii_space(text.front())) text.remove_prefix(1);
    pending_ws->clear();
  }
  if (text.empty()) return;
  size_t end = text.size();
  while (end > 0 && is_ascii_space(text[end - 1])) --end;
  if (end == 0) {
    pending_ws->append(text);
    return;
  }
  out->append(*pending_ws);
  pending_ws->clear();
  out->append(text.substr(0, end));
  pending_ws->assign(text.substr(end));
}

}  // namespace

ReplyStreamParser::ReplyStreamParser(ChatFormat format, bool starts_in_reasoning)
    : format_(format), starts_in_reasoning_(starts_in_reasoning) {
  reset();
}

void ReplyStreamParser::reset() {
  mode_ = (starts_in_reasoning_ && format_ == ChatFormat::kGemma4) ? Mode::kReasoning
                                                                   : Mode::kContent;
  flushed_ = false;
  expect_thought_label_ = false;
  buf_.clear();
  content_ws_.clear();
  reasoning_ws_.clear();
  reply_ = ParsedReply{};
}

ReplyDelta ReplyStreamParser::push(std::string_view text_delta) {
  ReplyDelta delta;
  if (flushed_ || mode_ == Mode::kDone) return delta;
  buf_.append(text_delta);
  process(&delta, /*at_end=*/false);
  return delta;
}

ReplyDelta ReplyStreamParser::flush() {
  ReplyDelta delta;
  if (flushed_) return delta;
  process(&delta, /*at_end=*/true);
  flushed_ = true;
  return delta;
}

ParsedReply ReplyStreamParser::finish() {
  (void)flush();
  return reply_;
}

void ReplyStreamParser::process(ReplyDelta* delta, bool at_end) {
  // Each step consumes text or changes mode; it returns when it needs more input.
  while (true) {
    const Mode before = mode_;
    const size_t size_before = buf_.size();
    switch (mode_) {
      case Mode::kContent:
        process_content(delta, at_end);
        break;
      case Mode::kReasoning:
        process_reasoning(delta, at_end);
        break;
      case Mode::kToolCall:
        process_tool_call(delta, at_end);
        break;
      case Mode::kDone:
        buf_.clear();
        return;
    }
    if (mode_ == before && buf_.size() == size_before) return;
    if (buf_.empty() && mode_ == before) return;
  }
}

void ReplyStreamParser::process_content(ReplyDelta* delta, bool at_end) {
  const auto markers = markers_for(format_);
  const Found f = find_marker(buf_, markers);
  if (f.pos == std::string_view::npos) {
    const size_t hold = at_end ? 0 : partial_marker_length(buf_, markers);
    emit_content(std::string_view(buf_).substr(0, buf_.size() - hold), delta);
    buf_.erase(0, buf_.size() - hold);
    return;
  }
  emit_content(std::string_view(buf_).substr(0, f.pos), delta);
  buf_.erase(0, f.pos + f.marker.size());
  if (is_end_marker(f.marker)) {
    mode_ = Mode::kDone;
  } else if (f.marker == kChannelOpen) {
    mode_ = Mode::kReasoning;
    expect_thought_label_ = true;
  } else if (f.marker == kToolCallOpen) {
    mode_ = Mode::kToolCall;
  }
  // A stray <channel|> or <tool_call|> is dropped.
}

void ReplyStreamParser::process_reasoning(ReplyDelta* delta, bool at_end) {
  if (expect_thought_label_) {
    const std::string with_newline = std::string(kThoughtLabel) + "\n";
    const std::string with_close = std::string(kThoughtLabel) + std::string(kChannelClose);
    if (buf_.starts_with(with_newline)) {
      buf_.erase(0, with_newline.size());
    } else if (buf_.starts_with(with_close)) {
      buf_.erase(0, kThoughtLabel.size());
    } else if (!at_end && (std::string_view(with_newline).starts_with(buf_) ||
                           std::string_view(with_close).starts_with(buf_))) {
      return;  // undecided: wait for more text
    }
    expect_thought_label_ = false;
  }
  const auto markers = markers_for(format_);
  const Found f = find_marker(buf_, markers);
  if (f.pos == std::string_view::npos) {
    const size_t hold = at_end ? 0 : partial_marker_length(buf_, markers);
    emit_reasoning(std::string_view(buf_).substr(0, buf_.size() - hold), delta);
    buf_.erase(0, buf_.size() - hold);
    return;
  }
  emit_reasoning(std::string_view(buf_).substr(0, f.pos), delta);
  buf_.erase(0, f.pos + f.marker.size());
  if (is_end_marker(f.marker)) {
    mode_ = Mode::kDone;
  } else if (f.marker == kChannelClose) {
    mode_ = Mode::kContent;
    // Spans are joined by one newline (dropped if no later span follows).
    if (!reply_.reasoning.empty()) reasoning_ws_ = "\n";
  }
  // Other markers inside a thought are dropped.
}

void ReplyStreamParser::process_tool_call(ReplyDelta* delta, bool at_end) {
  static constexpr std::array<std::string_view, 5> kMarkers = {
      kToolCallClose, kToolCallOpen, "<turn|>", "<|tool_response>", "<eos>"};
  const Found f = find_marker(buf_, kMarkers);
  if (f.pos == std::string_view::npos) {
    if (at_end) {
      emit_tool_call_or_text(buf_, /*closed=*/false, delta);
      buf_.clear();
      mode_ = Mode::kContent;
    }
    return;  // the call is incomplete: wait for its closing marker
  }
  const std::string body = buf_.substr(0, f.pos);
  buf_.erase(0, f.pos + f.marker.size());
  if (f.marker == kToolCallClose) {
    emit_tool_call_or_text(body, /*closed=*/true, delta);
    mode_ = Mode::kContent;
  } else if (f.marker == kToolCallOpen) {
    emit_tool_call_or_text(body, /*closed=*/false, delta);  // a new call starts; stay here
  } else {
    emit_tool_call_or_text(body, /*closed=*/false, delta);
    mode_ = Mode::kDone;
  }
}

void ReplyStreamParser::emit_content(std::string_view text, ReplyDelta* delta) {
  std::string out;
  append_trimmed(text, !reply_.content.empty(), &content_ws_, &out);
  delta->content += out;
  reply_.content += out;
}

void ReplyStreamParser::emit_reasoning(std::string_view text, ReplyDelta* delta) {
  std::string out;
  append_trimmed(text, !reply_.reasoning.empty(), &reasoning_ws_, &out);
  delta->reasoning += out;
  reply_.reasoning += out;
}

void ReplyStreamParser::emit_tool_call_or_text(std::string_view body, bool closed,
                                               ReplyDelta* delta) {
  static constexpr std::string_view kCall = "call:";
  if (closed) {
    const std::string_view inner = trim_ascii(body);
    const size_t brace = inner.find('{');
    if (inner.starts_with(kCall) && brace != std::string_view::npos) {
      const std::string_view name = trim_ascii(inner.substr(kCall.size(), brace - kCall.size()));
      const bool name_ok =
          !name.empty() && std::none_of(name.begin(), name.end(), [](char c) {
            return is_ascii_space(c) || c == '<' || c == '>' || c == '{' || c == '}';
          });
      if (name_ok) {
        auto args = parse_tool_call_arguments(inner.substr(brace));
        if (args.is_ok()) {
          ToolCall call{"", std::string(name), std::move(args).value()};
          delta->tool_calls.push_back(call);
          reply_.tool_calls.push_back(std::move(call));
          return;
        }
      }
    }
  }
  // Not a call: keep it verbatim as content, minus channel markers (never shown as content).
  std::string raw(kToolCallOpen);
  for (size_t pos = 0; pos < body.size();) {
    if (body.substr(pos).starts_with(kChannelOpen)) {
      pos += kChannelOpen.size();
    } else if (body.substr(pos).starts_with(kChannelClose)) {
      pos += kChannelClose.size();
    } else {
      raw.push_back(body[pos++]);
    }
  }
  if (closed) raw += kToolCallClose;
  emit_content(raw, delta);
}

ParsedReply parse_reply(ChatFormat format, std::string_view generated_text) {
  ReplyStreamParser parser(format);
  (void)parser.push(generated_text);
  return parser.finish();
}

}  // namespace ge::chat
