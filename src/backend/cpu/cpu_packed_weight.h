// The CPU backend's packed weight: every QuantType repacked at load into row tiles of 8 rows whose
// blocks of 32 columns the SIMD matmul reads front to back, plus an exact row decoder (lossless).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "quant/quant_type.h"

namespace ge::cpu {

// Rows per tile: one 256-bit register holds one int32 or fp32 lane per row of the tile.
constexpr int64_t kRowTile = 8;
// Columns per quant block: one block of int8 activations is one 256-bit register.
constexpr int64_t kBlock = 32;

// 64-byte aligned, zero-initialised storage (SIMD loads, no false sharing at the ends).
class AlignedBytes {
 public:
  AlignedBytes() = default;
  static Result<AlignedBytes> allocate(size_t bytes);
  uint8_t* data() const { return ptr_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> ptr_;
  size_t size_ = 0;
};

enum class PackedKind : uint8_t {
  kF32,    // fp32 [tiles][cols][8 rows]: one weight column of a tile is one fp32 register
  kQuant,  // quant blocks (QStreamLayout)
  // The source's own GGUF Q4_0 / Q8_0 rows (18 / 34-byte blocks, row-major), read in place from
  // the file mapping: no copy, so a model larger than half the RAM still loads.
  kInPlace,
};

// How a quant block decodes (the kernel uses the equivalent integer form).
//   w = (float(q) − zero) · scale      Q4_0, Q5_0, Q8_0, Q6_K, Int4Group, Int8Group
//   w = scale · float(q) − min         Q4_K, Q5_K (ggml evaluates d·sc·q − dmin·m this way)
enum class DequantForm : uint8_t { kQMinusZeroTimesScale, kScaleTimesQMinusMin };

// Geometry of a quantized stream. Per tile, blocks follow each other; one block (8 rows × 32
// columns) is
//   quants: bits 4: 4 × 32 B. Byte 4r + c of vector j holds row r's quant 4j + c in its low nibble
//                   and quant 16 + 4j + c in its high nibble (j = 0..3, c = 0..3); values 0..15.
//           bits 5: the bits-4 nibbles of the low 4 bits, then 32 B whose byte 4r + c has in bit j
//                   the fifth bit of row r's quant 4j + c (j = 0..7); values 0..31.
//           bits 8: 8 × 32 B. Byte 4r + c of vector g holds row r's quant 4g + c (signed).
//   scales: fp16 [8 rows] when the source scale is fp16 (Q4_0, Q5_0, Q8_0: lossless, and as few
//           bytes as the source), else fp32 [8 rows], or with split_scale fp32 [2][8 rows]
//           (columns 0..15, then 16..31).
//   mins:   fp32 [8 rows] when has_min (kernel form: Σ (scale·q − min)·a).
// so that a broadcast of 4 activation bytes against one quant vector yields per-row partial dots.
struct QStreamLayout {
  int bits = 8;
  bool split_scale = false;
  bool has_min = false;
  bool scale_fp16 = false;
  // Integer subtracted from every quant before scaling (Q4_0: 8, Q5_0: 16); folded into the
  // kernel's int32 accumulator through the block's activation sum.
  int32_t zero_point = 0;
  int64_t block_stride = 0;  // bytes per block of one tile
  int64_t tile_stride = 0;   // bytes per tile = blocks · block_stride
  int64_t blocks = 0;        // cols / 32
  int64_t quant_bytes() const { return bits == 4 ? 128 : bits == 5 ? 160 : 256; }
  int64_t scale_offset() const { return quant_bytes(); }
  int64_t scale_bytes() const { return scale_fp16 ? 16 : split_scale ? 64 : 32; }
  int64_t min_offset() const { return quant_bytes() + scale_bytes(); }
};

class CpuPackedWeight final : public PackedWeight {
 public:
  PackedKind kind() const { return kind_; }
  const QStreamLayout& layout() const { return layout_; }
  const uint8_t* data() const { return data_.data(); }
  // kInPlace: the source rows, their size in bytes and the quant width (4 for Q4_0, 8 for Q8_0).
  const uint8_t* source_data() const { return source_.data; }
  int64_t source_row_bytes() const { return source_row_bytes_; }
  int source_bits() const { return source_.type == QuantType::kQ4_0 ? 4 : 8; }
  int64_t tiles() const { return (rows() + kRowTile - 1) / kRowTile; }
  size_t bytes() const override { return data_.size() + zeros_.size() * sizeof(float); }

  // Decodes row `row` into dst[0..cols): bit-for-bit what dequantize_row gives for the source.
  void dequantize_row(int64_t row, float* dst) const;

  friend Result<std::unique_ptr<CpuPackedWeight>> pack_cpu_weight(const QuantWeight& w, ThreadPool* pool);
  friend Result<std::unique_ptr<CpuPackedWeight>> view_cpu_weight_in_place(const QuantWeight& w);

 private:
  CpuPackedWeight(const QuantWeight& w, PackedKind kind)
      : PackedWeight(w.rows, w.cols, w.type), kind_(kind) {}

  PackedKind kind_;
  QStreamLayout layout_;
  DequantForm form_ = DequantForm::kQMinusZeroTimesScale;
  AlignedBytes data_;
  // kQMinusZeroTimesScale with a zero per block (Int4Group, Int8Group): [rows][blocks].
  // Empty means the zero is the layout's integer zero_point for every block.
  std::vector<float> zeros_;
  // kInPlace: the source view (its memory belongs to the checkpoint) and its row size.
  QuantWeight source_;
  int64_t source_row_bytes_ = 0;
};

// Repacks a validated weight view. Q4_0/Q5_0/Q8_0/Q4_K/Q5_K/Q6_K, and Int4Group/Int8Group whose
// group is a multiple of 32, become quant streams; floats, and anything whose columns or groups do
// not fall on blocks of 32, become fp32 tiles. Errors name the weight when memory runs out.
// With a pool, tiles are packed in parallel.
Result<std::unique_ptr<CpuPackedWeight>> pack_cpu_weight(const QuantWeight& w, ThreadPool* pool = nullptr);

// Whether weights of this type can be used in place (GGUF Q4_0 and Q8_0).
bool in_place_supported(QuantType type);
// A kInPlace weight viewing `w` (validated; Q4_0 or Q8_0). w's memory must outlive the result.
Result<std::unique_ptr<CpuPackedWeight>> view_cpu_weight_in_place(const QuantWeight& w);

}  // namespace ge::cpu
