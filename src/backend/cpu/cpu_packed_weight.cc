// Load-time repacking of every weight encoding into the CPU tile layout, and the exact decoder
// that proves the packing lossless (tests compare it with dequantize_row bit for bit).
#include "backend/cpu/cpu_packed_weight.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "core/checked_math.h"
#include "core/dtype.h"
#include "quant/dequantize.h"

// scale·q − min must round twice (as ggml's reference does), never as one fused multiply-add.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ge::cpu {

void AlignedBytes::Free::operator()(uint8_t* p) const { std::free(p); }

Result<AlignedBytes> AlignedBytes::allocate(size_t bytes) {
  uint64_t padded = 0;
  if (!pad_ok(bytes == 0 ? 64 : bytes, 64, &padded)) {
    return out_of_memory("cpu pack: size " + std::to_string(bytes) + " overflows");
  }
  void* p = std::aligned_alloc(64, static_cast<size_t>(padded));
  if (p == nullptr) return out_of_memory("cpu pack: cannot allocate " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, static_cast<size_t>(padded));
  AlignedBytes out;
  out.ptr_.reset(static_cast<uint8_t*>(p));
  out.size_ = bytes;
  return out;
}

namespace {

float load_fp16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(h);
}

// One decoded block of 32 quants of one row, in the packed (kernel) convention.
struct RawBlock {
  int q[32];          // bits 4: 0..15, bits 5: 0..31, bits 8: −128..127
  float scale[2];     // columns 0..15 and 16..31 (equal unless the layout splits scales)
  uint16_t scale_fp16 = 0;  // the source's fp16 scale, where it has one
  float min = 0.0f;   // kernel min (has_min)
  float zero = 0.0f;  // dequant zero of form kQMinusZeroTimesScale (per-block zeros only)
};

// Same 6-bit scale/min unpacking as ggml's get_scale_min_k4 (Q4_K and Q5_K).
void k_scale_min(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 0x3f;
    *min = s[j + 4] & 0x3f;
  } else {
    *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Fills `out` with block b (32 columns) of row `row` of a quantized source.
void read_block(const QuantWeight& w, uint64_t row_bytes_n, int64_t row, int64_t b, RawBlock* out) {
  const uint8_t* rowp = w.data + static_cast<uint64_t>(row) * row_bytes_n;
  switch (w.type) {
    case QuantType::kQ4_0: {
      const uint8_t* blk = rowp + b * 18;
      out->scale[0] = out->scale[1] = load_fp16(blk);
      std::memcpy(&out->scale_fp16, blk, 2);
      for (int j = 0; j < 16; ++j) {
        out->q[j] = blk[2 + j] & 0x0f;
        out->q[j + 16] = blk[2 + j] >> 4;
      }
      return;
    }
    case QuantType::kQ5_0: {
      const uint8_t* blk = rowp + b * 22;
      out->scale[0] = out->scale[1] = load_fp16(blk);
      std::memcpy(&out->scale_fp16, blk, 2);
      uint32_t qh;
      std::memcpy(&qh, blk + 2, 4);
      for (int j = 0; j < 16; ++j) {
        out->q[j] = (blk[6 + j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
        out->q[j + 16] = (blk[6 + j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      }
      return;
    }
    case QuantType::kQ8_0: {
      const uint8_t* blk = rowp + b * 34;
      out->scale[0] = out->scale[1] = load_fp16(blk);
      std::memcpy(&out->scale_fp16, blk, 2);
      for (int j = 0; j < 32; ++j) out->q[j] = static_cast<int8_t>(blk[2 + j]);
      return;
    }
    case QuantType::kQ4_K:
    case QuantType::kQ5_K: {
      const bool five = w.type == QuantType::kQ5_K;
      const uint8_t* blk = rowp + (b / 8) * (five ? 176 : 144);
      const int j = static_cast<int>(b % 8);
      const float d = load_fp16(blk), dmin = load_fp16(blk + 2);
      int sc, m;
      k_scale_min(blk + 4, j, &sc, &m);
      out->scale[0] = out->scale[1] = d * static_cast<float>(sc);
      out->min = dmin * static_cast<float>(m);
      const uint8_t* qs = blk + (five ? 48 : 16) + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        int v = (qs[l] >> shift) & 0x0f;
        if (five) v |= ((blk[16 + l] >> j) & 1) << 4;
        out->q[l] = v;
      }
      return;
    }
    case QuantType::kQ6_K: {
      const uint8_t* blk = rowp + (b / 8) * 210;
      const uint8_t* ql = blk;
      const uint8_t* qh = blk + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
      const float d = load_fp16(blk + 208);
      for (int l = 0; l < 32; ++l) {
        const int i = static_cast<int>(b % 8) * 32 + l;  // index inside the super-block
        const int h = i / 128, r = i % 128;
        const int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
        const int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
        out->q[l] = (lo | (hi << 4)) - 32;
      }
      const int sub = static_cast<int>(b % 8) * 2;
      out->scale[0] = d * static_cast<float>(sc[sub]);
      out->scale[1] = d * static_cast<float>(sc[sub + 1]);
      return;
    }
    case QuantType::kInt4Group: {
      const uint8_t* q = w.data + row * (w.cols / 2) + b * 16;
      for (int l = 0; l < 32; l += 2) {
        out->q[l] = q[l / 2] & 0x0f;
        out->q[l + 1] = q[l / 2] >> 4;
      }
      const int64_t g = b * kBlock / w.group_size;
      const float s = bf16_to_f32(w.scale[g * w.rows + row]);
      out->scale[0] = out->scale[1] = s;
      if (w.zero != nullptr) {
        out->zero = bf16_to_f32(static_cast<const uint16_t*>(w.zero)[g * w.rows + row]);
        out->min = s * out->zero;
      }
      return;
    }
    case QuantType::kInt8Group: {
      const int8_t* q = reinterpret_cast<const int8_t*>(w.data) + row * w.cols + b * kBlock;
      for (int l = 0; l < 32; ++l) out->q[l] = q[l];
      const int64_t groups = w.num_groups();
      const int64_t g = b * kBlock / w.group_size;
      const float s = bf16_to_f32(w.scale[row * groups + g]);
      out->scale[0] = out->scale[1] = s;
      if (w.zero != nullptr) {
        out->zero = static_cast<float>(static_cast<const int8_t*>(w.zero)[row * groups + g]);
        out->min = s * out->zero;
      }
      return;
    }
    default: GE_CHECK_MSG(false, "cpu pack: not a quant stream type");
  }
}

uint8_t* block_ptr(uint8_t* base, const QStreamLayout& l, int64_t row, int64_t b) {
  return base + (row / kRowTile) * l.tile_stride + b * l.block_stride;
}

void write_block(const QStreamLayout& l, const RawBlock& rb, int64_t rr, uint8_t* blk) {
  if (l.bits == 8) {
    for (int g = 0; g < 8; ++g) {
      uint8_t* dst = blk + g * 32 + 4 * rr;
      for (int c = 0; c < 4; ++c) dst[c] = static_cast<uint8_t>(static_cast<int8_t>(rb.q[4 * g + c]));
    }
  } else {
    for (int k = 0; k < 32; ++k) {
      const int kk = k % 16, j = kk / 4, c = kk % 4;
      uint8_t& byte = blk[j * 32 + 4 * rr + c];
      byte = static_cast<uint8_t>(byte | ((rb.q[k] & 0x0f) << (k < 16 ? 0 : 4)));
      if (l.bits == 5) {
        uint8_t& hb = blk[128 + 4 * rr + k % 4];
        hb = static_cast<uint8_t>(hb | (((rb.q[k] >> 4) & 1) << (k / 4)));
      }
    }
  }
  uint8_t* sc = blk + l.scale_offset();
  if (l.scale_fp16) {
    std::memcpy(sc + 2 * rr, &rb.scale_fp16, 2);
  } else {
    std::memcpy(sc + 4 * rr, &rb.scale[0], 4);
    if (l.split_scale) std::memcpy(sc + 4 * (kRowTile + rr), &rb.scale[1], 4);
  }
  if (l.has_min) std::memcpy(blk + l.min_offset() + 4 * rr, &rb.min, 4);
}

int quant_at(const QStreamLayout& l, const uint8_t* blk, int64_t rr, int k) {
  if (l.bits == 8) return static_cast<int8_t>(blk[(k / 4) * 32 + 4 * rr + k % 4]);
  const int kk = k % 16;
  const uint8_t byte = blk[(kk / 4) * 32 + 4 * rr + kk % 4];
  int q = k < 16 ? (byte & 0x0f) : (byte >> 4);
  if (l.bits == 5) q |= ((blk[128 + 4 * rr + k % 4] >> (k / 4)) & 1) << 4;
  return q;
}

float scale_at(const QStreamLayout& l, const uint8_t* blk, int64_t rr, int k) {
  const uint8_t* sc = blk + l.scale_offset();
  if (l.scale_fp16) return load_fp16(sc + 2 * rr);
  float s;
  std::memcpy(&s, sc + 4 * ((l.split_scale && k >= 16) ? kRowTile + rr : rr), 4);
  return s;
}

// fn(tile_begin, tile_end) over all tiles, on the pool when there is one (tiles own disjoint bytes).
template <typename Fn>
void for_tiles(ThreadPool* pool, int64_t tiles, const Fn& fn) {
  if (pool == nullptr || pool->size() == 1) {
    fn(0, tiles);
    return;
  }
  pool->parallel_for(tiles, 16, [&](int64_t b, int64_t e) { fn(b, e); });
}

}  // namespace

void CpuPackedWeight::dequantize_row(int64_t row, float* dst) const {
  GE_CHECK(row >= 0 && row < rows());
  if (kind_ == PackedKind::kInPlace) {
    ge::dequantize_row(source_, row, dst);
    return;
  }
  const int64_t rr = row % kRowTile;
  if (kind_ == PackedKind::kF32) {
    const float* t = reinterpret_cast<const float*>(data_.data()) + (row / kRowTile) * cols() * kRowTile;
    for (int64_t k = 0; k < cols(); ++k) dst[k] = t[k * kRowTile + rr];
    return;
  }
  const QStreamLayout& l = layout_;
  for (int64_t b = 0; b < l.blocks; ++b) {
    const uint8_t* blk = block_ptr(data_.data(), l, row, b);
    float* out = dst + b * kBlock;
    if (form_ == DequantForm::kScaleTimesQMinusMin) {
      const float s = scale_at(l, blk, rr, 0);
      float m;
      std::memcpy(&m, blk + l.min_offset() + 4 * rr, 4);
      for (int k = 0; k < 32; ++k) out[k] = s * static_cast<float>(quant_at(l, blk, rr, k)) - m;
      continue;
    }
    const float z = zeros_.empty() ? static_cast<float>(l.zero_point)
                                   : zeros_[static_cast<size_t>(row * l.blocks + b)];
    for (int k = 0; k < 32; ++k) {
      out[k] = (static_cast<float>(quant_at(l, blk, rr, k)) - z) * scale_at(l, blk, rr, k);
    }
  }
}

Result<std::unique_ptr<CpuPackedWeight>> pack_cpu_weight(const QuantWeight& w, ThreadPool* pool) {
  GE_RETURN_IF_ERROR(validate_weight(w));
  const std::string what = std::string("cpu pack ") + quant_type_name(w.type) + " [" +
                           std::to_string(w.rows) + ", " + std::to_string(w.cols) + "]";
  const bool blocks_fit = w.cols % kBlock == 0;
  bool stream = false;
  switch (w.type) {
    case QuantType::kQ4_0: case QuantType::kQ5_0: case QuantType::kQ8_0:
    case QuantType::kQ4_K: case QuantType::kQ5_K: case QuantType::kQ6_K:
      stream = true;  // their blocks are 32 or 256 columns, so cols is a multiple of 32
      break;
    case QuantType::kInt4Group: case QuantType::kInt8Group:
      stream = blocks_fit && w.group_size % kBlock == 0;
      break;
    default: break;
  }
  const uint64_t tiles = static_cast<uint64_t>((w.rows + kRowTile - 1) / kRowTile);
  std::unique_ptr<CpuPackedWeight> p(
      new (std::nothrow) CpuPackedWeight(w, stream ? PackedKind::kQuant : PackedKind::kF32));
  if (!p) return out_of_memory(what + ": out of memory");

  if (!stream) {
    uint64_t bytes = 0;
    if (!mul_ok(tiles, static_cast<uint64_t>(w.cols), &bytes) || !mul_ok(bytes, kRowTile * 4, &bytes)) {
      return out_of_memory(what + ": packed size overflows");
    }
    GE_ASSIGN_OR_RETURN(p->data_, AlignedBytes::allocate(static_cast<size_t>(bytes)));
    float* dst = reinterpret_cast<float*>(p->data_.data());
    for_tiles(pool, static_cast<int64_t>(tiles), [&](int64_t t0, int64_t t1) {
      std::vector<float> row(static_cast<size_t>(w.cols));
      for (int64_t r = t0 * kRowTile; r < std::min(w.rows, t1 * kRowTile); ++r) {
        ge::dequantize_row(w, r, row.data());
        float* t = dst + (r / kRowTile) * w.cols * kRowTile;
        for (int64_t k = 0; k < w.cols; ++k) t[k * kRowTile + r % kRowTile] = row[static_cast<size_t>(k)];
      }
    });
    return p;
  }

  QStreamLayout& l = p->layout_;
  const bool four = w.type == QuantType::kQ4_0 || w.type == QuantType::kQ4_K ||
                    w.type == QuantType::kInt4Group;
  const bool five = w.type == QuantType::kQ5_0 || w.type == QuantType::kQ5_K;
  l.bits = four ? 4 : five ? 5 : 8;
  l.split_scale = w.type == QuantType::kQ6_K;
  l.scale_fp16 = w.type == QuantType::kQ4_0 || w.type == QuantType::kQ5_0 || w.type == QuantType::kQ8_0;
  const bool k_min = w.type == QuantType::kQ4_K || w.type == QuantType::kQ5_K;
  const bool group_zero = (w.type == QuantType::kInt4Group || w.type == QuantType::kInt8Group) &&
                          w.zero != nullptr;
  l.has_min = k_min || group_zero;
  p->form_ = k_min ? DequantForm::kScaleTimesQMinusMin : DequantForm::kQMinusZeroTimesScale;
  if (w.type == QuantType::kQ4_0 || (w.type == QuantType::kInt4Group && w.zero == nullptr)) {
    l.zero_point = 8;
  }
  if (w.type == QuantType::kQ5_0) l.zero_point = 16;
  l.blocks = w.cols / kBlock;
  l.block_stride = l.min_offset() + (l.has_min ? 32 : 0);
  uint64_t tile_stride = 0, bytes = 0;
  if (!mul_ok(static_cast<uint64_t>(l.blocks), static_cast<uint64_t>(l.block_stride), &tile_stride) ||
      !mul_ok(tile_stride, tiles, &bytes)) {
    return out_of_memory(what + ": packed size overflows");
  }
  l.tile_stride = static_cast<int64_t>(tile_stride);
  GE_ASSIGN_OR_RETURN(p->data_, AlignedBytes::allocate(static_cast<size_t>(bytes)));
  if (group_zero) {
    try {
      p->zeros_.assign(static_cast<size_t>(w.rows * l.blocks), 0.0f);
    } catch (const std::bad_alloc&) {
      return out_of_memory(what + ": out of memory for zeros");
    }
  }
  uint64_t rb_bytes = 0;
  if (is_row_blocked(w.type)) {
    GE_ASSIGN_OR_RETURN(rb_bytes, row_bytes(w.type, w.cols));
  }
  CpuPackedWeight* pw = p.get();
  for_tiles(pool, static_cast<int64_t>(tiles), [&](int64_t t0, int64_t t1) {
    RawBlock rb;
    for (int64_t r = t0 * kRowTile; r < std::min(w.rows, t1 * kRowTile); ++r) {
      for (int64_t b = 0; b < l.blocks; ++b) {
        rb = RawBlock{};
        read_block(w, rb_bytes, r, b, &rb);
        write_block(l, rb, r % kRowTile, block_ptr(pw->data_.data(), l, r, b));
        if (group_zero) pw->zeros_[static_cast<size_t>(r * l.blocks + b)] = rb.zero;
      }
    }
  });
  return p;
}

bool in_place_supported(QuantType type) { return type == QuantType::kQ4_0 || type == QuantType::kQ8_0; }

Result<std::unique_ptr<CpuPackedWeight>> view_cpu_weight_in_place(const QuantWeight& w) {
  GE_RETURN_IF_ERROR(validate_weight(w));
  if (!in_place_supported(w.type)) {
    return unsupported(std::string("cpu: ") + quant_type_name(w.type) + " weights cannot be used in place (Q4_0, Q8_0)");
  }
  if (w.data == nullptr) return invalid_argument("cpu: in-place weight has no data");
  GE_ASSIGN_OR_RETURN(const uint64_t rb, row_bytes(w.type, w.cols));
  std::unique_ptr<CpuPackedWeight> p(new (std::nothrow) CpuPackedWeight(w, PackedKind::kInPlace));
  if (!p) return out_of_memory("cpu: out of memory");
  p->source_ = w;
  p->source_row_bytes_ = static_cast<int64_t>(rb);
  p->layout_.blocks = w.cols / kBlock;
  return p;
}

}  // namespace ge::cpu
