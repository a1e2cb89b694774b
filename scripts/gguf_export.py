# GGUF export of tiny Gemma 3 / Gemma 4 transformers checkpoints for the golden fixtures.
# Writes llama.cpp tensor names and metadata keys (gemma-spec.md §3.2/§3.3) with gguf.GGUFWriter,
# reads each file back with gguf.GGUFReader, and hands back the dequantized weights for reference logits.
"""Export a tiny HF Gemma 3 / Gemma 4 causal LM to GGUF (F32, Q8_0, Q4_0) and verify it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

# HF (model.*) tensor suffix inside a layer -> llama.cpp suffix inside blk.N.
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "layer_scalar": "layer_output_scale.weight",
}
_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")

_FILE_TYPE = {
    QT.F32: gguf.LlamaFileType.ALL_F32,
    QT.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
    QT.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0,
}


def gguf_name(hf_name: str) -> str | None:
    """llama.cpp name for an HF text-model tensor name; None for tensors GGUF does not store."""
    if hf_name == "lm_head.weight":
        return None  # tied to the embedding; llama.cpp files carry no output.weight
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    m = _LAYER_RE.match(hf_name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"blk.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}"
    raise ValueError(f"gguf_name: no GGUF name for HF tensor {hf_name!r}")


def _is_norm(hf_name: str) -> bool:
    return hf_name.endswith("norm.weight")


@dataclass
class Geometry:
    """Per-layer attention geometry read off the built HF model (not the config)."""

    arch: str  # "gemma3" or "gemma4"
    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    context_length: int
    rms_eps: float
    sliding_window: int
    sliding: list[bool]  # True = sliding-window layer
    head_dim: list[int]  # per layer
    n_head_kv: list[int]  # per layer
    has_v_proj: list[bool]
    rope_base_full: float
    rope_base_swa: float
    rope_scaling_linear: float | None = None  # gemma3 only: linear factor on full layers
    partial_rotary_full: float = 1.0  # gemma4 proportional rope on full layers
    attention_scale: float | None = None  # gemma3: written only where llama.cpp's built-in rule is wrong
    final_softcap: float | None = None
    extra: dict = field(default_factory=dict)


def geometry_from_model(model, arch: str) -> Geometry:
    """Read the geometry from the instantiated transformers model (ground truth for the export)."""
    cfg = model.config
    layers = model.model.layers
    sliding, head_dim, n_kv, has_v = [], [], [], []
    for i, layer in enumerate(layers):
        attn = layer.self_attn
        sliding.append(cfg.layer_types[i] == "sliding_attention")
        head_dim.append(int(attn.head_dim))
        n_kv.append(int(attn.k_proj.out_features // attn.head_dim))
        has_v.append(getattr(attn, "v_proj", None) is not None)
    rp = cfg.rope_parameters
    full, swa = rp["full_attention"], rp["sliding_attention"]
    geo = Geometry(
        arch=arch,
        n_vocab=int(cfg.vocab_size),
        n_embd=int(cfg.hidden_size),
        n_ff=int(cfg.intermediate_size),
        n_layer=len(layers),
        n_head=int(cfg.num_attention_heads),
        context_length=int(cfg.max_position_embeddings),
        rms_eps=float(cfg.rms_norm_eps),
        sliding_window=int(cfg.sliding_window),
        sliding=sliding,
        head_dim=head_dim,
        n_head_kv=n_kv,
        has_v_proj=has_v,
        rope_base_full=float(full["rope_theta"]),
        rope_base_swa=float(swa["rope_theta"]),
        final_softcap=cfg.final_logit_softcapping,
    )
    if arch == "gemma3":
        qpas = float(cfg.query_pre_attn_scalar)
        hd = head_dim[0]
        # llama.cpp hard-codes 1/sqrt(head_dim) for gemma3 (27B: 1/sqrt(H/nq)); a file whose model
        # uses another query_pre_attn_scalar must say so, or it cannot be evaluated correctly.
        default_rule = float(cfg.hidden_size // cfg.num_attention_heads) if len(layers) == 62 else float(hd)
        if qpas != default_rule:
            geo.attention_scale = qpas**-0.5
        if full.get("rope_type", "default") == "linear":
            geo.rope_scaling_linear = float(full["factor"])
        elif full.get("rope_type", "default") != "default":
            raise ValueError(f"geometry_from_model: unsupported gemma3 rope type {full['rope_type']!r}")
    else:
        if full.get("rope_type") != "proportional" or full.get("factor", 1.0) != 1.0:
            raise ValueError("geometry_from_model: gemma4 full layers must use proportional rope, factor 1")
        geo.partial_rotary_full = float(full["partial_rotary_factor"])
        if swa.get("rope_type", "default") != "default":
            raise ValueError("geometry_from_model: gemma4 sliding layers must use default rope")
    return geo


def tiny_vocab(n_vocab: int, with_merges: bool):
    """A minimal self-describing vocabulary: 4 specials, 256 byte tokens, then simple pieces.

    Pieces are single characters, then '▁'+letter and letter bigrams, so every multi-character
    piece is the merge of two earlier pieces (merges are listed for the BPE 'gemma4' model).
    """
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"]
    types = [gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, gguf.TokenType.UNKNOWN]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)
    singles = ["\u2581"] + list("abcdefghijklmnopqrstuvwxyz") + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    singles += list("0123456789") + list(".,!?'-:;()")
    pairs = [("\u2581", c) for c in "abcdefghijklmnopqrstuvwxyz"]
    freq = "etaoinshrdlucmfwypvbgkjqxz"
    pairs += [(a, b) for a in freq for b in freq]
    merges = []
    for s in singles:
        if len(tokens) >= n_vocab:
            break
        tokens.append(s)
        types.append(gguf.TokenType.NORMAL)
    for a, b in pairs:
        if len(tokens) >= n_vocab:
            break
        tokens.append(a + b)
        types.append(gguf.TokenType.NORMAL)
        merges.append(f"{a} {b}")
    if len(tokens) != n_vocab:
        raise ValueError(f"tiny_vocab: could only build {len(tokens)} of {n_vocab} tokens")
    # SentencePiece-style scores: specials/bytes 0, pieces ranked by position.
    scores = [0.0] * 260 + [-float(i) for i in range(n_vocab - 260)]
    return tokens, scores, [int(t) for t in types], (merges if with_merges else None)


def _write_metadata(w: gguf.GGUFWriter, geo: Geometry, qtype: QT, name: str) -> None:
    w.add_type("model")
    w.add_name(name)
    w.add_file_type(int(_FILE_TYPE[qtype]))
    if qtype != QT.F32:
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(geo.context_length)
    w.add_embedding_length(geo.n_embd)
    w.add_block_count(geo.n_layer)
    w.add_feed_forward_length(geo.n_ff)
    w.add_head_count(geo.n_head)
    w.add_layer_norm_rms_eps(geo.rms_eps)
    w.add_sliding_window(geo.sliding_window)
    w.add_rope_freq_base(geo.rope_base_full)
    if geo.final_softcap is not None:
        w.add_final_logit_softcapping(float(geo.final_softcap))

    if geo.arch == "gemma3":
        if len(set(geo.head_dim)) != 1 or len(set(geo.n_head_kv)) != 1 or not all(geo.has_v_proj):
            raise ValueError("_write_metadata: gemma3 needs uniform head_dim / kv heads and v_proj everywhere")
        # llama.cpp hard-codes the 5:1 pattern for gemma3; make sure the model follows it.
        if geo.sliding != [(i % 6) != 5 for i in range(geo.n_layer)]:
            raise ValueError("_write_metadata: gemma3 GGUF cannot express a non-5:1 layer pattern")
        w.add_head_count_kv(geo.n_head_kv[0])
        w.add_key_length(geo.head_dim[0])
        w.add_value_length(geo.head_dim[0])
        if geo.attention_scale is not None:
            w.add_attention_scale(geo.attention_scale)
        if geo.rope_scaling_linear is not None:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(geo.rope_scaling_linear)
        tokens, scores, types, _ = tiny_vocab(geo.n_vocab, with_merges=False)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
    else:
        full_dims = {d for d, s in zip(geo.head_dim, geo.sliding) if not s}
        swa_dims = {d for d, s in zip(geo.head_dim, geo.sliding) if s}
        if len(full_dims) != 1 or len(swa_dims) != 1:
            raise ValueError("_write_metadata: gemma4 needs one head_dim per layer type")
        hd_full, hd_swa = full_dims.pop(), swa_dims.pop()
        w.add_sliding_window_pattern(list(geo.sliding))
        w.add_key_length(hd_full)
        w.add_value_length(hd_full)
        w.add_key_length_swa(hd_swa)
        w.add_value_length_swa(hd_swa)
        if len(set(geo.n_head_kv)) == 1 and geo.extra.get("scalar_head_count_kv", False):
            # What llama.cpp's converter writes when the config has no num_global_key_value_heads.
            w.add_head_count_kv(geo.n_head_kv[0])
        else:
            w.add_head_count_kv(list(geo.n_head_kv))
        w.add_rope_freq_base_swa(geo.rope_base_swa)
        w.add_rope_dimension_count(hd_full)  # proportional rope: all dims, tail frozen by rope_freqs
        w.add_rope_dimension_count_swa(hd_swa)
        w.add_shared_kv_layers(0)
        w.add_embedding_length_per_layer_input(0)
        tokens, scores, types, merges = tiny_vocab(geo.n_vocab, with_merges=True)
        w.add_tokenizer_model("gemma4")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    if geo.arch == "gemma4":
        w.add_token_merges(merges)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(False)


def rope_freqs_full(geo: Geometry) -> np.ndarray:
    """llama.cpp's freq-factor tensor for gemma4 proportional rope: 1 for rotated pairs, 1e30 for frozen."""
    hd_full = next(d for d, s in zip(geo.head_dim, geo.sliding) if not s)
    n_rot = int(hd_full * geo.partial_rotary_full / 2)
    n_unrot = hd_full // 2 - n_rot
    return np.array([1.0] * n_rot + [1e30] * n_unrot, dtype=np.float32)


def export_gguf(path: Path, geo: Geometry, state: dict[str, np.ndarray], qtype: QT, name: str):
    """Write one GGUF file and return ({hf_name: dequantized fp32 array}, {gguf_name: (type, data)}).

    2-D matrices (incl. token_embd) get qtype; 1-D tensors (norms, layer scalars, rope_freqs) stay F32.
    Gemma 3 norm weights are stored as 1 + w (llama.cpp bakes the (1+w) of Gemma3RMSNorm in).
    """
    w = gguf.GGUFWriter(str(path), geo.arch)
    _write_metadata(w, geo, qtype, name)
    dequant: dict[str, np.ndarray] = {}
    written: dict[str, tuple[QT, np.ndarray]] = {}
    for hf_name, arr in state.items():
        gname = gguf_name(hf_name)
        if gname is None:
            continue
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if geo.arch == "gemma3" and _is_norm(hf_name):
            arr = (arr + np.float32(1.0)).astype(np.float32)
        if arr.ndim == 2 and qtype != QT.F32:
            q = gguf.quants.quantize(arr, qtype)
            w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=qtype)
            deq = gguf.quants.dequantize(q, qtype).reshape(arr.shape).astype(np.float32)
            written[gname] = (qtype, q)
            dequant[hf_name] = deq
        else:
            w.add_tensor(gname, arr)
            written[gname] = (QT.F32, arr)
            dequant[hf_name] = np.asarray(state[hf_name], dtype=np.float32)  # HF convention (no +1)
    if geo.arch == "gemma4":
        rf = rope_freqs_full(geo)
        w.add_tensor("rope_freqs.weight", rf)
        written["rope_freqs.weight"] = (QT.F32, rf)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dequant, written


def _field(reader: gguf.GGUFReader, key: str):
    f = reader.get_field(key)
    if f is None:
        raise AssertionError(f"verify_gguf: key {key!r} missing")
    return f.contents()


def verify_gguf(path: Path, geo: Geometry, written: dict[str, tuple[QT, np.ndarray]]) -> None:
    """Read the file back and check architecture keys, tensor names/types/shapes and bytes."""
    r = gguf.GGUFReader(str(path))
    a = geo.arch
    assert _field(r, "general.architecture") == a
    assert _field(r, f"{a}.block_count") == geo.n_layer
    assert _field(r, f"{a}.embedding_length") == geo.n_embd
    assert _field(r, f"{a}.feed_forward_length") == geo.n_ff
    assert _field(r, f"{a}.attention.head_count") == geo.n_head
    assert _field(r, f"{a}.attention.sliding_window") == geo.sliding_window
    assert abs(_field(r, f"{a}.rope.freq_base") - geo.rope_base_full) < 1e-3
    assert len(_field(r, "tokenizer.ggml.tokens")) == geo.n_vocab
    assert len(_field(r, "tokenizer.ggml.scores")) == geo.n_vocab
    assert len(_field(r, "tokenizer.ggml.token_type")) == geo.n_vocab
    if a == "gemma3":
        assert _field(r, f"{a}.attention.head_count_kv") == geo.n_head_kv[0]
        assert _field(r, f"{a}.attention.key_length") == geo.head_dim[0]
        if geo.rope_scaling_linear is not None:
            assert _field(r, f"{a}.rope.scaling.type") == "linear"
            assert _field(r, f"{a}.rope.scaling.factor") == geo.rope_scaling_linear
        else:
            assert r.get_field(f"{a}.rope.scaling.type") is None
        if geo.attention_scale is not None:
            assert abs(_field(r, f"{a}.attention.scale") - geo.attention_scale) < 1e-7
        else:
            assert r.get_field(f"{a}.attention.scale") is None
        assert _field(r, "tokenizer.ggml.model") == "llama"
    else:
        assert list(_field(r, f"{a}.attention.sliding_window_pattern")) == geo.sliding
        kv = _field(r, f"{a}.attention.head_count_kv")
        kv = list(kv) if isinstance(kv, list) else [kv] * geo.n_layer
        assert kv == geo.n_head_kv, (kv, geo.n_head_kv)
        assert abs(_field(r, f"{a}.rope.freq_base_swa") - geo.rope_base_swa) < 1e-3
        assert _field(r, f"{a}.final_logit_softcapping") == geo.final_softcap
        assert _field(r, "tokenizer.ggml.model") == "gemma4"
    tensors = {t.name: t for t in r.tensors}
    assert set(tensors) == set(written), sorted(set(tensors) ^ set(written))
    for gname, (qt, data) in written.items():
        t = tensors[gname]
        assert t.tensor_type == qt, (gname, t.tensor_type, qt)
        got = np.asarray(t.data)
        assert got.tobytes() == np.ascontiguousarray(data).tobytes(), f"verify_gguf: bytes of {gname} differ"
    # Shapes in ggml order: [in, out] for matrices.
    emb = tensors["token_embd.weight"]
    assert list(emb.shape) == [geo.n_embd, geo.n_vocab], list(emb.shape)
    for i in range(geo.n_layer):
        q = tensors[f"blk.{i}.attn_q.weight"]
        assert list(q.shape) == [geo.n_embd, geo.n_head * geo.head_dim[i]]
        k = tensors[f"blk.{i}.attn_k.weight"]
        assert list(k.shape) == [geo.n_embd, geo.n_head_kv[i] * geo.head_dim[i]]
        assert (f"blk.{i}.attn_v.weight" in tensors) == geo.has_v_proj[i]
        assert list(tensors[f"blk.{i}.attn_q_norm.weight"].shape) == [geo.head_dim[i]]
        assert (f"blk.{i}.layer_output_scale.weight" in tensors) == (a == "gemma4")
