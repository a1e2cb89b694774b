// Tokenizer construction (validation, lookup tables) and the encode/decode paths. Encoding follows
// HF tokenizers' BPE model: split out literals, escape " " as "▁", start from code points (byte
// fallback for unknown ones), then merge the best-ranked adjacent pair until none is left.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include "tokenizer/literal_matcher.h"
#include "tokenizer/merge_table.h"
#include "tokenizer/utf8.h"

namespace ge {

using tokenizer_internal::LiteralMatcher;
using tokenizer_internal::MergeTable;
using tokenizer_internal::PieceIndex;

namespace {

constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";  // U+2581 "▁"
constexpr char32_t kSpaceEscapeCp = 0x2581;
// Deriving SentencePiece merges costs O(len^2) per token; real pieces are under 100 bytes.
constexpr size_t kMaxMergeablePieceBytes = 1024;
// Symbol indices are int32; a run of this many symbols with no chunk boundary (a 1G-character
// "word") is merged in slices, the one case where the result may differ from HF.
constexpr size_t kMaxChunkSymbols = size_t{1} << 30;
// Per-call memo of chunk results (ChunkMemo): only chunks of up to this many symbols.
constexpr size_t kMaxMemoSymbols = 32;

bool is_mergeable_type(TokenType t) {
  return t == TokenType::kNormal || t == TokenType::kUserDefined || t == TokenType::kUndefined;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0x41>" -> 0x41; -1 when `s` is not a byte-token spelling.
int parse_byte_token(std::string_view s) {
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return -1;
  const int hi = hex_value(s[3]), lo = hex_value(s[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

// A piece made only of ASCII spaces can never be looked up, because text reaches the model with
// every space escaped as "▁". Gemma GGUF files store the whitespace pieces of the SentencePiece
// model ("▁▁", "▁▁▁", ...) that way; they are respelled and treated as ordinary pieces, which is
// what HF does when it converts such a file.
bool is_space_run(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c == ' '; });
}

std::string respell_spaces(size_t n) {
  std::string out;
  out.reserve(n * kSpaceEscape.size());
  for (size_t i = 0; i < n; ++i) out.append(kSpaceEscape);
  return out;
}

std::string piece_to_text(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  size_t i = 0;
  while (i < piece.size()) {
    const size_t hit = piece.find(kSpaceEscape, i);
    if (hit == std::string_view::npos) {
      out.append(piece.substr(i));
      break;
    }
    out.append(piece.substr(i, hit - i));
    out.push_back(' ');
    i = hit + kSpaceEscape.size();
  }
  return out;
}

char32_t last_code_point(std::string_view s) {
  if (s.empty()) return 0;
  size_t i = s.size() - 1;
  while (i > 0 && s.size() - i < 4 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  const utf8::Decoded d = utf8::decode(s.substr(i));
  return d.kind == utf8::Decoded::Kind::kValid ? d.cp : static_cast<uint8_t>(s.back()) | 0x80000000u;
}

Status check_special_id(const char* name, int32_t id, size_t n_vocab) {
  if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n_vocab)) {
    return invalid_argument(std::string("tokenizer: ") + name + " " + std::to_string(id) +
                            " is out of range for a vocabulary of " + std::to_string(n_vocab) + " tokens");
  }
  return Status::ok();
}

}  // namespace

namespace tokenizer_internal {

struct Symbol {
  int32_t id;    // -1 once merged into its left neighbour
  int32_t prev;  // index of the previous live symbol in the chunk, -1 at the start
  int32_t next;  // index of the next live symbol in the chunk, -1 at the end
};

struct Candidate {
  int32_t rank;
  int32_t result;
  int32_t pos;  // left symbol
};

// Min-heap order: lowest rank first, then leftmost.
struct CandidateAfter {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

// Results of short chunks seen earlier in the same encode call, keyed by their initial symbol
// ids. Words repeat, and BPE of a chunk depends on nothing else, so this is exact. Keys and values
// live in one arena; the table is open-addressed and simply emptied when it grows too large.
class ChunkMemo {
 public:
  // The remembered ids for `key`; empty when unknown (a chunk always yields at least one id).
  std::span<const int32_t> find(std::span<const int32_t> key, uint64_t hash) const {
    if (slots_.empty()) return {};
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return {};
      if (s.hash == hash && s.key_len == key.size() && std::equal(key.begin(), key.end(), arena_.begin() + s.key_off)) {
        return {arena_.data() + s.val_off, s.val_len};
      }
    }
  }
  void insert(std::span<const int32_t> key, uint64_t hash, std::span<const int32_t> value) {
    if (key.empty() || key.size() > 0xFFFF || value.size() > 0xFFFF) return;
    if (slots_.empty() || 2 * (count_ + 1) > slots_.size()) {
      if (count_ >= kMaxEntries) {
        clear();
      } else {
        rehash(slots_.empty() ? 1024 : 2 * slots_.size());
      }
    }
    Slot s{hash, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(arena_.size() + key.size()),
           static_cast<uint16_t>(key.size()), static_cast<uint16_t>(value.size())};
    arena_.insert(arena_.end(), key.begin(), key.end());
    arena_.insert(arena_.end(), value.begin(), value.end());
    place(s);
    ++count_;
  }

 private:
  static constexpr size_t kMaxEntries = 1u << 16;  // bounds the arena to a few MB
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0;
    uint32_t val_off = 0;
    uint16_t key_len = 0;  // 0 marks an empty slot
    uint16_t val_len = 0;
  };
  void place(const Slot& s) {
    size_t i = s.hash & mask_;
    while (slots_[i].key_len != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
  void rehash(size_t cap) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old) {
      if (s.key_len != 0) place(s);
    }
  }
  void clear() {
    slots_.assign(slots_.size(), Slot{});
    arena_.clear();
    count_ = 0;
  }
  std::vector<Slot> slots_;
  std::vector<int32_t> arena_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

// Scratch space for one encode call, reused across chunks.
struct EncodeScratch {
  std::vector<Symbol> syms;
  std::vector<Candidate> heap;
  std::vector<int32_t> key;
  ChunkMemo memo;
};

}  // namespace tokenizer_internal

using tokenizer_internal::Candidate;
using tokenizer_internal::CandidateAfter;
using tokenizer_internal::Symbol;

struct Tokenizer::Impl {
  VocabData::Kind kind = VocabData::Kind::kSentencePiece;
  std::vector<std::string> pieces;  // lookup spelling (space runs respelled)
  std::vector<std::string> texts;   // decoded text of each piece ("▁" -> " ")
  std::vector<TokenType> types;
  PieceIndex index;
  MergeTable merges;
  LiteralMatcher literals;
  std::array<int32_t, 256> byte_ids{};
  std::vector<int32_t> bmp_ids;                      // code point < 0x10000 -> id of that 1-char piece
  std::unordered_map<char32_t, int32_t> astral_ids;  // the same above the BMP
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  bool add_bos = false;
  bool add_space_prefix = false;

  int32_t char_id(char32_t cp) const {
    if (cp < 0x10000) return bmp_ids[cp];
    auto it = astral_ids.find(cp);
    return it == astral_ids.end() ? -1 : it->second;
  }

  // Id of the "▁" piece (-1 if absent) and the code points after which a "▁" may start a new
  // chunk: those that end the left side of no merge whose right side starts with "▁". Splitting
  // there is exact because no token can ever span the boundary.
  int32_t space_id = -1;
  std::vector<char32_t> joins_space;  // sorted: last code points of left pieces merging with "▁..."
  bool split_before_space(int32_t prev_id) const {
    const char32_t cp = last_code_point(pieces[prev_id]);
    return !std::binary_search(joins_space.begin(), joins_space.end(), cp);
  }

  void encode_segment(std::string_view seg, bool prefix, tokenizer_internal::EncodeScratch* scratch,
                      std::vector<int32_t>* out) const;
  void merge_chunk(tokenizer_internal::EncodeScratch* scratch, std::vector<int32_t>* out) const;
};

// BPE over one chunk of symbols, exactly as HF's BPE::merge_word: repeatedly apply the queued pair
// with the lowest (rank, position). Appends the final ids to `out`.
void Tokenizer::Impl::merge_chunk(tokenizer_internal::EncodeScratch* scratch, std::vector<int32_t>* out) const {
  std::vector<Symbol>& syms = scratch->syms;
  if (syms.size() == 1) {
    out->push_back(syms[0].id);
    return;
  }
  const bool memoize = syms.size() <= kMaxMemoSymbols;
  uint64_t hash = 0;
  if (memoize) {
    std::vector<int32_t>& key = scratch->key;
    key.clear();
    hash = syms.size();
    for (const Symbol& sym : syms) {
      key.push_back(sym.id);
      hash = (hash ^ static_cast<uint32_t>(sym.id)) * 0x9E3779B97F4A7C15ull;
      hash ^= hash >> 31;
    }
    const std::span<const int32_t> known = scratch->memo.find(key, hash);
    if (!known.empty()) {
      out->insert(out->end(), known.begin(), known.end());
      return;
    }
  }
  const size_t out_start = out->size();
  std::vector<Candidate>& heap = scratch->heap;
  heap.clear();
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) {
    if (const auto* m = merges.find(syms[i].id, syms[i + 1].id)) heap.push_back(Candidate{m->rank, m->result, i});
  }
  std::make_heap(heap.begin(), heap.end(), CandidateAfter{});
  auto consider = [&](int32_t left) {
    const int32_t right = syms[left].next;
    if (right < 0) return;
    if (const auto* m = merges.find(syms[left].id, syms[right].id)) {
      heap.push_back(Candidate{m->rank, m->result, left});
      std::push_heap(heap.begin(), heap.end(), CandidateAfter{});
    }
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), CandidateAfter{});
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = syms[top.pos];
    if (left.id < 0 || left.next < 0) continue;
    // A stale candidate: the pair at this position changed since it was queued. As in HF, the
    // entry still applies if the current pair merges into the same token.
    const auto* m = merges.find(left.id, syms[left.next].id);
    if (m == nullptr || m->result != top.result) continue;
    Symbol& right = syms[left.next];
    left.id = top.result;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = top.pos;
    right.id = -1;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out->push_back(syms[i].id);
  if (memoize) {
    scratch->memo.insert(scratch->key, hash,
                         std::span<const int32_t>(out->data() + out_start, out->size() - out_start));
  }
}

void Tokenizer::Impl::encode_segment(std::string_view seg, bool prefix, tokenizer_internal::EncodeScratch* scratch,
                                     std::vector<int32_t>* out) const {
  std::vector<Symbol>& syms = scratch->syms;
  // Chunks end where no merge can join the two sides (see split_before_space); each is merged on
  // its own, which keeps the queue small and the result identical.
  auto flush = [&] {
    if (!syms.empty()) merge_chunk(scratch, out);
    syms.clear();
  };
  auto push = [&](int32_t id) {
    if (id == space_id && !syms.empty() && split_before_space(syms.back().id)) flush();
    const auto n = static_cast<int32_t>(syms.size());
    syms.push_back(Symbol{id, n - 1, -1});
    if (n > 0) syms[n - 1].next = n;
  };
  // Unknown input that has no byte token maps to <unk>; adjacent unknowns fuse into one.
  auto push_unknown = [&] {
    if (unk_id < 0) return;
    if (!syms.empty() && syms.back().id == unk_id) return;
    push(unk_id);
  };
  auto push_bytes = [&](std::string_view bytes) {
    for (char c : bytes) {
      if (byte_ids[static_cast<uint8_t>(c)] < 0) {
        push_unknown();
        return;
      }
    }
    for (char c : bytes) push(byte_ids[static_cast<uint8_t>(c)]);
  };
  auto push_code_point = [&](char32_t cp, std::string_view bytes) {
    const int32_t id = char_id(cp);
    if (id >= 0) {
      push(id);
    } else if (cp == kSpaceEscapeCp) {
      push_bytes(kSpaceEscape);
    } else {
      push_bytes(bytes);
    }
  };

  if (prefix) push_code_point(kSpaceEscapeCp, kSpaceEscape);
  for (size_t i = 0; i < seg.size();) {
    const utf8::Decoded d = utf8::decode(seg.substr(i));
    if (d.kind == utf8::Decoded::Kind::kValid) {
      const char32_t cp = d.cp == U' ' ? kSpaceEscapeCp : d.cp;
      push_code_point(cp, seg.substr(i, d.len));
      i += d.len;
    } else {
      // Ill-formed input: each byte stands alone as its byte token (documented in tokenizer.h).
      push_bytes(seg.substr(i, 1));
      i += 1;
    }
    if (syms.size() >= kMaxChunkSymbols) flush();
  }
  flush();
}

Result<Tokenizer> Tokenizer::create(VocabData data) {
  const size_t n = data.tokens.size();
  if (n == 0) return invalid_argument("tokenizer: the vocabulary is empty");
  if (n >= static_cast<size_t>(INT32_MAX)) {
    return invalid_argument("tokenizer: a vocabulary of " + std::to_string(n) + " tokens is too large");
  }
  if (!data.scores.empty() && data.scores.size() != n) {
    return invalid_argument("tokenizer: " + std::to_string(data.scores.size()) + " scores for " + std::to_string(n) +
                            " tokens");
  }
  if (!data.token_types.empty() && data.token_types.size() != n) {
    return invalid_argument("tokenizer: " + std::to_string(data.token_types.size()) + " token types for " +
                            std::to_string(n) + " tokens");
  }
  GE_RETURN_IF_ERROR(check_special_id("bos_id", data.bos_id, n));
  GE_RETURN_IF_ERROR(check_special_id("eos_id", data.eos_id, n));
  GE_RETURN_IF_ERROR(check_special_id("pad_id", data.pad_id, n));
  GE_RETURN_IF_ERROR(check_special_id("unk_id", data.unk_id, n));
  const bool sentencepiece = data.kind == VocabData::Kind::kSentencePiece;
  if (sentencepiece && !data.merges.empty()) {
    return invalid_argument("tokenizer: a SentencePiece vocabulary takes no merge list (" +
                            std::to_string(data.merges.size()) + " given)");
  }

  auto impl = std::make_shared<Impl>();
  impl->kind = data.kind;
  impl->bos_id = data.bos_id;
  impl->eos_id = data.eos_id;
  impl->pad_id = data.pad_id;
  impl->unk_id = data.unk_id;
  impl->add_bos = data.add_bos;
  impl->add_space_prefix = data.add_space_prefix;
  impl->byte_ids.fill(-1);
  impl->types.resize(n, TokenType::kNormal);
  std::vector<bool> respelled(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (!data.token_types.empty()) {
      const int32_t t = data.token_types[i];
      if (t < 0 || t > static_cast<int32_t>(TokenType::kByte)) {
        return invalid_argument("tokenizer: token " + std::to_string(i) + " has unknown type " + std::to_string(t));
      }
      impl->types[i] = static_cast<TokenType>(t);
    }
    const std::string& text = data.tokens[i];
    if (impl->types[i] == TokenType::kByte) {
      const int b = parse_byte_token(text);
      if (b < 0) {
        return invalid_argument("tokenizer: byte token " + std::to_string(i) + " is spelled '" + text.substr(0, 32) +
                                "', expected <0xXX> with two hex digits");
      }
      if (impl->byte_ids[b] >= 0) {
        return invalid_argument("tokenizer: tokens " + std::to_string(impl->byte_ids[b]) + " and " + std::to_string(i) +
                                " are both byte token " + text);
      }
      impl->byte_ids[b] = static_cast<int32_t>(i);
    }
    if (sentencepiece && is_space_run(text)) {
      respelled[i] = true;
      impl->types[i] = TokenType::kNormal;
    }
    if (sentencepiece && is_mergeable_type(impl->types[i]) && text.size() > kMaxMergeablePieceBytes) {
      return invalid_argument("tokenizer: token " + std::to_string(i) + " is " + std::to_string(text.size()) +
                              " bytes long; pieces are limited to " + std::to_string(kMaxMergeablePieceBytes));
    }
  }
  impl->pieces.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    impl->pieces.push_back(respelled[i] ? respell_spaces(data.tokens[i].size()) : std::move(data.tokens[i]));
  }
  data.tokens.clear();

  std::vector<std::string_view> views(impl->pieces.begin(), impl->pieces.end());
  impl->index.build(views);
  std::vector<bool> mergeable(n);
  for (size_t i = 0; i < n; ++i) mergeable[i] = is_mergeable_type(impl->types[i]);
  if (sentencepiece) {
    impl->merges = tokenizer_internal::derive_sentencepiece_merges(views, mergeable, impl->index);
  } else {
    GE_ASSIGN_OR_RETURN(impl->merges, tokenizer_internal::parse_merge_list(data.merges, mergeable, impl->index));
  }

  // Single-code-point pieces seed encoding; only the id the text index names counts.
  impl->bmp_ids.assign(0x10000, -1);
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = impl->pieces[i];
    if (p.empty() || !mergeable[i] || impl->index.find(p) != static_cast<int32_t>(i)) continue;
    const utf8::Decoded d = utf8::decode(p);
    if (d.kind != utf8::Decoded::Kind::kValid || d.len != p.size()) continue;
    if (d.cp < 0x10000) {
      impl->bmp_ids[d.cp] = static_cast<int32_t>(i);
    } else {
      impl->astral_ids[d.cp] = static_cast<int32_t>(i);
    }
  }

  impl->space_id = impl->bmp_ids[kSpaceEscapeCp];
  const std::vector<std::string>& pieces = impl->pieces;
  impl->merges.for_each([&](int32_t left, int32_t right, const tokenizer_internal::Merge&) {
    if (pieces[right].starts_with(kSpaceEscape)) impl->joins_space.push_back(last_code_point(pieces[left]));
  });
  std::sort(impl->joins_space.begin(), impl->joins_space.end());
  impl->joins_space.erase(std::unique(impl->joins_space.begin(), impl->joins_space.end()), impl->joins_space.end());

  // Literals: control tokens (and bos/eos/pad/unk) need parse_special; user-defined always match.
  auto is_named_special = [&](int32_t id) {
    return id == impl->bos_id || id == impl->eos_id || id == impl->pad_id || id == impl->unk_id;
  };
  for (size_t i = 0; i < n; ++i) {
    const TokenType t = impl->types[i];
    const auto id = static_cast<int32_t>(i);
    if (t == TokenType::kUserDefined) {
      impl->literals.add(impl->pieces[i], id, /*always=*/true);
    } else if (t == TokenType::kControl || is_named_special(id)) {
      impl->literals.add(impl->pieces[i], id, /*always=*/false);
    }
  }
  impl->literals.finalize();

  impl->texts.reserve(n);
  for (size_t i = 0; i < n; ++i) impl->texts.push_back(piece_to_text(impl->pieces[i]));
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  const Impl& im = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && im.bos_id >= 0) out.push_back(im.bos_id);
  tokenizer_internal::EncodeScratch scratch;
  size_t pos = 0;
  while (pos < text.size()) {
    const LiteralMatcher::Match m = im.literals.find(text, pos, parse_special);
    if (m.pos > pos) {
      // The dummy prefix goes before the input's first character only when that is plain text.
      im.encode_segment(text.substr(pos, m.pos - pos), im.add_space_prefix && pos == 0, &scratch, &out);
    }
    if (m.len == 0) break;
    out.push_back(m.id);
    pos = m.pos + m.len;
  }
  return out;
}

bool Tokenizer::append_piece(int32_t id, bool skip_special, bool first, std::string* out) const {
  const Impl& im = *impl_;
  if (id < 0 || static_cast<size_t>(id) >= im.pieces.size()) return false;
  if (im.types[id] == TokenType::kByte) {
    const int b = parse_byte_token(im.pieces[id]);
    out->push_back(static_cast<char>(b));
    return true;
  }
  if (skip_special && is_special(id)) return false;
  std::string_view text = im.texts[id];
  if (first && im.add_space_prefix && !text.empty() && text[0] == ' ') text.remove_prefix(1);
  out->append(text);
  return true;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (append_piece(id, skip_special, first, &bytes)) first = false;
  }
  std::string out;
  out.reserve(bytes.size());
  utf8::append_sanitized(bytes, /*final=*/true, &out);
  return out;
}

std::string_view Tokenizer::token_text(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->pieces.size()) return {};
  return impl_->pieces[id];
}

int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(impl_->pieces.size()); }

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  const int32_t id = impl_->index.find(text);
  if (id < 0) return std::nullopt;
  return id;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->types.size()) return TokenType::kUndefined;
  return impl_->types[id];
}

bool Tokenizer::is_special(int32_t id) const {
  const Impl& im = *impl_;
  if (id < 0 || static_cast<size_t>(id) >= im.types.size()) return false;
  const TokenType t = im.types[id];
  return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUnused || id == im.bos_id ||
         id == im.eos_id || id == im.pad_id || id == im.unk_id;
}

bool Tokenizer::is_byte_token(int32_t id) const { return token_type(id) == TokenType::kByte; }
VocabData::Kind Tokenizer::kind() const { return impl_->kind; }
int32_t Tokenizer::bos_id() const { return impl_->bos_id; }
int32_t Tokenizer::eos_id() const { return impl_->eos_id; }
int32_t Tokenizer::pad_id() const { return impl_->pad_id; }
int32_t Tokenizer::unk_id() const { return impl_->unk_id; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_space_prefix() const { return impl_->add_space_prefix; }

}  // namespace ge
