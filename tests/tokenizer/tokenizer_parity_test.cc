// Parity with HF tokenizers on the real Gemma 3 vocabulary: the tokenizer is built from the GGUF
// named by GE_TEST_MODEL and compared with HF's ids recorded in tests/data/tokenizer/
// gemma3_parity.bin (scripts/gen_tokenizer_fixtures.py). Also round trips, streaming and speed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "formats/gguf_reader.h"
#include "tokenizer/streaming_detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace ge {
namespace {

struct ParityCase {
  std::string text;
  std::vector<int32_t> ids;        // parse_special = true (HF default)
  std::vector<int32_t> ids_plain;  // parse_special = false (HF encode_special_tokens = True)
};

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool u8(uint8_t* v) {
    if (pos_ + 1 > data_.size()) return false;
    *v = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool u32(uint32_t* v) {
    if (pos_ + 4 > data_.size()) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v |= static_cast<uint32_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return true;
  }
  bool bytes(size_t n, std::string* out) {
    if (n > data_.size() - pos_) return false;
    out->assign(data_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool ids(std::vector<int32_t>* out) {
    uint32_t n;
    if (!u32(&n) || n > data_.size() - pos_) return false;
    out->resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t v = 0;
      for (int shift = 0;; shift += 7) {
        uint8_t b;
        if (shift > 28 || !u8(&b)) return false;
        v |= static_cast<uint64_t>(b & 0x7F) << shift;
        if (!(b & 0x80)) break;
      }
      (*out)[i] = static_cast<int32_t>(v);
    }
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

std::vector<ParityCase> load_fixture() {
  const std::string path = std::string(GE_TEST_DATA_DIR) + "/tokenizer/gemma3_parity.bin";
  auto text = read_text_file(path);
  EXPECT_TRUE(text.is_ok()) << text.status().to_string();
  if (!text.is_ok()) return {};
  Reader r(text.value());
  std::string magic;
  uint32_t count = 0;
  EXPECT_TRUE(r.bytes(8, &magic) && magic == "GETKPAR1" && r.u32(&count)) << "bad fixture header: " << path;
  std::vector<ParityCase> cases;
  for (uint32_t i = 0; i < count; ++i) {
    ParityCase c;
    uint8_t flags;
    uint32_t len;
    const bool ok = r.u8(&flags) && r.u32(&len) && r.bytes(len, &c.text) && r.ids(&c.ids) &&
                    ((flags & 1) ? r.ids(&c.ids_plain) : (c.ids_plain = c.ids, true));
    EXPECT_TRUE(ok) << "fixture record " << i << " is truncated";
    if (!ok) return {};
    cases.push_back(std::move(c));
  }
  EXPECT_TRUE(r.done()) << "trailing bytes in " << path;
  return cases;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The model file, or nullopt (test skipped) when GE_TEST_MODEL is unset.
struct Model {
  gguf::GgufFile file;
  Tokenizer tokenizer;
};

std::optional<Model>& shared_model() {
  static std::optional<Model> model = []() -> std::optional<Model> {
    const char* path = std::getenv("GE_TEST_MODEL");
    if (path == nullptr || *path == '\0') return std::nullopt;
    auto file = gguf::GgufFile::open(path);
    if (!file.is_ok()) {
      ADD_FAILURE() << "GE_TEST_MODEL=" << path << " cannot be read: " << file.status().to_string();
      return std::nullopt;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    auto tok = Tokenizer::from_gguf(file.value());
    const double cpu_ms = 1e3 * (thread_cpu_seconds() - c0);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!tok.is_ok()) {
      ADD_FAILURE() << "from_gguf(" << path << "): " << tok.status().to_string();
      return std::nullopt;
    }
    std::printf("[ tokenizer ] from_gguf: %d tokens in %.0f ms wall, %.0f ms thread CPU time\n", tok->n_vocab(), ms,
                cpu_ms);
    return Model{std::move(file).value(), std::move(tok).value()};
  }();
  return model;
}

#define GE_REQUIRE_MODEL()                                                                    \
  if (std::getenv("GE_TEST_MODEL") == nullptr || *std::getenv("GE_TEST_MODEL") == '\0') {     \
    GTEST_SKIP() << "GE_TEST_MODEL is not set";                                               \
  }                                                                                           \
  ASSERT_TRUE(shared_model().has_value()) << "the model named by GE_TEST_MODEL did not load"; \
  const Tokenizer& tok = shared_model()->tokenizer

std::string show(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 120)) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out.push_back(c);
    }
  }
  return out + (s.size() > 120 ? "..." : "");
}

std::string first_difference(const std::vector<int32_t>& got, const std::vector<int32_t>& want, const Tokenizer& t) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto piece = [&](const std::vector<int32_t>& v) {
    return i < v.size() ? std::to_string(v[i]) + " '" + show(t.token_text(v[i])) + "'" : std::string("<end>");
  };
  return "at index " + std::to_string(i) + ": got " + piece(got) + ", HF " + piece(want) + " (lengths " +
         std::to_string(got.size()) + " vs " + std::to_string(want.size()) + ")";
}

TEST(TokenizerParity, GgufMetadataIsRead) {
  GE_REQUIRE_MODEL();
  EXPECT_EQ(tok.kind(), VocabData::Kind::kSentencePiece);
  EXPECT_EQ(tok.n_vocab(), 262144);
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.add_space_prefix());
  EXPECT_EQ(tok.find_token("<start_of_turn>"), std::optional<int32_t>(105));
  EXPECT_EQ(tok.find_token("<end_of_turn>"), std::optional<int32_t>(106));
  EXPECT_TRUE(tok.is_special(106));
  EXPECT_FALSE(tok.is_special(107));  // "\n" is user-defined, ordinary text
  // No dummy prefix: "Hello" is the single piece "Hello", " Hello" the piece "▁Hello".
  const auto hello = tok.encode("Hello", false, true);
  ASSERT_EQ(hello.size(), 1u);
  EXPECT_EQ(tok.token_text(hello[0]), "Hello");
  const auto space_hello = tok.encode(" Hello", true, true);
  ASSERT_EQ(space_hello.size(), 2u);
  EXPECT_EQ(space_hello[0], 2);
  EXPECT_EQ(tok.token_text(space_hello[1]), "\u2581Hello");
}

TEST(TokenizerParity, MatchesHfTokenizersOnFixture) {
  GE_REQUIRE_MODEL();
  const std::vector<ParityCase> cases = load_fixture();
  ASSERT_GE(cases.size(), 5000u);
  size_t mismatches = 0, long_inputs = 0, checked = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const ParityCase& c = cases[i];
    if (c.text.size() >= 100000) ++long_inputs;
    for (bool parse_special : {true, false}) {
      const std::vector<int32_t>& want = parse_special ? c.ids : c.ids_plain;
      const std::vector<int32_t> got = tok.encode(c.text, false, parse_special);
      ++checked;
      if (got != want) {
        if (++mismatches <= 20) {
          ADD_FAILURE() << "case " << i << " (parse_special=" << parse_special << ") '" << show(c.text) << "' "
                        << first_difference(got, want, tok);
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << checked << " encodings";
  EXPECT_GE(long_inputs, 3u);
  std::printf("[ tokenizer ] parity: %zu strings x 2 modes, %zu mismatches\n", cases.size(), mismatches);
}

TEST(TokenizerParity, DecodeRoundTripsAndStreamingAgrees) {
  GE_REQUIRE_MODEL();
  const std::vector<ParityCase> cases = load_fixture();
  ASSERT_FALSE(cases.empty());
  size_t failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const ParityCase& c = cases[i];
    // "▁" typed in the text decodes as a space (HF does the same); otherwise exact.
    std::string expected;
    for (size_t k = 0; k < c.text.size();) {
      if (c.text.compare(k, 3, "\u2581") == 0) {
        expected.push_back(' ');
        k += 3;
      } else {
        expected.push_back(c.text[k++]);
      }
    }
    const auto ids = tok.encode(c.text, false, false);
    if (tok.decode(ids, true) != expected && ++failures <= 10) {
      ADD_FAILURE() << "case " << i << " does not round-trip: '" << show(c.text) << "'";
    }
    // HF's ids with specials parsed decode back to the text when specials are kept.
    if (tok.decode(c.ids, false) != expected && ++failures <= 10) {
      ADD_FAILURE() << "case " << i << ": decode(HF ids) differs from the text '" << show(c.text) << "'";
    }
    StreamingDetokenizer stream(tok, /*skip_special=*/false);
    std::string streamed;
    for (int32_t id : c.ids) {
      std::string part = stream.push(id);
      if (!utf8::is_valid(part) && ++failures <= 10) ADD_FAILURE() << "case " << i << ": partial UTF-8 streamed";
      streamed += part;
    }
    streamed += stream.flush();
    if (streamed != expected && ++failures <= 10) ADD_FAILURE() << "case " << i << ": streaming differs";
  }
  EXPECT_EQ(failures, 0u);
}

// Best-of-5 encode throughput on `text` (parse_special on, no BOS), single thread.
void report_speed(const Tokenizer& tok, const std::string& text, const char* what) {
  size_t n_ids = 0;
  double best_wall = 1e9, best_cpu = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    n_ids = tok.encode(text, false, true).size();
    best_cpu = std::min(best_cpu, thread_cpu_seconds() - c0);
    best_wall = std::min(best_wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf(
      "[ tokenizer ] encode: %.1f MB/s wall, %.1f MB/s thread CPU time (%s, %zu bytes, %zu ids, "
      "1 thread, best of 5)\n",
      mb / best_wall, mb / best_cpu, what, text.size(), n_ids);
  EXPECT_GT(n_ids, 0u);
}

// Repeats `pieces` until the text is 1 MiB long (cut back to a whole UTF-8 character).
std::string one_mib_of(const std::vector<std::string_view>& pieces) {
  std::string text;
  while (text.size() < (1u << 20)) {
    for (std::string_view p : pieces) text += p;
  }
  text.resize(1u << 20);
  std::string unused;
  text.resize(utf8::append_sanitized(text, /*final=*/false, &unused));
  return text;
}

// Mixed text: every fixture string under 100 KB (all scripts, emoji, code, whitespace runs, random
// code points), repeated to 1 MiB. GE_TOKENIZER_BENCH_FILE adds a figure for a file of your choice
// (for example English prose), also repeated to 1 MiB.
TEST(TokenizerParity, EncodeSpeed) {
  GE_REQUIRE_MODEL();
  const std::vector<ParityCase> cases = load_fixture();
  ASSERT_FALSE(cases.empty());
  std::vector<std::string_view> pieces;
  for (const ParityCase& c : cases) {
    if (c.text.size() < 100000) pieces.push_back(c.text);
  }
  report_speed(tok, one_mib_of(pieces), "1 MiB of the parity fixture's mixed strings");
  if (const char* path = std::getenv("GE_TOKENIZER_BENCH_FILE"); path != nullptr && *path != '\0') {
    auto file = read_text_file(path);
    ASSERT_TRUE(file.is_ok()) << file.status().to_string();
    ASSERT_FALSE(file->empty());
    report_speed(tok, one_mib_of({file.value()}), path);
  }
}

}  // namespace
}  // namespace ge
