#!/usr/bin/env python3
"""Synthetic Gemma 4 31B-shaped checkpoints for the quantizer's memory and load-time measurements.

Writes random weights with the exact Gemma 4 31B tensor names and shapes (gemma-spec.md §3.1), with
fewer layers, in one of two layouts (numpy only; tensors are streamed to disk, never held whole):

  hf       an HF checkpoint directory: config.json, model.safetensors.index.json and bf16 shards
           (shard 1 holds the 262144 x 5376 embedding, the next shards the layers), prefix
           model.language_model. as the released checkpoint has it. Input for `gemma quantize`.
  torchao  the torchao INT4 layout `gemma quantize` writes (Int4Tensor linears with bf16 scale/zero,
           IntxUnpackedToInt8Tensor per-row embedding, bf16 norms): random nibbles, sized like a real
           31B INT4 checkpoint per layer. Input for load-time measurements without a 61 GB source.

Layer types follow the 31B pattern (every 6th layer full attention: head_dim 512, 4 KV heads, no
v_proj); --full-first makes layer 0 a full layer so that a 1- or 2-layer model covers both shapes.

Usage: gen_synthetic_checkpoint.py {hf,torchao} OUT_DIR --layers N [--full-first] [--group-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
from pathlib import Path

import numpy as np

H, FF, VOCAB, HEADS = 5376, 21504, 262144, 32
SWA_HD, SWA_KV, FULL_HD, FULL_KV = 256, 16, 512, 4

_POOL = np.random.default_rng(31).standard_normal(1 << 24, dtype=np.float32) * np.float32(0.02)


def layer_types(n: int, full_first: bool) -> list[str]:
    types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    if full_first and n > 0:
        types[0] = "full_attention"
    return types


def config(n: int, types: list[str]) -> dict:
    return {
        "architectures": ["Gemma4ForConditionalGeneration"],
        "model_type": "gemma4",
        "tie_word_embeddings": True,
        "text_config": {
            "model_type": "gemma4_text", "vocab_size": VOCAB, "hidden_size": H, "intermediate_size": FF,
            "num_hidden_layers": n, "num_attention_heads": HEADS, "num_key_value_heads": SWA_KV,
            "num_global_key_value_heads": FULL_KV, "head_dim": SWA_HD, "global_head_dim": FULL_HD,
            "attention_k_eq_v": True, "sliding_window": 1024, "layer_types": types, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 262144, "final_logit_softcapping": 30.0,
            "hidden_activation": "gelu_pytorch_tanh", "hidden_size_per_layer_input": 0,
            "num_kv_shared_layers": 0, "enable_moe_block": False, "use_double_wide_mlp": False,
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25,
                                   "rope_theta": 1000000.0},
            },
            "bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0,
        },
    }


def layer_tensors(i: int, full: bool) -> list[tuple[str, tuple[int, ...], str]]:
    """(name relative to the text prefix, shape, role) of one layer, in checkpoint order."""
    hd, kv = (FULL_HD, FULL_KV) if full else (SWA_HD, SWA_KV)
    p = f"layers.{i}."
    out = [(p + "input_layernorm.weight", (H,), "norm"),
           (p + "self_attn.q_proj.weight", (HEADS * hd, H), "linear"),
           (p + "self_attn.k_proj.weight", (kv * hd, H), "linear")]
    if not full:
        out.append((p + "self_attn.v_proj.weight", (kv * hd, H), "linear"))
    out += [(p + "self_attn.o_proj.weight", (H, HEADS * hd), "linear"),
            (p + "self_attn.q_norm.weight", (hd,), "norm"), (p + "self_attn.k_norm.weight", (hd,), "norm"),
            (p + "post_attention_layernorm.weight", (H,), "norm"),
            (p + "pre_feedforward_layernorm.weight", (H,), "norm"),
            (p + "mlp.gate_proj.weight", (FF, H), "linear"), (p + "mlp.up_proj.weight", (FF, H), "linear"),
            (p + "mlp.down_proj.weight", (H, FF), "linear"),
            (p + "post_feedforward_layernorm.weight", (H,), "norm"), (p + "layer_scalar", (1,), "norm")]
    return out


class StreamingSafetensors:
    """Declares tensors (name, dtype, shape), writes the header, then takes bytes in order."""

    _SIZE = {"BF16": 2, "F32": 4, "U8": 1, "I8": 1}

    def __init__(self, path: Path, tensors: list[tuple[str, str, tuple[int, ...]]], metadata: dict | None = None):
        header: dict = {"__metadata__": metadata} if metadata else {}
        off = 0
        self.order = []
        for name, dtype, shape in tensors:
            n = int(np.prod(shape)) * self._SIZE[dtype]
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
            self.order.append((name, n))
            off += n
        text = json.dumps(header, separators=(",", ":"))
        text += " " * (-len(text) % 8)
        self.f = open(path, "wb")
        self.f.write(struct.pack("<Q", len(text)) + text.encode())
        self.next = 0
        self.written = 0

    def write(self, name: str, data: bytes | np.ndarray) -> None:
        want, n = self.order[self.next]
        assert want == name, (want, name)
        b = memoryview(np.ascontiguousarray(data)).cast("B") if isinstance(data, np.ndarray) else data
        self.written += len(b)
        self.f.write(b)
        if self.written == n:
            self.next += 1
            self.written = 0

    def close(self) -> None:
        assert self.next == len(self.order), "not every tensor was written"
        self.f.close()


def random_bf16_rows(rows: int, cols: int, seed: int, chunk_rows: int):
    """Yields bf16 (uint16) blocks of a [rows, cols] matrix, drawn from a shared random pool."""
    rng = np.random.default_rng(seed)
    for r0 in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - r0) * cols
        start = int(rng.integers(0, len(_POOL) - n)) if n < len(_POOL) else 0
        block = np.resize(_POOL[start:start + n], n) if n >= len(_POOL) else _POOL[start:start + n]
        yield (block.view(np.uint32) >> 16).astype(np.uint16)


def norm_values(shape: tuple[int, ...]) -> np.ndarray:
    return (np.ones(shape, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def write_hf(out: Path, n_layers: int, types: list[str]) -> None:
    prefix = "model.language_model."
    shards: list[list[tuple[str, tuple[int, ...], str]]] = [[("embed_tokens.weight", (VOCAB, H), "linear")]]
    for i in range(n_layers):
        shards.append(layer_tensors(i, types[i] == "full_attention"))
    shards[-1].append(("norm.weight", (H,), "norm"))
    weight_map, total = {}, 0
    names = [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))]
    for k, shard in enumerate(shards):
        st = StreamingSafetensors(out / names[k], [(prefix + n, "BF16", s) for n, s, _ in shard], {"format": "pt"})
        for j, (name, shape, role) in enumerate(shard):
            weight_map[prefix + name] = names[k]
            total += int(np.prod(shape)) * 2
            if role == "norm":
                st.write(prefix + name, norm_values(shape))
            else:
                for block in random_bf16_rows(shape[0], shape[1], 1000 * k + j, max(1, (1 << 22) // shape[1])):
                    st.write(prefix + name, block)
        st.close()
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


def write_torchao(out: Path, n_layers: int, types: list[str], gs: int) -> None:
    """The layout of `gemma quantize` (default recipe): INT4 linears, INT8 per-row embedding."""
    tensors, meta, names, fill = [], {}, [], []
    dt = '{"_type": "torch.dtype", "_data": "%s"}'

    def part(fqn: str, p: str) -> str:
        stem, attr = fqn.rsplit(".", 1)
        return f"{stem}._{attr}_{p}"

    def int4(fqn: str, n: int, k: int) -> None:
        g = k // gs
        tensors.extend([(part(fqn, "qdata"), "U8", (n, k // 2)), (part(fqn, "scale"), "BF16", (g, n)),
                        (part(fqn, "zero_point"), "BF16", (g, n))])
        meta[fqn] = ('{"_type": "Int4Tensor", "_data": {"activation_dtype": %s, "block_size": [1, %d], '
                     '"shape": [%d, %d]}, "_tensor_data_names": ["qdata", "scale", "zero_point"]}'
                     % (dt % "bfloat16", gs, n, k))
        names.append(fqn)
        fill.extend([(part(fqn, "qdata"), "rand", n * k // 2), (part(fqn, "scale"), "scale", g * n),
                     (part(fqn, "zero_point"), "zero", g * n)])

    def intx(fqn: str, n: int, k: int) -> None:
        tensors.extend([(part(fqn, "qdata"), "I8", (n, k)), (part(fqn, "scale"), "BF16", (n, 1)),
                        (part(fqn, "zero_point"), "I8", (n, 1))])
        meta[fqn] = ('{"_type": "IntxUnpackedToInt8Tensor", "_data": {"target_dtype": %s, "block_size": [1, %d], '
                     '"dtype": %s, "activation_quantization": null}, "_tensor_data_names": ["qdata", "scale", '
                     '"zero_point"]}' % (dt % "int8", k, dt % "bfloat16"))
        names.append(fqn)
        fill.extend([(part(fqn, "qdata"), "rand", n * k), (part(fqn, "scale"), "scale", n),
                     (part(fqn, "zero_point"), "zeros", n)])

    def plain(fqn: str, shape: tuple[int, ...]) -> None:
        tensors.append((fqn, "BF16", shape))
        meta[fqn] = '{"_type": "Tensor"}'
        names.append(fqn)
        fill.append((fqn, "ones", int(np.prod(shape))))

    intx("embed_tokens.weight", VOCAB, H)
    for i in range(n_layers):
        for name, shape, role in layer_tensors(i, types[i] == "full_attention"):
            (int4(name, *shape) if role == "linear" else plain(name, shape))
    plain("norm.weight", (H,))
    meta["tensor_names"] = json.dumps(names)
    # safetensors' save_file order: by dtype (widest first), then by name.
    rank = {"BF16": 8, "I8": 2, "U8": 1}
    tensors.sort(key=lambda t: (-rank[t[1]], t[0]))
    st = StreamingSafetensors(out / "model.safetensors", tensors, meta)
    sizes = {name: n for name, _, n in fill}
    kinds = {name: kind for name, kind, _ in fill}
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=1 << 24, dtype=np.uint8)
    for name, dtype, _ in tensors:
        n, kind = sizes[name], kinds[name]
        if kind == "rand":
            done = 0
            while done < n:
                m = min(len(noise), n - done)
                st.write(name, noise[:m].tobytes())
                done += m
        elif kind == "scale":
            st.write(name, np.full(n, np.float32(0.002), dtype=np.float32).view(np.uint32).__rshift__(16).astype(np.uint16))
        elif kind == "zero":
            st.write(name, np.full(n, np.float32(7.5), dtype=np.float32).view(np.uint32).__rshift__(16).astype(np.uint16))
        elif kind == "ones":
            st.write(name, norm_values((n,)))
        else:
            st.write(name, np.zeros(n, dtype=np.int8))
    st.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("layout", choices=["hf", "torchao"])
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--full-first", action="store_true", help="layer 0 is a full-attention layer")
    ap.add_argument("--group-size", type=int, default=32)
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    types = layer_types(args.layers, args.full_first)
    cfg = config(args.layers, types)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if args.layout == "hf":
        write_hf(out, args.layers, types)
    else:
        write_torchao(out, args.layers, types, args.group_size)
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out} ({args.layout}, {args.layers} layers {types}): {total / 1e9:.2f} GB")


if __name__ == "__main__":
    os.umask(0o022)
    main()
