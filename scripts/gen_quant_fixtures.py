#!/usr/bin/env python3
"""Writes the binary fixtures of tests/quant from numpy + gguf.quants (pip install numpy gguf).

Usage: python3 scripts/gen_quant_fixtures.py [--out tests/data/quant] [--model PATH]

Block fixtures, one per encoding: <out>/<name>.bin with name in q4_0 q5_0 q8_0 q4_k q5_k q6_k
f16 bf16. Everything little-endian:

  offset  size  field
  0       4     magic b"GEQF"
  4       4     u32 version = 1
  8       4     u32 ggml type id, as GGUF stores it (Q4_0 = 2, Q5_0 = 6, Q8_0 = 8, Q4_K = 12,
                Q5_K = 13, Q6_K = 14, F16 = 1, BF16 = 30)
  12      4     u32 cols            elements per row, a multiple of the block
  16      4     u32 decode_rows
  20      4     u32 quant_rows      0 when gguf.quants has no quantizer for the type
  24      4     u32 row_bytes       bytes of one encoded row
  28      4     u32 reserved = 0
  32            decode section:   decode_rows × row_bytes encoded bytes, then
                                  decode_rows × cols f32, gguf.quants.dequantize of those bytes
  then          quantize section: quant_rows × cols f32 input, then
                                  quant_rows × row_bytes, gguf.quants.quantize of that input

The decode rows are the quantize-section outputs (when there are any) followed by rows of random
bytes whose fp16/bf16 fields are overwritten with finite values, so every bit of every field is
exercised. Quantizer inputs cover normal and uniform data, all-zero rows, outliers, tiny values
(fp16 scale underflow), all-positive rows, exact rounding ties, fp16/bf16 range edges and
constant blocks.

k-quant quantizer fixtures (--ggml-src, a checkout of the ggml sources): gguf.quants cannot
quantize Q4_K/Q6_K, so the script compiles ggml's reference quantizers (src/ggml-quants.c, with
-ffp-contract=off and stubs for the few ggml symbols it references) into a temporary shared
library and writes <out>/q4_k_ggml.bin and <out>/q6_k_ggml.bin in the format above, with
quant_rows > 0 and decode rows equal to ggml's output. Without --ggml-src those two files are
left as they are.

Real-model fixture (--model, the Gemma 3 270M Q4_K_M GGUF): <out>/gemma3_270m_rows.bin

  0       4     magic b"GEQR"
  4       4     u32 version = 1
  8       8     u64 size of the model file in bytes
  16      4     u32 n_tensors
  20      4     u32 reserved = 0
  then per tensor:
          64    name, NUL-padded
          4     u32 ggml type id
          4     u32 rows
          4     u32 cols
          4     u32 n_samples
          8     u64 absolute file offset of the tensor data
          n_samples × (u32 row index, u32 reserved = 0, u64 FNV-1a 64 of the row's bytes)
          n_samples × cols f32, gguf.quants.dequantize of each sampled row
"""

import argparse
import ctypes
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

COLS = 512
SEED = 20240611

BLOCK_TYPES = [
    ("q4_0", T.Q4_0),
    ("q5_0", T.Q5_0),
    ("q8_0", T.Q8_0),
    ("q4_k", T.Q4_K),
    ("q5_k", T.Q5_K),
    ("q6_k", T.Q6_K),
    ("f16", T.F16),
    ("bf16", T.BF16),
]

# Byte offsets of the fp16 scale fields inside one block, per type (all other bytes stay random).
FP16_FIELDS = {
    T.Q4_0: [0],
    T.Q5_0: [0],
    T.Q8_0: [0],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}

MODEL_TENSORS = [
    "blk.0.ffn_down.weight",    # Q6_K
    "blk.0.attn_output.weight",  # Q4_K
    "blk.0.attn_q.weight",       # Q5_0
    "token_embd.weight",         # Q8_0
]


def quantizer_inputs(rng: np.random.Generator) -> np.ndarray:
    """Rows of fp32 input for the quantizers, one distribution per row."""
    rows = []
    rows.append(rng.standard_normal(COLS))
    rows.append(rng.uniform(-1.0, 1.0, COLS))
    rows.append(np.zeros(COLS))
    outliers = rng.standard_normal(COLS) * 0.02
    spikes = rng.choice(COLS, COLS // 64, replace=False)
    outliers[spikes] *= 50.0
    rows.append(outliers)
    tiny = rng.standard_normal(COLS) * 1e-4
    tiny[:32] = rng.standard_normal(32) * 1e-30  # the block scale underflows fp16 to 0
    rows.append(tiny)
    rows.append(rng.uniform(2.0, 3.0, COLS))
    # Q8_0 ties: half-integers with max |x| = 127 in every block, so d = 1 and x·(1/d) = x.
    ties8 = rng.integers(-254, 255, COLS) * 0.5
    ties8[::32] = 127.0
    rows.append(ties8)
    # Q4_0/Q5_0 ties: quarter-integers with the signed absmax −8 first in every block (d = 1).
    ties4 = rng.integers(-31, 32, COLS) * 0.25
    ties4[::32] = -8.0
    rows.append(ties4)
    # fp16/bf16 edges: largest half, just below/at the overflow midpoint, subnormals, signed zero,
    # bf16 rounding ties; the rest of the row large values.
    edges = rng.standard_normal(COLS) * 1e4
    specials = [65504.0, 65519.0, 65520.0, -65520.0, 1e-8, 6e-8, 3e-8, -0.0, 1e-40,
                1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, -(1.0 + 2.0 ** -8), 2.0 ** -24, 2.0 ** -25]
    edges[: len(specials)] = specials
    rows.append(edges)
    constant = np.full(COLS, 0.37)
    constant[COLS // 2:] = -1.5
    rows.append(constant)
    return np.stack(rows).astype(np.float32)


def random_finite_half(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random fp16 bit patterns with the inf/NaN exponent excluded."""
    bits = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
    exp = (bits >> 10) & 0x1F
    bits = np.where(exp == 0x1F, bits & ~np.uint16(0x4000), bits)  # exponent 31 -> 15
    return bits.astype(np.uint16)


def random_finite_bf16(rng: np.random.Generator, n: int) -> np.ndarray:
    bits = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
    exp = (bits >> 7) & 0xFF
    bits = np.where(exp == 0xFF, bits & ~np.uint16(0x4000), bits)
    return bits.astype(np.uint16)


def random_rows(rng: np.random.Generator, qtype: T, n_rows: int) -> np.ndarray:
    """Encoded rows of random bytes with finite scale fields (plus an all-0xFF row)."""
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    row_bytes = COLS // block_elems * block_bytes
    if qtype == T.F16:
        return random_finite_half(rng, n_rows * COLS).view(np.uint8).reshape(n_rows, row_bytes)
    if qtype == T.BF16:
        return random_finite_bf16(rng, n_rows * COLS).view(np.uint8).reshape(n_rows, row_bytes)
    data = rng.integers(0, 256, (n_rows, row_bytes), dtype=np.uint16).astype(np.uint8)
    data[0, :] = 0xFF  # every quant bit set
    blocks = data.reshape(n_rows, -1, block_bytes)
    for off in FP16_FIELDS[qtype]:
        # Mostly moderate scales (both signs), with random bit patterns (subnormals, zero, large).
        halves = (rng.standard_normal(blocks.shape[:2]) * 0.01).astype(np.float16).view(np.uint16)
        wild = random_finite_half(rng, halves.size).reshape(halves.shape)
        pick = rng.random(halves.shape) < 0.25
        halves = np.where(pick, wild, halves)
        halves[0, :] = np.float16(0.5).view(np.uint16)
        blocks[:, :, off:off + 2] = halves.astype("<u2").view(np.uint8).reshape(*halves.shape, 2)
    return data


def write_block_fixture(path: str, qtype: T, rng: np.random.Generator) -> int:
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    row_bytes = COLS // block_elems * block_bytes
    try:
        inputs = quantizer_inputs(rng)
        with np.errstate(over="ignore"):  # the fp16 edge row overflows to inf on purpose
            quantized = np.asarray(quants.quantize(inputs, qtype))
        if qtype == T.F16:
            quantized = quantized.view(np.uint8)
        quantized = quantized.reshape(len(inputs), row_bytes)
    except NotImplementedError:
        inputs = np.zeros((0, COLS), np.float32)
        quantized = np.zeros((0, row_bytes), np.uint8)
    n_random = 6 if len(inputs) else 14
    decode = np.concatenate([quantized, random_rows(rng, qtype, n_random)]).astype(np.uint8)
    expected = np.asarray(quants.dequantize(decode.copy(), qtype), dtype=np.float32)
    expected = expected.reshape(len(decode), COLS)
    with open(path, "wb") as f:
        f.write(b"GEQF")
        f.write(struct.pack("<7I", 1, int(qtype), COLS, len(decode), len(inputs), row_bytes, 0))
        f.write(decode.tobytes())
        f.write(expected.astype("<f4").tobytes())
        f.write(inputs.astype("<f4").tobytes())
        f.write(quantized.astype(np.uint8).tobytes())
    return os.path.getsize(path)


GGML_STUBS = r"""
#include <stdint.h>
#include <stdlib.h>
void ggml_abort(const char* file, int line, const char* fmt, ...) { (void)file; (void)line; (void)fmt; abort(); }
void ggml_log_internal(int level, const char* fmt, ...) { (void)level; (void)fmt; }
size_t ggml_row_size(int type, int64_t ne) { (void)type; (void)ne; abort(); }
size_t ggml_type_size(int type) { (void)type; abort(); }
const char* ggml_type_name(int type) { (void)type; return "?"; }
"""


def build_ggml_quants(ggml_src: str, workdir: str) -> ctypes.CDLL:
    stubs = os.path.join(workdir, "stubs.c")
    with open(stubs, "w") as f:
        f.write(GGML_STUBS)
    lib = os.path.join(workdir, "libggml_quants_ref.so")
    subprocess.run(["cc", "-O2", "-ffp-contract=off", "-std=gnu11", "-shared", "-fPIC",
                    "-I", os.path.join(ggml_src, "include"), "-I", os.path.join(ggml_src, "src"),
                    os.path.join(ggml_src, "src", "ggml-quants.c"), stubs, "-o", lib, "-lm"],
                   check=True)
    return ctypes.CDLL(lib)


def write_ggml_kquant_fixture(path: str, qtype: T, lib: ctypes.CDLL, rng: np.random.Generator) -> int:
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    row_bytes = COLS // block_elems * block_bytes
    fn = {T.Q4_K: lib.quantize_row_q4_K_ref, T.Q6_K: lib.quantize_row_q6_K_ref}[qtype]
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    inputs = np.ascontiguousarray(quantizer_inputs(rng))
    quantized = np.zeros((len(inputs), row_bytes), np.uint8)
    for r in range(len(inputs)):
        fn(inputs[r].ctypes.data, quantized[r].ctypes.data, COLS)
    expected = np.asarray(quants.dequantize(quantized.copy(), qtype), dtype=np.float32)
    with open(path, "wb") as f:
        f.write(b"GEQF")
        f.write(struct.pack("<7I", 1, int(qtype), COLS, len(inputs), len(inputs), row_bytes, 0))
        f.write(quantized.tobytes())
        f.write(expected.reshape(len(inputs), COLS).astype("<f4").tobytes())
        f.write(inputs.astype("<f4").tobytes())
        f.write(quantized.tobytes())
    return os.path.getsize(path)


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def write_model_fixture(path: str, model: str) -> int:
    reader = GGUFReader(model)
    by_name = {t.name: t for t in reader.tensors}
    with open(model, "rb") as mf, open(path, "wb") as f:
        f.write(b"GEQR")
        f.write(struct.pack("<IQII", 1, os.path.getsize(model), len(MODEL_TENSORS), 0))
        for name in MODEL_TENSORS:
            t = by_name[name]
            qtype = T(t.tensor_type)
            cols, rows = int(t.shape[0]), int(t.shape[1])
            block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
            row_bytes = cols // block_elems * block_bytes
            samples = [0, rows // 2 + 1, rows - 1]
            f.write(name.encode().ljust(64, b"\0"))
            f.write(struct.pack("<IIIIQ", int(qtype), rows, cols, len(samples), int(t.data_offset)))
            values = []
            for r in samples:
                mf.seek(int(t.data_offset) + r * row_bytes)
                raw = mf.read(row_bytes)
                f.write(struct.pack("<IIQ", r, 0, fnv1a64(raw)))
                row = np.frombuffer(raw, dtype=np.uint8).reshape(1, row_bytes)
                values.append(np.asarray(quants.dequantize(row, qtype), dtype=np.float32).reshape(cols))
            f.write(np.stack(values).astype("<f4").tobytes())
    return os.path.getsize(path)


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(root, "tests", "data", "quant"))
    parser.add_argument("--model", default=os.environ.get("GE_TEST_MODEL"),
                        help="Gemma 3 270M Q4_K_M GGUF for the real-model fixture (optional)")
    parser.add_argument("--ggml-src", help="ggml source checkout for the Q4_K/Q6_K quantizer fixtures")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, qtype in BLOCK_TYPES:
        # One generator per type so adding a type does not change the others' fixtures.
        rng = np.random.default_rng([SEED, int(qtype)])
        total += write_block_fixture(os.path.join(args.out, f"{name}.bin"), qtype, rng)
    if args.ggml_src:
        with tempfile.TemporaryDirectory() as tmp:
            lib = build_ggml_quants(args.ggml_src, tmp)
            for name, qtype in [("q4_k_ggml", T.Q4_K), ("q6_k_ggml", T.Q6_K)]:
                rng = np.random.default_rng([SEED, int(qtype), 1])
                total += write_ggml_kquant_fixture(os.path.join(args.out, f"{name}.bin"), qtype, lib, rng)
    if args.model:
        total += write_model_fixture(os.path.join(args.out, "gemma3_270m_rows.bin"), args.model)
    else:
        print("no --model / GE_TEST_MODEL: real-model fixture not regenerated", file=sys.stderr)
    print(f"wrote {total} bytes of fixtures to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
