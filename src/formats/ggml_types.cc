// ggml type table (ids and block sizes match gguf-py's GGML_QUANT_SIZES) and checked tensor sizes.
#include "formats/ggml_types.h"

#include <array>
#include <limits>
#include <string>

#include "core/checked_math.h"

namespace ge {
namespace {

constexpr uint32_t kNumIds = 42;  // one past the largest known id

constexpr std::array<GgmlTypeInfo, kNumIds> make_table() {
  std::array<GgmlTypeInfo, kNumIds> t{};
  for (auto& e : t) e = GgmlTypeInfo{nullptr, 0, 0};
  auto set = [&t](GgmlType id, const char* name, uint32_t elems, uint32_t bytes) {
    t[ggml_id(id)] = GgmlTypeInfo{name, elems, bytes};
  };
  set(GgmlType::kF32, "F32", 1, 4);
  set(GgmlType::kF16, "F16", 1, 2);
  set(GgmlType::kQ4_0, "Q4_0", 32, 18);
  set(GgmlType::kQ4_1, "Q4_1", 32, 20);
  set(GgmlType::kQ5_0, "Q5_0", 32, 22);
  set(GgmlType::kQ5_1, "Q5_1", 32, 24);
  set(GgmlType::kQ8_0, "Q8_0", 32, 34);
  set(GgmlType::kQ8_1, "Q8_1", 32, 40);
  set(GgmlType::kQ2_K, "Q2_K", 256, 84);
  set(GgmlType::kQ3_K, "Q3_K", 256, 110);
  set(GgmlType::kQ4_K, "Q4_K", 256, 144);
  set(GgmlType::kQ5_K, "Q5_K", 256, 176);
  set(GgmlType::kQ6_K, "Q6_K", 256, 210);
  set(GgmlType::kQ8_K, "Q8_K", 256, 292);
  set(GgmlType::kIQ2_XXS, "IQ2_XXS", 256, 66);
  set(GgmlType::kIQ2_XS, "IQ2_XS", 256, 74);
  set(GgmlType::kIQ3_XXS, "IQ3_XXS", 256, 98);
  set(GgmlType::kIQ1_S, "IQ1_S", 256, 50);
  set(GgmlType::kIQ4_NL, "IQ4_NL", 32, 18);
  set(GgmlType::kIQ3_S, "IQ3_S", 256, 110);
  set(GgmlType::kIQ2_S, "IQ2_S", 256, 82);
  set(GgmlType::kIQ4_XS, "IQ4_XS", 256, 136);
  set(GgmlType::kI8, "I8", 1, 1);
  set(GgmlType::kI16, "I16", 1, 2);
  set(GgmlType::kI32, "I32", 1, 4);
  set(GgmlType::kI64, "I64", 1, 8);
  set(GgmlType::kF64, "F64", 1, 8);
  set(GgmlType::kIQ1_M, "IQ1_M", 256, 56);
  set(GgmlType::kBF16, "BF16", 1, 2);
  set(GgmlType::kTQ1_0, "TQ1_0", 256, 54);
  set(GgmlType::kTQ2_0, "TQ2_0", 256, 66);
  set(GgmlType::kMXFP4, "MXFP4", 32, 17);
  set(GgmlType::kNVFP4, "NVFP4", 64, 36);
  set(GgmlType::kQ1_0, "Q1_0", 128, 18);
  return t;
}

constexpr std::array<GgmlTypeInfo, kNumIds> kTable = make_table();
constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  if (type >= kNumIds || kTable[type].name == nullptr) return nullptr;
  return &kTable[type];
}

const char* ggml_type_name(uint32_t type) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  return info != nullptr ? info->name : "unknown";
}

Result<uint64_t> ggml_row_bytes(uint32_t type, int64_t ne0) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  if (info == nullptr) {
    return unsupported("ggml row size: unknown or removed ggml type id " + std::to_string(type));
  }
  if (ne0 <= 0) {
    return format_error("ggml row size: row length " + std::to_string(ne0) + " must be positive");
  }
  if (static_cast<uint64_t>(ne0) % info->block_elems != 0) {
    return format_error("ggml row size: row length " + std::to_string(ne0) + " is not a multiple of the " +
                        info->name + " block size " + std::to_string(info->block_elems));
  }
  uint64_t bytes;
  if (!mul_ok(static_cast<uint64_t>(ne0) / info->block_elems, info->block_bytes, &bytes) ||
      bytes > kInt64Max) {
    return format_error("ggml row size: " + std::to_string(ne0) + " " + info->name +
                        " elements overflow the byte count");
  }
  return bytes;
}

Result<uint64_t> ggml_tensor_nbytes(uint32_t type, const int64_t* ne, int n_dims) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  if (info == nullptr) {
    return unsupported("ggml tensor size: unknown or removed ggml type id " + std::to_string(type));
  }
  if (n_dims < 1 || n_dims > kGgmlMaxDims || ne == nullptr) {
    return format_error("ggml tensor size: n_dims " + std::to_string(n_dims) + " is outside [1, " +
                        std::to_string(kGgmlMaxDims) + "]");
  }
  for (int i = 0; i < n_dims; ++i) {
    if (ne[i] < 0) {
      return format_error("ggml tensor size: ne[" + std::to_string(i) + "] = " + std::to_string(ne[i]) +
                          " is negative");
    }
  }
  const uint64_t ne0 = static_cast<uint64_t>(ne[0]);
  if (ne0 % info->block_elems != 0) {
    return format_error("ggml tensor size: ne[0] = " + std::to_string(ne[0]) + " is not a multiple of the " +
                        info->name + " block size " + std::to_string(info->block_elems));
  }
  // Element count and byte count are both multiplied with overflow checks and bounded by
  // INT64_MAX at every step (ggml holds them in int64), so (INT64_MAX, 2, 1, 1) cannot wrap.
  uint64_t elems = ne0;
  uint64_t bytes;
  if (!mul_ok(ne0 / info->block_elems, info->block_bytes, &bytes) || bytes > kInt64Max) {
    return format_error("ggml tensor size: ne[0] = " + std::to_string(ne[0]) + " overflows the " + info->name +
                        " byte count");
  }
  for (int i = 1; i < n_dims; ++i) {
    const uint64_t d = static_cast<uint64_t>(ne[i]);
    if (!mul_ok(elems, d, &elems) || elems > kInt64Max) {
      return format_error("ggml tensor size: element count overflows int64 at ne[" + std::to_string(i) +
                          "] = " + std::to_string(ne[i]));
    }
    if (!mul_ok(bytes, d, &bytes) || bytes > kInt64Max) {
      return format_error("ggml tensor size: byte count overflows int64 at ne[" + std::to_string(i) +
                          "] = " + std::to_string(ne[i]));
    }
  }
  return bytes;
}

}  // namespace ge
