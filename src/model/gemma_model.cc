// Forward pass: embedding → N × (attention block, MLP block, layer scalar) → final norm → tied head.
#include "model/gemma_model.h"

#include <algorithm>
#include <cmath>

namespace ge {

namespace {

Result<DeviceBuffer> upload_floats(Backend& b, const std::vector<float>& v) {
  GE_ASSIGN_OR_RETURN(DeviceBuffer buf, b.alloc(std::max<size_t>(1, v.size()) * sizeof(float)));
  if (!v.empty()) b.upload(buf.data(), v.data(), v.size() * sizeof(float));
  return buf;
}

Result<std::unique_ptr<PackedWeight>> pack(Backend& b, const QuantWeight& w, const char* what, int32_t layer) {
  Result<std::unique_ptr<PackedWeight>> r = b.pack_weight(w);
  if (!r.is_ok())
    return Status(r.status().code(), std::string("packing ") + what +
                                         (layer >= 0 ? " of layer " + std::to_string(layer) : std::string()) +
                                         ": " + r.status().message());
  return r;
}

// Source bytes of a weight (what packing needs, give or take the layout's padding); 0 when absent.
uint64_t estimate_bytes(const QuantWeight& w) {
  if (w.rows <= 0 || w.cols <= 0) return 0;
  Result<WeightBytes> b = weight_bytes(w);
  if (!b.is_ok()) return 0;
  return b->data + b->scale + b->zero;
}

}  // namespace

Result<std::unique_ptr<GemmaModel>> GemmaModel::create(const GemmaConfig& c, const ModelWeights& w,
                                                       Backend& b, int32_t max_chunk) {
  GE_RETURN_IF_ERROR(validate_config(c));
  if (max_chunk < 0 || max_chunk > 65536) return invalid_argument("max_chunk must be in 0..65536 (0: the default)");
  std::unique_ptr<GemmaModel> m(new GemmaModel(c, b, max_chunk));
  uint64_t estimate = estimate_bytes(w.embed_tokens) + (w.lm_head.data != nullptr ? estimate_bytes(w.lm_head) : 0);
  for (const LayerWeights& lw : w.layers)
    for (const QuantWeight* q : {&lw.q_proj, &lw.k_proj, &lw.v_proj, &lw.o_proj, &lw.gate_proj, &lw.up_proj, &lw.down_proj})
      estimate += estimate_bytes(*q);
  if (Status s = m->load_weights(w); !s.is_ok()) return m->explain_load_failure(s, estimate);
  return m;
}

Status GemmaModel::load_weights(const ModelWeights& w) {
  const GemmaConfig& c = config_;
  Backend& b = backend_;
  GemmaModel* m = this;
  GE_ASSIGN_OR_RETURN(m->embed_, pack(b, w.embed_tokens, "embed_tokens", -1));
  if (w.lm_head.data != nullptr) {
    GE_ASSIGN_OR_RETURN(m->lm_head_, pack(b, w.lm_head, "lm_head", -1));
  }
  GE_ASSIGN_OR_RETURN(m->final_norm_, upload_floats(b, w.norm));
  m->embed_scale_ = w.embed_scale;
  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(i)];
    Layer l;
    GE_ASSIGN_OR_RETURN(l.q, pack(b, lw.q_proj, "q_proj", i));
    GE_ASSIGN_OR_RETURN(l.k, pack(b, lw.k_proj, "k_proj", i));
    if (!c.layers[static_cast<size_t>(i)].k_eq_v) {
      GE_ASSIGN_OR_RETURN(l.v, pack(b, lw.v_proj, "v_proj", i));
    }
    GE_ASSIGN_OR_RETURN(l.o, pack(b, lw.o_proj, "o_proj", i));
    GE_ASSIGN_OR_RETURN(l.gate, pack(b, lw.gate_proj, "gate_proj", i));
    GE_ASSIGN_OR_RETURN(l.up, pack(b, lw.up_proj, "up_proj", i));
    GE_ASSIGN_OR_RETURN(l.down, pack(b, lw.down_proj, "down_proj", i));
    GE_ASSIGN_OR_RETURN(l.input_norm, upload_floats(b, lw.input_layernorm));
    GE_ASSIGN_OR_RETURN(l.q_norm, upload_floats(b, lw.q_norm));
    GE_ASSIGN_OR_RETURN(l.k_norm, upload_floats(b, lw.k_norm));
    GE_ASSIGN_OR_RETURN(l.post_attn_norm, upload_floats(b, lw.post_attention_layernorm));
    GE_ASSIGN_OR_RETURN(l.pre_ffw_norm, upload_floats(b, lw.pre_feedforward_layernorm));
    GE_ASSIGN_OR_RETURN(l.post_ffw_norm, upload_floats(b, lw.post_feedforward_layernorm));
    GE_ASSIGN_OR_RETURN(l.inv_freq, upload_floats(b, c.rope_inv_freq(i)));
    l.layer_scalar = lw.layer_scalar;
    m->layers_.push_back(std::move(l));
  }
  GE_RETURN_IF_ERROR(m->allocate_workspace());
  return b.synchronize();
}

Result<std::unique_ptr<GemmaModel>> GemmaModel::create_synthetic(const GemmaConfig& c, QuantType type,
                                                                 int64_t group_size, Backend& b, int32_t max_chunk,
                                                                 uint64_t seed) {
  GE_RETURN_IF_ERROR(validate_config(c));
  if (max_chunk < 0 || max_chunk > 65536) return invalid_argument("max_chunk must be in 0..65536 (0: the default)");
  std::unique_ptr<GemmaModel> m(new GemmaModel(c, b, max_chunk));
  auto like = [&](int64_t rows, int64_t cols) {
    QuantWeight q;
    q.type = type;
    q.rows = rows;
    q.cols = cols;
    q.group_size = group_size;
    return estimate_bytes(q);
  };
  uint64_t estimate = like(c.vocab_size, c.hidden_size);
  for (const LayerConfig& lc : c.layers) {
    const int64_t q = static_cast<int64_t>(c.num_attention_heads) * lc.head_dim;
    const int64_t kv = static_cast<int64_t>(lc.num_key_value_heads) * lc.head_dim;
    estimate += like(q, c.hidden_size) * 1 + like(kv, c.hidden_size) * (lc.k_eq_v ? 1 : 2) + like(c.hidden_size, q) +
                like(c.intermediate_size, c.hidden_size) * 2 + like(c.hidden_size, c.intermediate_size);
  }
  if (Status st = m->synthesize_weights(type, group_size, seed); !st.is_ok()) return m->explain_load_failure(st, estimate);
  return m;
}

Status GemmaModel::synthesize_weights(QuantType type, int64_t group_size, uint64_t seed) {
  const GemmaConfig& c = config_;
  Backend& b = backend_;
  GemmaModel* m = this;
  uint64_t s = seed;
  auto synth = [&](int64_t rows, int64_t cols) {
    QuantWeight like;
    like.type = type;
    like.rows = rows;
    like.cols = cols;
    like.group_size = group_size;
    return b.synthesize_weight(like, ++s);
  };
  // Norm multipliers near 1 and layer scalars below 1 keep activations in a realistic range.
  const std::vector<float> ones_h(static_cast<size_t>(c.hidden_size), 1.0f);
  GE_ASSIGN_OR_RETURN(m->embed_, synth(c.vocab_size, c.hidden_size));
  GE_ASSIGN_OR_RETURN(m->final_norm_, upload_floats(b, ones_h));
  m->embed_scale_ = std::sqrt(static_cast<float>(c.hidden_size));
  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerConfig& lc = c.layers[static_cast<size_t>(i)];
    const int64_t q = static_cast<int64_t>(c.num_attention_heads) * lc.head_dim;
    const int64_t kv = static_cast<int64_t>(lc.num_key_value_heads) * lc.head_dim;
    const std::vector<float> ones_d(static_cast<size_t>(lc.head_dim), 1.0f);
    Layer l;
    GE_ASSIGN_OR_RETURN(l.q, synth(q, c.hidden_size));
    GE_ASSIGN_OR_RETURN(l.k, synth(kv, c.hidden_size));
    if (!lc.k_eq_v) {
      GE_ASSIGN_OR_RETURN(l.v, synth(kv, c.hidden_size));
    }
    GE_ASSIGN_OR_RETURN(l.o, synth(c.hidden_size, q));
    GE_ASSIGN_OR_RETURN(l.gate, synth(c.intermediate_size, c.hidden_size));
    GE_ASSIGN_OR_RETURN(l.up, synth(c.intermediate_size, c.hidden_size));
    GE_ASSIGN_OR_RETURN(l.down, synth(c.hidden_size, c.intermediate_size));
    for (DeviceBuffer* n : {&l.input_norm, &l.post_attn_norm, &l.pre_ffw_norm, &l.post_ffw_norm}) {
      GE_ASSIGN_OR_RETURN(*n, upload_floats(b, ones_h));
    }
    GE_ASSIGN_OR_RETURN(l.q_norm, upload_floats(b, ones_d));
    GE_ASSIGN_OR_RETURN(l.k_norm, upload_floats(b, ones_d));
    GE_ASSIGN_OR_RETURN(l.inv_freq, upload_floats(b, c.rope_inv_freq(i)));
    l.layer_scalar = 0.5f;
    m->layers_.push_back(std::move(l));
  }
  GE_RETURN_IF_ERROR(m->allocate_workspace());
  return b.synchronize();
}

size_t GemmaModel::activation_bytes(size_t tokens) const {
  const size_t H = static_cast<size_t>(config_.hidden_size);
  const size_t dq = static_cast<size_t>(config_.num_attention_heads) * static_cast<size_t>(config_.max_head_dim());
  size_t dkv = 0;
  for (const auto& l : config_.layers)
    dkv = std::max(dkv, static_cast<size_t>(l.num_key_value_heads) * static_cast<size_t>(l.head_dim));
  const size_t F = static_cast<size_t>(config_.intermediate_size);
  // tokens, positions; x, h, a [T, H]; q, attn [T, dq]; k, v [T, dkv]; gate, up [T, F]
  return tokens * (2 * sizeof(int32_t) + sizeof(float) * (3 * H + 2 * dq + 2 * dkv + 2 * F));
}

int32_t GemmaModel::choose_max_chunk() const {
  Result<BackendMemoryInfo> mem = backend_.memory_info();
  if (!mem.is_ok()) return kHostDefaultChunk;
  int32_t t = kDeviceDefaultChunk;
  while (t > kHostDefaultChunk && activation_bytes(static_cast<size_t>(t)) > mem->free_bytes / 4) t /= 2;
  return t;
}

Status GemmaModel::allocate_workspace() {
  if (max_chunk_ == 0) max_chunk_ = choose_max_chunk();
  const size_t T = static_cast<size_t>(max_chunk_), f = sizeof(float);
  const size_t H = static_cast<size_t>(config_.hidden_size);
  const size_t dq = static_cast<size_t>(config_.num_attention_heads) * static_cast<size_t>(config_.max_head_dim());
  size_t dkv = 0;
  for (const auto& l : config_.layers)
    dkv = std::max(dkv, static_cast<size_t>(l.num_key_value_heads) * static_cast<size_t>(l.head_dim));
  const size_t F = static_cast<size_t>(config_.intermediate_size);
  GE_ASSIGN_OR_RETURN(tokens_, backend_.alloc(T * sizeof(int32_t)));
  GE_ASSIGN_OR_RETURN(positions_, backend_.alloc(T * sizeof(int32_t)));
  GE_ASSIGN_OR_RETURN(x_, backend_.alloc(T * H * f));
  GE_ASSIGN_OR_RETURN(h_, backend_.alloc(T * H * f));
  GE_ASSIGN_OR_RETURN(a_, backend_.alloc(T * H * f));
  GE_ASSIGN_OR_RETURN(q_, backend_.alloc(T * dq * f));
  GE_ASSIGN_OR_RETURN(attn_, backend_.alloc(T * dq * f));
  GE_ASSIGN_OR_RETURN(k_, backend_.alloc(T * dkv * f));
  GE_ASSIGN_OR_RETURN(v_, backend_.alloc(T * dkv * f));
  GE_ASSIGN_OR_RETURN(gate_, backend_.alloc(T * F * f));
  GE_ASSIGN_OR_RETURN(up_, backend_.alloc(T * F * f));
  const size_t row_bytes = static_cast<size_t>(config_.vocab_size) * f;
  const size_t fit = std::max<size_t>(1, kLogitsBufferBytes / row_bytes);
  return set_logits_rows(static_cast<int32_t>(std::min<size_t>(fit, T)));
}

Status GemmaModel::set_logits_rows(int32_t rows) {
  if (rows < 1 || rows > max_chunk_)
    return invalid_argument("set_logits_rows: rows must be in 1.." + std::to_string(max_chunk_) + ", got " +
                            std::to_string(rows));
  logits_ = DeviceBuffer();  // release the old buffer first: the two need not fit together
  GE_ASSIGN_OR_RETURN(logits_, backend_.alloc(static_cast<size_t>(rows) * static_cast<size_t>(config_.vocab_size) *
                                              sizeof(float)));
  logits_rows_ = rows;
  return Status::ok();
}

Result<std::unique_ptr<KvCache>> GemmaModel::create_kv_cache(int32_t context_len) const {
  if (context_len <= 0) return invalid_argument("context length must be positive");
  std::vector<KvLayerSpec> specs;
  for (const auto& l : config_.layers) {
    KvLayerSpec s;
    s.n_kv_heads = l.num_key_value_heads;
    s.head_dim = l.head_dim;
    s.sliding_window = l.sliding ? config_.sliding_window : 0;
    // A sliding ring needs window + chunk slots so that writing one chunk never overwrites a key
    // that an earlier query of the same chunk still sees.
    s.capacity = l.sliding ? std::min(context_len, config_.sliding_window + max_chunk_) : context_len;
    specs.push_back(s);
  }
  return backend_.create_kv_cache(specs);
}

size_t GemmaModel::packed_weight_bytes() const {
  size_t n = embed_->bytes() + (lm_head_ ? lm_head_->bytes() : 0);
  for (const auto& l : layers_)
    for (const auto* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
      if (*w) n += (*w)->bytes();
  return n;
}

Status GemmaModel::forward(KvCache& cache, const int32_t* tokens, int32_t n, int32_t pos0, LogitsMode mode,
                           float* logits) {
  return forward_batch({SequenceChunk{&cache, tokens, n, pos0, mode}}, logits);
}

Status GemmaModel::forward_batch(const std::vector<SequenceChunk>& chunks, float* logits) {
  if (chunks.empty()) return invalid_argument("forward: no sequences");
  int64_t total = 0;
  for (const SequenceChunk& ch : chunks) {
    if (ch.cache == nullptr || ch.tokens == nullptr) return invalid_argument("forward: null cache or tokens");
    if (ch.n <= 0) return invalid_argument("forward: every sequence needs at least one token");
    if (ch.pos0 < 0) return invalid_argument("forward: negative position");
    total += ch.n;
    for (int32_t t = 0; t < ch.n; ++t)
      if (ch.tokens[t] < 0 || ch.tokens[t] >= config_.vocab_size)
        return invalid_argument("forward: token id " + std::to_string(ch.tokens[t]) + " outside the vocabulary");
  }
  if (total > max_chunk_)
    return invalid_argument("forward: " + std::to_string(total) + " tokens exceed max_chunk " + std::to_string(max_chunk_));

  // Concatenate the sequences' tokens and positions: rows [row0, row0 + n) belong to chunk k.
  std::vector<int32_t> tok, pos;
  tok.reserve(static_cast<size_t>(total));
  pos.reserve(static_cast<size_t>(total));
  for (const SequenceChunk& ch : chunks) {
    for (int32_t t = 0; t < ch.n; ++t) {
      tok.push_back(ch.tokens[t]);
      pos.push_back(ch.pos0 + t);
    }
  }
  backend_.upload(tokens_.data(), tok.data(), tok.size() * sizeof(int32_t));
  backend_.upload(positions_.data(), pos.data(), pos.size() * sizeof(int32_t));
  GE_ASSIGN_OR_RETURN(const int64_t rows, enqueue_forward(chunks, tokens_.i32(), positions_.i32(), total));
  // The LM head logits_rows_ rows at a time; download waits for each pass before the next reuses logits_.
  const size_t V = static_cast<size_t>(config_.vocab_size);
  for (int64_t r = 0; r < rows; r += logits_rows_) {
    const int64_t n = std::min<int64_t>(logits_rows_, rows - r);
    enqueue_logits(r, n);
    backend_.download(logits + static_cast<size_t>(r) * V, logits_.data(), static_cast<size_t>(n) * V * sizeof(float));
  }
  return backend_.synchronize();
}

Result<int64_t> GemmaModel::enqueue_forward(const std::vector<SequenceChunk>& chunks, const int32_t* tokens,
                                            const int32_t* positions, int64_t total) {
  Backend& b = backend_;
  const GemmaConfig& c = config_;
  const int64_t H = c.hidden_size, T = total;
  const float eps = c.rms_norm_eps;
  std::vector<int64_t> row0;
  int64_t r0 = 0;
  for (const SequenceChunk& ch : chunks) {
    row0.push_back(r0);
    r0 += ch.n;
  }
  const int32_t* P = positions;

  float* x = x_.f32();  // [T, H] residual stream
  b.embed(tokens, T, *embed_, embed_scale_, x);
  // h_ holds the normalised input of the next block: the first here, later ones fused into the
  // residual add of the block before (add_rms_norm_then_matmul, which also runs the block's first
  // products and may hand them the rows without writing h_).
  b.rms_norm(x, layers_[0].input_norm.f32(), T, H, eps, h_.f32());

  // q [T, nq*d], raw K [T, nkv*d] and V (not on K=V layers) of layer j from one input: one grouped product.
  auto qkv_of = [&](int32_t j, MatmulOutput (&out)[3]) {
    const Layer& lj = layers_[static_cast<size_t>(j)];
    out[0] = {lj.q.get(), q_.f32()};
    out[1] = {lj.k.get(), k_.f32()};
    out[2] = {lj.v.get(), v_.f32()};
    return std::span<const MatmulOutput>(out, c.layers[static_cast<size_t>(j)].k_eq_v ? 2 : 3);
  };
  MatmulOutput qkv[3];
  b.matmul_shared_input(h_.f32(), T, qkv_of(0, qkv));

  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerConfig& lc = c.layers[static_cast<size_t>(i)];
    Layer& l = layers_[static_cast<size_t>(i)];
    const int64_t nq = c.num_attention_heads, nkv = lc.num_key_value_heads, d = lc.head_dim;

    // --- attention block --- (q/k/v were computed from h by the previous block's closing add-norm)
    AttentionParams ap;
    ap.n_heads = static_cast<int32_t>(nq);
    ap.n_kv_heads = static_cast<int32_t>(nkv);
    ap.head_dim = static_cast<int32_t>(d);
    ap.sliding_window = lc.sliding ? c.sliding_window : 0;
    ap.scale = c.query_scale;
    ap.logit_softcap = c.attn_logit_softcapping;
    // Head norms (V = v_norm(raw K) when k_eq_v, never rotated), RoPE, K/V into the cache, then
    // attention. A run of two or more one-token chunks (decoding sequences, which the scheduler
    // puts first) goes through the batch ops: one launch each for all of them on the GPU.
    auto prologue = [&](int64_t r, int64_t n) {
      AttentionPrologue pro;
      pro.q = q_.f32() + r * nq * d;
      pro.k = k_.f32() + r * nkv * d;
      pro.v = v_.f32() + r * nkv * d;
      pro.q_norm = l.q_norm.f32();
      pro.k_norm = l.k_norm.f32();
      pro.k_eq_v = lc.k_eq_v;
      pro.v_norm = c.has_v_norm;
      pro.inv_freq = l.inv_freq.f32();
      pro.positions = P + r;
      pro.n_tokens = n;
      pro.n_heads = nq;
      pro.n_kv = nkv;
      pro.head_dim = d;
      pro.eps = eps;
      return pro;
    };
    for (size_t k = 0; k < chunks.size();) {
      const int64_t r = row0[k];
      const SequenceChunk& ch = chunks[k];
      size_t run = 0;
      while (decode_batching_ && k + run < chunks.size() && chunks[k + run].n == 1) ++run;
      if (run >= 2) {
        decode_caches_.clear();
        for (size_t j = k; j < k + run; ++j) decode_caches_.push_back(chunks[j].cache);
        const int64_t n = static_cast<int64_t>(run);
        b.attention_prologue_batch(decode_caches_, i, prologue(r, n));
        b.attention_batch(decode_caches_, i, q_.f32() + r * nq * d, P + r, ap, attn_.f32() + r * nq * d);
        k += run;
        continue;
      }
      b.attention_prologue(*ch.cache, i, prologue(r, ch.n));
      b.attention(*ch.cache, i, q_.f32() + r * nq * d, ch.n, P + r, ap, attn_.f32() + r * nq * d);
      ++k;
    }
    b.matmul(attn_.f32(), T, *l.o, a_.f32());  // [T, H]
    // --- MLP block ---
    // x += post_attn_norm(a); h = pre_ffw_norm(x); gate, up = h · wᵀ (a backend may hand h to its
    // matmul directly, leaving h_ unwritten)
    const MatmulOutput gate_up[2] = {{l.gate.get(), gate_.f32()}, {l.up.get(), up_.f32()}};  // [T, F] each
    b.add_rms_norm_then_matmul(x, a_.f32(), l.post_attn_norm.f32(), 1.0f, l.pre_ffw_norm.f32(), T, H, eps, h_.f32(),
                               gate_up);
    b.matmul_gelu_input(gate_.f32(), up_.f32(), T, *l.down, a_.f32());  // [T, F] -> [T, H]
    // x += post_ffw_norm(a); x *= layer scalar; then h = next layer's input_norm(x) and its q/k/v
    const float layer_scale = c.has_layer_scalar ? l.layer_scalar : 1.0f;
    if (i + 1 == c.num_hidden_layers) {
      b.add_rms_norm_then_norm(x, a_.f32(), l.post_ffw_norm.f32(), layer_scale, nullptr, T, H, eps, h_.f32());
    } else {
      b.add_rms_norm_then_matmul(x, a_.f32(), l.post_ffw_norm.f32(), layer_scale,
                                 layers_[static_cast<size_t>(i) + 1].input_norm.f32(), T, H, eps, h_.f32(),
                                 qkv_of(i + 1, qkv));
    }
  }

  // Final norm of the rows whose logits are wanted, gathered contiguously into h_, then one LM-head
  // matmul for all of them.
  int64_t rows = 0;
  for (size_t k = 0; k < chunks.size(); ++k) {
    const SequenceChunk& ch = chunks[k];
    const int64_t want = ch.mode == LogitsMode::kAll ? ch.n : ch.mode == LogitsMode::kLast ? 1 : 0;
    if (want == 0) continue;
    const float* src = x + (row0[k] + ch.n - want) * H;
    b.rms_norm(src, final_norm_.f32(), want, H, eps, h_.f32() + rows * H);
    rows += want;
  }
  return rows;
}

void GemmaModel::enqueue_logits(int64_t row0, int64_t n) {
  const GemmaConfig& c = config_;
  const PackedWeight& head = lm_head_ ? *lm_head_ : *embed_;
  backend_.matmul(h_.f32() + row0 * c.hidden_size, n, head, logits_.f32());  // [n, V]
  if (c.final_logit_softcapping > 0.0f) backend_.softcap(logits_.f32(), n * c.vocab_size, c.final_logit_softcapping);
}

// ---- device-resident decode ----

Result<DeviceDecodeSlot> GemmaModel::create_decode_slot() const {
  if (!backend_.supports_device_decode())
    return unsupported("backend '" + backend_.name() + "' has no device-resident decode");
  DeviceDecodeSlot slot;
  // [token, position, pad, pad][DeviceSamplerState]: the state's 8-byte fields stay aligned.
  GE_ASSIGN_OR_RETURN(slot.memory, backend_.alloc(16 + sizeof(DeviceSamplerState)));
  slot.token = slot.memory.i32();
  slot.position = slot.memory.i32() + 1;
  slot.sampler = reinterpret_cast<DeviceSamplerState*>(static_cast<char*>(slot.memory.data()) + 16);
  const int32_t zero[4] = {0, 0, 0, 0};
  backend_.upload(slot.memory.data(), zero, sizeof(zero));
  const DeviceSamplerState st;
  backend_.upload(slot.sampler, &st, sizeof(st));
  GE_RETURN_IF_ERROR(backend_.synchronize());
  return slot;
}

Status GemmaModel::set_device_sampling(DeviceDecodeSlot& slot, const SamplingParams& p, uint64_t seed,
                                       uint64_t step) {
  if (slot.sampler == nullptr) return invalid_argument("set_device_sampling: slot not created");
  if (!(p.temperature >= 0.0f) || p.top_k < 0 || !(p.top_p > 0.0f && p.top_p <= 1.0f) ||
      !(p.min_p >= 0.0f && p.min_p <= 1.0f))
    return invalid_argument("set_device_sampling: temperature, top_k, top_p or min_p out of range");
  DeviceSamplerState st;
  st.temperature = p.temperature;
  st.top_k = p.top_k;
  st.top_p = p.top_p;
  st.min_p = p.min_p;
  st.seed = seed;
  st.step = step;
  backend_.upload(slot.sampler, &st, sizeof(st));
  return backend_.synchronize();  // the host struct must outlive the copy
}

Status GemmaModel::set_decode_input(DeviceDecodeSlot& slot, int32_t token, int32_t position) {
  if (slot.token == nullptr) return invalid_argument("set_decode_input: slot not created");
  if (token < 0 || token >= config_.vocab_size)
    return invalid_argument("decode: token id " + std::to_string(token) + " outside the vocabulary");
  if (position < 0) return invalid_argument("decode: negative position");
  const int32_t v[2] = {token, position};
  backend_.upload(slot.token, v, sizeof(v));
  return backend_.synchronize();
}

Result<int32_t> GemmaModel::prefill_sample(KvCache& cache, DeviceDecodeSlot& slot, const int32_t* tokens,
                                           int32_t n, int32_t pos0) {
  if (slot.token == nullptr) return invalid_argument("prefill_sample: slot not created");
  if (tokens == nullptr || n <= 0 || n > max_chunk_ || pos0 < 0)
    return invalid_argument("prefill_sample: need 1.." + std::to_string(max_chunk_) + " tokens at a position >= 0");
  for (int32_t t = 0; t < n; ++t)
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size)
      return invalid_argument("forward: token id " + std::to_string(tokens[t]) + " outside the vocabulary");
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int32_t t = 0; t < n; ++t) pos[static_cast<size_t>(t)] = pos0 + t;
  const std::vector<SequenceChunk> chunks{SequenceChunk{&cache, tokens, n, pos0, LogitsMode::kLast}};
  backend_.upload(tokens_.data(), tokens, static_cast<size_t>(n) * sizeof(int32_t));
  backend_.upload(positions_.data(), pos.data(), pos.size() * sizeof(int32_t));
  GE_ASSIGN_OR_RETURN(const int64_t rows, enqueue_forward(chunks, tokens_.i32(), positions_.i32(), n));
  if (rows != 1) return internal_error("prefill_sample: expected one logits row");
  enqueue_logits(0, 1);
  GE_RETURN_IF_ERROR(backend_.sample_tokens(logits_.f32(), 1, config_.vocab_size, slot.sampler, slot.token));
  const int32_t next_pos = pos0 + n;
  backend_.upload(slot.position, &next_pos, sizeof(next_pos));
  int32_t tok = 0;
  backend_.download(&tok, slot.token, sizeof(tok));
  GE_RETURN_IF_ERROR(backend_.synchronize());
  return tok;
}

Status GemmaModel::enqueue_decode_step(KvCache& cache, DeviceDecodeSlot& slot) {
  // The slot's token at the slot's position: positions come from device memory, so the recorded
  // launches are the same for every step.
  const std::vector<SequenceChunk> chunks{SequenceChunk{&cache, slot.token, 1, 0, LogitsMode::kLast}};
  GE_ASSIGN_OR_RETURN(const int64_t rows, enqueue_forward(chunks, slot.token, slot.position, 1));
  if (rows != 1) return internal_error("decode: expected one logits row");
  enqueue_logits(0, 1);
  GE_RETURN_IF_ERROR(backend_.sample_tokens(logits_.f32(), 1, config_.vocab_size, slot.sampler, slot.token));
  return backend_.advance_positions(slot.position, 1, 1);
}

Result<int32_t> GemmaModel::decode_device(KvCache& cache, DeviceDecodeSlot& slot, DecodeGraph& g) {
  if (slot.token == nullptr) return invalid_argument("decode_device: slot not created");
  if (g.graph && !g.graph->valid()) g.graph.reset();  // backend scratch moved: record again
  int32_t tok = 0;
  if (g.graph) {
    GE_RETURN_IF_ERROR(g.graph->replay(&tok));
    return tok;
  }
  GE_RETURN_IF_ERROR(enqueue_decode_step(cache, slot));
  backend_.download(&tok, slot.token, sizeof(tok));
  GE_RETURN_IF_ERROR(backend_.synchronize());
  if (!g.disabled) {
    // Record the step just run (recording does not execute it) for the following steps.
    Status s = backend_.begin_capture();
    if (s.is_ok()) {
      Status q = enqueue_decode_step(cache, slot);
      Result<std::unique_ptr<CapturedGraph>> r = backend_.end_capture(slot.token, sizeof(int32_t));
      if (q.is_ok() && r.is_ok()) {
        g.graph = std::move(r).value();
      } else {
        s = q.is_ok() ? r.status() : q;
      }
    }
    if (!s.is_ok()) {
      g.disabled = true;
      g.last_capture_error = s;
    }
  }
  return tok;
}

size_t GemmaModel::workspace_bytes() const {
  size_t n = 0;
  for (const DeviceBuffer* b : {&tokens_, &positions_, &x_, &h_, &q_, &k_, &v_, &attn_, &a_, &gate_, &up_, &logits_})
    n += b->bytes();
  return n;
}

Status GemmaModel::explain_load_failure(const Status& s, uint64_t weights_estimate) const {
  if (s.code() != StatusCode::kOutOfMemory) return s;
  Result<BackendMemoryInfo> mem = backend_.memory_info();
  // Workspace for max_chunk tokens (see allocate_workspace; the default chunk when not chosen yet).
  const size_t T = static_cast<size_t>(max_chunk_ > 0 ? max_chunk_ : kDeviceDefaultChunk);
  const uint64_t ws = activation_bytes(T) + std::min<uint64_t>(kLogitsBufferBytes, T * 4 * static_cast<uint64_t>(config_.vocab_size));
  std::string msg = "out of device memory while loading the model: it needs about " +
                    std::to_string(weights_estimate + ws) + " bytes (weights " + std::to_string(weights_estimate) +
                    " + workspace " + std::to_string(ws) + ", plus the KV cache per session)";
  if (mem.is_ok())
    msg += "; the device has " + std::to_string(mem->free_bytes) + " bytes free of " + std::to_string(mem->total_bytes);
  return out_of_memory(msg + " (" + s.message() + ")");
}

}  // namespace ge
