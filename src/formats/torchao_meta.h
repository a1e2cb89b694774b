// The torchao / ExecuTorch quantized-checkpoint layout inside a safetensors file: the header's
// __metadata__ names each logical weight and its tensor-subclass type, and the weight's parts are
// stored as separate tensors `<module>._<attr>_qdata`, `_scale`, `_zero_point`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/safetensors_reader.h"

namespace ge::safetensors {

// One logical tensor from the metadata's "tensor_names" list, validated against its layout:
//   Int4Tensor (2-D, weight [N, K], group gs along K; w = (q - zero) * scale):
//     qdata uint8 [N, K/2] (even k in the low nibble, values 0..15), scale bf16 [K/gs, N],
//     zero_point bf16 [K/gs, N] (both transposed: groups first).
//   IntxUnpackedToInt8Tensor (weight [N, K]; w = (q - zero) * scale):
//     qdata int8 [N, K] (values within `bits`), scale bf16 [N, K/gs], zero_point int8 [N, K/gs].
//   Tensor: a plain tensor stored under its own name; parts = {"data"}.
struct TorchaoTensor {
  std::string fqn;                                 // logical name, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::string type;                                // "Int4Tensor", "IntxUnpackedToInt8Tensor", "Tensor"
  std::vector<int64_t> block_size;                 // [1, gs] for the quantized types; empty for Tensor
  std::vector<int64_t> shape;                      // logical shape ([N, K] for the quantized types)
  std::map<std::string, const TensorInfo*> parts;  // "qdata", "scale", "zero_point" (or "data")
  int bits = 0;            // 4 for Int4Tensor, the target int width (1..8) for Intx, 0 for Tensor
  int64_t group_size = 0;  // block_size[1] for the quantized types
};

// Reads and validates every entry of "tensor_names". Returns an empty list when the file carries
// no torchao metadata (no "tensor_names" key). All parts must live in `file` (one-file exports);
// tensors in the file that no entry claims are left alone. Types torchao allows but this engine
// does not read (Float8Tensor, ...) and non-default activation settings are kUnsupported; any
// other inconsistency is kFormatError. The pointers in `parts` point into `file`.
Result<std::vector<TorchaoTensor>> read_torchao_tensors(const SafetensorsFile& file);

}  // namespace ge::safetensors
