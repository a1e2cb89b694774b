// Quantizes one whole weight matrix in fixed chunks of rows on a thread pool, handing each encoded
// chunk to a sink as soon as it is done, so that neither the fp32 copy nor the output of a large
// tensor is ever held whole (`gemma quantize` streams 31B checkpoints through this).
#pragma once

#include <cstdint>
#include <functional>

#include "core/status.h"
#include "core/thread_pool.h"
#include "quant/hqq.h"
#include "quant/quant_type.h"
#include "quant/quantize_recipe.h"

namespace ge {

// The encoding to produce.
struct QuantTarget {
  QuantType type = QuantType::kInt4Group;  // kInt4Group, kInt8Group or a row-blocked type quantize_rows writes
  int64_t group_size = 32;                 // kInt4Group / kInt8Group
  QuantMethod method = QuantMethod::kMinMax;  // kInt4Group only
  HqqOptions hqq;
};

// Reconstruction error of one tensor, accumulated in double over every element.
struct QuantStats {
  double signal = 0.0;  // Σ x²
  double noise = 0.0;   // Σ (x − dequant(q(x)))²
  double max_abs_error = 0.0;
  int64_t elements = 0;
  // 10·log10(signal / noise); +inf for an exact encoding, 0 for an all-zero tensor.
  double snr_db() const;
  void merge(const QuantStats& other);
};

// A chunk of encoded rows [row0, row0 + chunk.rows) of the tensor, as an independent weight view:
// for kInt4Group its scale/zero are [groups, chunk.rows] (groups first, like the whole tensor's);
// for kInt8Group [chunk.rows, groups]; row-blocked types have data only. The views are valid for
// the duration of the call. Calls come from worker threads, concurrently, each chunk exactly once.
using ChunkSink = std::function<Status(int64_t row0, const QuantWeight& chunk)>;

struct TensorQuantizeOptions {
  // Rows per chunk: a fixed count (not derived from the thread count) so HQQ, whose early stop looks
  // at the mean error of its whole input, gives the same bytes for any number of threads.
  // 0 = as many rows as fit in kDefaultChunkElems.
  int64_t chunk_rows = 0;
  // Called after a chunk's source rows are no longer needed, with their bytes (e.g. to drop mapped
  // pages from the resident set). Optional; called from worker threads.
  std::function<void(const uint8_t* begin, uint64_t bytes)> release_source;
};

inline constexpr int64_t kDefaultChunkElems = int64_t{1} << 20;  // 4 MB of fp32 per chunk in flight

// Encodes `src` (F32, F16 or BF16, [rows, cols]) into `target`, calling `sink` per chunk and filling
// `stats` (may be null). Errors: a source that is not a float type, a shape the target cannot hold
// (cols not a multiple of the block / group), non-finite input, or the first error a sink returns.
Status quantize_tensor(const QuantWeight& src, const QuantTarget& target, ThreadPool& pool, const ChunkSink& sink,
                       QuantStats* stats, const TensorQuantizeOptions& options = {});

// Checks that `target` can encode a [rows, cols] matrix, with a message naming the constraint.
Status check_quant_target(const QuantTarget& target, int64_t rows, int64_t cols);

}  // namespace ge
