// Backends without device-resident decode (the CPU ones): generation takes the host path, the
// device-decode entry points answer "unsupported" instead of failing later.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/gemma_model.h"
#include "runtime/generation.h"
#include "runtime/session.h"
#include "sampling/sampler.h"

namespace ge {
namespace {

TEST(DeviceDecodeFallback, CpuBackendGeneratesOnTheHostPath) {
  auto cp = Checkpoint::open(std::string(GE_TEST_DATA_DIR) + "/golden/gemma3_tiny");
  ASSERT_TRUE(cp.is_ok()) << cp.status().to_string();
  auto b = create_backend("cpu", 1);
  ASSERT_TRUE(b.is_ok());
  EXPECT_FALSE((*b)->supports_device_decode());
  EXPECT_EQ((*b)->begin_capture().code(), StatusCode::kUnsupported);
  EXPECT_EQ((*b)->advance_positions(nullptr, 0, 1).code(), StatusCode::kUnsupported);
  EXPECT_EQ((*b)->sample_tokens(nullptr, 1, 1, nullptr, nullptr).code(), StatusCode::kUnsupported);
  auto m = GemmaModel::create((*cp)->config(), (*cp)->weights(), **b, 8);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_FALSE((*m)->supports_device_decode());
  EXPECT_EQ((*m)->create_decode_slot().status().code(), StatusCode::kUnsupported);

  auto cache = (*m)->create_kv_cache(64);
  ASSERT_TRUE(cache.is_ok());
  Session s(**m, std::move(cache).value(), 64);
  const std::vector<int32_t> prompt{2, 10, 20, 30};
  EXPECT_EQ(s.prefill_sample(prompt).status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(s.position(), 0) << "a refused device prefill leaves the sequence untouched";

  SamplingParams p;
  p.temperature = 0.0f;
  Sampler sampler(p);
  GenerateOptions opt;
  opt.max_new_tokens = 12;
  EXPECT_FALSE(uses_device_sampling(s, sampler, opt));
  std::vector<int32_t> out;
  auto r = generate(s, prompt, sampler, opt, [&](int32_t t) {
    out.push_back(t);
    return true;
  }, nullptr);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(out.size(), 12u);
  // Same tokens as stepping the eager path by hand.
  auto cache2 = (*m)->create_kv_cache(64);
  ASSERT_TRUE(cache2.is_ok());
  Session s2(**m, std::move(cache2).value(), 64);
  std::vector<float> logits(static_cast<size_t>((*m)->config().vocab_size));
  ASSERT_TRUE(s2.prefill(prompt, logits.data()).is_ok());
  for (size_t i = 0; i < out.size(); ++i) {
    const int32_t t = argmax(logits);
    EXPECT_EQ(t, out[i]) << "token " << i;
    ASSERT_TRUE(s2.decode(t, logits.data()).is_ok());
  }
}

}  // namespace
}  // namespace ge
