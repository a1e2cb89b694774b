// BPE merge table: (left id, right id) -> (rank, merged id), in an open-addressing hash map because
// encoding looks a pair up for every symbol. Built either from an explicit merge list (HF
// tokenizer.json, GGUF "gemma4") or derived from a SentencePiece vocabulary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ge::tokenizer_internal {

struct Merge {
  int32_t rank;    // lower merges first
  int32_t result;  // id of the merged token
};

class MergeTable {
 public:
  MergeTable() = default;

  // Reserves room for `n` pairs; call before inserting.
  void reserve(size_t n);
  // Inserts or replaces the entry for (left, right).
  void insert_or_assign(int32_t left, int32_t right, Merge merge);

  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t key = pack(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }
  // Calls fn(left, right, merge) for every entry, in no particular order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const Slot& s : slots_) {
      if (s.key != kEmpty) fn(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFFu), s.merge);
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;  // ids are non-negative int32, so no real key is all ones
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{0, 0};
  };
  static uint64_t pack(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  size_t slot_of(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_) & mask_; }
  void grow();

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

// Exact text -> id, as an open-addressing table of ids (the texts stay in the caller's storage,
// which must outlive the index and not move). Where two tokens share a text the later id wins
// (a vocabulary read as a JSON object or Python dict behaves the same).
class PieceIndex {
 public:
  void build(const std::vector<std::string_view>& pieces);
  int32_t find(std::string_view piece) const;  // -1 when absent

 private:
  static uint64_t hash(std::string_view s);
  struct Slot {
    int32_t id = -1;   // token id, -1 when empty
    uint32_t tag = 0;  // high hash bits: most misses are settled without touching the text
  };
  std::vector<std::string_view> pieces_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// SentencePiece BPE: every split of a token into two vocabulary pieces is a merge. SentencePiece
// lists BPE pieces in merge order, so the merged token's position is the priority (earlier merges
// first); for one token, splits with a longer left piece come first. `mergeable[i]` says whether
// token i may be produced by a merge (control, byte and unused tokens never are).
// `pieces[i]` is the text of token i.
MergeTable derive_sentencepiece_merges(const std::vector<std::string_view>& pieces, const std::vector<bool>& mergeable,
                                       const PieceIndex& index);

// Explicit merges "left right" (split at the first space after the first byte); rank = position,
// a later duplicate replaces an earlier one. Fails on a malformed entry or an unknown piece.
Result<MergeTable> parse_merge_list(const std::vector<std::string>& merges, const std::vector<bool>& mergeable,
                                    const PieceIndex& index);

}  // namespace ge::tokenizer_internal
