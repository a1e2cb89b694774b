// The Gemma 3 / Gemma 4 forward pass, written once against the Backend op interface.
// ref: transformers Gemma3TextModel / Gemma4TextModel (gemma-spec.md §2.1, §5.3).
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "model/checkpoint.h"
#include "model/gemma_config.h"
#include "sampling/sampler.h"

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

// Device memory through which one sequence decodes without the host: the next token id, its
// position and the device sampler's state. A recorded decode step reads and advances them.
struct DeviceDecodeSlot {
  DeviceBuffer memory;
  int32_t* token = nullptr;     // [1]
  int32_t* position = nullptr;  // [1]
  DeviceSamplerState* sampler = nullptr;
};

// A sequence's recorded decode step (null until the first step has run eagerly).
struct DecodeGraph {
  std::unique_ptr<CapturedGraph> graph;
  bool disabled = false;  // recording failed once: this sequence stays eager
  Status last_capture_error;
};

class GemmaModel {
 public:
  // Tokens of one forward call when the caller passes max_chunk = 0: on a backend with device memory
  // kDeviceDefaultChunk (a 2,048-token prompt in one pass), halved while the activation workspace
  // would take more than a quarter of the memory left after the weights; kHostDefaultChunk otherwise.
  static constexpr int32_t kDeviceDefaultChunk = 2048;
  static constexpr int32_t kHostDefaultChunk = 256;
  // The logits buffer holds at most this many bytes ([rows, vocab] fp32): a forward call whose
  // wanted rows exceed it runs the LM head in several passes, so the workspace does not grow with
  // max_chunk x vocab (a 262,144-token vocabulary: 128 rows).
  static constexpr size_t kLogitsBufferBytes = size_t{128} << 20;

  // Packs every weight into the backend's layout. `max_chunk` bounds the tokens of one forward call
  // (and sizes the sliding-window rings: window + max_chunk slots); 0 chooses (see kDeviceDefaultChunk).
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
  // [vocab] for kLast, [n, vocab] for kAll (the LM head runs logits_rows() rows at a time).
  Status forward(KvCache& cache, const int32_t* tokens, int32_t n, int32_t pos0, LogitsMode mode,
                 float* logits);
  // Several sequences in one pass (continuous batching: decode steps of running requests together
  // with prefill chunks of new ones). Their tokens share every matmul; attention stays per sequence.
  // Total tokens ≤ max_chunk. Logits rows are written in chunk order: kLast → 1 row, kAll → n rows,
  // kNone → none.
  Status forward_batch(const std::vector<SequenceChunk>& chunks, float* logits);

  // ---- device-resident decode (backends with supports_device_decode; one sequence per call) ----
  bool supports_device_decode() const { return backend_.supports_device_decode(); }
  Result<DeviceDecodeSlot> create_decode_slot() const;
  // Writes sampler parameters (penalties are not applied on the device) and the RNG step.
  Status set_device_sampling(DeviceDecodeSlot& slot, const SamplingParams& params, uint64_t seed, uint64_t step);
  // forward() of n prompt tokens, then the next token sampled on the device from the last row's
  // logits; the token and position pos0 + n are left in `slot` for decode_device. Returns the token.
  Result<int32_t> prefill_sample(KvCache& cache, DeviceDecodeSlot& slot, const int32_t* tokens, int32_t n,
                                 int32_t pos0);
  // Overwrites the slot's token and position (when the host chose the token itself).
  Status set_decode_input(DeviceDecodeSlot& slot, int32_t token, int32_t position);
  // One decode step of the slot's token at the slot's position; samples the next token on the
  // device, advances the position and returns the token. The first step of a sequence runs eagerly
  // (sizing backend scratch) and records the step into `graph`; later steps replay the recording:
  // one launch and a 4-byte readback.
  Result<int32_t> decode_device(KvCache& cache, DeviceDecodeSlot& slot, DecodeGraph& graph);
  // Whether runs of two or more one-token chunks in forward_batch go through the Backend batch ops
  // (the default: one kv_store / attention launch for all of them) or sequence by sequence (for
  // comparisons and measurements).
  void set_decode_batching(bool on) { decode_batching_ = on; }
  // Bytes of the activation workspace (max_chunk tokens) and sampler slots, for memory reports.
  size_t workspace_bytes() const;
  // Rows of logits one LM-head pass produces (the logits buffer's rows): min(max_chunk, the rows of
  // kLogitsBufferBytes), or what set_logits_rows chose. Results do not depend on it.
  int32_t logits_rows() const { return logits_rows_; }
  // Reallocates the logits buffer for `rows` rows (1..max_chunk): smaller buffers on devices short of
  // memory, and tests of the multi-pass LM head.
  Status set_logits_rows(int32_t rows);

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
  Status load_weights(const ModelWeights& weights);
  Status synthesize_weights(QuantType type, int64_t group_size, uint64_t seed);
  // Queues the forward pass of `total` tokens whose ids / positions are already in backend memory;
  // leaves the final-normed rows whose logits are wanted in h_ (gathered from row 0) and returns
  // their count. No host synchronisation.
  Result<int64_t> enqueue_forward(const std::vector<SequenceChunk>& chunks, const int32_t* tokens,
                                  const int32_t* positions, int64_t total);
  // LM head (and final softcap) of the n ≤ logits_rows_ gathered rows [row0, row0 + n) of h_ into logits_.
  void enqueue_logits(int64_t row0, int64_t n);
  // max_chunk for max_chunk = 0 (see kDeviceDefaultChunk); the weights must be loaded.
  int32_t choose_max_chunk() const;
  // Bytes of the activation buffers for `tokens` tokens, logits excluded.
  size_t activation_bytes(size_t tokens) const;
  Status enqueue_decode_step(KvCache& cache, DeviceDecodeSlot& slot);
  // Wraps an out-of-memory failure while loading with the bytes needed and free on the device.
  Status explain_load_failure(const Status& s, uint64_t weights_estimate) const;

  GemmaConfig config_;
  Backend& backend_;
  int32_t max_chunk_;
  int32_t logits_rows_ = 0;
  std::unique_ptr<PackedWeight> embed_, lm_head_;  // lm_head_ null when tied
  DeviceBuffer final_norm_;
  float embed_scale_ = 1.0f;
  std::vector<Layer> layers_;
  // Workspace sized for max_chunk tokens (logits_: logits_rows_ rows).
  DeviceBuffer tokens_, positions_, x_, h_, q_, k_, v_, attn_, a_, gate_, up_, logits_;
  bool decode_batching_ = true;
  std::vector<KvCache*> decode_caches_;  // scratch: the caches of a run of decoding sequences
};

}  // namespace ge
