#!/usr/bin/env python3
"""Checks a GGUF written by `gemma quantize --format gguf` with the gguf Python package (llama.cpp's).

Reads the file back with gguf.GGUFReader and compares it with the HF source checkpoint it came from:
  * general.architecture and the model keys against config.json (gemma-spec.md §3.2 / §3.3),
  * the tensor set: llama.cpp names, ggml shapes [in, out], no v_proj on Gemma 4 K=V layers,
    rope_freqs (Gemma 4 only), layer_output_scale (Gemma 4 only),
  * F32 tensors: norms equal the source (+1 baked in for Gemma 3), rope_freqs 1 / 1e30,
  * Q4_0 / Q8_0 / Q5_0 tensors: byte-identical to gguf.quants.quantize of the source,
  * K-quant tensors: gguf.quants.dequantize is within a per-type SNR bound of the source.

Usage: check_gguf_export.py MODEL.gguf HF_SOURCE_DIR [--expect-type Q4_K]
Exit status 0 when every check passes; the first failed check is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_export import _LAYER_NAMES  # noqa: E402

# HF tensor suffix inside a layer -> llama.cpp suffix inside blk.N: the exporter's own table.
_LAYER = _LAYER_NAMES
_MIN_SNR_DB = {QT.Q4_K: 15.0, QT.Q6_K: 25.0}


def fail(msg: str) -> None:
    print(f"check_gguf_export: FAIL: {msg}")
    sys.exit(1)


def field(r: gguf.GGUFReader, key: str):
    f = r.get_field(key)
    if f is None:
        fail(f"key {key!r} missing")
    return f.contents()


def source_tensors(src_dir: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for f in sorted(src_dir.glob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            for prefix in ("model.language_model.", "model.", "language_model.model."):
                if k.startswith(prefix):
                    k = k[len(prefix):]
                    break
            out[k] = np.asarray(v, dtype=np.float32)
    return out


def gguf_name(hf: str) -> str | None:
    if hf == "embed_tokens.weight":
        return "token_embd.weight"
    if hf == "norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return None
    parts = hf.split(".", 2)
    if parts[0] == "layers" and parts[2] in _LAYER:
        return f"blk.{parts[1]}.{_LAYER[parts[2]]}"
    fail(f"no GGUF name for source tensor {hf!r}")
    return None


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    noise = float(np.sum((x.astype(np.float64) - y) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(x.astype(np.float64) ** 2)) / noise)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf_file")
    ap.add_argument("source_dir")
    ap.add_argument("--expect-type", default=None, help="ggml type name of the attn_output tensors")
    args = ap.parse_args()
    src_dir = Path(args.source_dir)
    cfg = json.loads((src_dir / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    arch = "gemma4" if cfg["model_type"].startswith("gemma4") else "gemma3"
    r = gguf.GGUFReader(args.gguf_file)

    if field(r, "general.architecture") != arch:
        fail("general.architecture")
    for key, want in (("block_count", cfg["num_hidden_layers"]), ("embedding_length", cfg["hidden_size"]),
                      ("feed_forward_length", cfg["intermediate_size"]),
                      ("attention.head_count", cfg["num_attention_heads"]),
                      ("attention.sliding_window", cfg["sliding_window"])):
        if field(r, f"{arch}.{key}") != want:
            fail(f"{arch}.{key} = {field(r, f'{arch}.{key}')}, expected {want}")
    if abs(field(r, f"{arch}.attention.layer_norm_rms_epsilon") - cfg["rms_norm_eps"]) > 1e-9:
        fail("layer_norm_rms_epsilon")
    sliding = [t == "sliding_attention" for t in cfg["layer_types"]]
    if arch == "gemma4":
        if list(field(r, f"{arch}.attention.sliding_window_pattern")) != sliding:
            fail("sliding_window_pattern")
        if field(r, f"{arch}.attention.key_length_swa") != cfg["head_dim"]:
            fail("key_length_swa")
        if abs(field(r, f"{arch}.final_logit_softcapping") - cfg["final_logit_softcapping"]) > 1e-6:
            fail("final_logit_softcapping")
    else:
        if field(r, f"{arch}.attention.head_count_kv") != cfg["num_key_value_heads"]:
            fail("head_count_kv")
        if field(r, f"{arch}.attention.key_length") != cfg["head_dim"]:
            fail("key_length")

    src = source_tensors(src_dir)
    tensors = {t.name: t for t in r.tensors}
    expected = {gguf_name(k) for k in src} - {None}
    if arch == "gemma4":
        expected.add("rope_freqs.weight")
    if set(tensors) != expected:
        fail(f"tensor names differ: {sorted(set(tensors) ^ expected)[:10]}")
    types_seen: dict[str, int] = {}
    for hf, x in src.items():
        name = gguf_name(hf)
        if name is None:
            continue
        t = tensors[name]
        if list(t.shape) != list(reversed(x.shape)) and not (x.ndim == 1 and list(t.shape) == [x.shape[0]]):
            fail(f"{name}: ggml shape {list(t.shape)} for source {list(x.shape)}")
        data = np.asarray(t.data)
        types_seen[t.tensor_type.name] = types_seen.get(t.tensor_type.name, 0) + 1
        if t.tensor_type == QT.F32:
            want = x + np.float32(1.0) if (arch == "gemma3" and hf.endswith("norm.weight")) else x
            if not np.array_equal(data.reshape(-1), want.reshape(-1).astype(np.float32)):
                fail(f"{name}: F32 values differ from the source")
        elif t.tensor_type in (QT.Q4_0, QT.Q8_0, QT.Q5_0):
            q = gguf.quants.quantize(x, t.tensor_type)
            if q.tobytes() != data.tobytes():
                fail(f"{name}: {t.tensor_type.name} bytes differ from gguf.quants.quantize of the source")
        elif t.tensor_type in _MIN_SNR_DB:
            deq = gguf.quants.dequantize(data, t.tensor_type).reshape(x.shape)
            s = snr_db(x, deq)
            if s < _MIN_SNR_DB[t.tensor_type]:
                fail(f"{name}: {t.tensor_type.name} SNR {s:.1f} dB below {_MIN_SNR_DB[t.tensor_type]}")
        else:
            fail(f"{name}: unexpected type {t.tensor_type.name}")
    if arch == "gemma4":
        rf = np.asarray(tensors["rope_freqs.weight"].data)
        if not set(np.unique(rf)) <= {np.float32(1.0), np.float32(1e30)}:
            fail("rope_freqs holds values other than 1 and 1e30")
    if args.expect_type is not None:
        got = tensors["blk.0.attn_output.weight"].tensor_type.name
        if got != args.expect_type:
            fail(f"blk.0.attn_output.weight is {got}, expected {args.expect_type}")
    print(f"check_gguf_export: OK {args.gguf_file}: {len(tensors)} tensors {types_seen}")


if __name__ == "__main__":
    main()
