// Reading a child's pipe: shared by Pipe's reads and Popen::communicate(). Private to
// src/subprocess/.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace mp::subprocess::detail {

/// Reads what is available into `out` (one read call). Returns bytes read, 0 at EOF, -errno.
/// Reads into a stack buffer and appends: no zero-filling of string space that a short
/// read would not use.
inline ssize_t read_some(int fd, std::string& out) {
  char buf[64 * 1024];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  return n < 0 ? -errno : n;
}

}  // namespace mp::subprocess::detail
