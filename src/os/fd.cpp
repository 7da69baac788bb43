// File descriptors: ownership and pipes. See include/mp/internal/fd.hpp.
#include "mp/internal/fd.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace mp::internal {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

int dup_high(int fd, UniqueFd& out) noexcept {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return -errno;
  out.reset(d);
  return 0;
}

int make_pipe(UniqueFd& read_end, UniqueFd& write_end) noexcept {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -errno;
  UniqueFd r(p[0]), w(p[1]);
  // Only possible when this program closed one of 0/1/2: keep the pipe off those numbers.
  if (r.get() < 3)
    if (int e = dup_high(r.get(), r)) return e;
  if (w.get() < 3)
    if (int e = dup_high(w.get(), w)) return e;
  read_end = std::move(r);
  write_end = std::move(w);
  return 0;
}

}  // namespace mp::internal
