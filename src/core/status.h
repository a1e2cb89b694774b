// Status / Result<T>: recoverable errors (files, formats, user input) travel as values, never as
// exceptions. Invariant violations use GE_CHECK (always on, aborts with file and line).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace ge {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad user input (flags, requests, values out of range)
  kNotFound,         // missing file, tensor or key
  kIoError,          // open/read/mmap failed
  kFormatError,      // malformed or hostile model file
  kUnsupported,      // valid but not implemented (a model variant, a tensor type)
  kOutOfMemory,      // allocation refused (host or device)
  kInternal,         // a bug surfaced as an error (should not happen)
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "format error: gguf: tensor 'x' ..." — one line, suitable for a CLI error.
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status invalid_argument(std::string message);
Status not_found(std::string message);
Status io_error(std::string message);
Status format_error(std::string message);
Status unsupported(std::string message);
Status out_of_memory(std::string message);
Status internal_error(std::string message);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {       // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).is_ok()) v_ = Status(StatusCode::kInternal, "Result from ok Status");
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return std::get<T>(v_); }

 private:
  std::variant<T, Status> v_;
};

[[noreturn]] void check_failed(const char* file, int line, const char* expr, const std::string& msg);

}  // namespace ge

#define GE_CONCAT_INNER(a, b) a##b
#define GE_CONCAT(a, b) GE_CONCAT_INNER(a, b)

#define GE_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::ge::Status ge_status_ = (expr);            \
    if (!ge_status_.is_ok()) return ge_status_;  \
  } while (0)

#define GE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.is_ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define GE_ASSIGN_OR_RETURN(lhs, expr) \
  GE_ASSIGN_OR_RETURN_IMPL(GE_CONCAT(ge_result_, __LINE__), lhs, expr)

// Always-on invariant check (not for input validation: inputs return Status).
#define GE_CHECK(cond)                                                       \
  do {                                                                       \
    if (!(cond)) ::ge::check_failed(__FILE__, __LINE__, #cond, std::string()); \
  } while (0)
#define GE_CHECK_MSG(cond, msg)                                         \
  do {                                                                  \
    if (!(cond)) ::ge::check_failed(__FILE__, __LINE__, #cond, (msg));  \
  } while (0)
