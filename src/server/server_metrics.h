// HTTP request counters and the Prometheus text exposition of them plus the scheduler's numbers
// (requests, tokens, queue depth, throughput, time-to-first-token histogram).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "runtime/scheduler.h"

namespace ge::server {

class ServerMetrics {
 public:
  // Counts one finished HTTP request. Unknown paths are counted under "other" so that a scan
  // cannot grow the label set without bound.
  void count(const std::string& path, int status);

  // Prometheus text format 0.0.4. `stats` is null while the model loads.
  std::string render(const SchedulerStats* stats, double heartbeat_age_s, double uptime_s) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
};

}  // namespace ge::server
