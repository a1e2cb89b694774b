#!/usr/bin/env python3
"""Writes the small torchao-quantized safetensors fixture used by tests/formats.

Needs torch + torchao (not needed by CI: the outputs are committed). Produces, in
tests/data/safetensors/:
  torchao_small.safetensors     torchao's flatten_tensor_state_dict + safetensors save_file, with
                                one Int4Tensor, two IntxUnpackedToInt8Tensor (int8 linear, and an
                                embedding with one group per row) and one plain bf16 tensor
  torchao_expected.safetensors  the dequantized weights in f32, computed here from the stored
                                (bf16) scales and zeros, so the C++ test can check its reading of
                                the layout (nibble order, transposed int4 scales) bit for bit

Int4Tensor.from_hp needs CUDA-only kernels, so the int4 weight is quantized here with the min-max
asymmetric recipe (values 0..15, bf16 scale and zero, groups along K) and the Int4Tensor is built
from its parts, as the ExecuTorch export does. The int8 weights go through torchao's own
IntxWeightOnlyConfig on CPU.

Usage: python3 scripts/gen_torchao_fixture.py [output_dir]
"""

import os
import sys

import torch
from safetensors.torch import save_file

from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict
from torchao.quantization import Int4Tensor, IntxWeightOnlyConfig, quantize_
from torchao.quantization.granularity import PerGroup


def int4_minmax(w: torch.Tensor, group_size: int):
    """w [N, K] -> (q [N, K] uint8 in 0..15, scale [K/gs, N] bf16, zero [K/gs, N] bf16)."""
    n, k = w.shape
    g = w.float().reshape(n, k // group_size, group_size)
    lo = g.amin(dim=-1).clamp(max=0.0)
    hi = g.amax(dim=-1).clamp(min=0.0)
    scale = ((hi - lo) / 15.0).clamp(min=1e-6).to(torch.bfloat16)  # [N, K/gs]
    # A fractional zero (HQQ-style) exercises the bf16 zero path; min-max alone is near-integer.
    zero = (-lo / scale.float() + 0.25).to(torch.bfloat16)
    q = torch.clamp(torch.round(g / scale.float().unsqueeze(-1) + zero.float().unsqueeze(-1)), 0, 15)
    q = q.reshape(n, k).to(torch.uint8)
    return q, scale.t().contiguous(), zero.t().contiguous()


def pack_even_low(q: torch.Tensor) -> torch.Tensor:
    """[N, K] values 0..15 -> [N, K/2] uint8, even k in bits 0-3, odd k in bits 4-7."""
    return (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous()


def dequant_int4(q, scale_t, zero_t, group_size):
    """Reference: w[n, k] = (q[n, k] - zero[k/gs, n]) * scale[k/gs, n], in f32."""
    s = scale_t.float().t().repeat_interleave(group_size, dim=1)
    z = zero_t.float().t().repeat_interleave(group_size, dim=1)
    return (q.float() - z) * s


def dequant_intx(q, scale, zero, group_size):
    """Reference: w[n, k] = (q[n, k] - zero[n, k/gs]) * scale[n, k/gs], in f32."""
    s = scale.float().repeat_interleave(group_size, dim=1)
    z = zero.float().repeat_interleave(group_size, dim=1)
    return (q.float() - z) * s


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "data", "safetensors")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(1234)

    state = {}
    expected = {}

    # Int4Tensor: N=6, K=64, group 32 -> qdata [6, 32] u8, scale/zero [2, 6] bf16.
    q_name = "model.layers.0.self_attn.q_proj.weight"
    w = torch.randn(6, 64, dtype=torch.bfloat16)
    q, scale_t, zero_t = int4_minmax(w, 32)
    state[q_name] = Int4Tensor(pack_even_low(q), scale_t, zero_t, block_size=[1, 32], shape=w.shape)
    expected[q_name] = dequant_int4(q, scale_t, zero_t, 32)

    # IntxUnpackedToInt8Tensor via torchao: int8 linear N=4, K=96, group 32, and an embedding with
    # one group per row (group = K = 16), the layout the ExecuTorch export uses for embed_tokens.
    down = torch.nn.Linear(96, 4, bias=False).to(torch.bfloat16)
    quantize_(down, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerGroup(32)))
    emb = torch.nn.Embedding(10, 16).to(torch.bfloat16)
    quantize_(emb, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerGroup(16)),
              filter_fn=lambda m, fqn: isinstance(m, torch.nn.Embedding))
    for name, wt, gs in (("model.layers.0.mlp.down_proj.weight", down.weight, 32),
                         ("model.embed_tokens.weight", emb.weight, 16)):
        assert type(wt).__name__ == "IntxUnpackedToInt8Tensor", type(wt)
        state[name] = wt
        ref = dequant_intx(wt.qdata, wt.scale, wt.zero_point, gs)
        # Cross-check the layout reading against torchao's own dequantize (which rounds to bf16).
        torch.testing.assert_close(wt.dequantize().float(), ref.to(torch.bfloat16).float())
        expected[name] = ref

    norm = "model.layers.0.input_layernorm.weight"
    state[norm] = torch.randn(64, dtype=torch.bfloat16)
    expected[norm] = state[norm].float()

    tensors, metadata = flatten_tensor_state_dict(state)
    save_file(tensors, os.path.join(out_dir, "torchao_small.safetensors"), metadata=metadata)
    save_file({k: v.contiguous() for k, v in expected.items()},
              os.path.join(out_dir, "torchao_expected.safetensors"))
    for k, v in sorted(tensors.items()):
        print(f"{k:55s} {str(v.dtype):15s} {tuple(v.shape)}")
    for k, v in sorted(metadata.items()):
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
