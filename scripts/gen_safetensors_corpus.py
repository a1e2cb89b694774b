#!/usr/bin/env python3
"""Builds the safetensors differential corpus and records the reference crate's decisions.

Each case is a complete file image. The decision comes from the Rust crate through the
`safetensors` Python package (safetensors._safetensors_rust.deserialize, which calls
SafeTensors::deserialize). tests/formats/safetensors_differential_test.cc parses every image with
the C++ reader and requires the same accept/reject decision, except for the cases marked
"stricter" below, where this engine deliberately rejects what the reference accepts.

Output: tests/data/safetensors/corpus.jsonl, one JSON object per line:
  {"name": str, "hex": file bytes, "rust": "accept"|"reject", "rust_error": str, "stricter": str}
Needs only `safetensors` (PyPI); no torch. Deterministic (fixed seed).

Usage: python3 scripts/gen_safetensors_corpus.py [output_path]
"""

import json
import os
import random
import struct
import sys

import safetensors
from safetensors._safetensors_rust import deserialize

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
         "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def image(header, data=b"", n=None):
    """Length prefix (n, default len(header)) + header bytes + data."""
    hb = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(hb) if n is None else n) + hb + data


def tensor(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def valid_file(tensors, metadata=None):
    """tensors: list of (name, dtype, shape); returns a correctly tiled image."""
    header, data, off = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for i, (name, dtype, shape) in enumerate(tensors):
        count = 1
        for d in shape:
            count *= d
        nbytes = count * SIZES[dtype]
        header[name] = tensor(dtype, shape, off, off + nbytes)
        data += bytes((i * 37 + j) & 0xFF for j in range(nbytes))
        off += nbytes
    return image(json.dumps(header, separators=(",", ":")), data)


T4 = '"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
Z4 = b"\0" * 4


def handcrafted():
    """(name, image, stricter) triples; `stricter` explains a deliberate reject-where-Rust-accepts."""
    c = []
    add = lambda name, img, stricter="": c.append((name, img, stricter))
    # Valid files.
    add("valid_single", image("{" + T4 + "}", Z4))
    add("valid_empty_object", image("{}"))
    add("valid_all_dtypes", valid_file([(f"t_{d}", d, [2, 3]) for d in SIZES]))
    add("valid_scalar", valid_file([("s", "F32", [])]))
    add("valid_zero_size", valid_file([("a", "F32", [0, 4]), ("b", "I8", [3])]))
    add("valid_zero_size_shared_offset", image('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
                                               '"b":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'))
    add("valid_metadata", valid_file([("w", "BF16", [4])], {"format": "pt", "k": "v"}))
    add("valid_mixed", valid_file([("a.weight", "BF16", [2, 2]), ("b", "I64", [1]), ("c", "F8_E4M3", [3])]))
    add("valid_null_metadata", image('{"__metadata__":null,' + T4 + '}', Z4))
    add("valid_space_padding", image("{" + T4 + "}        ", Z4))
    add("valid_leading_whitespace", image(" \n{" + T4 + "}", Z4))
    add("valid_unordered_offsets", image('{"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},'
                                         '"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', b"abcd"))
    add("valid_unknown_field", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":[1]}}', Z4))
    add("valid_unicode_name", image('{"t\u00e9\u4e2d":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'.encode(), b"x"))
    # Length prefix (row A5).
    add("n_lt_8_empty", b"")
    add("n_lt_8_seven_bytes", b"\x02\0\0\0\0\0\0")
    add("n_over_100mb", image("{}", n=100_000_001))
    add("n_plus_8_past_end", image("{}", n=3))
    add("n_u64_max", image("{}", n=2**64 - 1))
    add("n_zero", image("", n=0))
    # Header text.
    add("non_utf8", image(b'{"t\xff":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"x"))
    add("overlong_utf8", image(b'{"t\xc0\xaf":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"x"))
    add("utf8_bom", image(b"\xef\xbb\xbf{" + T4.encode() + b"}", Z4))
    add("no_open_brace", image("[" + T4 + "]", Z4))
    add("top_level_string", image('"hello"'))
    add("invalid_json", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}', Z4))
    add("trailing_garbage", image("{" + T4 + "}x", Z4))
    add("nul_then_garbage", image(b"{" + T4.encode() + b"}\0 garbage", Z4))
    add("nul_in_padding", image(b"{" + T4.encode() + b"}  \0  ", Z4))
    add("nul_inside_string", image(b'{"t\0":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"x"))
    add("json_comment", image("{/*c*/" + T4 + "}", Z4))
    add("nan_literal", image('{"t":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}', Z4))
    add("deep_nesting_200", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":'
                                  + "[" * 200 + "]" * 200 + "}}", Z4))
    add("deep_nesting_100", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":'
                                  + "[" * 100 + "]" * 100 + "}}", Z4), "nesting deeper than 64")
    add("duplicate_tensor_key", image("{" + T4 + "," + T4 + "}", Z4), "duplicate JSON keys")
    add("duplicate_field", image('{"t":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', Z4))
    add("duplicate_metadata_key", image('{"__metadata__":{"a":"1","a":"2"}}'), "duplicate JSON keys")
    add("duplicate_metadata_object", image('{"__metadata__":{},"__metadata__":{}}'))
    # Tensor entries.
    add("unknown_dtype", image('{"t":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}', Z4))
    add("lowercase_dtype", image('{"t":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', Z4))
    add("dtype_f4_unsupported", image('{"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}', b"\0"),
        "dtype outside the engine's set (kUnsupported)")
    add("dtype_c64_unsupported", image('{"t":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', b"\0" * 8),
        "dtype outside the engine's set (kUnsupported)")
    add("dtype_number", image('{"t":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}', Z4))
    add("dtype_enum_map_form", image('{"t":{"dtype":{"F32":null},"shape":[1],"data_offsets":[0,4]}}', Z4),
        "serde's map form of an enum")
    add("tensor_array_form", image('{"t":["F32",[1],[0,4]]}', Z4), "serde's sequence form of a struct")
    add("tensor_not_object", image('{"t":5}'))
    add("missing_dtype", image('{"t":{"shape":[1],"data_offsets":[0,4]}}', Z4))
    add("missing_shape", image('{"t":{"dtype":"F32","data_offsets":[0,4]}}', Z4))
    add("missing_offsets", image('{"t":{"dtype":"F32","shape":[1]}}', Z4))
    add("negative_shape", image('{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', Z4))
    add("negative_zero_shape", image('{"t":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}'))
    add("float_shape", image('{"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', Z4))
    add("integral_float_shape", image('{"t":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', Z4))
    add("string_shape", image('{"t":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}', Z4))
    add("shape_null", image('{"t":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}', Z4))
    add("shape_above_u64", image('{"t":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}}', Z4))
    add("rank_64", image('{"t":{"dtype":"F32","shape":[' + ",".join(["1"] * 64) + '],"data_offsets":[0,4]}}', Z4),
        "rank above 8")
    add("rank_9", image('{"t":{"dtype":"U8","shape":[' + ",".join(["1"] * 9) + '],"data_offsets":[0,1]}}', b"x"),
        "rank above 8")
    add("rank_8", image('{"t":{"dtype":"U8","shape":[' + ",".join(["1"] * 8) + '],"data_offsets":[0,1]}}', b"x"))
    add("shape_product_overflow", image('{"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}', Z4))
    add("byte_size_overflow", image('{"t":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}', b"\0" * 8))
    add("negative_offset", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', Z4))
    add("float_offset", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}', Z4))
    add("exponent_offset", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4e0]}}', Z4))
    add("three_offsets", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}', Z4))
    add("one_offset", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":[4]}}', Z4))
    add("offsets_object", image('{"t":{"dtype":"F32","shape":[1],"data_offsets":{"0":0,"1":4}}}', Z4))
    add("end_before_begin", image('{"t":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}', Z4))
    add("span_mismatch", image('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', Z4))
    add("span_mismatch_dtype", image('{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,4]}}', Z4))
    # Tiling of the data region.
    add("gap", image('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
                     '"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}', b"abcde"))
    add("gap_at_start", image('{"t":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', b"abc"))
    add("overlap", image('{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},'
                         '"b":{"dtype":"U8","shape":[3],"data_offsets":[2,5]}}', b"abcde"))
    add("alias_same_range", image('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
                                  '"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', b"ab"))
    add("zero_size_inside_other", image('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
                                        '"b":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}', b"abcd"))
    add("zero_size_past_end", image('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
                                    '"b":{"dtype":"U8","shape":[0],"data_offsets":[9,9]}}', b"abcd"))
    add("trailing_bytes", image("{" + T4 + "}", Z4 + b"\0"))
    add("missing_bytes", image("{" + T4 + "}", b"\0" * 3))
    add("no_tensors_but_data", image("{}", b"xyz"))
    add("offset_past_file", image('{"t":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}', b"a"))
    add("huge_offsets", image('{"t":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551614,18446744073709551615]}}', b"a"))
    # __metadata__.
    add("metadata_int_value", image('{"__metadata__":{"a":1}}'))
    add("metadata_array", image('{"__metadata__":["a"]}'))
    add("metadata_string", image('{"__metadata__":"a"}'))
    add("metadata_nested_object", image('{"__metadata__":{"a":{"b":"c"}}}'))
    add("metadata_tensor_like", image('{"__metadata__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', Z4))
    return c


def mutations(seed_images, count, rng):
    """Single and double byte edits of valid images, biased toward JSON-significant characters."""
    alphabet = b'0123456789"{}[],:-.e \x00\x80\xff' + b"FIUB"
    out = []
    for i in range(count):
        name, base = seed_images[i % len(seed_images)]
        b = bytearray(base)
        for _ in range(1 + (i % 3 == 0)):
            pos = rng.randrange(len(b))
            b[pos] = rng.choice(alphabet) if pos >= 8 else rng.randrange(256)
        out.append((f"mutation_{i:03d}_of_{name}", bytes(b), ""))
    for name, base in seed_images:
        for cut in sorted({1, 7, 8, 9, len(base) // 2, len(base) - 1}):
            out.append((f"truncated_{cut}_of_{name}", base[:cut], ""))
    return out


def decide(img):
    try:
        deserialize(img)
        return "accept", ""
    except Exception as e:  # SafetensorError (and overflow errors surfaced as exceptions)
        return "reject", str(e)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "data", "safetensors", "corpus.jsonl")
    rng = random.Random(20240611)
    cases = handcrafted()
    seeds = [(n, img) for n, img, _ in cases if n in ("valid_mixed", "valid_metadata", "valid_unordered_offsets",
                                                      "valid_zero_size")]
    cases += mutations(seeds, 200, rng)
    names = set()
    with open(out, "w") as f:
        for name, img, stricter in cases:
            assert name not in names, name
            names.add(name)
            rust, err = decide(img)
            if stricter:
                assert rust == "accept", f"{name}: marked stricter but the reference rejects it"
            f.write(json.dumps({"name": name, "hex": img.hex(), "rust": rust, "rust_error": err[:200],
                                "stricter": stricter}) + "\n")
    accepted = sum(1 for _, img, _ in cases if decide(img)[0] == "accept")
    print(f"{len(cases)} cases ({accepted} accepted by safetensors {safetensors.__version__}) -> {out}")


if __name__ == "__main__":
    main()
