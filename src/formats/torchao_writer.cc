// torchao safetensors writer: the header is fixed up front from the declared shapes, then tensor
// bytes are written in place as they are produced, so a checkpoint of any size streams through a
// bounded amount of memory. Metadata strings are spelled as torchao's json.dumps spells them.
#include "formats/torchao_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/checked_math.h"

namespace ge::safetensors {
namespace {

using nlohmann::json;

// safetensors' Dtype enum order (save_file sorts tensors by dtype, descending, then by name).
int dtype_rank(DType d) {
  switch (d) {
    case DType::kBool: return 0;
    case DType::kU8: return 1;
    case DType::kI8: return 2;
    case DType::kF8E5M2: return 3;
    case DType::kF8E4M3: return 4;
    case DType::kI16: return 5;
    case DType::kU16: return 6;
    case DType::kF16: return 7;
    case DType::kBF16: return 8;
    case DType::kI32: return 9;
    case DType::kU32: return 10;
    case DType::kF32: return 11;
    case DType::kF64: return 12;
    case DType::kI64: return 13;
    case DType::kU64: return 14;
  }
  return 0;
}

std::string json_string(const std::string& s) { return json(s).dump(); }

std::string int_list(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string torch_dtype(const char* name) {
  return std::string("{\"_type\": \"torch.dtype\", \"_data\": \"") + name + "\"}";
}

constexpr const char* kPartNames = "[\"qdata\", \"scale\", \"zero_point\"]";

}  // namespace

// ---------------------------------------------------------------- PendingFile

PendingFile::~PendingFile() { discard(); }

void PendingFile::discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = -1;
  }
}

Status PendingFile::create(const std::string& path, uint64_t size) {
  discard();
  path_ = path;
  tmp_ = path + ".tmp-XXXXXX";
  fd_ = ::mkstemp(tmp_.data());
  if (fd_ < 0) {
    return io_error("writing '" + path + "': cannot create a temporary file beside it: " + std::strerror(errno));
  }
  if (size > static_cast<uint64_t>(INT64_MAX) || ::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    const int e = errno;
    discard();
    return io_error("writing '" + path + "': cannot size the temporary file to " + std::to_string(size) +
                    " bytes: " + std::strerror(e));
  }
  size_ = size;
  return Status::ok();
}

Status PendingFile::write_at(uint64_t offset, const void* data, uint64_t bytes) const {
  if (fd_ < 0) return internal_error("PendingFile::write_at: the file is not open");
  if (!range_ok(offset, bytes, size_)) {
    return internal_error("PendingFile::write_at: [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                          ") is outside the " + std::to_string(size_) + "-byte file");
  }
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    const size_t chunk = bytes > (1u << 30) ? (1u << 30) : static_cast<size_t>(bytes);
    const ssize_t w = ::pwrite(fd_, p, chunk, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("writing '" + tmp_ + "': " + std::strerror(errno));
    }
    if (w == 0) return io_error("writing '" + tmp_ + "': no progress (disk full?)");
    p += w;
    offset += static_cast<uint64_t>(w);
    bytes -= static_cast<uint64_t>(w);
  }
  return Status::ok();
}

Status PendingFile::commit() {
  if (fd_ < 0) return internal_error("PendingFile::commit: the file is not open");
  // mkstemp creates the file 0600; a model file is an ordinary readable file.
  if (::fchmod(fd_, 0644) != 0 || ::fsync(fd_) != 0) {
    const int e = errno;
    discard();
    return io_error("writing '" + path_ + "': cannot finish the temporary file: " + std::strerror(e));
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp_.c_str());
    return io_error("writing '" + path_ + "': cannot close the temporary file: " + std::strerror(e));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp_.c_str());
    return io_error("cannot rename '" + tmp_ + "' to '" + path_ + "': " + std::strerror(e));
  }
  return Status::ok();
}

// ---------------------------------------------------------------- TorchaoWriter

std::string TorchaoWriter::part_name(const std::string& fqn, std::string_view part) {
  const size_t dot = fqn.rfind('.');
  return fqn.substr(0, dot) + "._" + fqn.substr(dot + 1) + "_" + std::string(part);
}

Status TorchaoWriter::check_fqn(const std::string& fqn) const {
  if (opened_) return internal_error("torchao writer: '" + fqn + "' declared after open()");
  if (fqn.empty() || fqn == "__metadata__") return invalid_argument("torchao writer: invalid tensor name '" + fqn + "'");
  if (fqn_metadata_.count(fqn) != 0) return invalid_argument("torchao writer: '" + fqn + "' declared twice");
  return Status::ok();
}

Status TorchaoWriter::declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  if (index_.count(name) != 0) return invalid_argument("torchao writer: tensor '" + name + "' declared twice");
  uint64_t nbytes = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0 || !mul_ok(nbytes, static_cast<uint64_t>(d), &nbytes)) {
      return invalid_argument("torchao writer: tensor '" + name + "' has a negative or overflowing shape");
    }
  }
  index_.emplace(name, slots_.size());
  slots_.push_back(TensorSlot{name, dtype, shape, 0, nbytes});
  return Status::ok();
}

Status TorchaoWriter::add_int4(const std::string& fqn, int64_t n, int64_t k, int64_t group_size) {
  GE_RETURN_IF_ERROR(check_fqn(fqn));
  if (!torchao_metadata_) return invalid_argument("torchao writer: a plain safetensors file holds no Int4Tensor");
  if (fqn.find('.') == std::string::npos) return invalid_argument("torchao writer: '" + fqn + "' is not <module>.<attr>");
  if (n <= 0 || k <= 0 || k % 2 != 0 || group_size <= 0 || k % group_size != 0) {
    return invalid_argument("torchao writer: Int4Tensor '" + fqn + "' [" + std::to_string(n) + ", " +
                            std::to_string(k) + "] needs an even K divisible by the group size " +
                            std::to_string(group_size));
  }
  const int64_t groups = k / group_size;
  GE_RETURN_IF_ERROR(declare(part_name(fqn, "qdata"), DType::kU8, {n, k / 2}));
  GE_RETURN_IF_ERROR(declare(part_name(fqn, "scale"), DType::kBF16, {groups, n}));
  GE_RETURN_IF_ERROR(declare(part_name(fqn, "zero_point"), DType::kBF16, {groups, n}));
  tensor_names_.push_back(fqn);
  fqn_metadata_[fqn] = std::string("{\"_type\": \"Int4Tensor\", \"_data\": {\"activation_dtype\": ") +
                       torch_dtype("bfloat16") + ", \"block_size\": " + int_list({1, group_size}) +
                       ", \"shape\": " + int_list({n, k}) + "}, \"_tensor_data_names\": " + kPartNames + "}";
  return Status::ok();
}

Status TorchaoWriter::add_intx(const std::string& fqn, int64_t n, int64_t k, int64_t group_size, int bits) {
  GE_RETURN_IF_ERROR(check_fqn(fqn));
  if (!torchao_metadata_) return invalid_argument("torchao writer: a plain safetensors file holds no IntxTensor");
  if (fqn.find('.') == std::string::npos) return invalid_argument("torchao writer: '" + fqn + "' is not <module>.<attr>");
  if (bits < 1 || bits > 8) return invalid_argument("torchao writer: '" + fqn + "' bits must be 1..8");
  if (n <= 0 || k <= 0 || group_size <= 0 || k % group_size != 0) {
    return invalid_argument("torchao writer: IntxUnpackedToInt8Tensor '" + fqn + "' [" + std::to_string(n) + ", " +
                            std::to_string(k) + "] needs K divisible by the group size " + std::to_string(group_size));
  }
  const int64_t groups = k / group_size;
  GE_RETURN_IF_ERROR(declare(part_name(fqn, "qdata"), DType::kI8, {n, k}));
  GE_RETURN_IF_ERROR(declare(part_name(fqn, "scale"), DType::kBF16, {n, groups}));
  GE_RETURN_IF_ERROR(declare(part_name(fqn, "zero_point"), DType::kI8, {n, groups}));
  tensor_names_.push_back(fqn);
  const std::string target = "int" + std::to_string(bits);
  fqn_metadata_[fqn] = std::string("{\"_type\": \"IntxUnpackedToInt8Tensor\", \"_data\": {\"target_dtype\": ") +
                       torch_dtype(target.c_str()) + ", \"block_size\": " + int_list({1, group_size}) +
                       ", \"dtype\": " + torch_dtype("bfloat16") +
                       ", \"activation_quantization\": null}, \"_tensor_data_names\": " + kPartNames + "}";
  return Status::ok();
}

Status TorchaoWriter::add_plain(const std::string& fqn, DType dtype, const std::vector<int64_t>& shape) {
  GE_RETURN_IF_ERROR(check_fqn(fqn));
  GE_RETURN_IF_ERROR(declare(fqn, dtype, shape));
  tensor_names_.push_back(fqn);
  fqn_metadata_[fqn] = "{\"_type\": \"Tensor\"}";
  return Status::ok();
}

Status TorchaoWriter::open(const std::string& path) {
  if (opened_) return internal_error("torchao writer: open() called twice");
  opened_ = true;
  std::vector<size_t> order(slots_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const TensorSlot& x = slots_[a];
    const TensorSlot& y = slots_[b];
    if (dtype_rank(x.dtype) != dtype_rank(y.dtype)) return dtype_rank(x.dtype) > dtype_rank(y.dtype);
    return x.name < y.name;
  });
  json header = json::object();
  json meta = json::object();
  if (torchao_metadata_) {
    std::string names = "[";
    for (size_t i = 0; i < tensor_names_.size(); ++i) names += (i ? ", " : "") + json_string(tensor_names_[i]);
    meta["tensor_names"] = names + "]";
    for (const auto& [fqn, entry] : fqn_metadata_) meta[fqn] = entry;
  }
  for (const auto& [k, v] : extra_metadata_) meta[k] = v;
  if (!meta.empty()) header["__metadata__"] = meta;
  uint64_t offset = 0;  // relative to the data section
  for (size_t i : order) {
    TensorSlot& s = slots_[i];
    uint64_t end;
    if (!add_ok(offset, s.nbytes, &end)) return invalid_argument("torchao writer: total size overflows");
    header[s.name] = {{"dtype", dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, end}}};
    s.offset = offset;
    offset = end;
  }
  header_ = header.dump();
  // The header is padded with spaces to a multiple of 8 so the data section starts aligned.
  header_.resize((header_.size() + 7) / 8 * 8, ' ');
  const uint64_t data_start = 8 + header_.size();
  uint64_t total;
  if (!add_ok(data_start, offset, &total)) return invalid_argument("torchao writer: total size overflows");
  for (TensorSlot& s : slots_) s.offset += data_start;
  GE_RETURN_IF_ERROR(file_.create(path, total));
  const uint64_t n = header_.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  GE_RETURN_IF_ERROR(file_.write_at(0, len, 8));
  return file_.write_at(8, header_.data(), n);
}

const TensorSlot* TorchaoWriter::slot(std::string_view name) const {
  if (!opened_) return nullptr;
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &slots_[it->second];
}

Status TorchaoWriter::write(const TensorSlot& s, uint64_t offset, const void* data, uint64_t bytes) const {
  if (!range_ok(offset, bytes, s.nbytes)) {
    return internal_error("torchao writer: write of " + std::to_string(bytes) + " bytes at " + std::to_string(offset) +
                          " overruns tensor '" + s.name + "' (" + std::to_string(s.nbytes) + " bytes)");
  }
  return file_.write_at(s.offset + offset, data, bytes);
}

}  // namespace ge::safetensors
