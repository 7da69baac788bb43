// mp::subprocess::Pipe: the parent's end of a child's stdin, stdout or stderr.
#include "mp/subprocess.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "os/file.hpp"
#include "os/spawn.hpp"
#include "subprocess/pipe_read.hpp"

namespace mp::subprocess {

using detail::read_some;

void Pipe::write(std::string_view data) {
  if (!fd_) throw ValueError("Pipe.write(): the pipe is closed");
  internal::SigpipeGuard guard;
  while (!data.empty()) {
    ssize_t n = internal::write_to(fd_.get(), data.data(), data.size());
    if (n < 0) {
      if (n == -EINTR) continue;
      if (n == -EAGAIN) {  // left non-blocking by a timed-out communicate()
        pollfd p{fd_.get(), POLLOUT, 0};
        (void)internal::poll_fds(&p, 1, -1);
        continue;
      }
      int e = static_cast<int>(-n);
      if (e == EPIPE) guard.note_epipe();
      throw OSError(e, "Pipe.write() to the child");
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string Pipe::read() {
  if (!fd_) throw ValueError("Pipe.read(): the pipe is closed");
  std::string out = std::move(buffered_);
  buffered_.clear();
  for (;;) {
    ssize_t n = read_some(fd_.get(), out);
    if (n == 0) return out;
    if (n == -EAGAIN) {
      pollfd p{fd_.get(), POLLIN, 0};
      (void)internal::poll_fds(&p, 1, -1);
    } else if (n < 0) {
      throw OSError(static_cast<int>(-n), "Pipe.read() from the child");
    }
  }
}

std::string Pipe::read(std::size_t n) {
  if (!fd_) throw ValueError("Pipe.read(): the pipe is closed");
  while (buffered_.size() < n) {
    ssize_t r = read_some(fd_.get(), buffered_);
    if (r == 0) break;
    if (r == -EAGAIN) {
      pollfd p{fd_.get(), POLLIN, 0};
      (void)internal::poll_fds(&p, 1, -1);
    } else if (r < 0) {
      throw OSError(static_cast<int>(-r), "Pipe.read() from the child");
    }
  }
  std::string out = buffered_.substr(0, std::min(n, buffered_.size()));
  buffered_.erase(0, out.size());
  return out;
}

std::string Pipe::readline() {
  if (!fd_) throw ValueError("Pipe.readline(): the pipe is closed");
  std::size_t scanned = 0;
  for (;;) {
    auto nl = buffered_.find('\n', scanned);
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl + 1);
      buffered_.erase(0, nl + 1);
      return line;
    }
    scanned = buffered_.size();
    ssize_t r = read_some(fd_.get(), buffered_);
    if (r == 0) return std::exchange(buffered_, {});
    if (r == -EAGAIN) {
      pollfd p{fd_.get(), POLLIN, 0};
      (void)internal::poll_fds(&p, 1, -1);
    } else if (r < 0) {
      throw OSError(static_cast<int>(-r), "Pipe.readline() from the child");
    }
  }
}

}  // namespace mp::subprocess
