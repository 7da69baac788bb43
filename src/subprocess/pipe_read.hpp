// Reading a child's pipe: shared by Pipe's reads and Popen::communicate(). Private to
// src/subprocess/.
#pragma once

#include <cerrno>
#include <string>

#include "os/file.hpp"

namespace mp::subprocess::detail {

/// Reads what is available into `out` (one read call). Returns bytes read, 0 at EOF, -errno.
/// Reads into a stack buffer and appends: no zero-filling of string space that a short
/// read would not use.
inline ssize_t read_some(int fd, std::string& out) {
  char buf[64 * 1024];
  ssize_t n;
  do {
    n = internal::read_from(fd, buf, sizeof buf);
  } while (n == -EINTR);
  if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  return n;
}

}  // namespace mp::subprocess::detail
