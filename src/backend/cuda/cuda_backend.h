// The CUDA backend ("cuda"): device memory, one stream, bf16 KV cache, tensor-core GEMVs for the
// 4/8-bit encodings. This header stays free of CUDA headers; CudaBackend adds the CUDA-specific
// entry points that tests, benchmarks and graph capture need (reach it with dynamic_cast).
// synthesize_weight(like, seed) honours like.type, rows, cols and group_size; for Int4Group /
// Int8Group a non-null like.zero (never dereferenced) asks for random zero points.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace ge {

// Kernel-lab knobs; the defaults are what the model runs with.
struct CudaMatmulTuning {
  int gemv_ctas_per_sm = 0;          // persistent CTAs per SM in the tensor-core GEMV (0 = all that fit)
  bool programmatic_launch = true;   // GEMVs start their weight loads while the previous kernel drains
  int gemv_schedule = 0;             // 0 the measured choice; 1 items, 2 stream-K, 3 K-slice (tests)
  // M = 1 GEMV of 4-bit weights without zero points with x as int8 per 32-block (IMMA) instead of fp16:
  // 1 on, 0 off, -1 as GE_CUDA_GEMV_INT8X (=1 on; unset: off).
  int gemv_int8_x = -1;
};

class CudaBackend : public Backend {
 public:
  // The cudaStream_t every op is queued on (as void* so callers need no CUDA headers).
  virtual void* stream() const = 0;
  virtual std::string device_name() const = 0;
  // Decodes a packed weight to fp32 [rows, cols] (device memory), bit-exact with dequantize_row.
  virtual Status dequantize(const PackedWeight& w, float* out) = 0;
  // Device layout a weight was packed into: "tiled4", "tiled8", "raw" or "raw-group".
  virtual std::string layout_name(const PackedWeight& w) const = 0;
  virtual void set_matmul_tuning(const CudaMatmulTuning& tuning) = 0;
};

// Uses the current CUDA device; fails with a Status when there is none or it cannot be set up.
Result<std::unique_ptr<Backend>> create_cuda_backend();

}  // namespace ge
