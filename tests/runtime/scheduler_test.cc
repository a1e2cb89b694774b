// Scheduler tests on the tiny random Gemma 4 model: batched output equals the single-sequence
// generation loop token for token, admission (queue limit, prefix reuse), cancellation, limits,
// logprobs and health.
#include "runtime/scheduler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "runtime/generation.h"

namespace ge {
namespace {

const char* kModel = GE_SOURCE_DIR "/tests/server/data/gemma4-tiny-random.gguf";

std::unique_ptr<Engine> load(int32_t max_chunk) {
  EngineOptions o;
  o.n_threads = 2;
  o.max_chunk = max_chunk;
  Result<std::unique_ptr<Engine>> e = Engine::load(kModel, o);
  EXPECT_TRUE(e.is_ok()) << e.status().to_string();
  return e.is_ok() ? std::move(e).value() : nullptr;
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// Collects one request's tokens and its end.
struct Collector {
  std::vector<int32_t> tokens;
  std::vector<TokenEvent> events;
  std::promise<void> done;
  FinishReason reason = FinishReason::kError;
  Status error;
  RequestTiming timing;

  void attach(GenerationRequest& r) {
    r.on_token = [this](const TokenEvent& ev) {
      tokens.push_back(ev.id);
      events.push_back(ev);
      return true;
    };
    r.on_finish = [this](FinishReason why, const Status& err, const RequestTiming& t) {
      reason = why;
      error = err;
      timing = t;
      done.set_value();
    };
  }
  bool wait(int seconds = 60) {
    return done.get_future().wait_for(std::chrono::seconds(seconds)) == std::future_status::ready;
  }
};

std::vector<int32_t> prompt_of(const Engine& e, const std::string& text) {
  std::vector<int32_t> ids = e.tokenizer().encode(text, false, false);
  ids.insert(ids.begin(), e.tokenizer().bos_id());
  return ids;
}

// The reference: the plain single-sequence loop on a fresh session.
std::vector<int32_t> generate_alone(Engine& e, const std::vector<int32_t>& prompt, const SamplingParams& sp,
                                    int32_t max_new, int32_t ctx = 512) {
  auto session = e.create_session(ctx);
  EXPECT_TRUE(session.is_ok());
  Sampler sampler(sp);
  GenerateOptions go;
  go.max_new_tokens = max_new;
  go.stop_ids = e.stop_token_ids();
  std::vector<int32_t> out;
  Result<StopReason> r = generate(
      **session, prompt, sampler, go,
      [&](int32_t id) {
        out.push_back(id);
        return true;
      },
      nullptr);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return out;
}

GenerationRequest request(const Engine& e, std::vector<int32_t> prompt, SamplingParams sp, int32_t max_new) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling = sp;
  r.max_new_tokens = max_new;
  r.stop_ids = e.stop_token_ids();
  return r;
}

const std::vector<std::string> kPrompts = {
    "hello there",
    "The quick brown fox jumps over the lazy dog",
    "a",
    "Once upon a time, in a land far away",
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
    "tools: <|tool>x<tool|>",
    "zz",
    "What is the capital of France?",
};

TEST(Scheduler, BatchedStreamsEqualTheSingleSequenceLoop) {
  // A small chunk forces prompts to be split and interleaved with other sequences' decode steps.
  auto e = load(/*max_chunk=*/16);
  ASSERT_NE(e, nullptr);
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& p : kPrompts) expected.push_back(generate_alone(*e, prompt_of(*e, p), greedy(), 24));

  SchedulerOptions so;
  so.n_slots = 8;
  so.context_len = 512;
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  std::vector<std::unique_ptr<Collector>> cs;
  for (const std::string& p : kPrompts) {
    cs.push_back(std::make_unique<Collector>());
    GenerationRequest r = request(*e, prompt_of(*e, p), greedy(), 24);
    cs.back()->attach(r);
    ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  }
  for (size_t i = 0; i < cs.size(); ++i) {
    ASSERT_TRUE(cs[i]->wait());
    EXPECT_EQ(cs[i]->tokens, expected[i]) << "prompt " << i << ": " << kPrompts[i];
    EXPECT_NE(cs[i]->reason, FinishReason::kError) << cs[i]->error.to_string();
  }
  const SchedulerStats st = (*s)->stats();
  EXPECT_EQ(st.requests_finished, static_cast<int64_t>(kPrompts.size()));
  // Several sequences shared steps: fewer steps than tokens processed.
  EXPECT_LT(st.steps, st.batch_tokens);
}

TEST(Scheduler, MoreRequestsThanSlotsQueueAndStillMatch) {
  auto e = load(16);
  ASSERT_NE(e, nullptr);
  // The reference runs first: the model serves one thread at a time.
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& p : kPrompts) expected.push_back(generate_alone(*e, prompt_of(*e, p), greedy(), 12, 256));
  SchedulerOptions so;
  so.n_slots = 3;
  so.max_queue = 16;
  so.context_len = 256;
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  std::vector<std::unique_ptr<Collector>> cs;
  for (const std::string& p : kPrompts) {
    cs.push_back(std::make_unique<Collector>());
    GenerationRequest r = request(*e, prompt_of(*e, p), greedy(), 12);
    cs.back()->attach(r);
    ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  }
  for (size_t i = 0; i < cs.size(); ++i) {
    ASSERT_TRUE(cs[i]->wait());
    EXPECT_EQ(cs[i]->tokens, expected[i]) << kPrompts[i];
  }
}

TEST(Scheduler, SeededSamplingIsReproducibleInsideABatch) {
  auto e = load(32);
  ASSERT_NE(e, nullptr);
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 0;
  sp.top_p = 1.0f;
  sp.seed = 1234;
  sp.has_seed = true;
  const std::vector<int32_t> prompt = prompt_of(*e, "random words:");
  const std::vector<int32_t> alone = generate_alone(*e, prompt, sp, 20);
  SchedulerOptions so;
  so.n_slots = 4;
  so.context_len = 256;
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  std::vector<std::unique_ptr<Collector>> cs;
  for (uint64_t seed : {1234ull, 1234ull, 99ull}) {
    cs.push_back(std::make_unique<Collector>());
    SamplingParams p = sp;
    p.seed = seed;
    GenerationRequest r = request(*e, prompt, p, 20);
    cs.back()->attach(r);
    ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  }
  for (auto& c : cs) ASSERT_TRUE(c->wait());
  EXPECT_EQ(cs[0]->tokens, alone);
  EXPECT_EQ(cs[1]->tokens, alone);
  EXPECT_NE(cs[2]->tokens, alone);
}

TEST(Scheduler, QueueLimitRejectsBeyondSlotsPlusQueue) {
  auto e = load(16);
  ASSERT_NE(e, nullptr);
  SchedulerOptions so;
  so.n_slots = 1;
  so.max_queue = 1;
  so.context_len = 512;
  std::atomic<bool> hold{true};
  so.on_step = [&] {
    while (hold) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  Collector a, b;
  GenerationRequest ra = request(*e, prompt_of(*e, "first"), greedy(), 4);
  GenerationRequest rb = request(*e, prompt_of(*e, "second"), greedy(), 4);
  a.attach(ra);
  b.attach(rb);
  EXPECT_EQ((*s)->submit(std::move(ra)).admission, Admission::kAccepted);  // the free slot
  EXPECT_EQ((*s)->submit(std::move(rb)).admission, Admission::kAccepted);  // the queue
  Submission third = (*s)->submit(request(*e, prompt_of(*e, "third"), greedy(), 4));
  EXPECT_EQ(third.admission, Admission::kQueueFull);
  EXPECT_EQ(third.handle, nullptr);
  EXPECT_EQ((*s)->stats().requests_rejected, 1);
  hold = false;
  ASSERT_TRUE(a.wait());
  ASSERT_TRUE(b.wait());
  EXPECT_EQ(a.tokens.size(), 4u);
  EXPECT_EQ(b.tokens.size(), 4u);
}

TEST(Scheduler, CancelFreesTheSlotAndSparesOthers) {
  auto e = load(16);
  ASSERT_NE(e, nullptr);
  SchedulerOptions so;
  so.n_slots = 2;
  so.max_queue = 4;
  so.context_len = 512;
  const std::vector<int32_t> other_expected = generate_alone(*e, prompt_of(*e, "other"), greedy(), 10);
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  // A long request that cancels itself from its 5th token on; a queued one cancelled before it runs;
  // a third one that must finish untouched.
  Collector longr, queued, other;
  GenerationRequest r1 = request(*e, prompt_of(*e, "long one"), greedy(), 400);
  r1.stop_ids.clear();
  longr.attach(r1);
  std::shared_ptr<RequestHandle> h1;
  std::atomic<RequestHandle*> h1_raw{nullptr};
  auto inner = r1.on_token;
  r1.on_token = [&, inner](const TokenEvent& ev) {
    if (ev.index == 4 && h1_raw.load()) h1_raw.load()->cancel();
    return inner(ev);
  };
  GenerationRequest r2 = request(*e, prompt_of(*e, "other"), greedy(), 10);
  other.attach(r2);
  Submission s1 = (*s)->submit(std::move(r1));
  ASSERT_EQ(s1.admission, Admission::kAccepted);
  h1 = s1.handle;
  h1_raw = h1.get();
  ASSERT_EQ((*s)->submit(std::move(r2)).admission, Admission::kAccepted);
  GenerationRequest r3 = request(*e, prompt_of(*e, "queued"), greedy(), 10);
  queued.attach(r3);
  Submission s3 = (*s)->submit(std::move(r3));
  ASSERT_EQ(s3.admission, Admission::kAccepted);
  s3.handle->cancel();

  ASSERT_TRUE(longr.wait());
  EXPECT_EQ(longr.reason, FinishReason::kCancelled);
  // Cancelled during token 5's step: at most one more token was sampled.
  EXPECT_GE(longr.tokens.size(), 5u);
  EXPECT_LE(longr.tokens.size(), 6u);
  ASSERT_TRUE(queued.wait());
  EXPECT_EQ(queued.reason, FinishReason::kCancelled);
  ASSERT_TRUE(other.wait());
  EXPECT_EQ(other.tokens, other_expected);

  // Both slots are free again.
  Collector again;
  GenerationRequest r4 = request(*e, prompt_of(*e, "again"), greedy(), 3);
  again.attach(r4);
  ASSERT_EQ((*s)->submit(std::move(r4)).admission, Admission::kAccepted);
  ASSERT_TRUE(again.wait());
  EXPECT_EQ(again.tokens.size(), 3u);
  EXPECT_EQ((*s)->stats().active_slots, 0);
  EXPECT_EQ((*s)->stats().requests_cancelled, 2);
}

TEST(Scheduler, FollowUpTurnReusesItsSlotsPrefix) {
  auto e = load(16);
  ASSERT_NE(e, nullptr);
  SchedulerOptions so;
  so.n_slots = 2;
  so.context_len = 512;
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  auto run = [&](const std::vector<int32_t>& prompt, int32_t n) {
    auto c = std::make_unique<Collector>();
    GenerationRequest r = request(*e, prompt, greedy(), n);
    r.stop_ids.clear();
    c->attach(r);
    EXPECT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
    EXPECT_TRUE(c->wait());
    return c;
  };
  const std::vector<int32_t> a = prompt_of(*e, "conversation A starts here with some words");
  const std::vector<int32_t> b = prompt_of(*e, "and B is a different one");
  auto ca = run(a, 6);
  auto cb = run(b, 6);
  EXPECT_EQ(ca->timing.cached_tokens, 0);
  EXPECT_EQ(cb->timing.cached_tokens, 0);  // the empty slot, not A's (they share only <bos>)
  // A's next turn: its prompt, its reply, then more text. The slot holds the prompt and the first
  // five generated tokens (the sixth was sampled but never fed).
  std::vector<int32_t> a2 = a;
  a2.insert(a2.end(), ca->tokens.begin(), ca->tokens.end());
  const std::vector<int32_t> more = e->tokenizer().encode(" next question", false, false);
  a2.insert(a2.end(), more.begin(), more.end());
  auto ca2 = run(a2, 4);
  EXPECT_EQ(ca2->timing.cached_tokens, static_cast<int64_t>(a.size() + ca->tokens.size() - 1));
  EXPECT_EQ(ca2->tokens, generate_alone(*e, a2, greedy(), 4));
  // B again: its own slot, not A's.
  auto cb2 = run(b, 3);
  EXPECT_EQ(cb2->timing.cached_tokens, static_cast<int64_t>(b.size()) - 1);
}

TEST(Scheduler, StopsOnLimitsStopIdsAndTheSink) {
  auto e = load(16);
  ASSERT_NE(e, nullptr);
  SchedulerOptions so;
  so.n_slots = 2;
  so.context_len = 40;
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  const std::vector<int32_t> p = prompt_of(*e, "limits");
  const std::vector<int32_t> ref = generate_alone(*e, p, greedy(), 8);
  ASSERT_GE(ref.size(), 4u);

  Collector len;
  GenerationRequest r = request(*e, p, greedy(), 3);
  len.attach(r);
  ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  ASSERT_TRUE(len.wait());
  EXPECT_EQ(len.reason, FinishReason::kLength);
  EXPECT_EQ(len.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + 3));
  EXPECT_EQ(len.timing.generated_tokens, 3);

  // The third greedy token as a stop id: two tokens come out, the stop token is not passed on.
  Collector stop;
  r = request(*e, p, greedy(), 8);
  r.stop_ids = {ref[2]};
  stop.attach(r);
  ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  ASSERT_TRUE(stop.wait());
  EXPECT_EQ(stop.reason, FinishReason::kStop);
  EXPECT_EQ(stop.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + 2));

  // The sink ends the request after its first token.
  Collector sink;
  r = request(*e, p, greedy(), 8);
  sink.attach(r);
  auto inner = r.on_token;
  r.on_token = [inner](const TokenEvent& ev) {
    inner(ev);
    return false;
  };
  ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  ASSERT_TRUE(sink.wait());
  EXPECT_EQ(sink.reason, FinishReason::kStop);
  EXPECT_EQ(sink.tokens.size(), 1u);

  // Context 40, prompt 37: the first token comes from the prompt's logits, then positions 37..39.
  Collector full;
  std::vector<int32_t> long_prompt(37, p.back());
  long_prompt[0] = e->tokenizer().bos_id();
  r = request(*e, long_prompt, greedy(), 100);
  r.stop_ids.clear();
  full.attach(r);
  ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  ASSERT_TRUE(full.wait());
  EXPECT_EQ(full.reason, FinishReason::kContextFull);
  EXPECT_EQ(full.tokens.size(), 4u);
}

TEST(Scheduler, RejectsInvalidRequests) {
  auto e = load(16);
  ASSERT_NE(e, nullptr);
  SchedulerOptions so;
  so.n_slots = 1;
  so.context_len = 16;
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  const int32_t vocab = static_cast<int32_t>(e->config().vocab_size);
  auto check = [&](GenerationRequest r, const std::string& what) {
    Submission sub = (*s)->submit(std::move(r));
    EXPECT_EQ(sub.admission, Admission::kInvalid) << what;
    EXPECT_FALSE(sub.status.is_ok()) << what;
  };
  check(request(*e, {}, greedy(), 4), "empty prompt");
  check(request(*e, std::vector<int32_t>(17, 5), greedy(), 4), "prompt over the context");
  check(request(*e, {2, vocab}, greedy(), 4), "id == vocab");
  check(request(*e, {2, -1}, greedy(), 4), "negative id");
  check(request(*e, {2, 5}, greedy(), 0), "max_new_tokens 0");
  GenerationRequest r = request(*e, {2, 5}, greedy(), 4);
  r.top_logprobs = 21;
  check(std::move(r), "top_logprobs 21");
  r = request(*e, {2, 5}, greedy(), 4);
  r.logit_bias = {{vocab, 1.0f}};
  check(std::move(r), "logit_bias id");
  SamplingParams bad;
  bad.top_p = 0.0f;
  check(request(*e, {2, 5}, bad, 4), "top_p 0");
  bad = SamplingParams();
  bad.temperature = std::nanf("");
  check(request(*e, {2, 5}, bad, 4), "temperature NaN");
  EXPECT_FALSE(Scheduler::create(*e, SchedulerOptions{/*n_slots=*/17, 4, 16, 5000, nullptr}).is_ok());
  EXPECT_FALSE(Scheduler::create(*e, SchedulerOptions{/*n_slots=*/0, 4, 16, 5000, nullptr}).is_ok());
}

TEST(Scheduler, LogprobsAndLogitBias) {
  auto e = load(16);
  ASSERT_NE(e, nullptr);
  SchedulerOptions so;
  so.n_slots = 1;
  so.context_len = 128;
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  const std::vector<int32_t> p = prompt_of(*e, "logprobs");
  Collector c;
  GenerationRequest r = request(*e, p, greedy(), 5);
  r.top_logprobs = 3;
  c.attach(r);
  ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  ASSERT_TRUE(c.wait());
  ASSERT_EQ(c.events.size(), 5u);
  for (const TokenEvent& ev : c.events) {
    ASSERT_EQ(ev.top.size(), 3u);
    EXPECT_LE(ev.logprob, 0.0f);
    EXPECT_EQ(ev.top[0].id, ev.id);  // greedy picks the most likely token
    EXPECT_FLOAT_EQ(ev.top[0].logprob, ev.logprob);
    EXPECT_GE(ev.top[0].logprob, ev.top[1].logprob);
    EXPECT_GE(ev.top[1].logprob, ev.top[2].logprob);
  }
  // A strong bias towards one token makes greedy pick it every time.
  const int32_t forced = *e->tokenizer().find_token("Hello");
  Collector b;
  r = request(*e, p, greedy(), 4);
  r.logit_bias = {{forced, 100.0f}};
  r.stop_ids.clear();
  b.attach(r);
  ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  ASSERT_TRUE(b.wait());
  EXPECT_EQ(b.tokens, std::vector<int32_t>(4, forced));
}

TEST(Scheduler, HealthReportsStallsAndStop) {
  auto e = load(16);
  ASSERT_NE(e, nullptr);
  SchedulerOptions so;
  so.n_slots = 1;
  so.context_len = 64;
  so.stall_ms = 100;
  std::atomic<bool> stall{false};
  so.on_step = [&] {
    while (stall) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  auto s = Scheduler::create(*e, so);
  ASSERT_TRUE(s.is_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ((*s)->health(), Scheduler::Health::kOk);
  stall = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ((*s)->health(), Scheduler::Health::kStalled);
  stall = false;
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ((*s)->health(), Scheduler::Health::kOk);

  // stop() finishes waiting requests and refuses new ones.
  stall = true;
  Collector c;
  GenerationRequest r = request(*e, prompt_of(*e, "x"), greedy(), 4);
  c.attach(r);
  ASSERT_EQ((*s)->submit(std::move(r)).admission, Admission::kAccepted);
  std::thread stopper([&] { (*s)->stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stall = false;
  stopper.join();
  ASSERT_TRUE(c.wait(5));
  EXPECT_EQ(c.reason, FinishReason::kCancelled);
  EXPECT_EQ((*s)->health(), Scheduler::Health::kStopped);
  EXPECT_EQ((*s)->submit(request(*e, prompt_of(*e, "y"), greedy(), 4)).admission, Admission::kStopped);
}

}  // namespace
}  // namespace ge
