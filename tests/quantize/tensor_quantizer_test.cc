// quantize_tensor: chunked, threaded encoding gives the bytes of the whole-tensor quantizers, the
// same bytes for any thread count, correct error statistics, and clean errors.
#include "quant/tensor_quantizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant/dequantize.h"
#include "quant/quantize.h"

namespace ge {
namespace {

std::vector<float> random_rows(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.05f);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (float& x : v) x = n(rng);
  v[3] += 0.8f;  // an outlier, where HQQ and min-max differ
  return v;
}

QuantWeight f32_view(const std::vector<float>& v, int64_t rows, int64_t cols) {
  QuantWeight w;
  w.type = QuantType::kF32;
  w.rows = rows;
  w.cols = cols;
  w.data = reinterpret_cast<const uint8_t*>(v.data());
  return w;
}

// The chunks reassembled into whole-tensor buffers in the QuantWeight layout of the target.
struct Collected {
  std::vector<uint8_t> data;
  std::vector<uint16_t> scale, zero16;
  std::vector<int8_t> zero8;
  int chunks = 0;
};

Status collect(const QuantTarget& t, const QuantWeight& src, ThreadPool& pool, Collected* out, QuantStats* stats,
               TensorQuantizeOptions opts = {}) {
  const int64_t n = src.rows, k = src.cols;
  const int64_t groups = t.group_size > 0 ? k / t.group_size : 0;
  std::mutex mu;
  uint64_t per_row = 0;
  if (t.type == QuantType::kInt4Group) {
    per_row = static_cast<uint64_t>(k / 2);
  } else if (t.type == QuantType::kInt8Group) {
    per_row = static_cast<uint64_t>(k);
  } else {
    per_row = row_bytes(t.type, k).value();
  }
  out->data.assign(per_row * static_cast<uint64_t>(n), 0);
  out->scale.assign(static_cast<size_t>(n * groups), 0);
  out->zero16.assign(static_cast<size_t>(n * groups), 0);
  out->zero8.assign(static_cast<size_t>(n * groups), 0);
  auto sink = [&](int64_t row0, const QuantWeight& c) -> Status {
    std::lock_guard<std::mutex> lock(mu);
    ++out->chunks;
    std::memcpy(out->data.data() + static_cast<uint64_t>(row0) * per_row, c.data, per_row * static_cast<uint64_t>(c.rows));
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        if (t.type == QuantType::kInt4Group) {
          out->scale[static_cast<size_t>(g * n + row0 + r)] = c.scale[g * c.rows + r];
          out->zero16[static_cast<size_t>(g * n + row0 + r)] = static_cast<const uint16_t*>(c.zero)[g * c.rows + r];
        } else {
          out->scale[static_cast<size_t>((row0 + r) * groups + g)] = c.scale[r * groups + g];
          out->zero8[static_cast<size_t>((row0 + r) * groups + g)] = static_cast<const int8_t*>(c.zero)[r * groups + g];
        }
      }
    }
    return Status::ok();
  };
  return quantize_tensor(src, t, pool, sink, stats, opts);
}

TEST(TensorQuantizer, Int4MinMaxChunksEqualTheWholeTensorQuantizer) {
  const int64_t rows = 37, cols = 128;
  const std::vector<float> x = random_rows(rows, cols, 1);
  for (int64_t gs : {32, 64, 128}) {
    Result<Int4GroupData> whole = quantize_int4_group_minmax(x.data(), rows, cols, gs);
    ASSERT_TRUE(whole.is_ok());
    for (int threads : {1, 3}) {
      ThreadPool pool(threads);
      QuantTarget t{QuantType::kInt4Group, gs, QuantMethod::kMinMax, {}};
      TensorQuantizeOptions opts;
      opts.chunk_rows = 5;
      Collected c;
      ASSERT_TRUE(collect(t, f32_view(x, rows, cols), pool, &c, nullptr, opts).is_ok());
      EXPECT_EQ(c.chunks, 8);
      EXPECT_EQ(c.data, whole->qdata) << gs;
      EXPECT_EQ(c.scale, whole->scale) << gs;
      EXPECT_EQ(c.zero16, whole->zero) << gs;
    }
  }
}

TEST(TensorQuantizer, HqqIsIndependentOfTheThreadCountAndMatchesPerChunkHqq) {
  const int64_t rows = 24, cols = 64;
  const std::vector<float> x = random_rows(rows, cols, 2);
  QuantTarget t{QuantType::kInt4Group, 32, QuantMethod::kHqq, {}};
  TensorQuantizeOptions opts;
  opts.chunk_rows = 8;
  Collected one, four;
  ThreadPool p1(1), p4(4);
  ASSERT_TRUE(collect(t, f32_view(x, rows, cols), p1, &one, nullptr, opts).is_ok());
  ASSERT_TRUE(collect(t, f32_view(x, rows, cols), p4, &four, nullptr, opts).is_ok());
  EXPECT_EQ(one.data, four.data);
  EXPECT_EQ(one.scale, four.scale);
  EXPECT_EQ(one.zero16, four.zero16);
  // Each chunk is exactly quantize_int4_group_hqq of its rows.
  Result<Int4GroupData> first = quantize_int4_group_hqq(x.data(), 8, cols, 32);
  ASSERT_TRUE(first.is_ok());
  EXPECT_TRUE(std::equal(first->qdata.begin(), first->qdata.end(), one.data.begin()));
  // And it differs from min-max (the outlier group moves its zero).
  Collected mm;
  t.method = QuantMethod::kMinMax;
  ASSERT_TRUE(collect(t, f32_view(x, rows, cols), p1, &mm, nullptr, opts).is_ok());
  EXPECT_NE(mm.zero16, one.zero16);
}

TEST(TensorQuantizer, Int8AndGgufTypesEqualTheWholeTensorQuantizers) {
  const int64_t rows = 19, cols = 512;
  const std::vector<float> x = random_rows(rows, cols, 3);
  ThreadPool pool(2);
  TensorQuantizeOptions opts;
  opts.chunk_rows = 4;
  for (int64_t gs : {int64_t{32}, cols}) {
    Result<Int8GroupData> whole = quantize_int8_group_symmetric(x.data(), rows, cols, gs);
    ASSERT_TRUE(whole.is_ok());
    Collected c;
    ASSERT_TRUE(collect({QuantType::kInt8Group, gs, QuantMethod::kMinMax, {}}, f32_view(x, rows, cols), pool, &c,
                        nullptr, opts)
                    .is_ok());
    EXPECT_TRUE(std::equal(c.data.begin(), c.data.end(), reinterpret_cast<const uint8_t*>(whole->qdata.data())));
    EXPECT_EQ(c.scale, whole->scale);
    EXPECT_EQ(c.zero8, whole->zero);
  }
  for (QuantType type : {QuantType::kQ4_0, QuantType::kQ5_0, QuantType::kQ8_0, QuantType::kQ4_K, QuantType::kQ6_K,
                         QuantType::kBF16}) {
    std::vector<uint8_t> whole(row_bytes(type, cols).value() * rows);
    ASSERT_TRUE(quantize_rows(type, x.data(), rows, cols, whole.data()).is_ok());
    Collected c;
    ASSERT_TRUE(collect({type, 0, QuantMethod::kMinMax, {}}, f32_view(x, rows, cols), pool, &c, nullptr, opts).is_ok());
    EXPECT_EQ(c.data, whole) << quant_type_name(type);
  }
}

TEST(TensorQuantizer, StatisticsMatchTheDecodedOutput) {
  const int64_t rows = 16, cols = 64;
  const std::vector<float> x = random_rows(rows, cols, 4);
  Result<Int4GroupData> q = quantize_int4_group_minmax(x.data(), rows, cols, 32);
  ASSERT_TRUE(q.is_ok());
  const QuantWeight w = int4_group_weight(*q, rows, cols);
  double signal = 0, noise = 0, max_err = 0;
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(w, r, row.data());
    for (int64_t c = 0; c < cols; ++c) {
      const double v = x[r * cols + c], e = v - row[c];
      signal += v * v;
      noise += e * e;
      max_err = std::max(max_err, std::fabs(e));
    }
  }
  ThreadPool pool(2);
  QuantStats stats;
  Collected c;
  TensorQuantizeOptions opts;
  opts.chunk_rows = 3;
  ASSERT_TRUE(collect({QuantType::kInt4Group, 32, QuantMethod::kMinMax, {}}, f32_view(x, rows, cols), pool, &c, &stats,
                      opts)
                  .is_ok());
  EXPECT_NEAR(stats.signal, signal, 1e-9 * signal);
  EXPECT_NEAR(stats.noise, noise, 1e-9 * noise);
  EXPECT_EQ(stats.max_abs_error, max_err);
  EXPECT_EQ(stats.elements, rows * cols);
  EXPECT_NEAR(stats.snr_db(), 10 * std::log10(signal / noise), 1e-9);
  EXPECT_GT(stats.snr_db(), 15.0);
  // An exact encoding has infinite SNR.
  QuantStats exact;
  ASSERT_TRUE(collect({QuantType::kF32, 0, QuantMethod::kMinMax, {}}, f32_view(x, rows, cols), pool, &c, &exact).is_ok());
  EXPECT_TRUE(std::isinf(exact.snr_db()));
}

TEST(TensorQuantizer, Bf16SourceEqualsItsFloatDecoding) {
  const int64_t rows = 9, cols = 64;
  const std::vector<float> x = random_rows(rows, cols, 5);
  std::vector<uint16_t> h(x.size());
  std::vector<float> widened(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    h[i] = f32_to_bf16(x[i]);
    widened[i] = bf16_to_f32(h[i]);
  }
  QuantWeight src;
  src.type = QuantType::kBF16;
  src.rows = rows;
  src.cols = cols;
  src.data = reinterpret_cast<const uint8_t*>(h.data());
  ThreadPool pool(2);
  Collected a, b;
  const QuantTarget t{QuantType::kInt4Group, 32, QuantMethod::kHqq, {}};
  ASSERT_TRUE(collect(t, src, pool, &a, nullptr).is_ok());
  ASSERT_TRUE(collect(t, f32_view(widened, rows, cols), pool, &b, nullptr).is_ok());
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.zero16, b.zero16);
}

TEST(TensorQuantizer, ReleasesEverySourceRowOnce) {
  const int64_t rows = 23, cols = 32;
  const std::vector<float> x = random_rows(rows, cols, 6);
  std::vector<std::atomic<int>> released(static_cast<size_t>(rows));
  TensorQuantizeOptions opts;
  opts.chunk_rows = 4;
  opts.release_source = [&](const uint8_t* p, uint64_t n) {
    const int64_t r0 = (p - reinterpret_cast<const uint8_t*>(x.data())) / (cols * 4);
    for (int64_t r = r0; r < r0 + static_cast<int64_t>(n / (cols * 4)); ++r) released[static_cast<size_t>(r)]++;
  };
  ThreadPool pool(3);
  Collected c;
  ASSERT_TRUE(collect({QuantType::kQ8_0, 0, QuantMethod::kMinMax, {}}, f32_view(x, rows, cols), pool, &c, nullptr, opts)
                  .is_ok());
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(released[static_cast<size_t>(r)].load(), 1) << r;
}

TEST(TensorQuantizer, Errors) {
  const int64_t rows = 4, cols = 96;
  std::vector<float> x = random_rows(rows, cols, 7);
  ThreadPool pool(2);
  auto ok_sink = [](int64_t, const QuantWeight&) { return Status::ok(); };
  // Group size that does not divide the row, K-quant on a 96-column row, no Q5_K quantizer.
  EXPECT_FALSE(quantize_tensor(f32_view(x, rows, cols), {QuantType::kInt4Group, 64, QuantMethod::kMinMax, {}}, pool,
                               ok_sink, nullptr)
                   .is_ok());
  EXPECT_FALSE(quantize_tensor(f32_view(x, rows, cols), {QuantType::kQ4_K, 0, QuantMethod::kMinMax, {}}, pool, ok_sink,
                               nullptr)
                   .is_ok());
  EXPECT_FALSE(check_quant_target({QuantType::kQ5_K, 0, QuantMethod::kMinMax, {}}, 1, 256).is_ok());
  // A quantized source is not re-quantized.
  QuantWeight q = f32_view(x, rows, cols);
  q.type = QuantType::kQ8_0;
  EXPECT_FALSE(quantize_tensor(q, {QuantType::kQ4_0, 0, QuantMethod::kMinMax, {}}, pool, ok_sink, nullptr).is_ok());
  // Non-finite input.
  x[100] = std::nanf("");
  Status s = quantize_tensor(f32_view(x, rows, cols), {QuantType::kInt4Group, 32, QuantMethod::kMinMax, {}}, pool,
                             ok_sink, nullptr);
  EXPECT_FALSE(s.is_ok());
  x[100] = 0.0f;
  // The sink's error comes back.
  s = quantize_tensor(f32_view(x, rows, cols), {QuantType::kQ8_0, 0, QuantMethod::kMinMax, {}}, pool,
                      [](int64_t, const QuantWeight&) { return io_error("disk full"); }, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("disk full"), std::string::npos);
}

}  // namespace
}  // namespace ge
