// Incremental detokenization for generation: ids go in one at a time, complete UTF-8 comes out.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace ge {

// Returns only complete UTF-8 and holds back a multi-byte character split across byte tokens
// until its last byte arrives. The concatenation of every push() and the final flush() equals
// Tokenizer::decode of the same ids with the same `skip_special`.
class StreamingDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special = true);

  std::string push(int32_t id);
  // Emits whatever is held back (an unfinished sequence becomes U+FFFD) and starts over.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  bool first_ = true;    // the next kept piece is the first one (dummy-prefix rule)
  std::string pending_;  // bytes of an unfinished UTF-8 sequence
};

}  // namespace ge
