// Device-resident decode on the tiny golden models: greedy tokens from recorded decode steps (token
// sampled on the device, one graph replay per step) equal the eager path's; chunked prefill + graph
// decode equals token-by-token; out-of-memory at load and at KV-cache creation names the bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/gemma_model.h"
#include "model/model_presets.h"
#include "runtime/generation.h"
#include "runtime/session.h"
#include "sampling/sampler.h"

namespace ge {
namespace {

const std::string kGolden = std::string(GE_TEST_DATA_DIR) + "/golden/";

struct Loaded {
  std::unique_ptr<Checkpoint> cp;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<GemmaModel> model;
};

Loaded load(const std::string& dir, int32_t chunk) {
  Loaded r;
  auto cp = Checkpoint::open(dir);
  EXPECT_TRUE(cp.is_ok()) << cp.status().to_string();
  r.cp = std::move(cp).value();
  auto b = create_backend("cuda", 1);
  EXPECT_TRUE(b.is_ok()) << b.status().to_string();
  r.backend = std::move(b).value();
  auto m = GemmaModel::create(r.cp->config(), r.cp->weights(), *r.backend, chunk);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  r.model = std::move(m).value();
  return r;
}

std::vector<int32_t> prompt_of(const std::string& dir, size_t n) {
  std::ifstream in(dir + "/tokens.json");
  auto t = nlohmann::json::parse(in).at("tokens").get<std::vector<int32_t>>();
  std::vector<int32_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(t[i % t.size()]);
  return out;
}

// Greedy tokens through the eager path: logits to the host, ge::argmax.
std::vector<int32_t> eager_greedy(GemmaModel& m, const std::vector<int32_t>& prompt, int steps, int32_t ctx) {
  auto cache = m.create_kv_cache(ctx);
  EXPECT_TRUE(cache.is_ok());
  Session s(m, std::move(cache).value(), ctx);
  std::vector<float> logits(static_cast<size_t>(m.config().vocab_size));
  EXPECT_TRUE(s.prefill(prompt, logits.data()).is_ok());
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    const int32_t tok = argmax(logits);
    out.push_back(tok);
    if (i + 1 < steps) {
      EXPECT_TRUE(s.decode(tok, logits.data()).is_ok());
    }
  }
  return out;
}

std::vector<int32_t> graph_greedy(GemmaModel& m, const std::vector<int32_t>& prompt, int steps, int32_t ctx,
                                  Status* graph_status) {
  auto cache = m.create_kv_cache(ctx);
  EXPECT_TRUE(cache.is_ok());
  Session s(m, std::move(cache).value(), ctx);
  SamplingParams p;
  p.temperature = 0.0f;
  EXPECT_TRUE(s.set_device_sampling(p, 0).is_ok());
  Result<int32_t> tok = s.prefill_sample(prompt);
  EXPECT_TRUE(tok.is_ok()) << tok.status().to_string();
  std::vector<int32_t> out;
  for (int i = 0; i < steps && tok.is_ok(); ++i) {
    out.push_back(*tok);
    if (i + 1 < steps) {
      tok = s.decode_sample(*tok);
      EXPECT_TRUE(tok.is_ok()) << tok.status().to_string();
    }
  }
  EXPECT_EQ(s.position(), static_cast<int32_t>(prompt.size()) + steps - 1);
  *graph_status = s.graph_status();
  return out;
}

class DeviceDecode : public ::testing::TestWithParam<std::string> {};

TEST_P(DeviceDecode, Greedy64FromTheGraphEqualEager) {
  const std::string dir = kGolden + GetParam();
  Loaded r = load(dir, 16);
  ASSERT_TRUE(r.model->supports_device_decode());
  const std::vector<int32_t> prompt = prompt_of(dir, 12);
  const std::vector<int32_t> eager = eager_greedy(*r.model, prompt, 64, 128);
  Status gs;
  const std::vector<int32_t> graph = graph_greedy(*r.model, prompt, 64, 128, &gs);
  EXPECT_TRUE(gs.is_ok()) << "decode steps were not recorded: " << gs.to_string();
  EXPECT_EQ(graph, eager);
}

TEST_P(DeviceDecode, ChunkedPrefillThenGraphEqualsTokenByToken) {
  const std::string dir = kGolden + GetParam();
  const std::vector<int32_t> prompt = prompt_of(dir, 40);
  Loaded chunked = load(dir, 16);  // 40 = 16 + 16 + 8: two eager chunks, the last samples on the device
  Loaded single = load(dir, 1);    // the prompt one token at a time
  Status a, b;
  const std::vector<int32_t> x = graph_greedy(*chunked.model, prompt, 32, 96, &a);
  const std::vector<int32_t> y = graph_greedy(*single.model, prompt, 32, 96, &b);
  EXPECT_TRUE(a.is_ok()) << a.to_string();
  EXPECT_TRUE(b.is_ok()) << b.to_string();
  // Each path equals its eager twin exactly.
  EXPECT_EQ(x, eager_greedy(*chunked.model, prompt, 32, 96));
  EXPECT_EQ(y, eager_greedy(*single.model, prompt, 32, 96));
  // Chunked vs token-by-token prefill run different kernels (prefill attention, M > 1 matmuls), so
  // their logits differ in the last bits. The tiny Gemma 3 model has clear margins and must agree on
  // every token. The tiny Gemma 4 ones amplify such differences (scale-1.0 attention: the golden test
  // sees up to 0.6 between chunk sizes), so there the first token must agree wherever its top-2 gap
  // exceeds twice the measured logits difference of the two prefills.
  if (GetParam() == "gemma3_tiny") {
    EXPECT_EQ(x, y);
  } else {
    std::vector<float> la(static_cast<size_t>(single.model->config().vocab_size)), lb = la;
    for (int k = 0; k < 2; ++k) {
      GemmaModel& m = k == 0 ? *chunked.model : *single.model;
      auto cache = m.create_kv_cache(96);
      ASSERT_TRUE(cache.is_ok());
      Session s(m, std::move(cache).value(), 96);
      ASSERT_TRUE(s.prefill(prompt, (k == 0 ? la : lb).data()).is_ok());
    }
    float diff = 0;
    for (size_t i = 0; i < la.size(); ++i) diff = std::max(diff, std::fabs(la[i] - lb[i]));
    std::vector<float> sorted = lb;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    std::printf("%s: prefill logits differ by %.3g between chunk 16 and 1; top-2 gap %.3g\n", GetParam().c_str(), diff,
                sorted[0] - sorted[1]);
    EXPECT_LT(diff, 1.0f);
    if (sorted[0] - sorted[1] > 2 * diff) {
      EXPECT_EQ(x[0], y[0]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, DeviceDecode, ::testing::Values("gemma3_tiny", "gemma4_tiny", "gemma4_tiny_nokeqv"));

TEST(DeviceDecodeMemory, AbsurdContextIsAClearOutOfMemoryError) {
  Loaded r = load(kGolden + "gemma3_tiny", 16);
  auto cache = r.model->create_kv_cache(2000000000);
  ASSERT_FALSE(cache.is_ok());
  EXPECT_EQ(cache.status().code(), StatusCode::kOutOfMemory) << cache.status().to_string();
  EXPECT_NE(cache.status().message().find("KV cache needs"), std::string::npos) << cache.status().to_string();
  EXPECT_NE(cache.status().message().find("bytes free"), std::string::npos) << cache.status().to_string();
  // The device still works afterwards.
  auto ok = r.model->create_kv_cache(64);
  EXPECT_TRUE(ok.is_ok()) << ok.status().to_string();
}

TEST(DeviceDecodeMemory, ModelTooLargeNamesBytesNeededAndFree) {
  auto b = create_backend("cuda", 1);
  ASSERT_TRUE(b.is_ok());
  auto cfg = preset_config("gemma-4-31b");
  ASSERT_TRUE(cfg.is_ok());
  GemmaConfig c = *cfg;
  c.vocab_size = 1 << 24;  // embedding alone: 2^24 x 2^15 x 8.5 bits, far beyond any card
  c.hidden_size = 1 << 15;
  auto m = GemmaModel::create_synthetic(c, QuantType::kQ8_0, 0, **b, 16, 1);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kOutOfMemory) << m.status().to_string();
  EXPECT_NE(m.status().message().find("needs about"), std::string::npos) << m.status().to_string();
  EXPECT_NE(m.status().message().find("bytes free"), std::string::npos) << m.status().to_string();
}

}  // namespace
}  // namespace ge
