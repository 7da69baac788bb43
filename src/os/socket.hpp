// src/os/socket.hpp — the system calls behind mp::Connection, Listener and Client.
//
// Thin, noexcept wrappers: each returns a count or 0 on success and -errno on failure
// (never throws, never allocates). EINTR is retried here (PEP 475, as CPython does). A
// `Deadline` (absolute CLOCK_MONOTONIC, nullopt = forever) bounds every wait; when it
// passes the call returns -ETIMEDOUT. Descriptors are created close-on-exec.
//
// SIGPIPE: socket writes use send(MSG_NOSIGNAL). A write to a pipe whose readers are all
// gone would raise SIGPIPE, and blocking it around each write costs two extra system
// calls per message (measured: 4x slower for 64-byte frames), so pipe-based connections
// call ignore_sigpipe_if_default() once instead — CPython does the same at start-up.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "mp/internal/fd.hpp"
#include "mp/internal/futex.hpp"

struct pollfd;

namespace mp::internal {

/// What a descriptor is, as far as framing and fd passing care.
enum class FdKind { other, unix_socket, inet_socket };
[[nodiscard]] FdKind fd_kind(int fd) noexcept;

/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC).
[[nodiscard]] int make_socketpair(UniqueFd& a, UniqueFd& b) noexcept;

/// If SIGPIPE still has its default action (kill the process), set it to SIG_IGN so a
/// write to a broken pipe fails with EPIPE instead. A handler or an ignore the program
/// installed itself is left alone. Runs the check once per process.
void ignore_sigpipe_if_default() noexcept;

/// Waits until `fd` is readable (or hung up). 1: ready, -ETIMEDOUT, or -errno.
[[nodiscard]] int wait_readable(int fd, Deadline deadline) noexcept;
/// poll(2) over `fds` until one is ready or the deadline passes: the number of ready
/// entries (0 once the deadline has passed), or -errno.
[[nodiscard]] int poll_until(pollfd* fds, std::size_t n, Deadline deadline) noexcept;

/// One read of up to `n` bytes: > 0 bytes read, 0 at end of file, or -errno. Waits for
/// data first when `deadline` is set, or when the descriptor is non-blocking.
[[nodiscard]] ssize_t read_some_slow(int fd, void* buf, std::size_t n, Deadline deadline) noexcept;
// The common case (blocking, no deadline) inline: every call level between the program
// and the system call costs measurable latency after a context switch (ping-pong tests).
[[nodiscard]] inline ssize_t read_some(int fd, void* buf, std::size_t n, Deadline deadline) noexcept {
  if (!deadline) {
    ssize_t r = ::read(fd, buf, n);
    if (r >= 0) [[likely]]
      return r;
    if (errno != EINTR && errno != EAGAIN) return -errno;
  }
  return read_some_slow(fd, buf, n, deadline);
}

/// One read of up to `n` bytes that never waits (preadv2 with RWF_NOWAIT, so it works on
/// a blocking descriptor): > 0 bytes read, 0 at end of file, -EAGAIN when nothing is
/// there yet, -EOPNOTSUPP when the kernel cannot do it for this descriptor, or -errno.
[[nodiscard]] ssize_t read_nowait(int fd, void* buf, std::size_t n) noexcept;

/// readv(2) flavour of read_some: fills `iov` in order (so a read can end one message in
/// its destination and carry on into a read-ahead buffer).
[[nodiscard]] ssize_t readv_some(int fd, const iovec* iov, int iovcnt, Deadline deadline) noexcept;

/// Descriptors that arrived with the bytes of a Unix-socket read (SCM_RIGHTS).
struct ReceivedFds {
  static constexpr int kMax = 253;  // SCM_MAX_FD: the most one message can carry
  std::array<int, kMax> fds{};
  int count = 0;
  bool truncated = false;  // the kernel dropped descriptors (MSG_CTRUNC)
};
/// Like read_some, on a Unix socket, collecting descriptors passed with the bytes
/// (close-on-exec). The kernel ends a read after the bytes that carried descriptors, so
/// the descriptors belong to the last byte returned.
[[nodiscard]] ssize_t recv_some(int fd, const iovec* iov, int iovcnt, Deadline deadline, ReceivedFds& got) noexcept;

/// Writes the whole of `iov` (which it modifies), looping over partial writes: 0 or
/// -errno. `socket` selects sendmsg(MSG_NOSIGNAL) over writev.
[[nodiscard]] int write_all_slow(int fd, iovec* iov, int iovcnt, bool socket, Deadline deadline) noexcept;
[[nodiscard]] inline int write_all(int fd, iovec* iov, int iovcnt, bool socket, Deadline deadline) noexcept {
  if (iovcnt == 1 && !socket) {  // a small frame to a pipe: one write() almost always does it
    ssize_t r = ::write(fd, iov->iov_base, iov->iov_len);
    if (r == static_cast<ssize_t>(iov->iov_len)) [[likely]]
      return 0;
    if (r < 0 && errno != EINTR && errno != EAGAIN) return -errno;
    if (r > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + r;
      iov->iov_len -= static_cast<std::size_t>(r);
    }
  }
  return write_all_slow(fd, iov, iovcnt, socket, deadline);
}

/// Sends `n` descriptors with one marker byte (`n % 256`), as CPython's
/// multiprocessing.reduction.sendfds does. 0 or -errno.
[[nodiscard]] int send_fds(int sock, const int* fds, int n) noexcept;

/// A socket address of any family, as the kernel takes it.
struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  [[nodiscard]] int family() const noexcept { return storage.ss_family; }
};
/// An AF_UNIX address for `path` (a leading '\0' selects the abstract namespace).
/// -ENAMETOOLONG if it does not fit sun_path.
[[nodiscard]] int unix_address(const char* path, std::size_t len, SockAddr& out) noexcept;
/// Up to 8 addresses for host:port (getaddrinfo, SOCK_STREAM; `passive` for binding).
/// Returns 0, or a getaddrinfo EAI_* code (see gai_strerror).
struct ResolvedAddrs {
  std::array<SockAddr, 8> addrs{};
  int count = 0;
};
[[nodiscard]] int resolve_tcp(const char* host, std::uint16_t port, bool passive, ResolvedAddrs& out) noexcept;
/// The message for a resolve_tcp() error code.
[[nodiscard]] const char* resolve_error(int code) noexcept;
/// The numeric host and port of an AF_INET/AF_INET6 address.
void numeric_host_port(const SockAddr& a, char* host, std::size_t host_len, std::uint16_t& port) noexcept;

/// socket + SO_REUSEADDR (TCP) + bind + (Unix path: chmod `unix_mode` before listen,
/// so no client can connect while the file is more open) + listen.
[[nodiscard]] int listen_on(const SockAddr& addr, int backlog, unsigned unix_mode, UniqueFd& out) noexcept;
/// Connects a new stream socket to `addr`, giving up at `deadline` (-ETIMEDOUT). TCP
/// sockets get TCP_NODELAY: frames are written whole, so Nagle only adds latency.
[[nodiscard]] int connect_to(const SockAddr& addr, Deadline deadline, UniqueFd& out) noexcept;
/// accept4(SOCK_CLOEXEC) once the listener is readable or `deadline` passes.
[[nodiscard]] int accept_on(int listen_fd, Deadline deadline, UniqueFd& out, SockAddr* peer) noexcept;
/// mkdtemp(3): fills in the trailing XXXXXX of `templ` and creates that directory, 0700.
[[nodiscard]] int make_temp_dir(char* templ) noexcept;
/// Removes a Unix socket file and then, if `dir` is not null, its (now empty) directory.
/// Errors are ignored: this runs from destructors.
void remove_socket_file(const char* path, const char* dir) noexcept;
/// getsockname.
[[nodiscard]] int local_address(int fd, SockAddr& out) noexcept;

}  // namespace mp::internal
