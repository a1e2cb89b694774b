// Names, block layouts and size/shape checks for every QuantType. All sizes go through checked
// arithmetic because rows/cols usually come straight from a model file header.
#include "quant/quant_type.h"

#include "core/checked_math.h"

namespace ge {
namespace {

bool is_known(QuantType type) {
  return static_cast<uint8_t>(type) <= static_cast<uint8_t>(QuantType::kInt8Group);
}

bool is_group(QuantType type) {
  return type == QuantType::kInt4Group || type == QuantType::kInt8Group;
}

std::string describe(const QuantWeight& w) {
  return std::string(quant_type_name(w.type)) + " [" + std::to_string(w.rows) + ", " +
         std::to_string(w.cols) + "]";
}

}  // namespace

const char* quant_type_name(QuantType type) {
  switch (type) {
    case QuantType::kF32: return "F32";
    case QuantType::kF16: return "F16";
    case QuantType::kBF16: return "BF16";
    case QuantType::kQ4_0: return "Q4_0";
    case QuantType::kQ5_0: return "Q5_0";
    case QuantType::kQ8_0: return "Q8_0";
    case QuantType::kQ4_K: return "Q4_K";
    case QuantType::kQ5_K: return "Q5_K";
    case QuantType::kQ6_K: return "Q6_K";
    case QuantType::kInt4Group: return "INT4_GROUP";
    case QuantType::kInt8Group: return "INT8_GROUP";
  }
  return "unknown";
}

BlockLayout block_layout(QuantType type) {
  switch (type) {
    case QuantType::kF32: return {1, 4};
    case QuantType::kF16: return {1, 2};
    case QuantType::kBF16: return {1, 2};
    case QuantType::kQ4_0: return {32, 2 + 16};
    case QuantType::kQ5_0: return {32, 2 + 4 + 16};
    case QuantType::kQ8_0: return {32, 2 + 32};
    case QuantType::kQ4_K: return {256, 2 + 2 + 12 + 128};
    case QuantType::kQ5_K: return {256, 2 + 2 + 12 + 32 + 128};
    case QuantType::kQ6_K: return {256, 128 + 64 + 16 + 2};
    case QuantType::kInt4Group:
    case QuantType::kInt8Group: return {1, 0};
  }
  return {1, 0};
}

bool is_row_blocked(QuantType type) { return is_known(type) && !is_group(type); }

Result<uint64_t> row_bytes(QuantType type, int64_t cols) {
  if (!is_row_blocked(type)) {
    return invalid_argument(std::string("row_bytes: ") + quant_type_name(type) +
                            " is not a row-blocked encoding");
  }
  if (cols < 0) {
    return invalid_argument("row_bytes: negative column count " + std::to_string(cols));
  }
  const BlockLayout layout = block_layout(type);
  if (cols % layout.block_elems != 0) {
    return invalid_argument(std::string("row_bytes: ") + quant_type_name(type) +
                            " needs the row length to be a multiple of " +
                            std::to_string(layout.block_elems) + ", got " + std::to_string(cols));
  }
  uint64_t bytes = 0;
  if (!mul_ok(static_cast<uint64_t>(cols / layout.block_elems),
              static_cast<uint64_t>(layout.block_bytes), &bytes)) {
    return invalid_argument(std::string("row_bytes: ") + quant_type_name(type) + " row of " +
                            std::to_string(cols) + " elements overflows 64-bit byte counts");
  }
  return bytes;
}

Result<WeightBytes> weight_bytes(const QuantWeight& w) {
  if (!is_known(w.type)) {
    return invalid_argument("weight_bytes: unknown quant type id " +
                            std::to_string(static_cast<int>(w.type)));
  }
  if (w.rows < 0 || w.cols < 0) {
    return invalid_argument("weight_bytes: negative shape in " + describe(w));
  }
  const uint64_t rows = static_cast<uint64_t>(w.rows);
  const uint64_t cols = static_cast<uint64_t>(w.cols);
  WeightBytes out;
  if (is_row_blocked(w.type)) {
    GE_ASSIGN_OR_RETURN(uint64_t per_row, row_bytes(w.type, w.cols));
    if (!mul_ok(rows, per_row, &out.data)) {
      return invalid_argument("weight_bytes: byte size of " + describe(w) + " overflows");
    }
    return out;
  }
  if (w.group_size <= 0 || w.cols % w.group_size != 0) {
    return invalid_argument("weight_bytes: " + describe(w) +
                            " needs a positive group size dividing the row length, got " +
                            std::to_string(w.group_size));
  }
  const uint64_t groups = cols / static_cast<uint64_t>(w.group_size);
  uint64_t n_groups = 0;
  if (!mul_ok(rows, groups, &n_groups) || !mul_ok(n_groups, 2, &out.scale)) {
    return invalid_argument("weight_bytes: scale size of " + describe(w) + " overflows");
  }
  if (w.type == QuantType::kInt4Group) {
    if (cols % 2 != 0) {
      return invalid_argument("weight_bytes: " + describe(w) +
                              " packs two values a byte and needs an even row length");
    }
    if (!mul_ok(rows, cols / 2, &out.data)) {
      return invalid_argument("weight_bytes: byte size of " + describe(w) + " overflows");
    }
    out.zero = w.zero != nullptr ? out.scale : 0;  // bf16, same shape as scale
  } else {
    if (!mul_ok(rows, cols, &out.data)) {
      return invalid_argument("weight_bytes: byte size of " + describe(w) + " overflows");
    }
    out.zero = w.zero != nullptr ? n_groups : 0;  // int8
  }
  return out;
}

Status validate_weight(const QuantWeight& w) {
  if (!is_known(w.type)) {
    return invalid_argument("validate_weight: unknown quant type id " +
                            std::to_string(static_cast<int>(w.type)));
  }
  if (w.rows <= 0 || w.cols <= 0) {
    return invalid_argument("validate_weight: " + describe(w) +
                            " must have at least one row and column");
  }
  if (w.data == nullptr) {
    return invalid_argument("validate_weight: " + describe(w) + " has no data pointer");
  }
  if (is_group(w.type) && w.scale == nullptr) {
    return invalid_argument("validate_weight: " + describe(w) + " has no scale pointer");
  }
  // Checks every size (and the group invariants) without touching memory.
  Result<WeightBytes> sizes = weight_bytes(w);
  if (!sizes.is_ok()) {
    return invalid_argument("validate_weight: " + sizes.status().message());
  }
  return Status::ok();
}

}  // namespace ge
