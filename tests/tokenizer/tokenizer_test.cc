// Tokenizer unit tests on small hand-built vocabularies: merge order, byte fallback, literals,
// invalid UTF-8, decode, streaming detokenization and rejection of malformed vocabulary data.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tokenizer/streaming_detokenizer.h"
#include "tokenizer/utf8.h"

namespace ge {
namespace {

constexpr int32_t kNormal = static_cast<int32_t>(TokenType::kNormal);
constexpr int32_t kControl = static_cast<int32_t>(TokenType::kControl);
constexpr int32_t kUser = static_cast<int32_t>(TokenType::kUserDefined);
constexpr int32_t kByte = static_cast<int32_t>(TokenType::kByte);

std::string byte_token(int b) {
  static const char* kHex = "0123456789ABCDEF";
  return std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
}

// A Gemma-shaped SentencePiece vocabulary: specials, literals, 256 byte tokens, then pieces in
// merge order.
struct VocabBuilder {
  VocabData data;
  VocabBuilder(bool with_bytes = true) {
    add("<pad>", kControl);
    add("<eos>", kControl);
    add("<bos>", kControl);
    add("<unk>", kControl);
    data.pad_id = 0;
    data.eos_id = 1;
    data.bos_id = 2;
    data.unk_id = 3;
    add("<start_of_turn>", kControl);
    add("<end_of_turn>", kControl);
    add("\n", kUser);
    add("\n\n", kUser);
    add("<b>", kUser);
    if (with_bytes) {
      for (int b = 0; b < 256; ++b) add(byte_token(b), kByte);
    }
  }
  int32_t add(const std::string& text, int32_t type = kNormal) {
    data.tokens.push_back(text);
    data.token_types.push_back(type);
    data.scores.push_back(-static_cast<float>(data.tokens.size()));
    return static_cast<int32_t>(data.tokens.size() - 1);
  }
  Tokenizer build() {
    auto t = Tokenizer::create(data);
    EXPECT_TRUE(t.is_ok()) << t.status().to_string();
    return std::move(t).value();
  }
};

std::vector<int32_t> ids_of(const Tokenizer& t, std::initializer_list<const char*> pieces) {
  std::vector<int32_t> out;
  for (const char* p : pieces) {
    auto id = t.find_token(p);
    EXPECT_TRUE(id.has_value()) << "no piece " << p;
    out.push_back(id.value_or(-1));
  }
  return out;
}

void add_letters(VocabBuilder* b) {
  for (const char* s : {"\u2581", "a", "b", "c", "d", "h", "e", "l", "o", "w", "r"}) b->add(s);
}

TEST(Tokenizer, MergeOrderFollowsVocabularyPosition) {
  // "ab" listed before "bc": "abc" -> ab + c. Swapped: a + bc.
  VocabBuilder first;
  add_letters(&first);
  first.add("ab");
  first.add("bc");
  Tokenizer t1 = first.build();
  EXPECT_EQ(t1.encode("abc", false, false), ids_of(t1, {"ab", "c"}));

  VocabBuilder second;
  add_letters(&second);
  second.add("bc");
  second.add("ab");
  Tokenizer t2 = second.build();
  EXPECT_EQ(t2.encode("abc", false, false), ids_of(t2, {"a", "bc"}));
}

TEST(Tokenizer, SpacesAreEscapedWithoutDummyPrefix) {
  VocabBuilder b;
  add_letters(&b);
  b.add("he");
  b.add("ll");
  b.add("hell");
  b.add("hello");
  b.add("\u2581w");
  b.add("or");
  b.add("\u2581wor");
  b.add("\u2581world");
  b.add("ld");
  Tokenizer t = b.build();
  EXPECT_FALSE(t.add_space_prefix());
  EXPECT_EQ(t.encode("hello", false, false), ids_of(t, {"hello"}));
  // "▁world" needs "ld" after "▁wor" exists; "ld" is listed after "▁world", so it still merges.
  EXPECT_EQ(t.encode("hello world", false, false), ids_of(t, {"hello", "\u2581world"}));
  EXPECT_EQ(t.encode("hello", true, false), (std::vector<int32_t>{2, *t.find_token("hello")}));
}

TEST(Tokenizer, DummyPrefixOnlyAtInputStart) {
  VocabBuilder b;
  add_letters(&b);
  b.add("\u2581a");
  b.data.add_space_prefix = true;
  Tokenizer t = b.build();
  EXPECT_EQ(t.encode("a", false, true), ids_of(t, {"\u2581a"}));
  EXPECT_EQ(t.encode("<start_of_turn>a", false, true), ids_of(t, {"<start_of_turn>", "a"}));
  EXPECT_EQ(t.decode(t.encode("a a", false, true), true), "a a");
}

TEST(Tokenizer, ByteFallbackForUnknownCharacters) {
  VocabBuilder b;
  add_letters(&b);
  Tokenizer t = b.build();
  // "z" is not a piece; "é" is two bytes C3 A9.
  EXPECT_EQ(t.encode("az\xC3\xA9", false, false), ids_of(t, {"a", "<0x7A>", "<0xC3>", "<0xA9>"}));
  EXPECT_EQ(t.decode(t.encode("az\xC3\xA9", false, false), false), "az\xC3\xA9");
}

TEST(Tokenizer, UnknownWithoutByteTokensFusesIntoOneUnk) {
  VocabBuilder b(/*with_bytes=*/false);
  add_letters(&b);
  Tokenizer t = b.build();
  EXPECT_EQ(t.encode("azzza", false, false), ids_of(t, {"a", "<unk>", "a"}));
}

TEST(Tokenizer, ControlLiteralsOnlyWithParseSpecial) {
  VocabBuilder b;
  add_letters(&b);
  Tokenizer t = b.build();
  const std::string text = "<start_of_turn>a\n\n\nb<b><end_of_turn>";
  const std::vector<int32_t> with = t.encode(text, false, true);
  EXPECT_EQ(with, ids_of(t, {"<start_of_turn>", "a", "\n\n", "\n", "b", "<b>", "<end_of_turn>"}));
  const std::vector<int32_t> without = t.encode(text, false, false);
  for (int32_t id : without) EXPECT_NE(t.token_type(id), TokenType::kControl) << id;
  // User-defined literals still match; the control text is spelled out (here via byte tokens).
  EXPECT_EQ(t.decode(without, false), text);
  EXPECT_EQ(t.decode(with, false), text);
  EXPECT_EQ(t.decode(with, true), "a\n\n\nb<b>");
}

TEST(Tokenizer, LiteralMatchIsLeftmostLongest) {
  VocabBuilder b;
  add_letters(&b);
  b.add("<start_of", kUser);
  Tokenizer t = b.build();
  // "<start_of" (always) starts at the same position as "<start_of_turn>" (special): longest wins
  // only when specials are parsed.
  EXPECT_EQ(t.encode("<start_of_turn>", false, true), ids_of(t, {"<start_of_turn>"}));
  const auto plain = t.encode("<start_of_turn>", false, false);
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(plain[0], *t.find_token("<start_of"));
}

TEST(Tokenizer, InvalidUtf8BecomesByteTokens) {
  VocabBuilder b;
  add_letters(&b);
  Tokenizer t = b.build();
  // Stray continuation byte, truncated 3-byte sequence, overlong "/", surrogate half.
  const std::string bad =
      "a\x80"
      "b\xE2\x96"
      "c\xC0\xAF"
      "d\xED\xA0\x80";
  const auto ids = t.encode(bad, false, false);
  EXPECT_EQ(ids, ids_of(t, {"a", "<0x80>", "b", "<0xE2>", "<0x96>", "c", "<0xC0>", "<0xAF>", "d", "<0xED>", "<0xA0>",
                            "<0x80>"}));
  // Decoding replaces each ill-formed subpart with U+FFFD, like Python's errors="replace".
  EXPECT_EQ(t.decode(ids, false), "a\uFFFDb\uFFFDc\uFFFD\uFFFDd\uFFFD\uFFFD\uFFFD");
}

TEST(Tokenizer, SpaceRunPiecesAreRespelled) {
  VocabBuilder b;
  add_letters(&b);
  const int32_t two = b.add("  ", kUser);  // GGUF spelling of "▁▁"
  Tokenizer t = b.build();
  EXPECT_EQ(t.token_text(two), "\u2581\u2581");
  EXPECT_EQ(t.encode("a  b", false, true), (std::vector<int32_t>{*t.find_token("a"), two, *t.find_token("b")}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{two}, true), "  ");
}

TEST(Tokenizer, LongRepetitiveInputIsLinearAndExact) {
  VocabBuilder b;
  add_letters(&b);
  b.add("aa");
  b.add("aaaa");
  Tokenizer t = b.build();
  const std::string text(200001, 'a');
  const auto ids = t.encode(text, false, false);
  EXPECT_EQ(ids.size(), 50001u);
  EXPECT_EQ(ids.back(), *t.find_token("a"));
  EXPECT_EQ(t.decode(ids, true), text);
}

TEST(Tokenizer, DecodeIgnoresOutOfRangeAndSkipsSpecials) {
  VocabBuilder b;
  add_letters(&b);
  Tokenizer t = b.build();
  const std::vector<int32_t> ids = {2, -5, *t.find_token("a"), 1 << 30, 1};
  EXPECT_EQ(t.decode(ids, true), "a");
  EXPECT_EQ(t.decode(ids, false), "<bos>a<eos>");
  EXPECT_TRUE(t.is_special(2));
  EXPECT_FALSE(t.is_special(*t.find_token("\n")));
  EXPECT_EQ(t.token_text(-1), "");
  EXPECT_EQ(t.token_text(t.n_vocab()), "");
}

TEST(Tokenizer, RoundTripsRandomValidUtf8) {
  VocabBuilder b;
  add_letters(&b);
  b.add("ab");
  b.add("\u2581a");
  Tokenizer t = b.build();
  std::mt19937 rng(7);
  const char32_t pool[] = {U'a', U'b', U' ', U'\n', U'\t', U'\u00E9', U'\u4E2D', U'\U0001F600', U'\u2581', U'c'};
  for (int iter = 0; iter < 500; ++iter) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) utf8::append(pool[rng() % std::size(pool)], &s);
    const auto ids = t.encode(s, false, false);
    // "▁" typed by the user decodes as a space, like HF; compare against that spelling.
    std::string expected;
    for (size_t i = 0; i < s.size();) {
      if (s.compare(i, 3, "\u2581") == 0) {
        expected.push_back(' ');
        i += 3;
      } else {
        expected.push_back(s[i++]);
      }
    }
    ASSERT_EQ(t.decode(ids, true), expected) << "iteration " << iter;
  }
}

// Replaces every "▁" with " " (how both HF and this tokenizer decode a typed "▁").
std::string spaces_for_escapes(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 3, "\u2581") == 0) {
      out.push_back(' ');
      i += 3;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

TEST(Tokenizer, RandomBytesKeepInvariants) {
  VocabBuilder b;
  add_letters(&b);
  b.add("ab");
  b.add("\u2581a");
  b.add("\u2581\u2581");
  Tokenizer t = b.build();
  const std::vector<std::string> alphabet = {"a",
                                             "b",
                                             "c",
                                             " ",
                                             "  ",
                                             "\n",
                                             "\t",
                                             "<",
                                             ">",
                                             "<start_of_turn>",
                                             "<start_of",
                                             "<end_of_turn>",
                                             "<b>",
                                             "\u2581",
                                             "\xE4\xB8\xAD",
                                             "\xF0\x9F\x98\x80",
                                             "\x80",
                                             "\xC3",
                                             "\xE2\x96",
                                             "\xFF",
                                             std::string(1, '\0')};
  std::mt19937 rng(3);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    const int len = static_cast<int>(rng() % 30);
    for (int i = 0; i < len; ++i) s += alphabet[rng() % alphabet.size()];
    for (bool parse_special : {true, false}) {
      const auto ids = t.encode(s, false, parse_special);
      for (int32_t id : ids) {
        ASSERT_TRUE(id >= 0 && id < t.n_vocab()) << id;
        if (!parse_special) {
          ASSERT_NE(t.token_type(id), TokenType::kControl) << "iteration " << iter;
        }
      }
      const std::string decoded = t.decode(ids, false);
      ASSERT_TRUE(utf8::is_valid(decoded));
      // Decoding gives back the input, with ill-formed bytes replaced exactly as a sanitizer would.
      std::string expected;
      utf8::append_sanitized(spaces_for_escapes(s), true, &expected);
      ASSERT_EQ(decoded, expected) << "iteration " << iter << " parse_special " << parse_special;
    }
  }
}

TEST(Tokenizer, LongInputEqualsWordByWordEncoding) {
  // More distinct words than the per-call memo keeps (it is emptied and refilled on the way);
  // encoding the whole text must equal encoding each word on its own.
  VocabBuilder b;
  add_letters(&b);
  for (const char* p : {"ab", "\u2581a", "ll", "he", "hell", "lo", "or", "wor", "\u2581wor", "ld"}) b.add(p);
  Tokenizer t = b.build();
  std::mt19937 rng(5);
  const std::string letters = "abcdehlorw";
  std::string text;
  std::vector<int32_t> expected;
  for (int w = 0; w < 150000; ++w) {
    std::string word = w == 0 ? "" : " ";
    const int len = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < len; ++i) word.push_back(letters[rng() % letters.size()]);
    const auto ids = t.encode(word, false, false);
    expected.insert(expected.end(), ids.begin(), ids.end());
    text += word;
  }
  EXPECT_EQ(t.encode(text, false, false), expected);
}

TEST(Tokenizer, PathologicalInputsStayLinear) {
  VocabBuilder b;
  add_letters(&b);
  b.add("\u2581\u2581");
  b.add("\u2581\u2581\u2581\u2581");
  Tokenizer t = b.build();
  const std::string spaces(1 << 20, ' ');
  const auto space_ids = t.encode(spaces, false, false);
  EXPECT_EQ(space_ids.size(), (1u << 20) / 4);
  EXPECT_EQ(t.decode(space_ids, true), spaces);
  std::string turns;
  for (int i = 0; i < 100000; ++i) turns += "<start_of_turn>";
  EXPECT_EQ(t.encode(turns, false, true).size(), 100000u);
  std::string cjk;
  for (int i = 0; i < 1 << 18; ++i) cjk += "\xE4\xB8\xAD";  // not in the vocabulary: three byte tokens each
  const auto cjk_ids = t.encode(cjk, false, true);
  EXPECT_EQ(cjk_ids.size(), 3u << 18);
  EXPECT_EQ(t.decode(cjk_ids, true), cjk);
}

TEST(StreamingDetokenizer, HoldsBackSplitCharacters) {
  VocabBuilder b;
  add_letters(&b);
  Tokenizer t = b.build();
  // "中" = E4 B8 AD as three byte tokens, then "a".
  StreamingDetokenizer s(t);
  EXPECT_EQ(s.push(*t.find_token("<0xE4>")), "");
  EXPECT_EQ(s.push(*t.find_token("<0xB8>")), "");
  EXPECT_EQ(s.push(*t.find_token("<0xAD>")), "\xE4\xB8\xAD");
  EXPECT_EQ(s.push(*t.find_token("a")), "a");
  // Emoji F0 9F 98 80 split, then interrupted by a normal token: the partial becomes U+FFFD.
  EXPECT_EQ(s.push(*t.find_token("<0xF0>")), "");
  EXPECT_EQ(s.push(*t.find_token("<0x9F>")), "");
  EXPECT_EQ(s.push(*t.find_token("b")), "\uFFFDb");
  EXPECT_EQ(s.push(*t.find_token("<0xF0>")), "");
  EXPECT_EQ(s.flush(), "\uFFFD");
  EXPECT_EQ(s.push(1), "");  // <eos> is skipped by default
}

TEST(StreamingDetokenizer, ConcatenationEqualsDecode) {
  VocabBuilder b;
  add_letters(&b);
  Tokenizer t = b.build();
  std::mt19937 rng(11);
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<int32_t> ids;
    const int len = static_cast<int>(rng() % 12);
    for (int i = 0; i < len; ++i) {
      // Mostly byte tokens (ids 9..264) so that partial and invalid sequences are common.
      ids.push_back(rng() % 4 == 0 ? static_cast<int32_t>(rng() % t.n_vocab()) : 9 + static_cast<int32_t>(rng() % 256));
    }
    for (bool skip : {true, false}) {
      StreamingDetokenizer s(t, skip);
      std::string streamed;
      for (int32_t id : ids) {
        const std::string piece = s.push(id);
        ASSERT_TRUE(utf8::is_valid(piece));
        streamed += piece;
      }
      streamed += s.flush();
      ASSERT_EQ(streamed, t.decode(ids, skip)) << "iteration " << iter;
    }
  }
}

TEST(Utf8, DecodeMatchesUnicodeTable) {
  EXPECT_EQ(utf8::decode("\xF4\x8F\xBF\xBF").kind, utf8::Decoded::Kind::kValid);
  EXPECT_EQ(utf8::decode("\xF4\x90\x80\x80").kind, utf8::Decoded::Kind::kInvalid);  // > U+10FFFF
  EXPECT_EQ(utf8::decode("\xE0\x80\x80").kind, utf8::Decoded::Kind::kInvalid);      // overlong
  EXPECT_EQ(utf8::decode("\xF0\x9F\x98").kind, utf8::Decoded::Kind::kIncomplete);
  EXPECT_EQ(utf8::decode("\xF0\x9F\x98").len, 3u);
  std::string out;
  EXPECT_EQ(utf8::append_sanitized("a\xF0\x9F", false, &out), 1u);
  EXPECT_EQ(out, "a");
  out.clear();
  utf8::append_sanitized(
      "\xF0\x9F"
      "a\xFF",
      true, &out);
  EXPECT_EQ(out, "\uFFFDa\uFFFD");
}

// --- malformed vocabulary data -------------------------------------------------------------

void expect_rejected(VocabData data, const std::string& needle) {
  auto t = Tokenizer::create(std::move(data));
  ASSERT_FALSE(t.is_ok()) << "accepted; expected an error mentioning " << needle;
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status().message();
}

TEST(VocabValidation, RejectsEmptyVocabulary) { expect_rejected(VocabData{}, "empty"); }

TEST(VocabValidation, RejectsBadByteTokenText) {
  VocabBuilder b;
  b.data.tokens[9 + 0x41] = "<0xZZ>";
  expect_rejected(b.data, "<0xZZ>");
  VocabBuilder dup;
  dup.data.tokens[9 + 0x42] = "<0x41>";
  expect_rejected(dup.data, "both byte token");
}

TEST(VocabValidation, RejectsIdsOutOfRange) {
  for (int which = 0; which < 4; ++which) {
    VocabBuilder b;
    int32_t* ids[] = {&b.data.bos_id, &b.data.eos_id, &b.data.pad_id, &b.data.unk_id};
    *ids[which] = static_cast<int32_t>(b.data.tokens.size());
    expect_rejected(b.data, "out of range");
    *ids[which] = -2;
    expect_rejected(b.data, "out of range");
  }
}

TEST(VocabValidation, RejectsMismatchedArraysAndTypes) {
  VocabBuilder scores;
  scores.data.scores.pop_back();
  expect_rejected(scores.data, "scores");
  VocabBuilder types;
  types.data.token_types.push_back(kNormal);
  expect_rejected(types.data, "token types");
  VocabBuilder type9;
  type9.data.token_types[4] = 9;
  expect_rejected(type9.data, "unknown type 9");
  VocabBuilder long_piece;
  long_piece.add(std::string(5000, 'x'));
  expect_rejected(long_piece.data, "bytes long");
}

TEST(VocabValidation, RejectsBadMerges) {
  VocabBuilder b;
  add_letters(&b);
  b.add("ab");
  b.data.kind = VocabData::Kind::kBpe;
  b.data.merges = {"a b", "a q"};
  expect_rejected(b.data, "unknown token 'q'");
  b.data.merges = {"a b", "b c"};  // "bc" is not a token
  expect_rejected(b.data, "unknown token 'bc'");
  b.data.merges = {"ab"};
  expect_rejected(b.data, "not two pieces");
  b.data.merges = {"a b"};
  auto ok = Tokenizer::create(b.data);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->encode("ab", false, false), ids_of(*ok, {"ab"}));
  // Without the merge, BPE does not combine even though "ab" is a piece.
  b.data.merges.clear();
  auto none = Tokenizer::create(b.data);
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->encode("ab", false, false), ids_of(*none, {"a", "b"}));

  VocabBuilder spm;
  spm.data.merges = {"a b"};
  expect_rejected(spm.data, "takes no merge list");
}

}  // namespace
}  // namespace ge
