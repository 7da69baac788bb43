// mp/internal/fd.hpp — a move-only owner for one file descriptor.
#pragma once

#include <utility>

namespace mp::internal {

/// Owns a file descriptor and closes it once. -1 means "none".
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// pipe2(O_CLOEXEC): `read_end` reads what `write_end` writes. Both ends are moved to
/// descriptors >= 3, so a dup2 onto 0/1/2 in a child never clobbers a source.
/// 0 or -errno.
[[nodiscard]] int make_pipe(UniqueFd& read_end, UniqueFd& write_end) noexcept;
/// F_DUPFD_CLOEXEC to a descriptor >= 3. 0 or -errno.
[[nodiscard]] int dup_high(int fd, UniqueFd& out) noexcept;

}  // namespace mp::internal
