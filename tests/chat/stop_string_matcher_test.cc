// StopStringMatcher: stop strings split across chunks, held-back prefixes, the earliest-completing
// match, and independence from how the text is chunked.
#include "chat/stop_string_matcher.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ge::chat {
namespace {

struct Outcome {
  std::string text;
  bool stopped = false;
  std::string matched;
};

Outcome feed(const std::vector<std::string>& stops, const std::vector<std::string>& chunks) {
  StopStringMatcher m(stops);
  Outcome run;
  for (const auto& c : chunks) {
    auto r = m.push(c);
    run.text += r.text;
    if (r.stopped) {
      run.stopped = true;
      run.matched = r.matched;
      break;
    }
  }
  if (!run.stopped) run.text += m.flush();
  return run;
}

TEST(StopStringMatcher, StopInsideOneChunk) {
  auto r = feed({"END"}, {"hello END world"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "hello ");
  EXPECT_EQ(r.matched, "END");
}

TEST(StopStringMatcher, StopAcrossChunksHoldsThePrefix) {
  StopStringMatcher m({"###"});
  auto a = m.push("abc#");
  EXPECT_EQ(a.text, "abc");
  EXPECT_FALSE(a.stopped);
  EXPECT_EQ(m.held(), "#");
  auto b = m.push("#");
  EXPECT_EQ(b.text, "");
  EXPECT_EQ(m.held(), "##");
  auto c = m.push("#tail");
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.text, "");
  EXPECT_TRUE(m.stopped());
  auto d = m.push("more");
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(d.text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStringMatcher, FalseAlarmIsReleased) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.push("go ST").text, "go ");
  EXPECT_EQ(m.push("OP?").text, "");  // "STOP" completed
  StopStringMatcher n({"STOP"});
  EXPECT_EQ(n.push("go ST").text, "go ");
  EXPECT_EQ(n.push("ART").text, "START");
  EXPECT_EQ(n.push("S").text, "");
  EXPECT_EQ(n.flush(), "S");
}

TEST(StopStringMatcher, EarliestCompletingStopWins) {
  // "bc" completes before "abcd" does, so the reply ends before "bc".
  auto r = feed({"abcd", "bc"}, {"xabcd"});
  EXPECT_EQ(r.text, "xa");
  EXPECT_EQ(r.matched, "bc");
  auto s = feed({"abcd", "bc"}, {"xab", "cd"});
  EXPECT_EQ(s.text, "xa");
  // Same end: the one that starts earlier (longer) is reported and cut.
  auto t = feed({"cd", "bcd"}, {"abcde"});
  EXPECT_EQ(t.text, "a");
  EXPECT_EQ(t.matched, "bcd");
}

TEST(StopStringMatcher, NoStopsPassesEverythingThrough) {
  StopStringMatcher m({"", ""});
  EXPECT_EQ(m.push("anything <|").text, "anything <|");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStringMatcher, ChunkingDoesNotChangeTheResult) {
  std::mt19937 gen(21);
  const std::vector<std::string> stops = {"\n\n", "User:", "Userland", "ab", "</s>", "日本"};
  const std::string alphabet[] = {"a", "b", "U", "ser", ":", "\n", "</", "s>", "x", "日", "本", " "};
  for (int iter = 0; iter < 2000; ++iter) {
    std::string text;
    const int n = static_cast<int>(gen() % 20);
    for (int i = 0; i < n; ++i) text += alphabet[gen() % 12];
    const Outcome whole = feed(stops, {text});
    std::vector<std::string> chunks;
    for (size_t pos = 0; pos < text.size();) {
      const size_t len = 1 + gen() % 5;
      chunks.push_back(text.substr(pos, len));
      pos += len;
    }
    const Outcome parts = feed(stops, chunks);
    EXPECT_EQ(parts.text, whole.text) << text;
    EXPECT_EQ(parts.stopped, whole.stopped) << text;
    EXPECT_EQ(parts.matched, whole.matched) << text;
    // The emitted text never contains a stop string, and without a stop it is the whole text.
    for (const auto& s : stops) EXPECT_EQ(whole.text.find(s), std::string::npos) << text;
    if (!whole.stopped) {
      EXPECT_EQ(whole.text, text);
    }
  }
}

TEST(StopStringMatcher, Reset) {
  StopStringMatcher m({"x"});
  EXPECT_TRUE(m.push("axb").stopped);
  m.reset();
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push("ab").text, "ab");
}

}  // namespace
}  // namespace ge::chat
