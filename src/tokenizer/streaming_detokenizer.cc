// Streaming detokenizer: pieces are appended to a byte buffer and only whole sequences leave it.
#include "tokenizer/streaming_detokenizer.h"

#include "tokenizer/utf8.h"

namespace ge {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string StreamingDetokenizer::push(int32_t id) {
  if (tokenizer_->append_piece(id, skip_special_, first_, &pending_)) first_ = false;
  std::string out;
  const size_t used = utf8::append_sanitized(pending_, /*final=*/false, &out);
  pending_.erase(0, used);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out;
  utf8::append_sanitized(pending_, /*final=*/true, &out);
  pending_.clear();
  first_ = true;
  return out;
}

}  // namespace ge
