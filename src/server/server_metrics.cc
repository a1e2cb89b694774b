// Prometheus rendering.
#include "server/server_metrics.h"

#include <cstdio>
#include <sstream>

namespace ge::server {
namespace {

const char* const kRoutes[] = {"/health",         "/metrics",  "/v1/models",  "/v1/chat/completions",
                               "/v1/completions", "/tokenize", "/detokenize", "/chat/completions",
                               "/completions",    "/models"};

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

}  // namespace

void ServerMetrics::count(const std::string& path, int status) {
  std::string label = "other";
  for (const char* r : kRoutes)
    if (path == r) label = r;
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_[{label, status}];
}

std::string ServerMetrics::render(const SchedulerStats* s, double heartbeat_age_s, double uptime_s) const {
  std::ostringstream os;
  auto metric = [&](const char* name, const char* type, const char* help) {
    os << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  metric("gemma_http_requests_total", "counter", "HTTP requests by route and status code.");
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [key, n] : requests_)
      os << "gemma_http_requests_total{route=\"" << key.first << "\",code=\"" << key.second << "\"} " << n << "\n";
  }
  metric("gemma_uptime_seconds", "gauge", "Seconds since the server started.");
  os << "gemma_uptime_seconds " << num(uptime_s) << "\n";
  metric("gemma_model_loaded", "gauge", "1 once the model is loaded and the engine loop runs.");
  os << "gemma_model_loaded " << (s ? 1 : 0) << "\n";
  if (s == nullptr) return os.str();

  metric("gemma_requests_submitted_total", "counter", "Generation requests accepted into the queue.");
  os << "gemma_requests_submitted_total " << s->requests_submitted << "\n";
  metric("gemma_requests_rejected_total", "counter", "Generation requests refused with 429 (queue full).");
  os << "gemma_requests_rejected_total " << s->requests_rejected << "\n";
  metric("gemma_requests_finished_total", "counter", "Generation requests finished, for any reason.");
  os << "gemma_requests_finished_total " << s->requests_finished << "\n";
  metric("gemma_requests_cancelled_total", "counter", "Generation requests cancelled (client gone).");
  os << "gemma_requests_cancelled_total " << s->requests_cancelled << "\n";
  metric("gemma_requests_failed_total", "counter", "Generation requests that failed in the engine.");
  os << "gemma_requests_failed_total " << s->requests_failed << "\n";
  metric("gemma_prompt_tokens_total", "counter", "Prompt tokens of requests that reached a slot.");
  os << "gemma_prompt_tokens_total " << s->prompt_tokens << "\n";
  metric("gemma_prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's KV cache.");
  os << "gemma_prompt_tokens_cached_total " << s->cached_prompt_tokens << "\n";
  metric("gemma_generation_tokens_total", "counter", "Generated tokens.");
  os << "gemma_generation_tokens_total " << s->generated_tokens << "\n";
  metric("gemma_generation_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.");
  os << "gemma_generation_tokens_per_second " << num(s->generated_tokens_per_second) << "\n";
  metric("gemma_batch_steps_total", "counter", "Batched forward passes.");
  os << "gemma_batch_steps_total " << s->steps << "\n";
  metric("gemma_batch_tokens_total", "counter", "Tokens processed by all forward passes.");
  os << "gemma_batch_tokens_total " << s->batch_tokens << "\n";
  metric("gemma_engine_busy_seconds_total", "counter", "Time spent in forward passes.");
  os << "gemma_engine_busy_seconds_total " << num(s->busy_ms / 1000.0) << "\n";
  metric("gemma_queue_depth", "gauge", "Requests waiting for a slot.");
  os << "gemma_queue_depth " << s->queue_depth << "\n";
  metric("gemma_queue_capacity", "gauge", "Requests that may wait beyond the free slots.");
  os << "gemma_queue_capacity " << s->max_queue << "\n";
  metric("gemma_slots_busy", "gauge", "Slots serving a request.");
  os << "gemma_slots_busy " << s->active_slots << "\n";
  metric("gemma_slots_total", "gauge", "Slots (concurrent sequences).");
  os << "gemma_slots_total " << s->n_slots << "\n";
  metric("gemma_engine_heartbeat_age_seconds", "gauge", "Age of the engine loop's last iteration.");
  os << "gemma_engine_heartbeat_age_seconds " << num(heartbeat_age_s) << "\n";
  metric("gemma_time_to_first_token_seconds", "histogram", "Time from submission to the first generated token.");
  for (size_t i = 0; i < s->ttft_bounds.size(); ++i)
    os << "gemma_time_to_first_token_seconds_bucket{le=\"" << num(s->ttft_bounds[i]) << "\"} " << s->ttft_counts[i]
       << "\n";
  const int64_t total = s->ttft_counts.empty() ? 0 : s->ttft_counts.back();
  os << "gemma_time_to_first_token_seconds_bucket{le=\"+Inf\"} " << total << "\n";
  os << "gemma_time_to_first_token_seconds_sum " << num(s->ttft_sum_s) << "\n";
  os << "gemma_time_to_first_token_seconds_count " << total << "\n";
  return os.str();
}

}  // namespace ge::server
