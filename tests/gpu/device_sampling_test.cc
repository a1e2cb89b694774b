// The device sampler against the host Sampler (the reference): greedy equals ge::argmax, kept sets of
// top-k / top-p / min-p equal the host chain's (pooled and exact finishes), seeded draws follow the
// host chain's exact probabilities (chi-square bound, up to the 31B's 262,144 vocabulary) and the
// same seed reproduces the same tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "gpu_test_util.h"
#include "sampling/sampler.h"

namespace ge {
namespace {

constexpr int64_t kVocab = 262144;

class DeviceSampling : public gputest::GpuTest {
 protected:
  // Samples `rows` copies of `row` (each row draws with its own counter) in one launch.
  std::vector<int32_t> sample(const std::vector<float>& row, int64_t rows, const SamplingParams& p, uint64_t seed,
                              uint64_t step) {
    const DeviceBuffer logits = replicate(row, rows);
    return sample_rows(logits, rows, static_cast<int64_t>(row.size()), p, seed, step);
  }
  // `rows` copies of `row` in device memory.
  DeviceBuffer replicate(const std::vector<float>& row, int64_t rows) {
    const size_t bytes = row.size() * sizeof(float);
    Result<DeviceBuffer> b = gpu_->alloc(bytes * static_cast<size_t>(rows));
    EXPECT_TRUE(b.is_ok());
    for (int64_t r = 0; r < rows; ++r) gpu_->upload(static_cast<char*>(b->data()) + bytes * static_cast<size_t>(r), row.data(), bytes);
    return std::move(b).value();
  }
  std::vector<int32_t> sample_rows(const std::vector<float>& all, int64_t rows, int64_t V, const SamplingParams& p,
                                   uint64_t seed, uint64_t step) {
    const DeviceBuffer logits = to_gpu(all);
    return sample_rows(logits, rows, V, p, seed, step);
  }
  std::vector<int32_t> sample_rows(const DeviceBuffer& logits, int64_t rows, int64_t V, const SamplingParams& p,
                                   uint64_t seed, uint64_t step) {
    DeviceSamplerState st;
    st.temperature = p.temperature;
    st.top_k = p.top_k;
    st.top_p = p.top_p;
    st.min_p = p.min_p;
    st.seed = seed;
    st.step = step;
    DeviceBuffer state = to_gpu(&st, sizeof(st));
    Result<DeviceBuffer> out = gpu_->alloc(static_cast<size_t>(rows) * 4);
    EXPECT_TRUE(out.is_ok());
    Status s = gpu_->sample_tokens(logits.f32(), rows, V, static_cast<DeviceSamplerState*>(state.data()), out->i32());
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    std::vector<int32_t> ids(static_cast<size_t>(rows));
    gpu_->download(ids.data(), out->data(), ids.size() * 4);
    DeviceSamplerState after;
    gpu_->download(&after, state.data(), sizeof(after));
    Status sy = gpu_->synchronize();
    EXPECT_TRUE(sy.is_ok()) << sy.to_string();
    EXPECT_EQ(after.step, step + 1) << "every launch advances the RNG step once";
    return ids;
  }

  // The host chain's final probabilities (ge::Sampler's documented order: top-k on (logit desc,
  // id asc), softmax(logit / T), top-p keeping the crossing token, min-p, renormalise).
  static std::map<int32_t, double> host_chain(const std::vector<float>& row, const SamplingParams& p) {
    struct C {
      float l;
      int32_t id;
      float p;
    };
    std::vector<C> c;
    for (size_t i = 0; i < row.size(); ++i)
      if (row[i] > -std::numeric_limits<float>::infinity()) c.push_back(C{row[i], static_cast<int32_t>(i), 0.0f});
    std::sort(c.begin(), c.end(), [](const C& a, const C& b) { return a.l > b.l || (a.l == b.l && a.id < b.id); });
    if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) c.resize(static_cast<size_t>(p.top_k));
    const float inv_t = 1.0f / p.temperature;
    double total = 0;
    for (C& x : c) {
      x.p = std::exp((x.l - c[0].l) * inv_t);
      total += x.p;
    }
    if (p.top_p < 1.0f) {
      const double target = static_cast<double>(p.top_p) * total;
      double before = 0;
      size_t keep = 0;
      while (keep < c.size() && before < target) before += c[keep++].p;
      c.resize(std::max<size_t>(keep, 1));
    }
    if (p.min_p > 0.0f) {
      const float thr = p.min_p * c[0].p;
      c.erase(std::remove_if(c.begin(), c.end(), [&](const C& x) { return x.p < thr; }), c.end());
    }
    total = 0;
    for (const C& x : c) total += x.p;
    std::map<int32_t, double> out;
    for (const C& x : c) out[x.id] = x.p / total;
    return out;
  }

  // Tokens the host Sampler ever returns over `n` seeds.
  static std::set<int32_t> host_support(const std::vector<float>& row, SamplingParams p, int n) {
    std::set<int32_t> s;
    p.has_seed = true;
    for (int i = 0; i < n; ++i) {
      p.seed = static_cast<uint64_t>(i) * 7919u + 1;
      Sampler smp(p);
      std::vector<float> l = row;
      s.insert(smp.sample(l, {}));
    }
    return s;
  }

  std::vector<float> random_row(int64_t V, float sigma) {
    std::normal_distribution<float> d(0.0f, sigma);
    std::vector<float> row(static_cast<size_t>(V));
    for (float& v : row) v = d(rng_);
    return row;
  }
};

TEST_F(DeviceSampling, GreedyMatchesHostArgmax) {
  SCOPED_TRACE(trace());
  SamplingParams p;
  p.temperature = 0.0f;
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<float>> rows;
  for (int k = 0; k < 6; ++k) rows.push_back(random_row(kVocab, 3.0f));
  // Ties: the maximum repeated at several ids (lowest wins), once far apart.
  rows[1][100] = rows[1][70000] = rows[1][5] = 50.0f;
  rows[2][262143] = rows[2][131072] = 40.0f;
  // NaN never wins, even when it is everywhere but one entry.
  for (size_t i = 0; i < rows[3].size(); ++i)
    if (i != 777) rows[3][i] = nan;
  // +inf wins (lowest of several), -inf loses to anything finite.
  rows[4][9000] = inf;
  rows[4][300] = inf;
  rows[4][12] = nan;
  std::fill(rows[5].begin(), rows[5].end(), -inf);
  rows[5][200000] = -1e30f;
  std::vector<float> all_nan(kVocab, nan), all_neg_inf(kVocab, -inf);
  rows.push_back(all_nan);
  rows.push_back(all_neg_inf);
  std::vector<float> zeros(kVocab, 0.0f);
  zeros[3] = -0.0f;  // -0 == +0: id 0 still wins
  rows.push_back(zeros);
  std::vector<float> all;
  for (const auto& r : rows) all.insert(all.end(), r.begin(), r.end());
  const std::vector<int32_t> got = sample_rows(all, static_cast<int64_t>(rows.size()), kVocab, p, 1, 0);
  for (size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(got[r], argmax(rows[r])) << "row " << r;
  // Small and odd vocabularies (one CTA, a partial last CTA, chunks past the 4,096 minimum) take
  // the same path.
  for (int64_t V : {1, 2, 31, 1000, 4095, 4097, 5000, 12289, 262147, 1048583}) {
    std::vector<float> row = random_row(V, 1.0f);
    EXPECT_EQ(sample(row, 1, p, 3, 0)[0], argmax(row)) << "V " << V;
    row[static_cast<size_t>(V - 1)] = 100.0f;  // the very last id
    EXPECT_EQ(sample(row, 1, p, 3, 0)[0], V - 1) << "V " << V;
  }
  // More rows than one launch group (128): every row its own argmax, ties across CTA chunks.
  const int64_t V = 20000, n_rows = 131;
  std::vector<float> all2;
  std::vector<int32_t> want;
  for (int64_t r = 0; r < n_rows; ++r) {
    std::vector<float> row = random_row(V, 2.0f);
    if (r % 3 == 0) row[static_cast<size_t>((r * 7919) % V)] = row[static_cast<size_t>((r * 104729) % V)] = 30.0f;
    want.push_back(argmax(row));
    all2.insert(all2.end(), row.begin(), row.end());
  }
  EXPECT_EQ(sample_rows(all2, n_rows, V, p, 1, 0), want);
}

TEST_F(DeviceSampling, KeptSetsEqualTheHostChain) {
  SCOPED_TRACE(trace());
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    const char* name;
    SamplingParams p;
    std::vector<float> row;
  };
  std::vector<Case> cases;
  // The background of every row: far below the crafted entries.
  auto base = [&]() {
    std::vector<float> r = random_row(kVocab, 1.0f);
    for (float& v : r) v -= 40.0f;
    return r;
  };
  {  // top-k cut through a tie: of the four entries at 1.0, the two lowest ids stay.
    Case c{"top-k tie", {}, base()};
    c.p.temperature = 1.0f, c.p.top_k = 5, c.p.top_p = 1.0f;
    for (int id : {9, 4000, 250000}) c.row[static_cast<size_t>(id)] = 1.5f;
    for (int id : {77, 100000, 3, 262143}) c.row[static_cast<size_t>(id)] = 1.0f;
    cases.push_back(c);
  }
  {  // top-p: masses 0.4 0.3 0.2 0.1 at top_p 0.65: the crossing token (0.3) stays, 0.2 goes.
    Case c{"top-p crossing", {}, base()};
    c.p.temperature = 1.0f, c.p.top_k = 0, c.p.top_p = 0.65f;
    const float l[4] = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
    const int ids[4] = {123456, 17, 200001, 50};
    for (int j = 0; j < 4; ++j) c.row[static_cast<size_t>(ids[j])] = l[j] + 10.0f;
    cases.push_back(c);
  }
  {  // top-p over a large kept set (no top-k): a plateau of 3000 equal entries is cut inside.
    Case c{"top-p plateau", {}, base()};
    c.p.temperature = 1.0f, c.p.top_k = 0, c.p.top_p = 0.4999f;  // keeps exactly 1500
    for (int j = 0; j < 3000; ++j) c.row[static_cast<size_t>(j * 87 + 5)] = 2.0f;
    cases.push_back(c);
  }
  {  // min-p: drops everything below 0.3 of the top entry; NaN and -inf never kept.
    Case c{"min-p", {}, base()};
    c.p.temperature = 0.7f, c.p.top_k = 0, c.p.top_p = 1.0f, c.p.min_p = 0.3f;
    const float l[6] = {3.0f, 2.9f, 2.5f, 2.3f, 2.1f, 1.0f};
    for (int j = 0; j < 6; ++j) c.row[static_cast<size_t>(1000 * j + 11)] = l[j];
    c.row[42] = nan;
    c.row[43] = -inf;
    cases.push_back(c);
  }
  {  // top-k + top-p + min-p together, with -0 / +0 equal at the top-k cut.
    Case c{"chain", {}, base()};
    c.p.temperature = 1.3f, c.p.top_k = 6, c.p.top_p = 0.9f, c.p.min_p = 0.05f;
    const float l[8] = {1.0f, 0.8f, 0.6f, 0.4f, 0.2f, 0.0f, -0.0f, -0.1f};
    for (int j = 0; j < 8; ++j) c.row[static_cast<size_t>(30000 * j + 7)] = l[j];
    c.row[240007] = 0.0f;  // equal to the ids 150007 (+0) and 180007 (-0); higher id, so cut
    cases.push_back(c);
  }
  {  // top-p over a plateau too large for the pool (6000 equal entries): the exact chain.
    Case c{"top-p plateau beyond the pool", {}, base()};
    c.p.temperature = 1.0f, c.p.top_k = 0, c.p.top_p = 0.4999f;  // keeps exactly 3000
    for (int j = 0; j < 6000; ++j) c.row[static_cast<size_t>(j * 41 + 3)] = 2.0f;
    cases.push_back(c);
  }
  {  // top-k above the pool's capacity: the exact chain.
    Case c{"top-k 5000", {}, base()};
    c.p.temperature = 1.0f, c.p.top_k = 5000, c.p.top_p = 1.0f;
    for (int j = 0; j < 5000; ++j) c.row[static_cast<size_t>(j * 50 + 1)] = 3.0f + 1e-4f * static_cast<float>(j % 7);
    cases.push_back(c);
  }
  {  // min-p alone: the kept set comes from the pool, the entries below it all fall under the cut.
    Case c{"min-p alone", {}, base()};
    c.p.temperature = 1.0f, c.p.top_k = 0, c.p.top_p = 1.0f, c.p.min_p = 0.2f;
    const float l[5] = {5.0f, 4.5f, 4.0f, 3.5f, 3.3f};  // p 1, .61, .37, .22, .18 (cut)
    for (int j = 0; j < 5; ++j) c.row[static_cast<size_t>(50000 * j + 13)] = l[j];
    cases.push_back(c);
  }
  {  // +inf: the lowest +inf id, whatever the parameters.
    Case c{"inf", {}, base()};
    c.p.temperature = 1.0f, c.p.top_k = 3, c.p.top_p = 0.5f;
    c.row[5000] = inf;
    c.row[4000] = inf;
    cases.push_back(c);
  }
  const std::map<std::string, size_t> large = {
      {"top-p plateau", 1500}, {"top-p plateau beyond the pool", 3000}, {"top-k 5000", 5000}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // Every kept token has p >= 10% (thousands of equal ones in the large cases): 400 draws see them all.
    const bool plateau = large.count(c.name) > 0;
    const std::set<int32_t> host = host_support(c.row, c.p, plateau ? 20 : 400);
    const std::vector<int32_t> dev = sample(c.row, 400, c.p, 99, 0);
    const std::set<int32_t> got(dev.begin(), dev.end());
    if (plateau) {
      // Thousands of near-equal entries: a finite run cannot see them all; the kept set is exact.
      std::map<int32_t, double> want = host_chain(c.row, c.p);
      for (int32_t id : got) EXPECT_TRUE(want.count(id)) << "token " << id << " outside the host's kept set";
      for (int32_t id : host) EXPECT_TRUE(want.count(id)) << "host reference disagrees with the documented chain";
      EXPECT_EQ(want.size(), large.at(c.name));
      EXPECT_GT(got.size(), 300u) << "400 draws over thousands of entries are mostly distinct";
      continue;
    }
    EXPECT_EQ(got, host);
    const std::map<int32_t, double> want = host_chain(c.row, c.p);
    std::set<int32_t> want_ids;
    for (const auto& [id, pr] : want) want_ids.insert(id);
    if (std::string(c.name) != "inf") {
      EXPECT_EQ(got, want_ids);
    }
  }
}

TEST_F(DeviceSampling, DrawsFollowTheHostChainProbabilities) {
  SCOPED_TRACE(trace());
  struct Case {
    const char* name;
    float sigma;
    SamplingParams p;
  };
  std::vector<Case> cases(6);
  cases[0] = {"top-k 40, T 0.8", 2.0f, {}};
  cases[0].p.temperature = 0.8f, cases[0].p.top_k = 40, cases[0].p.top_p = 1.0f;
  cases[1] = {"defaults (top-k 64, top-p 0.95)", 2.5f, {}};
  cases[1].p.temperature = 1.0f;
  cases[2] = {"top-p 0.6 over the whole row", 1.5f, {}};
  cases[2].p.temperature = 1.0f, cases[2].p.top_k = 0, cases[2].p.top_p = 0.6f;
  cases[3] = {"min-p 0.1, top-k 2000", 3.0f, {}};
  cases[3].p.temperature = 1.5f, cases[3].p.top_k = 2000, cases[3].p.top_p = 1.0f, cases[3].p.min_p = 0.1f;
  cases[4] = {"temperature only (the draw walks the whole row)", 2.5f, {}};
  cases[4].p.temperature = 0.9f, cases[4].p.top_k = 0, cases[4].p.top_p = 1.0f;
  cases[5] = {"min-p 0.05 alone", 2.0f, {}};
  cases[5].p.temperature = 1.0f, cases[5].p.top_k = 0, cases[5].p.top_p = 1.0f, cases[5].p.min_p = 0.05f;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // 16387 entries (odd: a partial last CTA): pooled, whole-row and exact finishes at a row size
    // that lets 40000 draws run in seconds.
    const int64_t V = 16387;
    const std::vector<float> row = random_row(V, c.sigma);
    const std::map<int32_t, double> want = host_chain(row, c.p);
    ASSERT_FALSE(want.empty());
    const int64_t per_launch = 2000, launches = 20, n = per_launch * launches;
    const DeviceBuffer rows = replicate(row, per_launch);
    std::map<int32_t, int64_t> seen;
    for (int64_t k = 0; k < launches; ++k)
      for (int32_t id : sample_rows(rows, per_launch, V, c.p, 2024, static_cast<uint64_t>(k))) ++seen[id];
    for (const auto& [id, cnt] : seen) ASSERT_TRUE(want.count(id)) << "token " << id << " outside the kept set";
    // Pearson chi-square over bins of expected count >= 10 (the rest pooled into one bin).
    double chi2 = 0, pool_e = 0, pool_o = 0;
    int bins = 0;
    for (const auto& [id, pr] : want) {
      const double e = pr * static_cast<double>(n);
      const double o = seen.count(id) ? static_cast<double>(seen[id]) : 0.0;
      if (e >= 10) {
        chi2 += (o - e) * (o - e) / e;
        ++bins;
      } else {
        pool_e += e;
        pool_o += o;
      }
    }
    if (pool_e > 0) {
      chi2 += (pool_o - pool_e) * (pool_o - pool_e) / std::max(pool_e, 1.0);
      ++bins;
    }
    const double df = std::max(1, bins - 1);
    // Mean df, sd sqrt(2 df): 7 sd is far beyond chance (p < 1e-9), and a wrong cut or RNG fails it.
    std::printf("%s: kept %zu, chi2 %.1f over %d bins\n", c.name, want.size(), chi2, bins);
    EXPECT_LT(chi2, df + 7.0 * std::sqrt(2.0 * df) + 10.0);
  }
}

TEST_F(DeviceSampling, SameSeedSameTokens) {
  SCOPED_TRACE(trace());
  SamplingParams p;
  p.temperature = 1.0f, p.top_k = 0, p.top_p = 0.99f;
  const std::vector<float> row = random_row(kVocab, 1.0f);
  const std::vector<int32_t> a = sample(row, 64, p, 5, 10), b = sample(row, 64, p, 5, 10);
  EXPECT_EQ(a, b);
  const std::vector<int32_t> c = sample(row, 64, p, 6, 10), d = sample(row, 64, p, 5, 11);
  EXPECT_NE(a, c) << "another seed draws other tokens";
  EXPECT_NE(a, d) << "another step draws other tokens";
  // Rows are drawn with their index in the call (not in a launch group): a shorter call
  // gives the same first rows, and rows 0-15 and 16-31 draw differently.
  const std::vector<int32_t> e = sample(row, 40, p, 5, 10);
  EXPECT_EQ(e, std::vector<int32_t>(a.begin(), a.begin() + 40));
  EXPECT_NE(std::vector<int32_t>(a.begin(), a.begin() + 16), std::vector<int32_t>(a.begin() + 16, a.begin() + 32));
  // The pooled path (default top-k 64, top-p 0.95) and the whole-row draw reproduce as well, and
  // a one-row call (the decode step's launch) draws what row 0 of a larger call draws.
  SamplingParams q;
  q.temperature = 1.0f;
  for (int mode = 0; mode < 2; ++mode) {
    SCOPED_TRACE(mode == 0 ? "top-k 64, top-p 0.95" : "whole row");
    if (mode == 1) q.top_k = 0, q.top_p = 1.0f;
    const std::vector<int32_t> f = sample(row, 20, q, 8, 3);
    EXPECT_EQ(f, sample(row, 20, q, 8, 3));
    for (uint64_t step = 3; step < 7; ++step)
      EXPECT_EQ(sample(row, 1, q, 8, step)[0], sample(row, 2, q, 8, step)[0]) << "step " << step;
    EXPECT_EQ(sample(row, 1, q, 8, 3)[0], f[0]);
  }
}

// Rows of 6,000 logits (two CTAs, more candidates than the 4,096-entry pool) through every way the
// sampler finishes a row: greedy, the top-k pool, the open pool with a top-p cut, min-p alone, the
// whole-row draw and the exact chain (top-k above the pool). Every drawn token is in the host
// chain's kept set and a second call draws the same tokens. Small enough for racecheck.
TEST_F(DeviceSampling, EveryFinishingPathOnSmallRows) {
  SCOPED_TRACE(trace());
  const int64_t V = 6000;
  const std::vector<float> row = random_row(V, 2.0f);
  struct Mode {
    const char* name;
    float t;
    int32_t k;
    float top_p;
    float min_p;
  };
  const Mode modes[] = {{"greedy", 0.0f, 0, 1.0f, 0.0f},          {"top-k pool", 1.0f, 10, 1.0f, 0.0f},
                        {"open pool, top-p", 1.0f, 0, 0.5f, 0.0f}, {"min-p alone", 1.0f, 0, 1.0f, 0.1f},
                        {"whole row", 1.0f, 0, 1.0f, 0.0f},        {"exact: top-k above the pool", 1.0f, 4500, 0.9f, 0.0f}};
  for (const Mode& m : modes) {
    SCOPED_TRACE(m.name);
    SamplingParams p;
    p.temperature = m.t, p.top_k = m.k, p.top_p = m.top_p, p.min_p = m.min_p;
    const std::vector<int32_t> a = sample(row, 8, p, 11, 2);
    EXPECT_EQ(a, sample(row, 8, p, 11, 2));
    if (m.t == 0.0f) {
      for (int32_t id : a) EXPECT_EQ(id, argmax(row));
      continue;
    }
    const std::map<int32_t, double> want = host_chain(row, p);
    for (int32_t id : a) EXPECT_TRUE(want.count(id)) << "token " << id << " outside the host's kept set";
  }
  // More rows than one launch group (128): rows keep their index in the call across groups.
  SamplingParams w;
  w.temperature = 1.0f, w.top_k = 0, w.top_p = 1.0f;
  const std::vector<int32_t> f = sample(row, 200, w, 9, 1), g = sample(row, 130, w, 9, 1);
  EXPECT_EQ(g, std::vector<int32_t>(f.begin(), f.begin() + 130));
  EXPECT_NE(std::vector<int32_t>(f.begin(), f.begin() + 72), std::vector<int32_t>(f.begin() + 128, f.end()));
}

// The 31B's vocabulary with its default chain (top-k 64, top-p 0.95): draws follow the host
// chain's probabilities (chi-square), as in the test above at a smaller row.
TEST_F(DeviceSampling, FullVocabularyDrawsFollowTheHostChain) {
  SCOPED_TRACE(trace());
  SamplingParams p;
  p.temperature = 1.0f;
  const std::vector<float> row = random_row(kVocab, 2.5f);
  const std::map<int32_t, double> want = host_chain(row, p);
  ASSERT_FALSE(want.empty());
  const int64_t per_launch = 250, launches = 16, n = per_launch * launches;
  const DeviceBuffer rows = replicate(row, per_launch);
  std::map<int32_t, int64_t> seen;
  for (int64_t k = 0; k < launches; ++k)
    for (int32_t id : sample_rows(rows, per_launch, kVocab, p, 77, static_cast<uint64_t>(k))) ++seen[id];
  for (const auto& [id, cnt] : seen) ASSERT_TRUE(want.count(id)) << "token " << id << " outside the kept set";
  double chi2 = 0, pool_e = 0, pool_o = 0;
  int bins = 0;
  for (const auto& [id, pr] : want) {
    const double ex = pr * static_cast<double>(n);
    const double o = seen.count(id) ? static_cast<double>(seen[id]) : 0.0;
    if (ex >= 10) {
      chi2 += (o - ex) * (o - ex) / ex;
      ++bins;
    } else {
      pool_e += ex;
      pool_o += o;
    }
  }
  if (pool_e > 0) {
    chi2 += (pool_o - pool_e) * (pool_o - pool_e) / std::max(pool_e, 1.0);
    ++bins;
  }
  const double df = std::max(1, bins - 1);
  std::printf("full vocabulary: kept %zu, chi2 %.1f over %d bins\n", want.size(), chi2, bins);
  EXPECT_LT(chi2, df + 7.0 * std::sqrt(2.0 * df) + 10.0);
}

TEST_F(DeviceSampling, RejectsBadArguments) {
  DeviceBuffer logits = to_gpu(std::vector<float>(16, 0.0f));
  EXPECT_FALSE(gpu_->sample_tokens(logits.f32(), 0, 16, nullptr, nullptr).is_ok());
  EXPECT_FALSE(gpu_->sample_tokens(logits.f32(), 1, 0, nullptr, nullptr).is_ok());
  EXPECT_FALSE(gpu_->sample_tokens(nullptr, 1, 16, nullptr, nullptr).is_ok());
  EXPECT_TRUE(gpu_->synchronize().is_ok());
  EXPECT_FALSE(cpu_->sample_tokens(logits.f32(), 1, 16, nullptr, nullptr).is_ok()) << "cpu has no device sampler";
  EXPECT_FALSE(cpu_->supports_device_decode());
  EXPECT_TRUE(gpu_->supports_device_decode());
}

}  // namespace
}  // namespace ge
