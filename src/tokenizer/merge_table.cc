// Merge table construction: hash map growth, SentencePiece merge derivation, merge-list parsing.
#include "tokenizer/merge_table.h"

#include <algorithm>
#include <bit>

#include "tokenizer/utf8.h"

namespace ge::tokenizer_internal {

uint64_t PieceIndex::hash(std::string_view s) {
  // FNV-1a with a final mix; pieces are short, so a simple byte loop is fast enough.
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

void PieceIndex::build(const std::vector<std::string_view>& pieces) {
  pieces_ = pieces;
  size_t cap = 16;
  while (cap < 2 * pieces.size()) cap *= 2;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (size_t id = 0; id < pieces.size(); ++id) {
    const uint64_t h = hash(pieces[id]);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0 || (s.tag == tag && pieces_[s.id] == pieces[id])) {
        s = Slot{static_cast<int32_t>(id), tag};
        break;
      }
    }
  }
}

int32_t PieceIndex::find(std::string_view piece) const {
  if (slots_.empty()) return -1;
  const uint64_t h = hash(piece);
  const auto tag = static_cast<uint32_t>(h >> 32);
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.tag == tag && pieces_[s.id] == piece) return s.id;
  }
}

void MergeTable::reserve(size_t n) {
  // Load factor at most 0.7: linear probing stays short, and the table (16 bytes a slot) small.
  size_t cap = 16;
  while (cap * 7 < n * 10) cap *= 2;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  shift_ = 64 - std::countr_zero(cap);
  size_ = 0;
  for (const Slot& s : old) {
    if (s.key != kEmpty) {
      insert_or_assign(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFFu), s.merge);
    }
  }
}

void MergeTable::grow() { reserve(std::max<size_t>(16, slots_.size())); }  // doubles the capacity

void MergeTable::insert_or_assign(int32_t left, int32_t right, Merge merge) {
  if ((size_ + 1) * 10 > slots_.size() * 7) grow();
  const uint64_t key = pack(left, right);
  for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) {
      s.merge = merge;
      return;
    }
    if (s.key == kEmpty) {
      s.key = key;
      s.merge = merge;
      ++size_;
      return;
    }
  }
}

MergeTable derive_sentencepiece_merges(const std::vector<std::string_view>& pieces, const std::vector<bool>& mergeable,
                                       const PieceIndex& index) {
  MergeTable table;
  table.reserve(pieces.size() * 2);
  int32_t rank = 0;
  std::vector<size_t> cuts;  // byte offsets of code point boundaries inside a piece
  for (size_t id = 0; id < pieces.size(); ++id) {
    const std::string_view piece = pieces[id];
    if (!mergeable[id] || piece.size() < 2) continue;
    // A text shared by several ids names the last of them (PieceIndex); only that one is a target.
    if (index.find(piece) != static_cast<int32_t>(id)) continue;
    cuts.clear();
    for (size_t i = 0; i < piece.size();) {
      i += utf8::decode(piece.substr(i)).len;
      if (i < piece.size()) cuts.push_back(i);
    }
    // Longer left piece first: walk the cuts from the right end.
    for (auto it = cuts.rbegin(); it != cuts.rend(); ++it) {
      const int32_t left = index.find(piece.substr(0, *it));
      if (left < 0) continue;
      const int32_t right = index.find(piece.substr(*it));
      if (right < 0) continue;
      table.insert_or_assign(left, right, Merge{rank++, static_cast<int32_t>(id)});
    }
  }
  return table;
}

Result<MergeTable> parse_merge_list(const std::vector<std::string>& merges, const std::vector<bool>& mergeable,
                                    const PieceIndex& index) {
  if (merges.size() > static_cast<size_t>(INT32_MAX)) {
    return invalid_argument("tokenizer: " + std::to_string(merges.size()) + " merges is more than supported");
  }
  MergeTable table;
  table.reserve(merges.size());
  std::string joined;
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    const size_t sp = m.size() < 2 ? std::string::npos : m.find(' ', 1);
    if (sp == std::string::npos || sp + 1 >= m.size()) {
      return invalid_argument("tokenizer: merge " + std::to_string(i) + " ('" + m.substr(0, 64) +
                              "') is not two pieces separated by a space");
    }
    const std::string_view left_text = std::string_view(m).substr(0, sp);
    const std::string_view right_text = std::string_view(m).substr(sp + 1);
    const int32_t left = index.find(left_text);
    const int32_t right = index.find(right_text);
    joined.assign(left_text);
    joined.append(right_text);
    const int32_t result = index.find(joined);
    if (left < 0 || right < 0 || result < 0) {
      const std::string_view missing = left < 0 ? left_text : right < 0 ? right_text : std::string_view(joined);
      return invalid_argument("tokenizer: merge " + std::to_string(i) + " ('" + m.substr(0, 64) +
                              "') refers to unknown token '" + std::string(missing.substr(0, 64)) + "'");
    }
    // Merges into control/byte tokens would let plain text produce them; such entries are inert.
    if (!mergeable[static_cast<size_t>(result)]) continue;
    table.insert_or_assign(left, right, Merge{static_cast<int32_t>(i), result});
  }
  return table;
}

}  // namespace ge::tokenizer_internal
