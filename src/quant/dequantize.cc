// Reference decoders for every QuantType, written element by element from the ggml block layouts
// and the torchao group layouts. They are the oracle fast kernels are tested against, so each one
// evaluates the same fp32 expression, in the same order, as ggml's reference dequantizers.
#include "quant/dequantize.h"

#include <bit>
#include <cstring>
#include <vector>

#include "core/dtype.h"

// Q4_K/Q5_K compute d·q − m; a fused multiply-add would round once instead of twice and break
// bit-exactness with ggml. Only builds that enable FMA (-march=native) would contract it.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ge {
namespace {

static_assert(std::endian::native == std::endian::little,
              "block decoders read little-endian fields in place");

float load_fp16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(h);
}

// Q4_0 block (18 B): fp16 d, then 16 B of nibbles; element j < 16 is the low nibble of byte j,
// element j + 16 the high nibble. w = (q − 8)·d.
void decode_q4_0(const uint8_t* b, float* y) {
  const float d = load_fp16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q5_0 block (22 B): fp16 d, uint32 qh (bit j = fifth bit of element j), 16 B of nibbles laid
// out as in Q4_0. w = (q − 16)·d.
void decode_q5_0(const uint8_t* b, float* y) {
  const float d = load_fp16(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

// Q8_0 block (34 B): fp16 d, 32 int8. w = q·d.
void decode_q8_0(const uint8_t* b, float* y) {
  const float d = load_fp16(b);
  for (int j = 0; j < 32; ++j) {
    y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
  }
}

// The 12 scale bytes shared by Q4_K and Q5_K hold eight 6-bit scales and eight 6-bit mins, one
// pair per 32-element sub-block. Sub-blocks 0..3 use the low 6 bits of bytes 0..3 (scale) and
// 4..7 (min); sub-blocks 4..7 take their low 4 bits from the nibbles of bytes 8..11 and their top
// 2 bits from the spare top bits of bytes 0..3 (scale) and 4..7 (min).
void k_scale_min(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 0x3f;
    *min = s[j + 4] & 0x3f;
  } else {
    *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K block (144 B): fp16 d, fp16 dmin, 12 scale bytes, 128 B of nibbles. Sub-blocks 2c and 2c+1
// (c = 0..3) are the low and high nibbles of bytes [32c, 32c + 32).
// w = (d·scale)·q − (dmin·min).
void decode_q4_k(const uint8_t* b, float* y) {
  const float d = load_fp16(b);
  const float dmin = load_fp16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    k_scale_min(scales, j, &sc, &m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      y[32 * j + l] = dl * static_cast<float>((q[l] >> shift) & 0x0f) - ml;
    }
  }
}

// Q5_K block (176 B): as Q4_K with 32 B of high bits between the scales and the nibbles: bit j of
// qh[l] is the fifth bit of element l of sub-block j.
void decode_q5_k(const uint8_t* b, float* y) {
  const float d = load_fp16(b);
  const float dmin = load_fp16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    k_scale_min(scales, j, &sc, &m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      const int v = ((q[l] >> shift) & 0x0f) | (((qh[l] >> j) & 1) << 4);
      y[32 * j + l] = dl * static_cast<float>(v) - ml;
    }
  }
}

// Q6_K block (210 B): 128 B low nibbles (ql), 64 B high 2-bit pairs (qh), 16 int8 scales (one
// per 16 elements), fp16 d. Each 128-element half h uses ql[64h..64h+64) and qh[32h..32h+32):
// element r of the half takes nibble r/64 of ql[64h + r%64] and bit pair r/32 of qh[32h + r%32].
// w = (d·scale)·(q − 32).
void decode_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_fp16(b + 208);
  for (int i = 0; i < 256; ++i) {
    const int h = i / 128;
    const int r = i % 128;
    const int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
    const int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
    const float dl = d * static_cast<float>(scales[i / 16]);
    y[i] = dl * static_cast<float>((lo | (hi << 4)) - 32);
  }
}

using BlockDecoder = void (*)(const uint8_t*, float*);

BlockDecoder block_decoder(QuantType type) {
  switch (type) {
    case QuantType::kQ4_0: return decode_q4_0;
    case QuantType::kQ5_0: return decode_q5_0;
    case QuantType::kQ8_0: return decode_q8_0;
    case QuantType::kQ4_K: return decode_q4_k;
    case QuantType::kQ5_K: return decode_q5_k;
    case QuantType::kQ6_K: return decode_q6_k;
    default: return nullptr;
  }
}

}  // namespace

void dequantize_blocks(QuantType type, const void* src, int64_t n, float* dst) {
  GE_CHECK_MSG(is_row_blocked(type), std::string("dequantize_blocks: ") + quant_type_name(type));
  const BlockLayout layout = block_layout(type);
  GE_CHECK(n >= 0 && n % layout.block_elems == 0);
  const uint8_t* p = static_cast<const uint8_t*>(src);
  switch (type) {
    case QuantType::kF32:
      if (n > 0) std::memcpy(dst, p, static_cast<size_t>(n) * 4);
      return;
    case QuantType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load_fp16(p + 2 * i);
      return;
    case QuantType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    default: break;
  }
  const BlockDecoder decode = block_decoder(type);
  const int64_t blocks = n / layout.block_elems;
  for (int64_t i = 0; i < blocks; ++i) {
    decode(p + i * layout.block_bytes, dst + i * layout.block_elems);
  }
}

void dequantize_row(const QuantWeight& w, int64_t row, float* dst) {
  GE_CHECK(row >= 0 && row < w.rows);
  GE_CHECK(w.data != nullptr);
  if (is_row_blocked(w.type)) {
    Result<uint64_t> per_row = row_bytes(w.type, w.cols);
    GE_CHECK_MSG(per_row.is_ok(), per_row.status().message());
    dequantize_blocks(w.type, w.data + static_cast<uint64_t>(row) * per_row.value(), w.cols, dst);
    return;
  }
  GE_CHECK(w.scale != nullptr && w.group_size > 0 && w.cols % w.group_size == 0);
  const int64_t groups = w.num_groups();
  if (w.type == QuantType::kInt4Group) {
    // qdata [rows, cols/2]; scale and zero [groups, rows] (transposed, as torchao stores them).
    GE_CHECK(w.cols % 2 == 0);
    const uint8_t* q = w.data + row * (w.cols / 2);
    const uint16_t* zero = static_cast<const uint16_t*>(w.zero);
    for (int64_t g = 0; g < groups; ++g) {
      const float scale = bf16_to_f32(w.scale[g * w.rows + row]);
      const float z = zero != nullptr ? bf16_to_f32(zero[g * w.rows + row]) : 8.0f;
      for (int64_t k = g * w.group_size; k < (g + 1) * w.group_size; ++k) {
        const int v = (k % 2 == 0) ? (q[k / 2] & 0x0f) : (q[k / 2] >> 4);
        dst[k] = (static_cast<float>(v) - z) * scale;
      }
    }
    return;
  }
  GE_CHECK(w.type == QuantType::kInt8Group);
  // qdata int8 [rows, cols]; scale bf16 and zero int8 [rows, groups].
  const int8_t* q = reinterpret_cast<const int8_t*>(w.data) + row * w.cols;
  const int8_t* zero = static_cast<const int8_t*>(w.zero);
  for (int64_t g = 0; g < groups; ++g) {
    const float scale = bf16_to_f32(w.scale[row * groups + g]);
    const int z = zero != nullptr ? zero[row * groups + g] : 0;
    for (int64_t k = g * w.group_size; k < (g + 1) * w.group_size; ++k) {
      dst[k] = static_cast<float>(q[k] - z) * scale;
    }
  }
}

float dot_row(const QuantWeight& w, int64_t row, const float* x) {
  std::vector<float> values(static_cast<size_t>(w.cols));
  dequantize_row(w, row, values.data());
  // Each fp32·fp32 product is exact in double, so the only rounding is in the sum and the final
  // cast: a tighter oracle than any fp32 kernel it is compared with.
  double sum = 0.0;
  for (int64_t k = 0; k < w.cols; ++k) {
    sum += static_cast<double>(values[k]) * static_cast<double>(x[k]);
  }
  return static_cast<float>(sum);
}

}  // namespace ge
