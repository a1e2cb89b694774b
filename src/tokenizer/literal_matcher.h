// Leftmost-longest matching of token literals (control and user-defined tokens such as
// "<start_of_turn>" or "\n\n") in raw text, the way HF tokenizers splits out added tokens.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ge::tokenizer_internal {

class LiteralMatcher {
 public:
  // `always` literals match in every mode; the others only when special tokens are parsed.
  // Empty texts are ignored. Call finalize() after the last add().
  void add(std::string_view text, int32_t id, bool always);
  void finalize();

  struct Match {
    size_t pos;  // byte offset in the text; text.size() when there is none
    size_t len;
    int32_t id;
  };
  // First match at or after `from`: the leftmost start, and the longest literal starting there.
  Match find(std::string_view text, size_t from, bool parse_special) const;

 private:
  struct Node {
    int32_t id_any = -1;      // literal ending here, matched when special tokens are parsed
    int32_t id_always = -1;   // literal ending here that matches in every mode
    uint32_t first_edge = 0;  // edges_[first_edge, first_edge + n_edges), sorted by byte
    uint32_t n_edges = 0;
  };
  struct Edge {
    uint8_t byte;
    uint32_t child;
  };
  size_t longest_at(std::string_view text, size_t pos, bool parse_special, int32_t* id) const;
  int64_t child(uint32_t node, uint8_t byte) const;

  std::vector<Node> nodes_{Node{}};
  std::vector<std::vector<Edge>> pending_{{}};  // per-node edges while building
  std::vector<Edge> edges_;
  bool starts_[2][256] = {};  // [parse_special][byte]: some literal of that mode starts with byte
};

}  // namespace ge::tokenizer_internal
