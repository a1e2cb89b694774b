#!/usr/bin/env python3
# Writes tests/data/gguf/pywriter_all_types.gguf with the reference gguf-py writer, so the C++
# reader is checked against an independent implementation. Run: python3 make_fixtures.py
# (needs `pip install gguf numpy`); the values are mirrored in tests/formats/gguf_roundtrip_test.cc.
import os

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    path = os.path.join(HERE, "pywriter_all_types.gguf")
    w = GGUFWriter(path, arch="gemma3")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.15625)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ▁world")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", -2.5e-300)
    w.add_array("t.arr_str", ["<pad>", "", "▁the", "\n"])
    w.add_key_value("t.arr_f32", [1.5, -0.25, 3.0], GGUFValueType.ARRAY, sub_type=GGUFValueType.FLOAT32)
    w.add_key_value("t.arr_i32", [-1, 0, 7], GGUFValueType.ARRAY, sub_type=GGUFValueType.INT32)
    w.add_key_value("t.arr_u8", [0, 255], GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT8)
    w.add_key_value("t.arr_bool", [True, False, True], GGUFValueType.ARRAY, sub_type=GGUFValueType.BOOL)
    w.add_key_value("t.arr_nested", [[1, 2], [3]], GGUFValueType.ARRAY)  # array of arrays of i32

    # F32 [2 rows, 3 cols] in numpy order = ggml ne (3, 2); Q8_0 and Q4_K given as raw blocks.
    w.add_tensor("a.f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("b.q8_0", np.arange(2 * 34, dtype=np.uint8).reshape(2, 34), raw_dtype=GGMLQuantizationType.Q8_0)
    w.add_tensor("c.q4_k", np.full((1, 144), 7, dtype=np.uint8), raw_dtype=GGMLQuantizationType.Q4_K)
    w.add_tensor("d.f16", np.ones((4,), dtype=np.float16))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
