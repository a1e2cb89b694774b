// Sampler chain: validation, greedy, determinism, and statistical checks of top-k / top-p / min-p /
// temperature on fixed logits with many seeded draws (bounds wide enough never to flake for the
// fixed seeds, narrow enough to catch a wrong stage).
#include "sampling/sampler.h"

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace ge {
namespace {

SamplingParams plain(float temperature = 1.0f) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.has_seed = true;
  p.seed = 1234;
  return p;
}

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    std::vector<float> row = logits;
    const int32_t id = s.sample(row, {});
    EXPECT_GE(id, 0);
    EXPECT_LT(id, static_cast<int32_t>(logits.size()));
    if (id >= 0 && id < static_cast<int32_t>(logits.size())) ++counts[static_cast<size_t>(id)];
  }
  return counts;
}

std::vector<double> softmax(const std::vector<float>& logits, double t) {
  double m = -1e300;
  for (float l : logits) m = std::max(m, static_cast<double>(l));
  std::vector<double> p;
  double sum = 0;
  for (float l : logits) {
    p.push_back(std::exp((l - m) / t));
    sum += p.back();
  }
  for (double& x : p) x /= sum;
  return p;
}

// Tolerance of 6 standard deviations of a binomial proportion: never flakes, still tight.
void expect_frequency(int count, int draws, double p, const char* what) {
  const double sd = std::sqrt(p * (1 - p) / draws);
  EXPECT_NEAR(static_cast<double>(count) / draws, p, 6 * sd + 1e-9) << what;
}

TEST(SamplingValidate, DefaultsAreValid) { EXPECT_TRUE(validate(SamplingParams{}).is_ok()); }

TEST(SamplingValidate, RejectsBadFieldsByName) {
  struct Case {
    const char* field;
    void (*mutate)(SamplingParams&);
  };
  constexpr float s_nan = std::numeric_limits<float>::quiet_NaN();
  const Case cases[] = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = s_nan; }},
      {"temperature", [](SamplingParams& p) { p.temperature = INFINITY; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -1; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.01f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = s_nan; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.01f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = -1.0f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = INFINITY; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = s_nan; }},
      {"penalty_last_n", [](SamplingParams& p) { p.penalty_last_n = -2; }},
  };
  for (const Case& c : cases) {
    SamplingParams p;
    c.mutate(p);
    Status s = validate(p);
    ASSERT_FALSE(s.is_ok()) << c.field;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.field), std::string::npos) << s.message();
  }
  SamplingParams edge;
  edge.temperature = 0.0f;
  edge.top_k = 0;
  edge.top_p = 1.0f;
  edge.min_p = 1.0f;
  edge.penalty_last_n = -1;
  edge.presence_penalty = -2.0f;
  EXPECT_TRUE(validate(edge).is_ok());
}

TEST(Argmax, TiesGoToLowestIdAndNanNeverWins) {
  EXPECT_EQ(argmax(std::vector<float>{1, 3, 3, 2}), 1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(argmax(std::vector<float>{nan, -5, nan, -1}), 3);
  EXPECT_EQ(argmax(std::vector<float>{nan, nan}), 0);
  EXPECT_EQ(argmax(std::vector<float>{}), -1);
  const float ninf = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(argmax(std::vector<float>{ninf, ninf}), 0);
}

TEST(Sampler, GreedyEqualsArgmaxOfPenalisedLogits) {
  std::mt19937 gen(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  SamplingParams p = plain(0.0f);
  p.repetition_penalty = 1.3f;
  p.presence_penalty = 0.5f;
  Sampler s(p);
  for (int row = 0; row < 200; ++row) {
    std::vector<float> logits(1000);
    for (float& l : logits) l = dist(gen);
    std::vector<int32_t> history = {static_cast<int32_t>(row % 1000), 5, 5, 999};
    std::vector<float> expected = logits;
    apply_penalties(expected, history, p);
    const int32_t want = argmax(expected);
    EXPECT_EQ(s.sample(logits, history), want);
    EXPECT_EQ(logits, expected);  // sample() leaves the penalised logits behind
  }
  // Without penalties, greedy is plain argmax, including ties.
  Sampler g(plain(0.0f));
  std::vector<float> tie = {0.5f, 2.0f, 2.0f, -1.0f};
  EXPECT_EQ(g.sample(tie, {}), 1);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDifferent) {
  const std::vector<float> logits = log_probs({0.2, 0.2, 0.2, 0.2, 0.2});
  auto run = [&](uint64_t seed) {
    SamplingParams p = plain();
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) {
      std::vector<float> row = logits;
      out.push_back(s.sample(row, {}));
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));

  SamplingParams p = plain();
  p.seed = 42;
  Sampler s(p);
  std::vector<int32_t> first;
  for (int i = 0; i < 50; ++i) {
    std::vector<float> row = logits;
    first.push_back(s.sample(row, {}));
  }
  s.reset();
  for (int i = 0; i < 50; ++i) {
    std::vector<float> row = logits;
    EXPECT_EQ(s.sample(row, {}), first[static_cast<size_t>(i)]) << i;
  }
  EXPECT_EQ(s.seed(), 42u);
}

TEST(Sampler, UnseededSamplersDrawTheirOwnSeed) {
  SamplingParams p = plain();
  p.has_seed = false;
  Sampler a(p), b(p);
  EXPECT_NE(a.seed(), b.seed());  // 2^-64 chance of a false failure
}

TEST(Sampler, DrawsMatchSoftmaxChiSquare) {
  const std::vector<double> probs = {0.30, 0.20, 0.15, 0.10, 0.08, 0.07, 0.05, 0.03, 0.015, 0.005};
  const std::vector<float> logits = log_probs(probs);
  Sampler s(plain());
  const int draws = 100000;
  const auto counts = histogram(s, logits, draws);
  double chi2 = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const double e = probs[i] * draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  // df = 9: P(chi2 > 33.7) = 1e-4. A wrong stage (e.g. T applied twice) gives thousands.
  EXPECT_LT(chi2, 33.7);
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f};
  const int draws = 40000;
  double previous_top = 0;
  for (double t : {2.0, 1.0, 0.5, 0.25}) {
    Sampler s(plain(static_cast<float>(t)));
    const auto counts = histogram(s, logits, draws);
    const auto want = softmax(logits, t);
    for (size_t i = 0; i < logits.size(); ++i) {
      expect_frequency(counts[i], draws, want[i], "temperature");
    }
    const double top = static_cast<double>(counts[0]) / draws;
    EXPECT_GT(top, previous_top) << "lower temperature must concentrate mass, T=" << t;
    previous_top = top;
  }
}

TEST(Sampler, TopKNeverDrawsOutsideTheKBest) {
  std::mt19937 gen(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> logits(5000);
  for (float& l : logits) l = dist(gen);
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
  });
  SamplingParams p = plain(50.0f);  // nearly flat: without top-k the tail would be drawn
  p.top_k = 7;
  Sampler s(p);
  const std::set<int32_t> best(order.begin(), order.begin() + 7);
  const auto counts = histogram(s, logits, 20000);
  std::set<int32_t> seen;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) seen.insert(static_cast<int32_t>(i));
  }
  EXPECT_EQ(seen, best);
}

TEST(Sampler, TopKTiesKeepLowerIds) {
  SamplingParams p = plain();
  p.top_k = 2;
  Sampler s(p);
  const std::vector<float> logits = {1.0f, 5.0f, 5.0f, 5.0f, 5.0f};
  const auto counts = histogram(s, logits, 2000);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_EQ(counts[0] + counts[3] + counts[4], 0);
}

TEST(Sampler, TopPMassBoundary) {
  const std::vector<float> logits = log_probs({0.5, 0.3, 0.15, 0.05});
  const int draws = 40000;
  {
    SamplingParams p = plain();
    p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8: tokens 0 and 1
    Sampler s(p);
    const auto c = histogram(s, logits, draws);
    EXPECT_EQ(c[2] + c[3], 0);
    expect_frequency(c[0], draws, 0.5 / 0.8, "top_p 0.75 token 0");
  }
  {
    SamplingParams p = plain();
    p.top_p = 0.9f;  // 0.8 < 0.9 <= 0.95: tokens 0..2
    Sampler s(p);
    const auto c = histogram(s, logits, draws);
    EXPECT_EQ(c[3], 0);
    EXPECT_GT(c[2], 0);
    expect_frequency(c[2], draws, 0.15 / 0.95, "top_p 0.9 token 2");
  }
  {
    SamplingParams p = plain();
    p.top_p = 0.4f;  // the most probable token alone crosses the threshold
    Sampler s(p);
    const auto c = histogram(s, logits, 1000);
    EXPECT_EQ(c[0], 1000);
  }
}

TEST(Sampler, TopPOnAFullVocabularyWithoutTopK) {
  // 262144 equal logits: the nucleus for top_p = 0.5 is the first half by id (ties -> lower id),
  // which needs the sorted prefix to grow well past its first block.
  const size_t vocab = 262144;
  std::vector<float> logits(vocab, 0.0f);
  SamplingParams p = plain();
  p.top_p = 0.5f;
  Sampler s(p);
  int32_t max_id = 0;
  for (int i = 0; i < 100; ++i) {
    std::vector<float> row = logits;
    const int32_t id = s.sample(row, {});
    ASSERT_GE(id, 0);
    max_id = std::max(max_id, id);
    EXPECT_LE(id, static_cast<int32_t>(vocab / 2)) << "outside the nucleus";
  }
  EXPECT_GT(max_id, static_cast<int32_t>(vocab / 4));  // and it does draw across the nucleus
}

TEST(Sampler, MinPThreshold) {
  const std::vector<float> logits = log_probs({0.4, 0.3, 0.2, 0.1});
  SamplingParams p = plain();
  p.min_p = 0.6f;  // threshold 0.24: keeps 0.4 and 0.3
  Sampler s(p);
  const int draws = 40000;
  const auto c = histogram(s, logits, draws);
  EXPECT_EQ(c[2] + c[3], 0);
  expect_frequency(c[0], draws, 0.4 / 0.7, "min_p token 0");

  SamplingParams q = plain();
  q.min_p = 0.45f;  // threshold 0.18: keeps 0.2, drops 0.1
  Sampler t(q);
  const auto d = histogram(t, logits, draws);
  EXPECT_EQ(d[3], 0);
  expect_frequency(d[2], draws, 0.2 / 0.9, "min_p token 2");
}

TEST(Sampler, LargeVocabularyTopKStaysInTheKBest) {
  const size_t vocab = 262144;
  std::mt19937 gen(3);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> logits(vocab);
  for (float& l : logits) l = dist(gen);
  std::vector<float> sorted = logits;
  std::nth_element(sorted.begin(), sorted.begin() + 63, sorted.end(), std::greater<float>());
  const float kth = sorted[63];
  SamplingParams p;  // Gemma defaults: T 1, top_k 64, top_p 0.95
  p.has_seed = true;
  p.temperature = 3.0f;
  Sampler s(p);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> row = logits;
    const int32_t id = s.sample(row, {});
    ASSERT_GE(id, 0);
    EXPECT_GE(logits[static_cast<size_t>(id)], kth);
  }
}

TEST(Penalties, ChangeExactlyTheAffectedLogits) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i) * 0.37f - 6.0f;
  SamplingParams p = plain();
  p.repetition_penalty = 1.5f;
  p.presence_penalty = 0.25f;
  p.frequency_penalty = 0.125f;
  p.penalty_last_n = 6;
  // Only the last 6 are looked at: 40 (x2), 3, 49, and the out-of-range ids -1 and 777.
  const std::vector<int32_t> history = {20, 21, 22, 40, -1, 40, 3, 777, 49};
  std::vector<float> got = logits;
  apply_penalties(got, history, p);
  for (size_t i = 0; i < logits.size(); ++i) {
    float want = logits[i];
    int count = (i == 40) ? 2 : (i == 3 || i == 49) ? 1 : 0;
    if (count > 0) {
      want = want > 0 ? want / 1.5f : want * 1.5f;
      want -= static_cast<float>(count) * 0.125f + 0.25f;
    }
    EXPECT_EQ(got[i], want) << "id " << i;
  }
  EXPECT_LT(logits[3], 0.0f);  // the case that multiplies
  EXPECT_GT(logits[40], 0.0f);  // the case that divides

  std::vector<float> whole = logits;
  p.penalty_last_n = -1;
  apply_penalties(whole, history, p);
  EXPECT_NE(whole[20], logits[20]);
  std::vector<float> none = logits;
  p.penalty_last_n = 0;
  apply_penalties(none, history, p);
  EXPECT_EQ(none, logits);
}

TEST(Sampler, NonFiniteLogits) {
  Sampler s(plain());
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> with_inf = {0.0f, inf, 3.0f, inf};
  EXPECT_EQ(s.sample(with_inf, {}), 1);
  std::vector<float> all_bad = {-inf, nan, -inf};
  EXPECT_EQ(s.sample(all_bad, {}), 0);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> some_nan = {nan, 1.0f, nan, 1.0f};
    const int32_t id = s.sample(some_nan, {});
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
  std::vector<float> empty;
  EXPECT_EQ(s.sample(empty, {}), -1);

  Sampler tiny_t(plain(1e-45f));  // 1/T overflows: greedy, not NaN probabilities
  for (int i = 0; i < 20; ++i) {
    std::vector<float> row = {0.5f, 3.0f, 2.9f};
    EXPECT_EQ(tiny_t.sample(row, {}), 1);
  }
}

TEST(Sampler, InvalidParamsAreClampedNotTrusted) {
  SamplingParams p;
  p.temperature = -3.0f;
  p.top_k = -5;
  p.top_p = 7.0f;
  p.min_p = std::numeric_limits<float>::quiet_NaN();
  p.repetition_penalty = 0.0f;
  p.has_seed = true;
  Sampler s(p);
  EXPECT_TRUE(validate(s.params()).is_ok());
  std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  const int32_t id = s.sample(logits, std::vector<int32_t>{0, 1});
  EXPECT_GE(id, 0);
  EXPECT_LT(id, 3);
}

}  // namespace
}  // namespace ge
