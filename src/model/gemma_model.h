// The Gemma 3 / Gemma 4 forward pass, written once against the Backend op interface.
// ref: transformers Gemma3TextModel / Gemma4TextModel (gemma-spec.md §2.1, §5.3).
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "model/checkpoint.h"
#include "model/gemma_config.h"

namespace ge {

enum class LogitsMode {
  kLast,  // only the last position goes through the LM head (generation)
  kAll,   // every position (golden tests, teacher-forced evaluation)
  kNone,  // prefill of a prefix whose logits nobody reads
};

// One sequence's slice of a batched forward call: `n` tokens at positions [pos0, pos0 + n) of the
// sequence whose KV cache is `cache`.
struct SequenceChunk {
  KvCache* cache = nullptr;
  const int32_t* tokens = nullptr;
  int32_t n = 0;
  int32_t pos0 = 0;
  LogitsMode mode = LogitsMode::kLast;
};

class GemmaModel {
 public:
  // Packs every weight into the backend's layout. `max_chunk` bounds the tokens of one forward call
  // (and sizes the sliding-window rings: window + max_chunk slots).
  static Result<std::unique_ptr<GemmaModel>> create(const GemmaConfig& config, const ModelWeights& weights,
                                                    Backend& backend, int32_t max_chunk);

  // The same model with random weights of one encoding, built by the backend itself (no file, no
  // host copy): benchmarks of shapes whose real weights are out of reach.
  // `type` and `group_size` (Int4Group / Int8Group only) choose the encoding of every matrix.
  static Result<std::unique_ptr<GemmaModel>> create_synthetic(const GemmaConfig& config, QuantType type,
                                                              int64_t group_size, Backend& backend,
                                                              int32_t max_chunk, uint64_t seed);

  // KV cache for sequences of up to `context_len` positions.
  Result<std::unique_ptr<KvCache>> create_kv_cache(int32_t context_len) const;

  // Runs `n` tokens (n ≤ max_chunk) at positions [pos0, pos0 + n); their K/V are appended to the
  // cache, whose positions [0, pos0) must already hold this sequence. Writes logits to host memory:
  // [vocab] for kLast, [n, vocab] for kAll.
  Status forward(KvCache& cache, const int32_t* tokens, int32_t n, int32_t pos0, LogitsMode mode,
                 float* logits);
  // Several sequences in one pass (continuous batching: decode steps of running requests together
  // with prefill chunks of new ones). Their tokens share every matmul; attention stays per sequence.
  // Total tokens ≤ max_chunk. Logits rows are written in chunk order: kLast → 1 row, kAll → n rows,
  // kNone → none.
  Status forward_batch(const std::vector<SequenceChunk>& chunks, float* logits);

  const GemmaConfig& config() const { return config_; }
  int32_t max_chunk() const { return max_chunk_; }
  Backend& backend() const { return backend_; }
  size_t packed_weight_bytes() const;

 private:
  struct Layer {
    std::unique_ptr<PackedWeight> q, k, v, o, gate, up, down;
    DeviceBuffer input_norm, q_norm, k_norm, post_attn_norm, pre_ffw_norm, post_ffw_norm, inv_freq;
    float layer_scalar = 1.0f;
  };

  GemmaModel(const GemmaConfig& c, Backend& b, int32_t max_chunk) : config_(c), backend_(b), max_chunk_(max_chunk) {}
  Status allocate_workspace();

  GemmaConfig config_;
  Backend& backend_;
  int32_t max_chunk_;
  std::unique_ptr<PackedWeight> embed_, lm_head_;  // lm_head_ null when tied
  DeviceBuffer final_norm_;
  float embed_scale_ = 1.0f;
  std::vector<Layer> layers_;
  // Workspace sized for max_chunk tokens.
  DeviceBuffer tokens_, positions_, x_, h_, q_, k_, v_, attn_, a_, gate_, up_, logits_;
};

}  // namespace ge
