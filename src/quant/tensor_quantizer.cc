// Chunked, multithreaded quantization of one tensor: each worker decodes its source rows to fp32,
// encodes them with the quantizers of quantize.h / hqq.h, measures the reconstruction error against
// the fp32 rows, and hands the encoded chunk to the sink.
#include "quant/tensor_quantizer.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "core/checked_math.h"
#include "quant/dequantize.h"
#include "quant/quantize.h"

namespace ge {
namespace {

bool is_float_type(QuantType t) { return t == QuantType::kF32 || t == QuantType::kF16 || t == QuantType::kBF16; }

std::string shape_text(int64_t rows, int64_t cols) {
  return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

// Adds the error of the encoded rows against their fp32 source to `stats`.
void measure(const QuantWeight& encoded, const float* src, std::vector<float>* row, QuantStats* stats) {
  row->resize(static_cast<size_t>(encoded.cols));
  for (int64_t r = 0; r < encoded.rows; ++r) {
    dequantize_row(encoded, r, row->data());
    const float* x = src + r * encoded.cols;
    for (int64_t c = 0; c < encoded.cols; ++c) {
      const double v = x[c];
      const double e = v - static_cast<double>((*row)[static_cast<size_t>(c)]);
      stats->signal += v * v;
      stats->noise += e * e;
      stats->max_abs_error = std::max(stats->max_abs_error, std::fabs(e));
    }
  }
  stats->elements += encoded.rows * encoded.cols;
}

// Everything one worker needs for one chunk; buffers are reused across the worker's chunks.
struct ChunkWork {
  std::vector<float> fp32;
  std::vector<float> row;
  std::vector<uint8_t> blocks;
};

Status encode_chunk(const QuantWeight& src, const QuantTarget& target, int64_t row0, int64_t rows,
                    const ChunkSink& sink, ChunkWork* work, QuantStats* stats) {
  const int64_t cols = src.cols;
  work->fp32.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) dequantize_row(src, row0 + r, work->fp32.data() + r * cols);
  const float* x = work->fp32.data();
  QuantWeight encoded;
  if (target.type == QuantType::kInt4Group) {
    Result<Int4GroupData> q = target.method == QuantMethod::kHqq
                                  ? quantize_int4_group_hqq(x, rows, cols, target.group_size, target.hqq)
                                  : quantize_int4_group_minmax(x, rows, cols, target.group_size);
    if (!q.is_ok()) return q.status();
    encoded = int4_group_weight(*q, rows, cols);
    measure(encoded, x, &work->row, stats);
    return sink(row0, encoded);
  }
  if (target.type == QuantType::kInt8Group) {
    Result<Int8GroupData> q = quantize_int8_group_symmetric(x, rows, cols, target.group_size);
    if (!q.is_ok()) return q.status();
    encoded = int8_group_weight(*q, rows, cols);
    measure(encoded, x, &work->row, stats);
    return sink(row0, encoded);
  }
  GE_ASSIGN_OR_RETURN(uint64_t per_row, row_bytes(target.type, cols));
  work->blocks.resize(static_cast<size_t>(per_row) * static_cast<size_t>(rows));
  GE_RETURN_IF_ERROR(quantize_rows(target.type, x, rows, cols, work->blocks.data()));
  encoded.type = target.type;
  encoded.rows = rows;
  encoded.cols = cols;
  encoded.data = work->blocks.data();
  measure(encoded, x, &work->row, stats);
  return sink(row0, encoded);
}

}  // namespace

double QuantStats::snr_db() const {
  if (signal == 0.0) return 0.0;
  if (noise == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

void QuantStats::merge(const QuantStats& o) {
  signal += o.signal;
  noise += o.noise;
  max_abs_error = std::max(max_abs_error, o.max_abs_error);
  elements += o.elements;
}

Status check_quant_target(const QuantTarget& t, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return invalid_argument("quantize: empty shape " + shape_text(rows, cols));
  if (t.type == QuantType::kInt4Group || t.type == QuantType::kInt8Group) {
    const char* what = t.type == QuantType::kInt4Group ? "INT4" : "INT8";
    if (t.group_size <= 0 || cols % t.group_size != 0) {
      return invalid_argument(std::string("quantize: ") + what + " group size " + std::to_string(t.group_size) +
                              " does not divide the row length of " + shape_text(rows, cols));
    }
    if (t.type == QuantType::kInt4Group && cols % 2 != 0) {
      return invalid_argument("quantize: INT4 packs two values a byte and needs an even row length, got " +
                              shape_text(rows, cols));
    }
    return Status::ok();
  }
  if (t.type == QuantType::kQ5_K) return unsupported("quantize: no quantizer for Q5_K");
  Result<uint64_t> rb = row_bytes(t.type, cols);
  if (!rb.is_ok()) return invalid_argument("quantize: " + shape_text(rows, cols) + ": " + rb.status().message());
  return Status::ok();
}

Status quantize_tensor(const QuantWeight& src, const QuantTarget& target, ThreadPool& pool, const ChunkSink& sink,
                       QuantStats* stats, const TensorQuantizeOptions& options) {
  if (!is_float_type(src.type)) {
    return invalid_argument(std::string("quantize: the source must be F32, F16 or BF16, got ") +
                            quant_type_name(src.type));
  }
  GE_RETURN_IF_ERROR(validate_weight(src));
  GE_RETURN_IF_ERROR(check_quant_target(target, src.rows, src.cols));
  GE_ASSIGN_OR_RETURN(const uint64_t src_row_bytes, row_bytes(src.type, src.cols));
  const int64_t chunk_rows =
      options.chunk_rows > 0 ? options.chunk_rows : std::max<int64_t>(1, kDefaultChunkElems / src.cols);
  const int64_t n_chunks = (src.rows + chunk_rows - 1) / chunk_rows;

  std::vector<QuantStats> chunk_stats;
  try {
    chunk_stats.resize(static_cast<size_t>(n_chunks));
  } catch (const std::bad_alloc&) {
    return out_of_memory("quantize: cannot allocate per-chunk statistics");
  }
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error;
  pool.parallel_for(n_chunks, 1, [&](int64_t begin, int64_t end) {
    ChunkWork work;
    for (int64_t c = begin; c < end && !failed.load(std::memory_order_relaxed); ++c) {
      const int64_t row0 = c * chunk_rows;
      const int64_t rows = std::min(chunk_rows, src.rows - row0);
      Status s;
      try {
        s = encode_chunk(src, target, row0, rows, sink, &work, &chunk_stats[static_cast<size_t>(c)]);
      } catch (const std::bad_alloc&) {
        s = out_of_memory("quantize: out of memory encoding rows " + std::to_string(row0) + ".." +
                          std::to_string(row0 + rows));
      }
      if (options.release_source) {
        options.release_source(src.data + static_cast<uint64_t>(row0) * src_row_bytes,
                               static_cast<uint64_t>(rows) * src_row_bytes);
      }
      if (!s.is_ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!failed.exchange(true)) first_error = s;
      }
    }
  });
  if (failed.load()) return first_error;
  if (stats != nullptr) {
    // Merged in chunk order: the sums do not depend on how chunks were spread over threads.
    for (const QuantStats& s : chunk_stats) stats->merge(s);
  }
  return Status::ok();
}

}  // namespace ge
