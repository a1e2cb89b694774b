// Quantizers for the row-blocked ggml encodings and the torchao int4/int8 group layouts. The ggml
// ones reproduce ggml's reference (non-SIMD, non-imatrix) quantizers so exported GGUF files match
// what llama.cpp's tools would write for the same fp32 input.
#include "quant/quantize.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "core/checked_math.h"
#include "core/dtype.h"
#include "quant/k_quantize.h"

// ggml evaluates x·id + 8.5 and friends as two roundings; a fused multiply-add in FMA-enabled
// builds (-march=native) would change some quantized values.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ge {
namespace {

void store_fp16(uint8_t* p, float v) {
  const uint16_t h = f32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// Truncation toward zero clamped to [0, hi] in float before the cast, so NaN/inf cannot reach an
// undefined float→int conversion (input is checked finite, but 1/d can still overflow to inf).
int trunc_clamped(float v, int hi) {
  if (!(v > 0.0f)) return 0;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// C roundf semantics (halves away from zero), clamped to [lo, hi].
int round_away_clamped(float v, int lo, int hi) {
  if (std::isnan(v)) return 0;
  const float r = std::round(v);
  if (r <= static_cast<float>(lo)) return lo;
  if (r >= static_cast<float>(hi)) return hi;
  return static_cast<int>(r);
}

// torch.round semantics (halves to even), clamped to [lo, hi].
int round_even_clamped(float v, int lo, int hi) {
  if (std::isnan(v)) return 0;
  const float r = std::nearbyint(v);
  if (r <= static_cast<float>(lo)) return lo;
  if (r >= static_cast<float>(hi)) return hi;
  return static_cast<int>(r);
}

// The element of largest magnitude, sign kept (the first one on ties, as ggml scans).
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// Q8_0: d = max|x| / 127, q = roundf(x / d) in [−127, 127].
void quantize_block_q8_0(const float* x, uint8_t* out) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_fp16(out, d);
  for (int j = 0; j < 32; ++j) {
    out[2 + j] =
        static_cast<uint8_t>(static_cast<int8_t>(round_away_clamped(x[j] * id, -127, 127)));
  }
}

// Q4_0: d = (signed absmax) / −8 so the extreme maps to q = 0; q = trunc(x / d + 8.5) ≤ 15.
void quantize_block_q4_0(const float* x, uint8_t* out) {
  const float d = signed_absmax(x, 32) / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_fp16(out, d);
  for (int j = 0; j < 16; ++j) {
    const int lo = trunc_clamped(x[j] * id + 8.5f, 15);
    const int hi = trunc_clamped(x[j + 16] * id + 8.5f, 15);
    out[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

// Q5_0: d = (signed absmax) / −16; q = trunc(x / d + 16.5) ≤ 31, fifth bits gathered into qh.
void quantize_block_q5_0(const float* x, uint8_t* out) {
  const float d = signed_absmax(x, 32) / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_fp16(out, d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = trunc_clamped(x[j] * id + 16.5f, 31);
    const int hi = trunc_clamped(x[j + 16] * id + 16.5f, 31);
    out[6 + j] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
    qh |= static_cast<uint32_t>(lo >> 4) << j;
    qh |= static_cast<uint32_t>(hi >> 4) << (j + 16);
  }
  std::memcpy(out + 2, &qh, 4);
}

using BlockQuantizer = void (*)(const float*, uint8_t*);

BlockQuantizer block_quantizer(QuantType type) {
  switch (type) {
    case QuantType::kQ4_0: return quantize_block_q4_0;
    case QuantType::kQ5_0: return quantize_block_q5_0;
    case QuantType::kQ8_0: return quantize_block_q8_0;
    case QuantType::kQ4_K: return quantize_block_q4_k;
    case QuantType::kQ6_K: return quantize_block_q6_k;
    default: return nullptr;
  }
}

Status check_finite(const char* op, const float* src, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(src[r * cols + c])) {
        return invalid_argument(std::string(op) + ": non-finite input at row " + std::to_string(r) +
                                ", column " + std::to_string(c));
      }
    }
  }
  return Status::ok();
}

// Shared argument checks of the group quantizers; returns rows·cols.
Result<uint64_t> check_group_args(const char* op, const float* src, int64_t rows, int64_t cols,
                                  int64_t group_size) {
  if (src == nullptr) return invalid_argument(std::string(op) + ": null input");
  if (rows <= 0 || cols <= 0) {
    return invalid_argument(std::string(op) + ": empty shape [" + std::to_string(rows) + ", " +
                            std::to_string(cols) + "]");
  }
  if (group_size <= 0 || cols % group_size != 0) {
    return invalid_argument(std::string(op) + ": group size " + std::to_string(group_size) +
                            " does not divide the row length " + std::to_string(cols));
  }
  uint64_t n = 0;
  if (!mul_ok(static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), &n) ||
      n > static_cast<uint64_t>(INT64_MAX) / 4) {
    return invalid_argument(std::string(op) + ": shape [" + std::to_string(rows) + ", " +
                            std::to_string(cols) + "] is too large");
  }
  GE_RETURN_IF_ERROR(check_finite(op, src, rows, cols));
  return n;
}

}  // namespace

Status quantize_rows(QuantType type, const float* src, int64_t rows, int64_t cols, uint8_t* dst) {
  if (src == nullptr || dst == nullptr) return invalid_argument("quantize_rows: null buffer");
  if (rows <= 0 || cols <= 0) {
    return invalid_argument("quantize_rows: empty shape [" + std::to_string(rows) + ", " +
                            std::to_string(cols) + "]");
  }
  GE_ASSIGN_OR_RETURN(uint64_t per_row, row_bytes(type, cols));
  uint64_t out_bytes = 0, n = 0;  // n = rows · cols elements
  if (!mul_ok(static_cast<uint64_t>(rows), per_row, &out_bytes) ||
      !mul_ok(static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), &n) ||
      !mul_ok(n, 4, &out_bytes)) {
    return invalid_argument("quantize_rows: shape [" + std::to_string(rows) + ", " +
                            std::to_string(cols) + "] overflows");
  }
  switch (type) {
    case QuantType::kF32: std::memcpy(dst, src, n * 4); return Status::ok();
    case QuantType::kF16:
      for (uint64_t i = 0; i < n; ++i) store_fp16(dst + 2 * i, src[i]);
      return Status::ok();
    case QuantType::kBF16:
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return Status::ok();
    default: break;
  }
  const BlockQuantizer quantize = block_quantizer(type);
  if (quantize == nullptr) {
    return unsupported(std::string("quantize_rows: no quantizer for ") + quant_type_name(type));
  }
  GE_RETURN_IF_ERROR(check_finite("quantize_rows", src, rows, cols));
  const BlockLayout layout = block_layout(type);
  const uint64_t blocks = n / static_cast<uint64_t>(layout.block_elems);
  for (uint64_t b = 0; b < blocks; ++b) {
    quantize(src + b * layout.block_elems, dst + b * layout.block_bytes);
  }
  return Status::ok();
}

Result<Int4GroupData> quantize_int4_group_minmax(const float* src, int64_t rows, int64_t cols,
                                                 int64_t group_size) {
  GE_ASSIGN_OR_RETURN(uint64_t n,
                      check_group_args("quantize_int4_group_minmax", src, rows, cols, group_size));
  if (cols % 2 != 0) {
    return invalid_argument("quantize_int4_group_minmax: row length " + std::to_string(cols) +
                            " is odd; two values share a byte");
  }
  const int64_t groups = cols / group_size;
  Int4GroupData out;
  out.group_size = group_size;
  try {
    out.qdata.assign(n / 2, 0);
    out.scale.resize(static_cast<size_t>(rows * groups));
    out.zero.resize(static_cast<size_t>(rows * groups));
  } catch (const std::bad_alloc&) {
    return out_of_memory("quantize_int4_group_minmax: cannot allocate " + std::to_string(n / 2) +
                         " bytes");
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * cols;
    uint8_t* q = out.qdata.data() + r * (cols / 2);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * group_size, end = begin + group_size;
      float mn = x[begin], mx = x[begin];
      for (int64_t k = begin; k < end; ++k) {
        mn = std::fmin(mn, x[k]);
        mx = std::fmax(mx, x[k]);
      }
      const uint16_t scale_bits = f32_to_bf16(std::fmax(mx - mn, 1e-6f) / 15.0f);
      const float scale = bf16_to_f32(scale_bits);
      const uint16_t zero_bits = f32_to_bf16(-mn / scale);
      const float zero = bf16_to_f32(zero_bits);
      out.scale[g * rows + r] = scale_bits;  // [groups, rows]
      out.zero[g * rows + r] = zero_bits;
      for (int64_t k = begin; k < end; ++k) {
        const int v = round_even_clamped(x[k] / scale + zero, 0, 15);
        q[k / 2] |= static_cast<uint8_t>(k % 2 == 0 ? v : v << 4);
      }
    }
  }
  return out;
}

Result<Int8GroupData> quantize_int8_group_symmetric(const float* src, int64_t rows, int64_t cols,
                                                    int64_t group_size) {
  GE_ASSIGN_OR_RETURN(
      uint64_t n, check_group_args("quantize_int8_group_symmetric", src, rows, cols, group_size));
  const int64_t groups = cols / group_size;
  Int8GroupData out;
  out.group_size = group_size;
  try {
    out.qdata.resize(n);
    out.scale.resize(static_cast<size_t>(rows * groups));
    out.zero.assign(static_cast<size_t>(rows * groups), 0);
  } catch (const std::bad_alloc&) {
    return out_of_memory("quantize_int8_group_symmetric: cannot allocate " + std::to_string(n) +
                         " bytes");
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = src + r * cols + g * group_size;
      float amax = 0.0f;
      for (int64_t k = 0; k < group_size; ++k) amax = std::fmax(amax, std::fabs(x[k]));
      const uint16_t scale_bits = f32_to_bf16(std::fmax(amax / 127.0f, FLT_MIN));
      const float scale = bf16_to_f32(scale_bits);
      out.scale[r * groups + g] = scale_bits;  // [rows, groups]
      int8_t* q = out.qdata.data() + r * cols + g * group_size;
      for (int64_t k = 0; k < group_size; ++k) {
        q[k] = static_cast<int8_t>(round_even_clamped(x[k] / scale, -127, 127));
      }
    }
  }
  return out;
}

QuantWeight int4_group_weight(const Int4GroupData& data, int64_t rows, int64_t cols) {
  QuantWeight w;
  w.type = QuantType::kInt4Group;
  w.rows = rows;
  w.cols = cols;
  w.data = data.qdata.data();
  w.group_size = data.group_size;
  w.scale = data.scale.data();
  w.zero = data.zero.empty() ? nullptr : data.zero.data();
  return w;
}

QuantWeight int8_group_weight(const Int8GroupData& data, int64_t rows, int64_t cols) {
  QuantWeight w;
  w.type = QuantType::kInt8Group;
  w.rows = rows;
  w.cols = cols;
  w.data = reinterpret_cast<const uint8_t*>(data.qdata.data());
  w.group_size = data.group_size;
  w.scale = data.scale.data();
  w.zero = data.zero.empty() ? nullptr : data.zero.data();
  return w;
}

}  // namespace ge
