// Continuous batching: a fixed set of slots (one Session, hence one KV cache, each) and a bounded
// queue, served by one engine thread. Every step packs the next token of each decoding sequence and
// chunks of waiting prompts into one GemmaModel::forward_batch call. Knows nothing of HTTP.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "runtime/engine.h"
#include "runtime/session.h"
#include "sampling/sampler.h"

namespace ge {

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

// One generated token, as a request's sink sees it.
struct TokenEvent {
  int32_t id = 0;
  int32_t index = 0;              // 0 for the first generated token
  float logprob = 0.0f;           // log p(id) of the model's distribution after logit_bias (when logprobs are on)
  std::vector<TokenLogprob> top;  // the `top_logprobs` most likely tokens, most likely first
};

enum class FinishReason {
  kStop,         // a stop token was sampled, or the sink asked to stop (a stop string)
  kLength,       // max_new_tokens reached
  kContextFull,  // the slot's context is full
  kCancelled,    // RequestHandle::cancel() or scheduler shutdown
  kError,        // the forward pass failed
};
// OpenAI's finish_reason spelling: "stop", "length" (kLength, kContextFull), "cancelled", "error".
const char* finish_reason_name(FinishReason r);

struct RequestTiming {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;     // prompt prefix reused from the slot's KV cache
  int64_t generated_tokens = 0;  // tokens handed to on_token
  double queue_ms = 0;           // submit → slot
  double prompt_ms = 0;          // slot → logits of the last prompt token
  double decode_ms = 0;          // first token → finish
  double ttft_ms = 0;            // submit → first token (0 when none was sampled)
};

// Restricts what may be sampled (structured output). Engine thread only.
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Whether `id` may come next when `tokens_left` tokens (this one included) remain in the budget.
  virtual bool allows(int32_t id, int32_t tokens_left) = 0;
  virtual void accept(int32_t id) = 0;
  // The output is whole: the request ends (kStop) after the token that completed it.
  virtual bool complete() const = 0;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;                        // non-empty, ids inside the vocabulary, at most the slot context
  SamplingParams sampling;                            // must pass validate()
  int32_t max_new_tokens = 256;                       // ≥ 1
  std::vector<int32_t> stop_ids;                      // sampling one ends the request; it is not passed on
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the logits before sampling
  int32_t top_logprobs = -1;  // -1: no logprobs; 0..20: the chosen token's logprob plus this many alternatives
  // Optional: tokens it refuses are masked (stop ids too) until it reports completion.
  std::shared_ptr<TokenConstraint> constraint;
  // Engine thread, once per generated token; returns false to end the request (kStop). Must not block.
  std::function<bool(const TokenEvent&)> on_token;
  // Engine thread, exactly once, after the last on_token. `error` is set for kError.
  std::function<void(FinishReason, const Status& error, const RequestTiming&)> on_finish;
};

// The caller's grip on a submitted request. cancel() is safe from any thread; the engine drops the
// request at the start of its next step (queued requests never reach a slot).
class RequestHandle {
 public:
  explicit RequestHandle(uint64_t id) : id_(id) {}
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  uint64_t id() const { return id_; }

 private:
  uint64_t id_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  int32_t n_slots = 4;            // concurrent sequences, each with its own KV cache; ≤ the model's max_chunk
  int32_t max_queue = 64;         // requests waiting for a slot beyond the free slots
  int32_t context_len = 4096;     // positions per slot
  double stall_ms = 5000;         // health(): a loop iteration older than this counts as stalled
  std::function<void()> on_step;  // engine thread, start of every loop iteration (test seam)
};

// Counters since start (monotonic) and current gauges.
struct SchedulerStats {
  int64_t requests_submitted = 0;
  int64_t requests_rejected = 0;  // queue full
  int64_t requests_finished = 0;  // any reason, cancelled and failed included
  int64_t requests_cancelled = 0;
  int64_t requests_failed = 0;
  int64_t prompt_tokens = 0;  // of requests that reached a slot
  int64_t cached_prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t steps = 0;         // forward_batch calls
  int64_t batch_tokens = 0;  // tokens over all steps
  double busy_ms = 0;        // time spent in steps
  int32_t queue_depth = 0;
  int32_t active_slots = 0;
  int32_t n_slots = 0;
  int32_t max_queue = 0;
  double generated_tokens_per_second = 0;  // over the last 10 s
  // Time to first token: cumulative counts per upper bound (seconds), Prometheus style.
  std::vector<double> ttft_bounds;
  std::vector<int64_t> ttft_counts;  // ttft_bounds.size() + 1 (the last is +Inf)
  double ttft_sum_s = 0;
};

enum class Admission { kAccepted, kQueueFull, kInvalid, kStopped };

struct Submission {
  Admission admission = Admission::kInvalid;
  Status status;  // why, when not accepted
  std::shared_ptr<RequestHandle> handle;
};

class Scheduler {
 public:
  // Creates the slots' sessions (KV caches are allocated here, not per request) and starts the loop.
  static Result<std::unique_ptr<Scheduler>> create(Engine& engine, const SchedulerOptions& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Validates and queues a request. kInvalid: empty or over-long prompt, ids outside the vocabulary,
  // bad sampling values, max_new_tokens < 1, top_logprobs outside [-1, 20]. kQueueFull: every slot
  // busy and max_queue requests already waiting. kStopped: after stop() or when the loop died.
  Submission submit(GenerationRequest request);

  // Ends the loop: every queued and running request finishes with kCancelled. Idempotent.
  void stop();

  enum class Health { kOk, kStalled, kStopped };
  Health health() const;
  double heartbeat_age_ms() const;
  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return options_; }
  Engine& engine() { return engine_; }

 private:
  struct Active;
  struct Slot {
    std::unique_ptr<Session> session;
    std::unique_ptr<Active> active;
    uint64_t last_used = 0;
    std::vector<float> raw_row;     // the biased row before sampling (logprobs), [vocab] once needed
    std::vector<float> masked_row;  // constrained sampling: refused tokens at -inf
  };
  // One row's sampled token and logprobs.
  struct Draw {
    int32_t tok = -1;  // -1: nothing may be sampled
    float logprob = 0.0f;
    std::vector<TokenLogprob> top;
  };

  Scheduler(Engine& engine, const SchedulerOptions& options);
  void loop();
  void admit(std::unique_ptr<Active> a);
  void step();
  // draw() may run for several slots at once; emit() (events, finishing) runs on the engine thread.
  Draw draw(Slot& slot, float* row);
  void emit(Slot& slot, Draw d);
  // Sampling under a TokenConstraint; -1 when no token is allowed.
  int32_t sample_constrained(Slot& slot, float* row);
  void finish(Slot& slot, FinishReason reason, const Status& error);
  void finish_request(Active& a, FinishReason reason, const Status& error);
  void record_ttft(double ms);

  Engine& engine_;
  SchedulerOptions options_;
  std::vector<Slot> slots_;
  std::vector<float> logits_;   // [n_slots, vocab]
  std::unique_ptr<ThreadPool> sample_pool_;  // draws rows in parallel; null with one slot or one core
  uint64_t use_counter_ = 0;
  uint64_t admit_counter_ = 0;

  mutable std::mutex mu_;  // guards queue_, stopping_, active_count_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Active>> queue_;
  bool stopping_ = false;
  int32_t active_count_ = 0;
  std::atomic<uint64_t> next_id_{1};

  std::once_flag stop_once_;
  std::atomic<bool> loop_running_{false};
  std::atomic<double> heartbeat_ms_{0};
  std::thread thread_;

  mutable std::mutex stats_mu_;
  SchedulerStats stats_;
  std::deque<std::pair<double, int64_t>> recent_;  // (time ms, tokens generated in that step)
};

}  // namespace ge
