#!/usr/bin/env python3
"""Loads a `gemma quantize --format torchao` output with torchao itself and checks it against the source.

Development check (needs torch + torchao, which CI does not install; CI runs the C++ tests, which
compare the metadata with a torchao-written fixture byte for byte):
  * torchao's unflatten_tensor_state_dict accepts the file and leaves no tensor unclaimed,
  * norms / layer_scalar are plain bf16 tensors, the embedding (and the sensitive recipe's INT8
    layers) IntxUnpackedToInt8Tensor, every other linear Int4Tensor with shape [N, K],
  * the Int4Tensor parts decode (w = (q - zero) * scale, even k in the low nibble, scale/zero
    [K/gs, N]) to within INT4 error of the source weights (SNR > 15 dB), and IntxUnpackedToInt8Tensor's
    own dequantize() does too (SNR > 35 dB).

Usage: verify_torchao_export.py OUT_DIR HF_SOURCE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict


def snr_db(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double(), y.double()
    return float(10 * torch.log10((x * x).sum() / ((x - y) ** 2).sum().clamp_min(1e-300)))


def source_weights(src: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(src.glob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            for p in ("model.language_model.", "model.", "language_model.model."):
                if k.startswith(p):
                    k = k[len(p):]
                    break
            out[k] = v.float()
    return out


def main() -> None:
    out_dir, src_dir = Path(sys.argv[1]), Path(sys.argv[2])
    path = out_dir / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    state, leftover = unflatten_tensor_state_dict(load_file(str(path)), metadata)
    assert not leftover, f"tensors torchao did not claim: {sorted(leftover)[:5]}"
    src = source_weights(src_dir)
    kinds: dict[str, int] = {}
    worst = {}
    for fqn, t in state.items():
        kind = type(t).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
        ref = src.get(fqn, src.get("embed_tokens.weight") if fqn == "lm_head.weight" else None)
        assert ref is not None, f"{fqn}: not in the source"
        if fqn.endswith("norm.weight") or fqn.endswith("layer_scalar"):
            assert kind == "Tensor" and t.dtype == torch.bfloat16, (fqn, kind, t.dtype)
            assert torch.equal(t, ref.to(torch.bfloat16).reshape(t.shape)), fqn
            continue
        if kind == "Int4Tensor":
            n, k = t.shape
            q = torch.stack([t.qdata & 0xF, t.qdata >> 4], dim=-1).reshape(n, k).float()
            gs = k // t.scale.shape[0]
            s = t.scale.float().t().repeat_interleave(gs, dim=1)
            z = t.zero_point.float().t().repeat_interleave(gs, dim=1)
            deq, bound = (q - z) * s, 15.0
        elif kind == "IntxUnpackedToInt8Tensor":
            deq, bound = t.dequantize().float(), 35.0
        else:
            raise AssertionError(f"{fqn}: unexpected {kind}")
        assert list(deq.shape) == list(ref.shape), (fqn, deq.shape, ref.shape)
        s = snr_db(ref, deq)
        worst[kind] = min(worst.get(kind, 1e9), s)
        assert s > bound, f"{fqn}: {kind} SNR {s:.1f} dB"
    print(f"verify_torchao_export: OK {path}: {kinds}; lowest SNR per type: "
          + ", ".join(f"{k} {v:.1f} dB" for k, v in worst.items()))


if __name__ == "__main__":
    main()
