// StopStringMatcher: earliest-completing stop string wins; a possible prefix is held back.
#include "chat/stop_string_matcher.h"

#include <algorithm>
#include <utility>

namespace ge::chat {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (s.empty()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

void StopStringMatcher::reset() {
  held_.clear();
  stopped_ = false;
  matched_.clear();
}

StopStringMatcher::Result StopStringMatcher::push(std::string_view chunk) {
  Result r;
  if (stopped_) {
    r.stopped = true;
    r.matched = matched_;
    return r;
  }
  std::string buf = std::move(held_);
  held_.clear();
  buf.append(chunk);

  // The stop string that completes first in the stream: smallest end offset, then the earliest
  // start (the longer one) — the text shown is everything before its start.
  size_t best_end = std::string::npos;
  size_t best_start = 0;
  const std::string* best = nullptr;
  for (const auto& s : stops_) {
    const size_t pos = buf.find(s);
    if (pos == std::string::npos) continue;
    const size_t end = pos + s.size();
    if (end < best_end || (end == best_end && pos < best_start)) {
      best_end = end;
      best_start = pos;
      best = &s;
    }
  }
  if (best != nullptr) {
    r.text = buf.substr(0, best_start);
    r.stopped = true;
    r.matched = *best;
    stopped_ = true;
    matched_ = *best;
    return r;
  }

  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  const size_t window = std::min(buf.size(), max_len_ == 0 ? 0 : max_len_ - 1);
  for (size_t len = window; len > 0 && hold == 0; --len) {
    const std::string_view tail = std::string_view(buf).substr(buf.size() - len);
    for (const auto& s : stops_) {
      if (s.size() > len && std::string_view(s).substr(0, len) == tail) {
        hold = len;
        break;
      }
    }
  }
  r.text = buf.substr(0, buf.size() - hold);
  held_ = buf.substr(buf.size() - hold);
  return r;
}

std::string StopStringMatcher::flush() {
  if (stopped_) return std::string();
  return std::exchange(held_, std::string());
}

}  // namespace ge::chat
