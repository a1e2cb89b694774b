// Tests for core helpers: checked arithmetic, half conversions, Result, thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "core/checked_math.h"
#include "core/dtype.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace ge {
namespace {

TEST(CheckedMath, DetectsOverflow) {
  uint64_t out;
  EXPECT_TRUE(add_ok(1, 2, &out));
  EXPECT_EQ(out, 3u);
  EXPECT_FALSE(add_ok(std::numeric_limits<uint64_t>::max(), 1, &out));
  EXPECT_FALSE(mul_ok(1ull << 33, 1ull << 31, &out));
  EXPECT_TRUE(pad_ok(13, 32, &out));
  EXPECT_EQ(out, 32u);
  EXPECT_FALSE(pad_ok(std::numeric_limits<uint64_t>::max() - 3, 32, &out));
  EXPECT_FALSE(pad_ok(5, 0, &out));
  EXPECT_TRUE(range_ok(10, 5, 15));
  EXPECT_FALSE(range_ok(10, 6, 15));
  EXPECT_FALSE(range_ok(std::numeric_limits<uint64_t>::max(), 2, 15));
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_FLOAT_EQ(round_bf16(std::sqrt(5376.0f)), 73.5f);
  EXPECT_FLOAT_EQ(round_bf16(std::sqrt(640.0f)), 25.25f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, Fp16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_fp16(f), h) << "half " << h;
  }
  EXPECT_FLOAT_EQ(fp16_to_f32(0x3c00), 1.0f);
  EXPECT_FLOAT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_fp16(1e6f), 0x7c00);
}

TEST(Result, CarriesValueOrStatus) {
  Result<int> ok = 5;
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok.value(), 5);
  Result<int> bad = format_error("broken");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kFormatError);
  EXPECT_EQ(bad.status().to_string(), "format error: broken");
}

TEST(ThreadPool, CoversRangeExactlyOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 5, 64, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, 4, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
  }
}

// Many short jobs back to back (the spinning hand-off) and jobs separated by pauses longer than
// the spin time (the sleeping hand-off): every element is visited exactly once per job, the
// workers' writes are visible to the caller when parallel_for returns, and destruction of an idle
// pool (workers asleep or spinning) returns.
TEST(ThreadPool, ShortJobsAndSleepingWorkersKeepEveryResult) {
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<int64_t> out(257);
    for (int round = 0; round < 2000; ++round) {
      const int64_t n = 1 + round % 257;
      pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[static_cast<size_t>(i)] = round * 1000 + i;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[static_cast<size_t>(i)], round * 1000 + i) << "round " << round;
      if (round % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // workers go to sleep
    }
  }
  for (int threads : {2, 4}) {
    ThreadPool idle(threads);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace
}  // namespace ge
