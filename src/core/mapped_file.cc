// POSIX mmap wrapper.
#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ge {

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(o.data_), size_(o.size_), locked_(o.locked_), path_(std::move(o.path_)) {
  o.data_ = nullptr;
  o.size_ = 0;
  o.locked_ = false;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    release();
    data_ = o.data_;
    size_ = o.size_;
    locked_ = o.locked_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
    o.locked_ = false;
  }
  return *this;
}

void MappedFile::release() {
  if (data_ != nullptr) {
    if (locked_) munlock(const_cast<uint8_t*>(data_), size_);
    munmap(const_cast<uint8_t*>(data_), size_);
  }
  data_ = nullptr;
  size_ = 0;
  locked_ = false;
}

Result<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found("cannot open '" + path + "': no such file");
    return io_error("cannot open '" + path + "': " + std::strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return io_error("cannot stat '" + path + "': " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument("'" + path + "' is not a regular file");
  }
  MappedFile mf;
  mf.path_ = path;
  mf.size_ = static_cast<uint64_t>(st.st_size);
  if (mf.size_ > 0) {
    void* p = mmap(nullptr, mf.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return io_error("cannot mmap '" + path + "': " + std::strerror(e));
    }
    mf.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return mf;
}

Status MappedFile::lock() {
  if (data_ == nullptr || locked_) return Status::ok();
  if (mlock(data_, size_) != 0) {
    return io_error("mlock of '" + path_ + "' (" + std::to_string(size_ >> 20) +
                    " MiB) failed: " + std::strerror(errno) +
                    "; raise RLIMIT_MEMLOCK (ulimit -l) or run without --mlock");
  }
  locked_ = true;
  return Status::ok();
}

void MappedFile::advise_sequential() const {
  if (data_ != nullptr) madvise(const_cast<uint8_t*>(data_), size_, MADV_SEQUENTIAL | MADV_WILLNEED);
}

Result<std::string> read_text_file(const std::string& path, uint64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open '" + path + "'");
  in.seekg(0, std::ios::end);
  std::streamoff n = in.tellg();
  if (n < 0) return io_error("cannot read '" + path + "'");
  if (static_cast<uint64_t>(n) > max_bytes)
    return invalid_argument("'" + path + "' is larger than " + std::to_string(max_bytes) + " bytes");
  in.seekg(0, std::ios::beg);
  std::string s(static_cast<size_t>(n), '\0');
  if (n > 0 && !in.read(s.data(), n)) return io_error("cannot read '" + path + "'");
  return s;
}

}  // namespace ge
