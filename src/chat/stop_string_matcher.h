// User stop strings ("stop": [...] in a request) matched across streamed text chunks: text is
// released only once it cannot be the start of a stop string.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ge::chat {

class StopStringMatcher {
 public:
  struct Result {
    std::string text;      // safe to show now (never contains any part of a stop string)
    bool stopped = false;  // a stop string completed; `text` ends right before it
    std::string matched;   // which one
  };

  // Empty strings in `stops` are ignored.
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Feeds the next chunk of generated text. Once stopped, further calls return {"", true, ...}.
  Result push(std::string_view chunk);
  // End of generation without a stop: returns the held-back tail.
  std::string flush();
  void reset();

  bool stopped() const { return stopped_; }
  // Text currently held back because it may begin a stop string.
  const std::string& held() const { return held_; }

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string held_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace ge::chat
