// Scheduler: admission (queue → slot with the longest cached prefix), the batched step (decode
// tokens first, then prompt chunks within max_chunk), sampling with logprobs, and statistics.
#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <thread>

namespace ge {
namespace {

double steady_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr double kThroughputWindowMs = 10000.0;
constexpr int32_t kMaxTopLogprobs = 20;

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kContextFull:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "stop";
}

struct Scheduler::Active {
  GenerationRequest req;
  std::shared_ptr<RequestHandle> handle;
  std::unique_ptr<Sampler> sampler;
  std::vector<int32_t> history;  // prompt + generated tokens (the penalties' window)
  size_t prefill_done = 0;       // prompt tokens already in the slot's cache
  int32_t pending = 0;           // decoding: the sampled token to feed next
  bool decoding = false;
  uint64_t order = 0;  // admission order: older prompts prefill first
  double submit_ms = 0, start_ms = 0, first_token_ms = 0;
  RequestTiming timing;
};

Scheduler::Scheduler(Engine& engine, const SchedulerOptions& options) : engine_(engine), options_(options) {}

Result<std::unique_ptr<Scheduler>> Scheduler::create(Engine& engine, const SchedulerOptions& options) {
  const int32_t max_chunk = engine.model().max_chunk();
  if (options.n_slots < 1 || options.n_slots > max_chunk)
    return invalid_argument("scheduler: slots must be in [1, " + std::to_string(max_chunk) +
                            "] (one decode token per slot must fit the prefill chunk)");
  if (options.max_queue < 0) return invalid_argument("scheduler: the queue length must be >= 0");
  if (!(options.stall_ms > 0)) return invalid_argument("scheduler: stall_ms must be positive");
  std::unique_ptr<Scheduler> s(new Scheduler(engine, options));
  s->slots_.resize(static_cast<size_t>(options.n_slots));
  for (Slot& slot : s->slots_) {
    Result<std::unique_ptr<Session>> session = engine.create_session(options.context_len);
    if (!session.is_ok())
      return Status(session.status().code(), "scheduler: creating a slot: " + session.status().message());
    slot.session = std::move(session).value();
  }
  const size_t vocab = static_cast<size_t>(engine.config().vocab_size);
  s->logits_.resize(static_cast<size_t>(options.n_slots) * vocab);
  const int pool = static_cast<int>(std::min<unsigned>(8, std::max(1u, std::thread::hardware_concurrency())));
  if (options.n_slots > 1 && pool > 1) s->sample_pool_ = std::make_unique<ThreadPool>(std::min(pool, options.n_slots));
  s->stats_.n_slots = options.n_slots;
  s->stats_.max_queue = options.max_queue;
  s->stats_.ttft_bounds = {0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};
  s->stats_.ttft_counts.assign(s->stats_.ttft_bounds.size() + 1, 0);
  s->heartbeat_ms_ = steady_ms();
  s->loop_running_ = true;
  s->thread_ = std::thread([p = s.get()] { p->loop(); });
  return s;
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::stop() {
  // call_once: concurrent callers all return after the join.
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  });
}

Submission Scheduler::submit(GenerationRequest request) {
  Submission out;
  const int64_t vocab = engine_.config().vocab_size;
  auto invalid = [&](std::string msg) {
    out.admission = Admission::kInvalid;
    out.status = invalid_argument("scheduler: " + msg);
    return out;
  };
  if (request.prompt.empty()) return invalid("the prompt is empty");
  if (static_cast<int64_t>(request.prompt.size()) > options_.context_len)
    return invalid("the prompt has " + std::to_string(request.prompt.size()) + " tokens but a slot holds " +
                   std::to_string(options_.context_len));
  for (int32_t id : request.prompt)
    if (id < 0 || id >= vocab) return invalid("prompt token id " + std::to_string(id) + " is outside the vocabulary");
  for (const auto& [id, bias] : request.logit_bias)
    if (id < 0 || id >= vocab || !std::isfinite(bias))
      return invalid("logit_bias entry for token " + std::to_string(id));
  if (request.max_new_tokens < 1) return invalid("max_new_tokens must be >= 1");
  if (request.top_logprobs < -1 || request.top_logprobs > kMaxTopLogprobs)
    return invalid("top_logprobs must be in [-1, " + std::to_string(kMaxTopLogprobs) + "]");
  if (Status s = validate(request.sampling); !s.is_ok()) return invalid(s.message());

  auto a = std::make_unique<Active>();
  a->handle = std::make_shared<RequestHandle>(next_id_.fetch_add(1));
  a->sampler = std::make_unique<Sampler>(request.sampling);
  a->history = request.prompt;
  a->req = std::move(request);
  a->submit_ms = steady_ms();
  out.handle = a->handle;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) {
      out.admission = Admission::kStopped;
      out.status = internal_error("scheduler: the engine loop is not running");
      out.handle.reset();
      return out;
    }
    const size_t capacity =
        static_cast<size_t>(options_.max_queue) + static_cast<size_t>(std::max(0, options_.n_slots - active_count_));
    if (queue_.size() >= capacity) {
      std::lock_guard<std::mutex> sl(stats_mu_);
      ++stats_.requests_rejected;
      out.admission = Admission::kQueueFull;
      out.status = invalid_argument("scheduler: all " + std::to_string(options_.n_slots) + " slots are busy and " +
                                    std::to_string(queue_.size()) + " requests are waiting");
      out.handle.reset();
      return out;
    }
    queue_.push_back(std::move(a));
  }
  {
    std::lock_guard<std::mutex> sl(stats_mu_);
    ++stats_.requests_submitted;
  }
  cv_.notify_one();
  out.admission = Admission::kAccepted;
  return out;
}

void Scheduler::loop() {
  std::string fatal;
  try {
    while (true) {
      heartbeat_ms_ = steady_ms();
      if (options_.on_step) options_.on_step();
      std::vector<std::unique_ptr<Active>> admitted, dropped;
      {
        std::unique_lock<std::mutex> lk(mu_);
        if (stopping_) break;
        for (auto it = queue_.begin(); it != queue_.end();) {
          if ((*it)->handle->cancelled()) {
            dropped.push_back(std::move(*it));
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
        while (active_count_ < options_.n_slots && !queue_.empty()) {
          admitted.push_back(std::move(queue_.front()));
          queue_.pop_front();
          ++active_count_;
        }
        if (admitted.empty() && dropped.empty() && active_count_ == 0) {
          // Idle: wake at least every 100 ms so the heartbeat stays fresh.
          cv_.wait_for(lk, std::chrono::milliseconds(100));
          continue;
        }
      }
      for (auto& d : dropped) finish_request(*d, FinishReason::kCancelled, Status::ok());
      for (auto& a : admitted) admit(std::move(a));
      for (Slot& s : slots_)
        if (s.active && s.active->handle->cancelled()) finish(s, FinishReason::kCancelled, Status::ok());
      step();
    }
  } catch (const std::exception& e) {
    fatal = e.what();
  } catch (...) {
    fatal = "unknown exception";
  }

  // Shutdown (or a dead loop): nothing may be left waiting.
  std::deque<std::unique_ptr<Active>> rest;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
    rest.swap(queue_);
  }
  const FinishReason reason = fatal.empty() ? FinishReason::kCancelled : FinishReason::kError;
  const Status why = fatal.empty() ? Status::ok() : internal_error("scheduler: engine loop failed: " + fatal);
  for (Slot& s : slots_)
    if (s.active) finish(s, reason, why);
  for (auto& a : rest) finish_request(*a, reason, why);
  loop_running_ = false;
}

void Scheduler::admit(std::unique_ptr<Active> a) {
  // The free slot whose cache shares the longest prefix with the prompt, if that prefix is at least
  // half of what the slot holds (a follow-up turn, or a shared system prompt); otherwise the least
  // recently used slot, so that a stranger sharing only <bos> does not evict a conversation.
  Slot* best = nullptr;
  Slot* lru = nullptr;
  int32_t best_len = 0;
  for (Slot& s : slots_) {
    if (s.active) continue;
    if (lru == nullptr || s.last_used < lru->last_used) lru = &s;
    const int32_t len = s.session->common_prefix(a->req.prompt);
    if (len > 0 && 2 * static_cast<int64_t>(len) >= s.session->position() && len > best_len) {
      best = &s;
      best_len = len;
    }
  }
  GE_CHECK(lru != nullptr);
  if (best == nullptr) {
    best = lru;
    best_len = best->session->common_prefix(a->req.prompt);
  }
  // At least the last prompt token is recomputed: its logits give the first generated token.
  int32_t keep = std::min<int32_t>(best_len, static_cast<int32_t>(a->req.prompt.size()) - 1);
  if (!best->session->truncate(keep).is_ok()) {
    best->session->reset();
    keep = 0;
  }
  a->prefill_done = static_cast<size_t>(keep);
  a->start_ms = steady_ms();
  a->order = ++admit_counter_;
  a->timing.prompt_tokens = static_cast<int64_t>(a->req.prompt.size());
  a->timing.cached_tokens = keep;
  a->timing.queue_ms = a->start_ms - a->submit_ms;
  {
    std::lock_guard<std::mutex> sl(stats_mu_);
    stats_.prompt_tokens += a->timing.prompt_tokens;
    stats_.cached_prompt_tokens += keep;
  }
  best->active = std::move(a);
}

void Scheduler::step() {
  GemmaModel& model = engine_.model();
  int32_t budget = model.max_chunk();
  std::vector<SequenceChunk> chunks;
  std::vector<Slot*> owners;  // per chunk
  std::vector<Slot*> rows;    // per logits row
  // Decoding sequences first: one token each (n_slots ≤ max_chunk, so all of them fit).
  for (Slot& s : slots_) {
    if (!s.active || !s.active->decoding || budget == 0) continue;
    chunks.push_back(
        SequenceChunk{&s.session->cache(), &s.active->pending, 1, s.session->position(), LogitsMode::kLast});
    owners.push_back(&s);
    rows.push_back(&s);
    --budget;
  }
  // Then prompt chunks, oldest request first, within what is left of the budget.
  std::vector<Slot*> prefilling;
  for (Slot& s : slots_)
    if (s.active && !s.active->decoding) prefilling.push_back(&s);
  std::sort(prefilling.begin(), prefilling.end(),
            [](const Slot* a, const Slot* b) { return a->active->order < b->active->order; });
  for (Slot* s : prefilling) {
    if (budget == 0) break;
    Active& a = *s->active;
    const size_t left = a.req.prompt.size() - a.prefill_done;
    const int32_t n = static_cast<int32_t>(std::min<size_t>(left, static_cast<size_t>(budget)));
    const bool last = static_cast<size_t>(n) == left;
    chunks.push_back(SequenceChunk{&s->session->cache(), a.req.prompt.data() + a.prefill_done, n,
                                   s->session->position(), last ? LogitsMode::kLast : LogitsMode::kNone});
    owners.push_back(s);
    if (last) rows.push_back(s);
    budget -= n;
  }
  if (chunks.empty()) return;

  const double t0 = steady_ms();
  const Status st = model.forward_batch(chunks, logits_.data());
  const double t1 = steady_ms();
  if (!st.is_ok()) {
    for (Slot* s : owners) finish(*s, FinishReason::kError, st);
    return;
  }
  int64_t batch_tokens = 0;
  for (size_t k = 0; k < chunks.size(); ++k) {
    Slot& s = *owners[k];
    s.session->append(std::span<const int32_t>(chunks[k].tokens, static_cast<size_t>(chunks[k].n)));
    if (!s.active->decoding) s.active->prefill_done += static_cast<size_t>(chunks[k].n);
    batch_tokens += chunks[k].n;
  }
  const size_t vocab = static_cast<size_t>(engine_.config().vocab_size);
  int64_t generated_before = 0;
  {
    std::lock_guard<std::mutex> sl(stats_mu_);
    ++stats_.steps;
    stats_.batch_tokens += batch_tokens;
    stats_.busy_ms += t1 - t0;
    generated_before = stats_.generated_tokens;
  }
  // Drawing (sampling, logprobs, constraints: O(vocab) per row) runs in parallel over the rows;
  // the tokens are then handed on in row order on this thread.
  std::vector<Draw> draws(rows.size());
  auto draw_rows = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      draws[static_cast<size_t>(r)] = draw(*rows[static_cast<size_t>(r)], logits_.data() + static_cast<size_t>(r) * vocab);
  };
  if (sample_pool_ && rows.size() > 1)
    sample_pool_->parallel_for(static_cast<int64_t>(rows.size()), 1, draw_rows);
  else
    draw_rows(0, static_cast<int64_t>(rows.size()));
  for (size_t r = 0; r < rows.size(); ++r) emit(*rows[r], std::move(draws[r]));
  std::lock_guard<std::mutex> sl(stats_mu_);
  recent_.emplace_back(t1, stats_.generated_tokens - generated_before);
  while (!recent_.empty() && recent_.front().first < t1 - kThroughputWindowMs) recent_.pop_front();
}

Scheduler::Draw Scheduler::draw(Slot& slot, float* row) {
  // Touches only this slot's request and buffers: rows are drawn in parallel.
  Active& a = *slot.active;
  const size_t vocab = static_cast<size_t>(engine_.config().vocab_size);
  for (const auto& [id, bias] : a.req.logit_bias) row[id] += bias;
  const bool want_logprobs = a.req.top_logprobs >= 0;
  if (want_logprobs) {
    slot.raw_row.resize(vocab);
    std::copy(row, row + vocab, slot.raw_row.begin());
  }
  Draw d;
  d.tok = a.req.constraint ? sample_constrained(slot, row) : a.sampler->sample(std::span<float>(row, vocab), a.history);
  if (!want_logprobs || d.tok < 0) return d;
  // log-softmax of the biased logits (before penalties and temperature), as OpenAI reports them.
  const std::vector<float>& raw = slot.raw_row;
  float mx = -INFINITY;
  for (float v : raw)
    if (v > mx) mx = v;
  double sum = 0;
  for (float v : raw) sum += std::exp(static_cast<double>(v - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  d.logprob = raw[static_cast<size_t>(d.tok)] - lse;
  const size_t k = static_cast<size_t>(a.req.top_logprobs);
  if (k > 0) {
    // Keep the k best (value desc, id asc) in a small sorted vector: O(V·k) worst case, k ≤ 20.
    std::vector<TokenLogprob> best;
    best.reserve(k + 1);
    auto better = [](const TokenLogprob& x, const TokenLogprob& y) {
      return x.logprob > y.logprob || (x.logprob == y.logprob && x.id < y.id);
    };
    for (size_t i = 0; i < vocab; ++i) {
      const TokenLogprob c{static_cast<int32_t>(i), raw[i]};
      if (best.size() == k && !better(c, best.back())) continue;
      best.insert(std::upper_bound(best.begin(), best.end(), c, better), c);
      if (best.size() > k) best.pop_back();
    }
    for (TokenLogprob& t : best) t.logprob -= lse;
    d.top = std::move(best);
  }
  return d;
}

void Scheduler::emit(Slot& slot, Draw d) {
  Active& a = *slot.active;
  const int32_t tok = d.tok;
  const double now = steady_ms();
  if (a.first_token_ms == 0) {
    a.first_token_ms = now;
    a.timing.prompt_ms = now - a.start_ms;
    a.timing.ttft_ms = now - a.submit_ms;
    record_ttft(a.timing.ttft_ms);
  }
  if (tok < 0 || std::find(a.req.stop_ids.begin(), a.req.stop_ids.end(), tok) != a.req.stop_ids.end()) {
    finish(slot, FinishReason::kStop, Status::ok());
    return;
  }
  if (a.req.constraint) a.req.constraint->accept(tok);
  TokenEvent ev;
  ev.id = tok;
  ev.index = static_cast<int32_t>(a.timing.generated_tokens);
  ev.logprob = d.logprob;
  ev.top = std::move(d.top);
  ++a.timing.generated_tokens;
  a.history.push_back(tok);
  {
    std::lock_guard<std::mutex> sl(stats_mu_);
    ++stats_.generated_tokens;
  }
  const bool go_on = a.req.on_token ? a.req.on_token(ev) : true;
  if (!go_on || (a.req.constraint && a.req.constraint->complete())) {
    finish(slot, FinishReason::kStop, Status::ok());
  } else if (a.timing.generated_tokens >= a.req.max_new_tokens) {
    finish(slot, FinishReason::kLength, Status::ok());
  } else if (slot.session->position() >= slot.session->context_len()) {
    finish(slot, FinishReason::kContextFull, Status::ok());
  } else {
    a.pending = tok;
    a.decoding = true;
  }
}

int32_t Scheduler::sample_constrained(Slot& slot, float* row) {
  Active& a = *slot.active;
  std::vector<float>& masked = slot.masked_row;
  // Rejection first: the model's own choice is usually allowed, and checking a few tokens is far
  // cheaper than checking the vocabulary. Each refused draw is masked and the draw repeated (the
  // sampler rewrites the row, so it starts from a copy every time).
  constexpr int kTries = 8;
  const size_t vocab = static_cast<size_t>(engine_.config().vocab_size);
  const int32_t left = a.req.max_new_tokens - static_cast<int32_t>(a.timing.generated_tokens);
  masked.assign(row, row + vocab);
  for (int t = 0; t < kTries; ++t) {
    std::copy(masked.begin(), masked.end(), row);
    const int32_t tok = a.sampler->sample(std::span<float>(row, vocab), a.history);
    if (tok < 0) return -1;
    if (a.req.constraint->allows(tok, left)) return tok;
    masked[static_cast<size_t>(tok)] = -INFINITY;
  }
  // Then the whole vocabulary.
  bool any = false;
  for (size_t i = 0; i < vocab; ++i) {
    if (masked[i] == -INFINITY || std::isnan(masked[i])) continue;
    if (a.req.constraint->allows(static_cast<int32_t>(i), left))
      any = true;
    else
      masked[i] = -INFINITY;
  }
  if (!any) return -1;
  std::copy(masked.begin(), masked.end(), row);
  const int32_t tok = a.sampler->sample(std::span<float>(row, vocab), a.history);
  return tok >= 0 && a.req.constraint->allows(tok, left) ? tok : -1;
}

void Scheduler::finish(Slot& slot, FinishReason reason, const Status& error) {
  std::unique_ptr<Active> a = std::move(slot.active);
  slot.last_used = ++use_counter_;
  // A failed forward may have written part of a chunk: the cache no longer matches the history.
  if (reason == FinishReason::kError) slot.session->reset();
  {
    std::lock_guard<std::mutex> lk(mu_);
    --active_count_;
  }
  finish_request(*a, reason, error);
}

void Scheduler::finish_request(Active& a, FinishReason reason, const Status& error) {
  const double now = steady_ms();
  if (a.start_ms == 0) a.timing.queue_ms = now - a.submit_ms;
  if (a.first_token_ms > 0) a.timing.decode_ms = now - a.first_token_ms;
  {
    std::lock_guard<std::mutex> sl(stats_mu_);
    ++stats_.requests_finished;
    if (reason == FinishReason::kCancelled) ++stats_.requests_cancelled;
    if (reason == FinishReason::kError) ++stats_.requests_failed;
  }
  if (a.req.on_finish) a.req.on_finish(reason, error, a.timing);
}

void Scheduler::record_ttft(double ms) {
  std::lock_guard<std::mutex> sl(stats_mu_);
  const double s = ms / 1000.0;
  size_t i = 0;
  while (i < stats_.ttft_bounds.size() && s > stats_.ttft_bounds[i]) ++i;
  ++stats_.ttft_counts[i];
  stats_.ttft_sum_s += s;
}

Scheduler::Health Scheduler::health() const {
  if (!loop_running_) return Health::kStopped;
  return heartbeat_age_ms() > options_.stall_ms ? Health::kStalled : Health::kOk;
}

double Scheduler::heartbeat_age_ms() const { return steady_ms() - heartbeat_ms_.load(); }

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  {
    std::lock_guard<std::mutex> sl(stats_mu_);
    s = stats_;
    int64_t recent = 0;
    const double now = steady_ms();
    for (const auto& [t, n] : recent_)
      if (t >= now - kThroughputWindowMs) recent += n;
    s.generated_tokens_per_second = static_cast<double>(recent) * 1000.0 / kThroughputWindowMs;
  }
  // Cumulative histogram counts (Prometheus buckets are "less than or equal").
  for (size_t i = 1; i < s.ttft_counts.size(); ++i) s.ttft_counts[i] += s.ttft_counts[i - 1];
  std::lock_guard<std::mutex> lk(mu_);
  s.queue_depth = static_cast<int32_t>(queue_.size());
  s.active_slots = active_count_;
  return s;
}

}  // namespace ge
