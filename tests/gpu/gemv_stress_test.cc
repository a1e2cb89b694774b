// Stress tests for state the tensor-core GEMV shares between launches: weight packing repeated into
// reused device memory (every packed weight must equal its source bit for bit, the last rows
// included), and GEMVs of every schedule, shape, M and launch mode queued back to back on one backend
// (split counters, partials and programmatic launch overlapping), each checked against the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "gpu_test_util.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

using gputest::Encoding;
using gputest::GpuTest;
using gputest::HostWeight;

// Bytes of the codes in a weight's data array that can change freely (the fp16 block scales of
// Q4_0 / Q8_0 stay put so the weight stays valid).
bool is_code_byte(QuantType type, size_t i) {
  if (type == QuantType::kQ4_0) return i % 18 >= 2;
  if (type == QuantType::kQ8_0) return i % 34 >= 2;
  return true;  // Int4Group / Int8Group: data holds codes only
}

class GemvStress : public GpuTest {};

// The packed weight is read by kernels on the backend's stream: its upload must have landed before
// the repack kernels read it. Each round changes every code byte (XOR with a nonzero pattern that
// differs from the previous round's) and every scale and zero, so bytes left over from the previous
// round (same size: usually the same allocation) differ from the new ones and a repack that reads
// any of them stale shows as a mismatch. A late upload leaves its last bytes stale, i.e. the last
// rows: every row is compared, except for the largest weight (9.4 MB), whose last 128 rows (1.2 MB
// of the upload) are.
TEST_F(GemvStress, PackedWeightsEqualTheirSourceEveryRound) {
  SCOPED_TRACE(trace());
  struct Shape {
    Encoding e;
    int64_t rows, cols;
    int rounds;
    int64_t compared_rows;  // the last rows compared (0: all)
  };
  const std::vector<Shape> shapes = {
      {{QuantType::kQ4_0}, 70, 21504, 50, 0},  // the long-K shape of the GEMV tests (0.85 MB)
      {{QuantType::kQ4_0}, 1024, 16384, 30, 128},
      {{QuantType::kQ4_0}, 512, 8192, 20, 0},
      {{QuantType::kInt4Group, 128, 1}, 40, 16384, 20, 0},
      {{QuantType::kQ8_0}, 33, 8192, 20, 0},
      {{QuantType::kInt8Group, 64, 1}, 130, 2048, 20, 0},
  };
  for (const Shape& s : shapes) {
    SCOPED_TRACE(s.e.name() + " [" + std::to_string(s.rows) + ", " + std::to_string(s.cols) + "]");
    HostWeight hw = gputest::random_weight(s.e.type, s.rows, s.cols, rng_, s.e.group, s.e.zero_kind);
    const int64_t row0 = s.compared_rows > 0 ? s.rows - s.compared_rows : 0;
    const int64_t n = (s.rows - row0) * s.cols;
    // Every round's dequantization overwrites the whole buffer: an element it missed would keep the
    // previous round's value (or the first round's NaN) and differ.
    DeviceBuffer out = poisoned(s.rows * s.cols);
    std::vector<float> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
    int bad_rounds = 0;
    for (int round = 0; round < s.rounds; ++round) {
      const uint8_t pattern = static_cast<uint8_t>(round % 255 + 1);  // consecutive rounds differ
      // Codes change by the pattern, block scales (fp16 of Q4_0 / Q8_0, low byte first) by their lowest
      // mantissa bit; group metadata (uploaded after the codes) likewise: the lowest mantissa bit of
      // every bf16 scale and zero, the lowest bit of every int8 zero.
      const size_t block = s.e.type == QuantType::kQ4_0 ? 18 : 34;
      for (size_t i = 0; i < hw.data.size(); ++i) {
        if (is_code_byte(s.e.type, i)) {
          hw.data[i] ^= pattern;
        } else if (i % block == 0) {
          hw.data[i] ^= 1u;
        }
      }
      for (uint16_t& v : hw.scale) v ^= 1u;
      const bool bf16_zero = s.e.type == QuantType::kInt4Group;
      for (size_t i = 0; i < hw.zero.size(); ++i) {
        if (!bf16_zero || i % 2 == 0) hw.zero[i] ^= 1u;
      }
      Result<std::unique_ptr<PackedWeight>> gw = gpu_->pack_weight(hw.view);
      ASSERT_TRUE(gw.is_ok()) << gw.status().to_string();
      ASSERT_TRUE(cuda_->dequantize(**gw, out.f32()).is_ok());
      gpu_->download(got.data(), out.f32() + row0 * s.cols, static_cast<size_t>(n) * sizeof(float));
      ASSERT_TRUE(gpu_->synchronize().is_ok());
      for (int64_t r = row0; r < s.rows; ++r) dequantize_row(hw.view, r, want.data() + (r - row0) * s.cols);
      int64_t mismatches = 0, first_row = -1, last_row = -1;
      for (int64_t i = 0; i < n; ++i) {
        if (gputest::float_bits(got[i]) != gputest::float_bits(want[i])) {
          ++mismatches;
          if (first_row < 0) first_row = row0 + i / s.cols;
          last_row = row0 + i / s.cols;
        }
      }
      if (mismatches > 0 && ++bad_rounds <= 3) {
        ADD_FAILURE() << s.e.name() << " [" << s.rows << ", " << s.cols << "] round " << round << ": " << mismatches
                      << " elements differ from the source, rows " << first_row << ".." << last_row;
      }
    }
    EXPECT_EQ(bad_rounds, 0) << "of " << s.rounds << " rounds";
  }
}

// One weight of the interleaved GEMV stress, with its host copy for the reference.
struct StressWeight {
  HostWeight host;
  std::unique_ptr<PackedWeight> gpu;
  std::unique_ptr<PackedWeight> cpu;
  std::vector<float> dense;  // [rows, cols] dequantized
};

// Reference of one (weight, M): products and Σ|w·x| per output, x on the device.
struct StressRef {
  std::vector<float> x, want;
  std::vector<double> absum;
  DeviceBuffer gx;
};

class GemvStressInterleaved : public GpuTest {
 protected:
  void add_weight(const Encoding& e, int64_t rows, int64_t cols) {
    StressWeight w;
    w.host = gputest::random_weight(e.type, rows, cols, rng_, e.group, e.zero_kind);
    Result<std::unique_ptr<PackedWeight>> g = gpu_->pack_weight(w.host.view);
    Result<std::unique_ptr<PackedWeight>> c = cpu_->pack_weight(w.host.view);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    w.gpu = std::move(g).value();
    w.cpu = std::move(c).value();
    w.dense.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) dequantize_row(w.host.view, r, w.dense.data() + r * cols);
    weights_.push_back(std::move(w));
  }

  // The reference of (weight wi, m), made on first use. Weights of the same cols share x per M
  // (grouped launches need one x).
  const StressRef& ref(size_t wi, int64_t m) {
    const auto key = std::make_pair(wi, m);
    auto it = refs_.find(key);
    if (it != refs_.end()) return it->second;
    const StressWeight& w = weights_[wi];
    const int64_t rows = w.host.view.rows, cols = w.host.view.cols;
    StressRef r;
    auto xs = xs_.find(std::make_pair(cols, m));
    if (xs == xs_.end()) xs = xs_.emplace(std::make_pair(cols, m), normal(m * cols)).first;
    r.x = xs->second;
    r.gx = to_gpu(r.x);
    DeviceBuffer cx = to_cpu(r.x);
    DeviceBuffer cy = to_cpu(std::vector<float>(static_cast<size_t>(m * rows)));
    cpu_->matmul(cx.f32(), m, *w.cpu, cy.f32());
    r.want = from_cpu(cy, m * rows);
    r.absum.resize(static_cast<size_t>(m * rows));
    for (int64_t row = 0; row < rows; ++row) {
      const float* wr = w.dense.data() + row * cols;
      for (int64_t t = 0; t < m; ++t) {
        double s = 0.0;
        for (int64_t k = 0; k < cols; ++k) s += std::fabs(static_cast<double>(wr[k]) * r.x[t * cols + k]);
        r.absum[t * rows + row] = s;
      }
    }
    return refs_.emplace(key, std::move(r)).first->second;
  }

  std::vector<StressWeight> weights_;
  std::map<std::pair<size_t, int64_t>, StressRef> refs_;
  std::map<std::pair<int64_t, int64_t>, std::vector<float>> xs_;
};

// Batches of GEMVs with a random schedule (0 the production choice, 1 items, 2 stream-K, 3 K-slice),
// weight, M and launch mode are queued back to back without a synchronization between them, so the
// launches overlap under programmatic launch and reuse the backend's split counters and partials with
// other layouts; grouped (shared-x) launches are mixed in. Each output must be within the tiled
// GEMV's bound of the reference (5e-5 · Σ|w·x|, matmul_test.cc) and have the same bits as the first
// run of the same (weight, M, schedule, grouped) case: the split sums are added in a fixed order, so a
// sum that read a partial or a counter of another launch would differ.
TEST_F(GemvStressInterleaved, SchedulesShapesAndLaunchModesBackToBack) {
  SCOPED_TRACE(trace());
  add_weight({QuantType::kQ4_0}, 70, 21504);  // 0: the long-K shape (padded pair at the end)
  add_weight({QuantType::kQ4_0}, 40, 21504);  // 1: grouped with 0
  add_weight({QuantType::kInt4Group, 128, 1}, 40, 16384);
  add_weight({QuantType::kQ8_0}, 33, 8192);
  add_weight({QuantType::kQ4_0}, 300, 4096);
  add_weight({QuantType::kInt8Group, 64, 1}, 130, 2048);
  add_weight({QuantType::kQ4_0}, 21504 + 40, 256);  // tall: many pairs, the largest counter array
  ASSERT_FALSE(HasFatalFailure());
  const std::vector<int64_t> ms = {1, 2, 4, 9, 16};
  std::uniform_int_distribution<size_t> pick_w(0, weights_.size() - 1);
  std::uniform_int_distribution<size_t> pick_m(0, ms.size() - 1);
  std::uniform_int_distribution<int> pick_sched(0, 3), pick_batch(1, 10), coin(0, 3);

  struct Launch {
    size_t w;       // weight (the first of a group)
    bool grouped;   // weights 0 and 1 in one shared-x launch
    int64_t m;
    int sched;
    DeviceBuffer y[2];
  };
  std::map<std::tuple<size_t, int64_t, int, bool>, std::vector<float>> first_bits;
  const int kBatches = 400;
  int launches = 0, out_of_bound = 0, bit_changes = 0;
  for (int b = 0; b < kBatches; ++b) {
    std::vector<Launch> batch(static_cast<size_t>(pick_batch(rng_)));
    for (Launch& l : batch) {
      l.grouped = coin(rng_) == 0;
      l.w = l.grouped ? 0 : pick_w(rng_);
      l.m = ms[pick_m(rng_)];
      l.sched = pick_sched(rng_);
      // References, x and the poisoned outputs first (uploads between two GEMVs would separate them),
      // then the GEMVs alone on the stream.
      for (size_t i = 0; i < (l.grouped ? 2u : 1u); ++i) {
        (void)ref(l.w + i, l.m);
        l.y[i] = poisoned(l.m * weights_[l.w + i].host.view.rows);
      }
    }
    for (Launch& l : batch) {
      CudaMatmulTuning t;
      t.gemv_schedule = l.sched;
      t.programmatic_launch = coin(rng_) != 0;
      cuda_->set_matmul_tuning(t);
      const StressRef& r0 = ref(l.w, l.m);
      if (l.grouped) {
        const MatmulOutput outs[2] = {{weights_[0].gpu.get(), l.y[0].f32()}, {weights_[1].gpu.get(), l.y[1].f32()}};
        gpu_->matmul_shared_input(r0.gx.f32(), l.m, outs);
      } else {
        gpu_->matmul(r0.gx.f32(), l.m, *weights_[l.w].gpu, l.y[0].f32());
      }
      ++launches;
    }
    const Status st = gpu_->synchronize();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    for (const Launch& l : batch) {
      for (size_t i = 0; i < (l.grouped ? 2u : 1u); ++i) {
        const size_t wi = l.w + i;
        const StressRef& r = ref(wi, l.m);
        const int64_t rows = weights_[wi].host.view.rows, n = l.m * rows;
        const std::vector<float> got = from_gpu(l.y[i], n);
        const std::string what = "batch " + std::to_string(b) + ", weight " + std::to_string(wi) + ", m = " +
                                 std::to_string(l.m) + ", schedule " + std::to_string(l.sched) +
                                 (l.grouped ? ", grouped" : "");
        int64_t bad = 0;
        for (int64_t j = 0; j < n; ++j) {
          const double err = std::fabs(static_cast<double>(got[j]) - r.want[j]);
          const double ratio = r.absum[j] > 0 ? err / r.absum[j] : err;
          if (!(ratio <= 5e-5) && ++bad <= 2) {  // also catches NaN (unwritten output)
            ADD_FAILURE() << what << ": output " << j << " (token " << j / rows << ", row " << j % rows
                          << "): gpu " << got[j] << " cpu " << r.want[j] << " |err|/A " << ratio;
          }
        }
        out_of_bound += bad > 0;
        auto [it, fresh] = first_bits.emplace(std::make_tuple(wi, l.m, l.sched, l.grouped), got);
        if (!fresh) {
          int64_t diff = 0;
          for (int64_t j = 0; j < n; ++j) diff += gputest::float_bits(got[j]) != gputest::float_bits(it->second[j]);
          if (diff > 0 && ++bit_changes <= 3) ADD_FAILURE() << what << ": " << diff << " outputs changed bits";
        }
      }
    }
  }
  cuda_->set_matmul_tuning(CudaMatmulTuning{});
  std::printf("[ stress ] %d GEMV launches in %d batches, %zu distinct cases\n", launches, kBatches,
              first_bits.size());
  EXPECT_EQ(out_of_bound, 0);
  EXPECT_EQ(bit_changes, 0);
}

}  // namespace
}  // namespace ge
