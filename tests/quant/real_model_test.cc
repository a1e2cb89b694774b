// Decoders on the real Gemma 3 270M Q4_K_M GGUF (path in GE_TEST_MODEL): sampled rows of a Q6_K,
// a Q4_K, a Q5_0 and a Q8_0 tensor must decode bit-exactly to gguf.quants' values. Tensor offsets
// come from the fixture (gemma3_270m_rows.bin, written by scripts/gen_quant_fixtures.py).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/checked_math.h"
#include "core/mapped_file.h"
#include "quant/dequantize.h"
#include "quant_fixture.h"

namespace ge {
namespace {

using testing::ByteCursor;
using testing::float_bits;

struct SampledRow {
  uint32_t row = 0;
  uint64_t hash = 0;
  std::vector<float> values;
};

struct SampledTensor {
  std::string name;
  QuantType type = QuantType::kF32;
  uint32_t rows = 0, cols = 0;
  uint64_t offset = 0;
  std::vector<SampledRow> samples;
};

std::string load_model_fixture(uint64_t* file_size, std::vector<SampledTensor>* out) {
  const std::string path = testing::quant_data_path("gemma3_270m_rows.bin");
  const std::vector<uint8_t> bytes = testing::read_file_bytes(path);
  if (bytes.empty()) return "cannot read " + path;
  ByteCursor cur(bytes);
  const uint8_t* magic = cur.take(4);
  if (magic == nullptr || std::memcmp(magic, "GEQR", 4) != 0) return path + ": bad magic";
  const uint32_t version = cur.read<uint32_t>();
  *file_size = cur.read<uint64_t>();
  const uint32_t n_tensors = cur.read<uint32_t>();
  cur.read<uint32_t>();
  if (!cur.ok() || version != 1 || n_tensors > 64) return path + ": bad header";
  for (uint32_t t = 0; t < n_tensors; ++t) {
    SampledTensor st;
    const uint8_t* name = cur.take(64);
    if (name == nullptr) return path + ": truncated";
    st.name.assign(reinterpret_cast<const char*>(name),
                   strnlen(reinterpret_cast<const char*>(name), 64));
    const auto type = testing::quant_type_from_ggml(cur.read<uint32_t>());
    st.rows = cur.read<uint32_t>();
    st.cols = cur.read<uint32_t>();
    const uint32_t n_samples = cur.read<uint32_t>();
    st.offset = cur.read<uint64_t>();
    if (!cur.ok() || !type || n_samples > 16 || st.cols > (1u << 20))
      return path + ": bad entry " + st.name;
    st.type = *type;
    st.samples.resize(n_samples);
    for (SampledRow& s : st.samples) {
      s.row = cur.read<uint32_t>();
      cur.read<uint32_t>();
      s.hash = cur.read<uint64_t>();
    }
    for (SampledRow& s : st.samples) s.values = cur.read_array<float>(st.cols);
    if (!cur.ok()) return path + ": truncated entry " + st.name;
    out->push_back(std::move(st));
  }
  return cur.remaining() == 0 ? "" : path + ": trailing bytes";
}

TEST(RealModel, SampledRowsDecodeBitExactly) {
  const char* model_path = std::getenv("GE_TEST_MODEL");
  if (model_path == nullptr || *model_path == '\0') {
    GTEST_SKIP() << "GE_TEST_MODEL is not set (path to gemma-3-270m Q4_K_M GGUF)";
  }
  Result<MappedFile> file = MappedFile::open(model_path);
  ASSERT_TRUE(file.is_ok()) << "GE_TEST_MODEL=" << model_path
                            << " cannot be read: " << file.status().to_string();
  uint64_t expected_size = 0;
  std::vector<SampledTensor> tensors;
  ASSERT_EQ(load_model_fixture(&expected_size, &tensors), "");
  ASSERT_EQ(tensors.size(), 4u);
  ASSERT_EQ(file->size(), expected_size)
      << model_path << " is not the Gemma 3 270M Q4_K_M file the fixture was made from";

  bool seen[4] = {};  // Q6_K, Q4_K, Q5_0, Q8_0 are all covered
  for (const SampledTensor& t : tensors) {
    SCOPED_TRACE(t.name);
    seen[0] |= t.type == QuantType::kQ6_K;
    seen[1] |= t.type == QuantType::kQ4_K;
    seen[2] |= t.type == QuantType::kQ5_0;
    seen[3] |= t.type == QuantType::kQ8_0;
    QuantWeight w;
    w.type = t.type;
    w.rows = t.rows;
    w.cols = t.cols;
    ASSERT_TRUE(weight_bytes(w).is_ok());
    const uint64_t nbytes = weight_bytes(w)->data;
    ASSERT_TRUE(range_ok(t.offset, nbytes, file->size())) << "tensor lies outside the file";
    w.data = file->data() + t.offset;
    ASSERT_TRUE(validate_weight(w).is_ok());
    const uint64_t per_row = row_bytes(t.type, t.cols).value();
    std::vector<float> row(t.cols);
    for (const SampledRow& s : t.samples) {
      ASSERT_LT(s.row, t.rows);
      EXPECT_EQ(testing::fnv1a64(w.data + s.row * per_row, per_row), s.hash)
          << "row " << s.row << " bytes differ from the fixture's model";
      dequantize_row(w, s.row, row.data());
      int mismatches = 0;
      for (uint32_t k = 0; k < t.cols; ++k) {
        if (float_bits(row[k]) != float_bits(s.values[k]) && ++mismatches <= 3) {
          ADD_FAILURE() << quant_type_name(t.type) << " row " << s.row << " col " << k << ": got "
                        << row[k] << ", gguf " << s.values[k];
        }
      }
      EXPECT_EQ(mismatches, 0) << "row " << s.row;
      // Spot-check the dot product on the real row: Σ w·1 is the row sum.
      std::vector<float> ones(t.cols, 1.0f);
      double sum = 0;
      for (float v : s.values) sum += v;
      EXPECT_EQ(dot_row(w, s.row, ones.data()), static_cast<float>(sum));
    }
  }
  for (bool s : seen) EXPECT_TRUE(s);
}

}  // namespace
}  // namespace ge
