// Quantization at load (`--quantize int4-g*`): a float checkpoint's matrices encoded in memory by the
// quantizer's recipe into owned INT4/INT8 group buffers, viewed as ModelWeights for GemmaModel::create.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "model/checkpoint_writer.h"

namespace ge {
namespace {

// Encodes one matrix into owned whole-tensor buffers (chunks reassembled in the QuantWeight layout).
Status quantize_owned(const QuantWeight& src, const QuantTarget& t, ThreadPool& pool,
                      std::vector<std::unique_ptr<Int4GroupData>>* int4,
                      std::vector<std::unique_ptr<Int8GroupData>>* int8, QuantWeight* out) {
  const int64_t n = src.rows, k = src.cols, groups = k / t.group_size;
  if (t.type == QuantType::kInt4Group) {
    auto d = std::make_unique<Int4GroupData>();
    d->group_size = t.group_size;
    d->qdata.resize(static_cast<size_t>(n * (k / 2)));
    d->scale.resize(static_cast<size_t>(n * groups));
    d->zero.resize(static_cast<size_t>(n * groups));
    auto sink = [&](int64_t row0, const QuantWeight& c) -> Status {
      std::memcpy(d->qdata.data() + row0 * (k / 2), c.data, static_cast<size_t>(c.rows * (k / 2)));
      const auto* cz = static_cast<const uint16_t*>(c.zero);
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t r = 0; r < c.rows; ++r) {
          d->scale[static_cast<size_t>(g * n + row0 + r)] = c.scale[g * c.rows + r];
          d->zero[static_cast<size_t>(g * n + row0 + r)] = cz[g * c.rows + r];
        }
      }
      return Status::ok();
    };
    GE_RETURN_IF_ERROR(quantize_tensor(src, t, pool, sink, nullptr));
    *out = int4_group_weight(*d, n, k);
    int4->push_back(std::move(d));
    return Status::ok();
  }
  auto d = std::make_unique<Int8GroupData>();
  d->group_size = t.group_size;
  d->qdata.resize(static_cast<size_t>(n * k));
  d->scale.resize(static_cast<size_t>(n * groups));
  d->zero.resize(static_cast<size_t>(n * groups));
  auto sink = [&](int64_t row0, const QuantWeight& c) -> Status {
    std::memcpy(d->qdata.data() + row0 * k, c.data, static_cast<size_t>(c.rows * k));
    std::memcpy(d->scale.data() + row0 * groups, c.scale, static_cast<size_t>(c.rows * groups) * 2);
    std::memcpy(d->zero.data() + row0 * groups, c.zero, static_cast<size_t>(c.rows * groups));
    return Status::ok();
  };
  GE_RETURN_IF_ERROR(quantize_tensor(src, t, pool, sink, nullptr));
  *out = int8_group_weight(*d, n, k);
  int8->push_back(std::move(d));
  return Status::ok();
}

}  // namespace

uint64_t QuantizedModelWeights::bytes() const {
  uint64_t n = 0;
  for (const auto& d : int4_) n += d->qdata.size() + 2 * (d->scale.size() + d->zero.size());
  for (const auto& d : int8_) n += d->qdata.size() + 2 * d->scale.size() + d->zero.size();
  return n;
}

Result<std::unique_ptr<QuantizedModelWeights>> quantize_model_weights(const GemmaConfig& config,
                                                                      const ModelWeights& source,
                                                                      const QuantRecipe& recipe, int n_threads) {
  GE_RETURN_IF_ERROR(validate_recipe(recipe));
  std::unique_ptr<QuantizedModelWeights> q(new QuantizedModelWeights());
  q->weights_ = source;  // norms, scalars and the embedding scale as loaded
  ThreadPool pool(n_threads > 0 ? n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const int32_t L = config.num_hidden_layers;
  auto encode = [&](const QuantWeight& src, TensorRole role, int32_t layer, QuantWeight* out,
                    const std::string& what) -> Status {
    if (src.type != QuantType::kF32 && src.type != QuantType::kF16 && src.type != QuantType::kBF16) {
      return invalid_argument("quantize at load: " + what + " is already " + quant_type_name(src.type) +
                              "; --quantize applies to F32/F16/BF16 checkpoints");
    }
    const WeightEncoding e = encoding_for(recipe, role, layer, L);
    QuantTarget t;
    t.method = recipe.method;
    t.type = e == WeightEncoding::kInt4 ? QuantType::kInt4Group : QuantType::kInt8Group;
    t.group_size = e == WeightEncoding::kInt4   ? recipe.group_size
                   : e == WeightEncoding::kInt8 ? recipe.int8_group_size
                                                : src.cols;
    Status s = quantize_owned(src, t, pool, &q->int4_, &q->int8_, out);
    if (!s.is_ok()) return Status(s.code(), "quantize at load: " + what + ": " + s.message());
    return Status::ok();
  };
  ModelWeights& w = q->weights_;
  GE_RETURN_IF_ERROR(encode(source.embed_tokens, TensorRole::kEmbedding, -1, &w.embed_tokens, "embed_tokens"));
  if (source.lm_head.data != nullptr) {
    GE_RETURN_IF_ERROR(encode(source.lm_head, TensorRole::kLmHead, -1, &w.lm_head, "lm_head"));
  } else if (recipe.int4_lm_head) {
    GE_RETURN_IF_ERROR(encode(source.embed_tokens, TensorRole::kLmHead, -1, &w.lm_head, "lm_head"));
  }
  for (int32_t i = 0; i < L && i < static_cast<int32_t>(source.layers.size()); ++i) {
    const LayerWeights& s = source.layers[static_cast<size_t>(i)];
    LayerWeights& d = w.layers[static_cast<size_t>(i)];
    const std::string p = "layer " + std::to_string(i) + " ";
    GE_RETURN_IF_ERROR(encode(s.q_proj, TensorRole::kAttnQ, i, &d.q_proj, p + "q_proj"));
    GE_RETURN_IF_ERROR(encode(s.k_proj, TensorRole::kAttnK, i, &d.k_proj, p + "k_proj"));
    if (s.v_proj.data != nullptr) GE_RETURN_IF_ERROR(encode(s.v_proj, TensorRole::kAttnV, i, &d.v_proj, p + "v_proj"));
    GE_RETURN_IF_ERROR(encode(s.o_proj, TensorRole::kAttnO, i, &d.o_proj, p + "o_proj"));
    GE_RETURN_IF_ERROR(encode(s.gate_proj, TensorRole::kMlpGate, i, &d.gate_proj, p + "gate_proj"));
    GE_RETURN_IF_ERROR(encode(s.up_proj, TensorRole::kMlpUp, i, &d.up_proj, p + "up_proj"));
    GE_RETURN_IF_ERROR(encode(s.down_proj, TensorRole::kMlpDown, i, &d.down_proj, p + "down_proj"));
  }
  // As Checkpoint::open sets it for an INT8 embedding (the file this mirrors): sqrt(hidden) in fp32.
  w.embed_scale = std::sqrt(static_cast<float>(config.hidden_size));
  return q;
}

}  // namespace ge
