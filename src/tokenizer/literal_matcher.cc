// Byte trie over token literals; a scan tries the trie only at bytes that start some literal.
#include "tokenizer/literal_matcher.h"

#include <algorithm>

namespace ge::tokenizer_internal {

void LiteralMatcher::add(std::string_view text, int32_t id, bool always) {
  if (text.empty()) return;
  uint32_t node = 0;
  for (char c : text) {
    const auto b = static_cast<uint8_t>(c);
    uint32_t next = 0;
    for (const Edge& e : pending_[node]) {
      if (e.byte == b) next = e.child;
    }
    if (next == 0) {
      next = static_cast<uint32_t>(nodes_.size());
      nodes_.push_back(Node{});
      pending_.emplace_back();
      pending_[node].push_back(Edge{b, next});
    }
    node = next;
  }
  // A text listed twice keeps the later id, as for ordinary pieces.
  nodes_[node].id_any = id;
  if (always) nodes_[node].id_always = id;
  const auto b0 = static_cast<uint8_t>(text[0]);
  starts_[1][b0] = true;
  if (always) starts_[0][b0] = true;
}

void LiteralMatcher::finalize() {
  edges_.clear();
  for (size_t n = 0; n < nodes_.size(); ++n) {
    auto& list = pending_[n];
    std::sort(list.begin(), list.end(), [](const Edge& a, const Edge& b) { return a.byte < b.byte; });
    nodes_[n].first_edge = static_cast<uint32_t>(edges_.size());
    nodes_[n].n_edges = static_cast<uint32_t>(list.size());
    edges_.insert(edges_.end(), list.begin(), list.end());
  }
  pending_.clear();
  pending_.shrink_to_fit();
}

int64_t LiteralMatcher::child(uint32_t node, uint8_t byte) const {
  const Node& n = nodes_[node];
  const Edge* begin = edges_.data() + n.first_edge;
  const Edge* end = begin + n.n_edges;
  const Edge* it = std::lower_bound(begin, end, byte, [](const Edge& e, uint8_t b) { return e.byte < b; });
  return (it != end && it->byte == byte) ? static_cast<int64_t>(it->child) : -1;
}

size_t LiteralMatcher::longest_at(std::string_view text, size_t pos, bool parse_special, int32_t* id) const {
  uint32_t node = 0;
  size_t best = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const int64_t next = child(node, static_cast<uint8_t>(text[i]));
    if (next < 0) break;
    node = static_cast<uint32_t>(next);
    const int32_t here = parse_special ? nodes_[node].id_any : nodes_[node].id_always;
    if (here >= 0) {
      best = i + 1 - pos;
      *id = here;
    }
  }
  return best;
}

LiteralMatcher::Match LiteralMatcher::find(std::string_view text, size_t from, bool parse_special) const {
  const bool* starts = starts_[parse_special ? 1 : 0];
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!starts[static_cast<uint8_t>(text[pos])]) continue;
    int32_t id = -1;
    const size_t len = longest_at(text, pos, parse_special, &id);
    if (len > 0) return Match{pos, len, id};
  }
  return Match{text.size(), 0, -1};
}

}  // namespace ge::tokenizer_internal
