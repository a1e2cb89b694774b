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

}  // namespace

Result<std::unique_ptr<GemmaModel>> GemmaModel::create(const GemmaConfig& c, const ModelWeights& w,
                                                       Backend& b, int32_t max_chunk) {
  GE_RETURN_IF_ERROR(validate_config(c));
  if (max_chunk <= 0 || max_chunk > 65536) return invalid_argument("max_chunk must be in 1..65536");
  std::unique_ptr<GemmaModel> m(new GemmaModel(c, b, max_chunk));
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
  GE_RETURN_IF_ERROR(b.synchronize());
  return m;
}

Result<std::unique_ptr<GemmaModel>> GemmaModel::create_synthetic(const GemmaConfig& c, QuantType type,
                                                                 int64_t group_size, Backend& b, int32_t max_chunk,
                                                                 uint64_t seed) {
  GE_RETURN_IF_ERROR(validate_config(c));
  if (max_chunk <= 0 || max_chunk > 65536) return invalid_argument("max_chunk must be in 1..65536");
  std::unique_ptr<GemmaModel> m(new GemmaModel(c, b, max_chunk));
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
  GE_RETURN_IF_ERROR(b.synchronize());
  return m;
}

Status GemmaModel::allocate_workspace() {
  const size_t T = static_cast<size_t>(max_chunk_), f = sizeof(float);
  const size_t H = static_cast<size_t>(config_.hidden_size);
  const size_t dq = static_cast<size_t>(config_.num_attention_heads) * static_cast<size_t>(config_.max_head_dim());
  size_t dkv = 0;
  for (const auto& l : config_.layers)
    dkv = std::max(dkv, static_cast<size_t>(l.num_key_value_heads) * static_cast<size_t>(l.head_dim));
  const size_t F = static_cast<size_t>(config_.intermediate_size);
  const size_t V = static_cast<size_t>(config_.vocab_size);
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
  GE_ASSIGN_OR_RETURN(logits_, backend_.alloc(T * V * f));
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
  Backend& b = backend_;
  const GemmaConfig& c = config_;
  const int64_t H = c.hidden_size, F = c.intermediate_size, T = total;
  const float eps = c.rms_norm_eps;

  // Concatenate the sequences' tokens and positions: rows [row0, row0 + n) belong to chunk k.
  std::vector<int32_t> tok, pos;
  std::vector<int64_t> row0;
  tok.reserve(static_cast<size_t>(T));
  pos.reserve(static_cast<size_t>(T));
  for (const SequenceChunk& ch : chunks) {
    row0.push_back(static_cast<int64_t>(tok.size()));
    for (int32_t t = 0; t < ch.n; ++t) {
      tok.push_back(ch.tokens[t]);
      pos.push_back(ch.pos0 + t);
    }
  }
  b.upload(tokens_.data(), tok.data(), tok.size() * sizeof(int32_t));
  b.upload(positions_.data(), pos.data(), pos.size() * sizeof(int32_t));
  const int32_t* P = positions_.i32();

  float* x = x_.f32();  // [T, H] residual stream
  b.embed(tokens_.i32(), T, *embed_, embed_scale_, x);

  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerConfig& lc = c.layers[static_cast<size_t>(i)];
    Layer& l = layers_[static_cast<size_t>(i)];
    const int64_t nq = c.num_attention_heads, nkv = lc.num_key_value_heads, d = lc.head_dim;

    // --- attention block ---
    b.rms_norm(x, l.input_norm.f32(), T, H, eps, h_.f32());
    b.matmul(h_.f32(), T, *l.q, q_.f32());  // [T, nq*d]
    b.matmul(h_.f32(), T, *l.k, k_.f32());  // [T, nkv*d] raw K
    if (lc.k_eq_v) {
      b.rms_norm(k_.f32(), nullptr, T * nkv, d, eps, v_.f32());  // V = v_norm(raw K), never rotated
    } else {
      b.matmul(h_.f32(), T, *l.v, v_.f32());
      if (c.has_v_norm) b.rms_norm(v_.f32(), nullptr, T * nkv, d, eps, v_.f32());
    }
    b.rms_norm(q_.f32(), l.q_norm.f32(), T * nq, d, eps, q_.f32());  // per-head norms before RoPE
    b.rms_norm(k_.f32(), l.k_norm.f32(), T * nkv, d, eps, k_.f32());
    b.rope(q_.f32(), T, nq, d, P, l.inv_freq.f32());
    b.rope(k_.f32(), T, nkv, d, P, l.inv_freq.f32());
    AttentionParams ap;
    ap.n_heads = static_cast<int32_t>(nq);
    ap.n_kv_heads = static_cast<int32_t>(nkv);
    ap.head_dim = static_cast<int32_t>(d);
    ap.sliding_window = lc.sliding ? c.sliding_window : 0;
    ap.scale = c.query_scale;
    ap.logit_softcap = c.attn_logit_softcapping;
    for (size_t k = 0; k < chunks.size(); ++k) {
      const int64_t r = row0[k];
      const SequenceChunk& ch = chunks[k];
      b.kv_store(*ch.cache, i, k_.f32() + r * nkv * d, v_.f32() + r * nkv * d, ch.n, P + r);
      b.attention(*ch.cache, i, q_.f32() + r * nq * d, ch.n, P + r, ap, attn_.f32() + r * nq * d);
    }
    b.matmul(attn_.f32(), T, *l.o, a_.f32());  // [T, H]
    b.add_rms_norm(x, a_.f32(), l.post_attn_norm.f32(), T, H, eps);

    // --- MLP block ---
    b.rms_norm(x, l.pre_ffw_norm.f32(), T, H, eps, h_.f32());
    b.matmul(h_.f32(), T, *l.gate, gate_.f32());  // [T, F]
    b.matmul(h_.f32(), T, *l.up, up_.f32());
    b.gelu_tanh_mul(gate_.f32(), up_.f32(), T * F, gate_.f32());
    b.matmul(gate_.f32(), T, *l.down, a_.f32());  // [T, H]
    b.add_rms_norm(x, a_.f32(), l.post_ffw_norm.f32(), T, H, eps);
    if (c.has_layer_scalar) b.scale(x, T * H, l.layer_scalar);
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
  if (rows == 0) return b.synchronize();
  const PackedWeight& head = lm_head_ ? *lm_head_ : *embed_;
  b.matmul(h_.f32(), rows, head, logits_.f32());  // [rows, V]
  const int64_t nl = rows * c.vocab_size;
  if (c.final_logit_softcapping > 0.0f) b.softcap(logits_.f32(), nl, c.final_logit_softcapping);
  b.download(logits, logits_.data(), static_cast<size_t>(nl) * sizeof(float));
  return b.synchronize();
}

}  // namespace ge
