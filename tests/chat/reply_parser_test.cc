// parse_reply / ReplyStreamParser: reasoning, tool calls, end markers, malformed input, and the
// streaming contract (any chunking gives the one-shot result; no partial marker is ever emitted).
#include "chat/reply_parser.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "chat/tool_call_syntax.h"

namespace ge::chat {
namespace {

using nlohmann::json;

struct Streamed {
  ParsedReply from_deltas;  // concatenation of the deltas
  ParsedReply final;        // finish()
  std::vector<std::string> content_deltas;
};

Streamed stream(ChatFormat format, const std::string& text, const std::vector<size_t>& cuts,
                bool starts_in_reasoning = false) {
  ReplyStreamParser parser(format, starts_in_reasoning);
  Streamed s;
  auto take = [&](const ReplyDelta& d) {
    s.from_deltas.content += d.content;
    s.from_deltas.reasoning += d.reasoning;
    for (const auto& c : d.tool_calls) s.from_deltas.tool_calls.push_back(c);
    if (!d.content.empty()) s.content_deltas.push_back(d.content);
  };
  size_t prev = 0;
  for (size_t cut : cuts) {
    take(parser.push(std::string_view(text).substr(prev, cut - prev)));
    prev = cut;
  }
  take(parser.push(std::string_view(text).substr(prev)));
  take(parser.flush());
  s.final = parser.finish();
  return s;
}

void expect_same(const ParsedReply& a, const ParsedReply& b, const std::string& what) {
  EXPECT_EQ(a.content, b.content) << what;
  EXPECT_EQ(a.reasoning, b.reasoning) << what;
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size()) << what;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name) << what;
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments) << what;
  }
}

TEST(ParseReply, PlainContentIsTrimmed) {
  auto r = parse_reply(ChatFormat::kGemma4, "  Hello, world!\n");
  EXPECT_EQ(r.content, "Hello, world!");
  EXPECT_EQ(r.reasoning, "");
  EXPECT_TRUE(r.tool_calls.empty());
}

TEST(ParseReply, ThoughtChannelBecomesReasoning) {
  auto r = parse_reply(ChatFormat::kGemma4,
                       "<|channel>thought\nThe user wants 2+2.\nIt is 4.\n<channel|>The answer is 4."
                       "<turn|>");
  EXPECT_EQ(r.reasoning, "The user wants 2+2.\nIt is 4.");
  EXPECT_EQ(r.content, "The answer is 4.");

  auto empty = parse_reply(ChatFormat::kGemma4, "<|channel>thought\n<channel|>Hi");
  EXPECT_EQ(empty.reasoning, "");
  EXPECT_EQ(empty.content, "Hi");
  auto no_newline = parse_reply(ChatFormat::kGemma4, "<|channel>thought<channel|>Hi");
  EXPECT_EQ(no_newline.reasoning, "");
  auto no_label = parse_reply(ChatFormat::kGemma4, "<|channel>just thinking<channel|>Hi");
  EXPECT_EQ(no_label.reasoning, "just thinking");
  auto two = parse_reply(ChatFormat::kGemma4,
                         "<|channel>thought\nfirst<channel|>A<|channel>thought\nsecond<channel|>B");
  EXPECT_EQ(two.reasoning, "first\nsecond");
  EXPECT_EQ(two.content, "AB");
}

TEST(ParseReply, UnclosedThoughtIsReasoningToTheEnd) {
  auto r = parse_reply(ChatFormat::kGemma4, "<|channel>thought\nstill thinking when the limit hit");
  EXPECT_EQ(r.reasoning, "still thinking when the limit hit");
  EXPECT_EQ(r.content, "");
}

TEST(ParseReply, StartsInReasoning) {
  ReplyStreamParser p(ChatFormat::kGemma4, /*starts_in_reasoning=*/true);
  (void)p.push("continuing the thought<channel|>Answer.");
  auto r = p.finish();
  EXPECT_EQ(r.reasoning, "continuing the thought");
  EXPECT_EQ(r.content, "Answer.");
}

TEST(ParseReply, ToolCallsWithAllValueKinds) {
  const std::string text =
      "Let me check.<|tool_call>call:get_weather{city:<|\"|>Paris, \"FR\"<|\"|>,days:3,"
      "ratio:-1.5e-05,metric:true,alerts:false,note:None,tags:[<|\"|>a<|\"|>,1,[],{}],"
      "where:{lat:48.85,lon:2.35,name:<|\"|><|\"|>}}<tool_call|>"
      "<|tool_call>call:ping{}<tool_call|><|tool_response>";
  auto r = parse_reply(ChatFormat::kGemma4, text);
  EXPECT_EQ(r.content, "Let me check.");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments,
            json::parse(R"({"city":"Paris, \"FR\"","days":3,"ratio":-1.5e-05,"metric":true,
                            "alerts":false,"note":null,"tags":["a",1,[],{}],
                            "where":{"lat":48.85,"lon":2.35,"name":""}})"));
  EXPECT_TRUE(r.tool_calls[0].id.empty());
  EXPECT_EQ(r.tool_calls[1].name, "ping");
  EXPECT_EQ(r.tool_calls[1].arguments, json::object());
}

TEST(ParseReply, ToolCallArgumentsRoundTripThroughTheTemplateSyntax) {
  std::mt19937 gen(5);
  std::function<json(int)> random_value = [&](int depth) -> json {
    switch (gen() % (depth < 3 ? 8 : 5)) {
      case 0: {
        static const char* kStrings[] = {"", "Paris", "with space", "{braces}", "a,b:c", "日本 😀",
                                         "quote \" and ' and \\", "tab\tnewline\n", "[x]", "None"};
        return json(kStrings[gen() % 10]);
      }
      case 1: return json(static_cast<int64_t>(gen() % 2000001) - 1000000);
      case 2: {
        static const double kFloats[] = {0.5, -2.75, 1e-07, 6.02e23, 100.0, 0.1, 1.0 / 3, -0.0};
        return json(kFloats[gen() % 8]);
      }
      case 3: return json(gen() % 2 == 0);
      case 4: return json(nullptr);
      case 5:
      case 6: {
        json obj = json::object();
        const int n = static_cast<int>(gen() % 4);
        for (int i = 0; i < n; ++i) obj["k" + std::to_string(gen() % 6)] = random_value(depth + 1);
        return obj;
      }
      default: {
        json arr = json::array();
        const int n = static_cast<int>(gen() % 4);
        for (int i = 0; i < n; ++i) arr.push_back(random_value(depth + 1));
        return arr;
      }
    }
  };
  for (int iter = 0; iter < 300; ++iter) {
    json args = json::object();
    const int n = static_cast<int>(gen() % 5);
    for (int i = 0; i < n; ++i) args["arg_" + std::to_string(gen() % 7)] = random_value(0);
    const std::string text =
        "<|tool_call>call:fn_" + std::to_string(iter) + "{" + format_tool_call_arguments(args) +
        "}<tool_call|>";
    auto r = parse_reply(ChatFormat::kGemma4, text);
    ASSERT_EQ(r.tool_calls.size(), 1u) << text;
    EXPECT_EQ(r.tool_calls[0].arguments, args) << text;
    EXPECT_EQ(r.content, "");
  }
}

TEST(ParseReply, MalformedToolCallsFallBackToContent) {
  const std::vector<std::string> bad = {
      "<|tool_call>get_weather{city:<|\"|>Paris<|\"|>}<tool_call|>",  // no "call:"
      "<|tool_call>call:get_weather{city:Paris}<tool_call|>",        // unquoted string
      "<|tool_call>call:get_weather{city:<|\"|>Paris}<tool_call|>",  // unterminated string
      "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|><tool_call|>",  // missing brace
      "<|tool_call>call:{x:1}<tool_call|>",                          // no name
      "<|tool_call>call:two words{x:1}<tool_call|>",                 // bad name
      "<|tool_call>call:f{x:1}}<tool_call|>",                        // trailing text
      "<|tool_call>call:f{x:1,}<tool_call|>",                        // empty key
      "<|tool_call>call:f{x:inf}<tool_call|>",                       // not a number we accept
      "<|tool_call>call:f[1,2]<tool_call|>",                         // not an object
  };
  for (const auto& text : bad) {
    auto r = parse_reply(ChatFormat::kGemma4, text);
    EXPECT_TRUE(r.tool_calls.empty()) << text;
    EXPECT_EQ(r.content, text) << "kept verbatim";
  }
  auto unterminated = parse_reply(ChatFormat::kGemma4, "Hi <|tool_call>call:f{x:1");
  EXPECT_TRUE(unterminated.tool_calls.empty());
  EXPECT_EQ(unterminated.content, "Hi <|tool_call>call:f{x:1");

  std::string deep = "<|tool_call>call:f{x:";
  for (int i = 0; i < 10000; ++i) deep += "[";
  deep += "<tool_call|>";
  auto r = parse_reply(ChatFormat::kGemma4, deep);
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.content, deep);
}

TEST(ParseReply, EndMarkersStopTheReply) {
  EXPECT_EQ(parse_reply(ChatFormat::kGemma4, "Done.<turn|>\n<|turn>user\nmore").content, "Done.");
  EXPECT_EQ(parse_reply(ChatFormat::kGemma4, "Done.<eos>junk").content, "Done.");
  auto r = parse_reply(ChatFormat::kGemma4,
                       "<|tool_call>call:f{a:1}<tool_call|><|tool_response>response:f{}");
  EXPECT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.content, "");
  EXPECT_EQ(parse_reply(ChatFormat::kGemma3, "Hi there<end_of_turn>\n<start_of_turn>user").content,
            "Hi there");
  EXPECT_EQ(parse_reply(ChatFormat::kGemma3, "a<eos>b").content, "a");
}

TEST(ParseReply, Gemma3HasNoChannelsOrToolCalls) {
  const std::string text = "<|channel>not special here<channel|> <|tool_call>call:f{}<tool_call|>";
  auto r = parse_reply(ChatFormat::kGemma3, text);
  EXPECT_EQ(r.content, text);
  EXPECT_EQ(r.reasoning, "");
  EXPECT_TRUE(r.tool_calls.empty());
}

TEST(ParseReply, StrayChannelMarkersNeverReachContent) {
  auto r = parse_reply(ChatFormat::kGemma4, "Answer<channel|> continues<tool_call|>.");
  EXPECT_EQ(r.content, "Answer continues.");
}

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> texts = {
      "Hello <|channel>thought\nx<channel|>world",
      "<|channel>thought\nLet me think about <b>tags</b> and < signs.\n<channel|>\n\nFinal < answer "
      "<| not a marker |> end.<turn|>ignored",
      "  Checking <|tool_call>call:get_weather{city:<|\"|>Zürich<|\"|>,n:[1,2.5,{deep:true}]}"
      "<tool_call|>  <|tool_call>call:bad{oops}<tool_call|> tail <|tool_response>",
      "<|channel>thought\nA<channel|><|channel>thought\nB<channel|>C<|channel>D",
      "text with <eo and <tur and <|chan but no markers",
      "trailing partial <|tool_ca",
      "emoji 😀 and 日本語 <|channel>thought\n考え<channel|>答え",
      "<|tool_call>call:f{s:<|\"|><|channel> inside a string<|\"|>}<tool_call|>after",
  };
  return texts;
}

TEST(ReplyStreamParser, AnyChunkingGivesTheOneShotResult) {
  std::mt19937 gen(9);
  for (const std::string& text : corpus()) {
    const ParsedReply whole = parse_reply(ChatFormat::kGemma4, text);
    // Every single split point, then random multi-way splits (including 1-byte pieces).
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      Streamed s = stream(ChatFormat::kGemma4, text, {cut});
      expect_same(s.final, whole, text + " @" + std::to_string(cut));
      expect_same(s.from_deltas, whole, "deltas " + text);
    }
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<size_t> cuts;
      size_t pos = 0;
      while (true) {
        pos += 1 + gen() % 4;
        if (pos >= text.size()) break;
        cuts.push_back(pos);
      }
      Streamed s = stream(ChatFormat::kGemma4, text, cuts);
      expect_same(s.final, whole, text);
      expect_same(s.from_deltas, whole, "deltas " + text);
    }
  }
}

TEST(ReplyStreamParser, ByteByByteNeverEmitsAPartialMarker) {
  for (const std::string& text : corpus()) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < text.size(); ++i) cuts.push_back(i);
    Streamed s = stream(ChatFormat::kGemma4, text, cuts);
    // Deltas only append, so a leaked piece of a marker would survive into their concatenation.
    std::string joined;
    for (const auto& d : s.content_deltas) joined += d;
    EXPECT_EQ(joined, s.final.content) << text;
  }
  // The marker split across pushes as in the brief: "<|chan" must not come out as content.
  ReplyStreamParser p(ChatFormat::kGemma4);
  EXPECT_EQ(p.push("Hi <|chan").content, "Hi");
  const ReplyDelta d = p.push("nel>thought\nhmm<channel|>there");
  EXPECT_EQ(d.reasoning, "hmm");
  EXPECT_EQ(d.content, " there");
  auto r = p.finish();
  EXPECT_EQ(r.content, "Hi there");
}

TEST(ReplyStreamParser, HeldPrefixThatIsNotAMarkerIsReleased) {
  ReplyStreamParser p(ChatFormat::kGemma4);
  EXPECT_EQ(p.push("a <|tool").content, "a");
  EXPECT_EQ(p.push("box|> b").content, " <|toolbox|> b");
  EXPECT_EQ(p.push(" <tu").content, "");
  EXPECT_EQ(p.flush().content, " <tu");
  EXPECT_EQ(p.finish().content, "a <|toolbox|> b <tu");
}

TEST(ReplyStreamParser, DoneAfterEndMarkerAndReset) {
  ReplyStreamParser p(ChatFormat::kGemma4);
  (void)p.push("Bye<turn|>");
  EXPECT_TRUE(p.done());
  EXPECT_TRUE(p.push("more").empty());
  EXPECT_EQ(p.finish().content, "Bye");
  p.reset();
  EXPECT_FALSE(p.done());
  (void)p.push("again");
  EXPECT_EQ(p.finish().content, "again");
}

TEST(ReplyStreamParser, RandomInputNeverCrashesAndStreamsConsistently) {
  const std::vector<std::string> pieces = {
      "<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", "call:", "f", "{", "}", "[", "]",
      ":", ",", "<|\"|>", "thought", "\n", " ", "x", "1.5", "true", "<", "|", ">", "<turn|>",
      "<eos>", "<|tool_response>", "\xff", "\xe6\x97", "None"};
  std::mt19937 gen(13);
  for (int iter = 0; iter < 400; ++iter) {
    std::string text;
    const int n = static_cast<int>(gen() % 30);
    for (int i = 0; i < n; ++i) text += pieces[gen() % pieces.size()];
    const ParsedReply whole = parse_reply(ChatFormat::kGemma4, text);
    std::vector<size_t> cuts;
    for (size_t i = 1; i < text.size(); ++i) {
      if (gen() % 3 == 0) cuts.push_back(i);
    }
    Streamed s = stream(ChatFormat::kGemma4, text, cuts);
    expect_same(s.final, whole, text);
    expect_same(s.from_deltas, whole, text);
    EXPECT_EQ(whole.content.find("<|channel>"), std::string::npos) << text;
    EXPECT_EQ(whole.content.find("<channel|>"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace ge::chat
