// Streaming writer of a safetensors file in the torchao layout ExecuTorch's quantize_and_save writes
// (Int4Tensor / IntxUnpackedToInt8Tensor parts `<module>._weight_qdata|_scale|_zero_point`, plain
// tensors under their own name, per-FQN JSON in __metadata__), or of a plain safetensors file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/safetensors_reader.h"

namespace ge::safetensors {

// A file written in place at known offsets (pwrite, from any thread) under a temporary name beside
// its final path, and renamed over that path only by commit(); destroyed uncommitted, it is removed.
class PendingFile {
 public:
  PendingFile() = default;
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  // Creates `path`.tmp-XXXXXX and sizes it to `size` bytes (zero-filled, sparse until written).
  Status create(const std::string& path, uint64_t size);
  // Writes [data, data + bytes) at `offset`; the range must lie inside the declared size.
  Status write_at(uint64_t offset, const void* data, uint64_t bytes) const;
  // Makes the file readable by all, syncs it and renames it over the final path.
  Status commit();
  const std::string& temp_path() const { return tmp_; }

 private:
  void discard();
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_, tmp_;
};

// One tensor of the file: where its bytes go.
struct TensorSlot {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute file offset of the first byte
  uint64_t nbytes = 0;
};

class TorchaoWriter {
 public:
  // `torchao_metadata` false writes a plain safetensors file (add_plain only, no tensor_names).
  explicit TorchaoWriter(bool torchao_metadata = true) : torchao_metadata_(torchao_metadata) {}

  // Declarations, before open(). `fqn` is the logical name ("layers.0.mlp.up_proj.weight").
  // Int4Tensor, weight [n, k], groups of `group_size` along k:
  //   qdata u8 [n, k/2] (even k in the low nibble), scale and zero_point bf16 [k/gs, n].
  Status add_int4(const std::string& fqn, int64_t n, int64_t k, int64_t group_size);
  // IntxUnpackedToInt8Tensor of `bits` (1..8) in int8, weight [n, k]:
  //   qdata i8 [n, k], scale bf16 [n, k/gs], zero_point i8 [n, k/gs].
  Status add_intx(const std::string& fqn, int64_t n, int64_t k, int64_t group_size, int bits = 8);
  // A plain tensor stored under `fqn` (torchao metadata {"_type": "Tensor"}).
  Status add_plain(const std::string& fqn, DType dtype, const std::vector<int64_t>& shape);
  // An extra __metadata__ string (e.g. "format": "pt").
  void set_metadata(const std::string& key, const std::string& value) { extra_metadata_[key] = value; }

  // The stored name of a quantized weight's part: "a.b.weight" + "qdata" → "a.b._weight_qdata".
  static std::string part_name(const std::string& fqn, std::string_view part);

  // Lays the file out (tensors ordered as safetensors' save_file orders them: by dtype, widest first,
  // then by name, which keeps every tensor aligned to its element size), creates the temporary file
  // beside `path` and writes the header. No declarations after this.
  Status open(const std::string& path);
  // Null when `name` was not declared (or before open()).
  const TensorSlot* slot(std::string_view name) const;
  // Writes bytes at `offset` inside a tensor's data; thread-safe for disjoint ranges.
  Status write(const TensorSlot& slot, uint64_t offset, const void* data, uint64_t bytes) const;
  Status commit() { return file_.commit(); }

  // The header JSON (after open()), for tests.
  const std::string& header() const { return header_; }

 private:
  Status declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape);
  Status check_fqn(const std::string& fqn) const;

  bool torchao_metadata_;
  bool opened_ = false;
  std::vector<TensorSlot> slots_;
  std::map<std::string, size_t, std::less<>> index_;
  std::vector<std::string> tensor_names_;           // logical FQNs in declaration order
  std::map<std::string, std::string> fqn_metadata_;  // FQN → torchao JSON entry
  std::map<std::string, std::string> extra_metadata_;
  std::string header_;
  PendingFile file_;
};

}  // namespace ge::safetensors
