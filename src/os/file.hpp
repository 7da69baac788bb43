// src/os/file.hpp — descriptors, paths, polling and raw socket I/O: the plain system calls
// the library makes on file descriptors, one thin inline wrapper each.
//
// Convention (include/mp/internal/os.hpp): >= 0 on success, -errno on failure, noexcept,
// no retry on EINTR (the caller's loop decides; socket.hpp has the retrying, deadline-aware
// versions). Inline on purpose: each is one system call and an errno read, so it stays
// async-signal-safe and usable between fork() and exec or _exit, and costs nothing on hot
// paths.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace mp::internal {

namespace detail {
[[nodiscard]] inline int status_of(int r) noexcept { return r < 0 ? -errno : r; }
[[nodiscard]] inline ssize_t status_of(ssize_t r) noexcept { return r < 0 ? -errno : r; }
}  // namespace detail

/// close(2). Returns nothing: Linux releases the descriptor even when close reports an
/// error (EINTR, EIO), so there is nothing for a caller to retry or undo.
inline void close_fd(int fd) noexcept { (void)::close(fd); }
/// read(2): bytes read (0 at end of file) or -errno.
[[nodiscard]] inline ssize_t read_from(int fd, void* buf, std::size_t n) noexcept {
  return detail::status_of(::read(fd, buf, n));
}
/// write(2): bytes written or -errno (a pipe whose readers are gone raises SIGPIPE first).
[[nodiscard]] inline ssize_t write_to(int fd, const void* buf, std::size_t n) noexcept {
  return detail::status_of(::write(fd, buf, n));
}
/// open(2): a descriptor or -errno.
[[nodiscard]] inline int open_path(const char* path, int flags, mode_t mode = 0) noexcept {
  return detail::status_of(::open(path, flags, mode));
}
/// dup2(2): `target` or -errno. The copy is not close-on-exec.
[[nodiscard]] inline int dup_onto(int fd, int target) noexcept { return detail::status_of(::dup2(fd, target)); }
/// fcntl(F_DUPFD): a copy at the lowest free number >= `lowest` (not close-on-exec), or -errno.
[[nodiscard]] inline int dup_at_least(int fd, int lowest) noexcept {
  return detail::status_of(::fcntl(fd, F_DUPFD, lowest));
}
/// fcntl(F_GETFD): the descriptor flags, or -errno (-EBADF: not open).
[[nodiscard]] inline int fd_flags(int fd) noexcept { return detail::status_of(::fcntl(fd, F_GETFD)); }
/// close_range(lowest, ~0): closes every descriptor >= `lowest`. 0 or -errno.
[[nodiscard]] inline int close_from(unsigned lowest) noexcept {
  return detail::status_of(static_cast<int>(::syscall(SYS_close_range, lowest, ~0u, 0u)));
}
/// pipe2(2) into raw descriptors (make_pipe in mp/internal/fd.hpp is the owning version). 0 or -errno.
[[nodiscard]] inline int pipe_pair(int (&fds)[2], int flags) noexcept { return detail::status_of(::pipe2(fds, flags)); }
/// eventfd(2): a descriptor or -errno.
[[nodiscard]] inline int make_eventfd(unsigned initial, int flags) noexcept {
  return detail::status_of(::eventfd(initial, flags));
}

/// unlink(2), rmdir(2), chdir(2): 0 or -errno.
[[nodiscard]] inline int unlink_path(const char* path) noexcept { return detail::status_of(::unlink(path)); }
[[nodiscard]] inline int remove_dir(const char* path) noexcept { return detail::status_of(::rmdir(path)); }
[[nodiscard]] inline int change_dir(const char* path) noexcept { return detail::status_of(::chdir(path)); }
/// readlink(2): bytes stored (no NUL added) or -errno.
[[nodiscard]] inline ssize_t read_link(const char* path, char* buf, std::size_t n) noexcept {
  return detail::status_of(::readlink(path, buf, n));
}
/// stat(2), fstat(2), ftruncate(2), fchmod(2): 0 or -errno.
[[nodiscard]] inline int stat_path(const char* path, struct stat& st) noexcept {
  return detail::status_of(::stat(path, &st));
}
[[nodiscard]] inline int stat_fd(int fd, struct stat& st) noexcept { return detail::status_of(::fstat(fd, &st)); }
[[nodiscard]] inline int truncate_fd(int fd, off_t size) noexcept { return detail::status_of(::ftruncate(fd, size)); }
[[nodiscard]] inline int chmod_fd(int fd, mode_t mode) noexcept { return detail::status_of(::fchmod(fd, mode)); }

/// poll(2) with a timeout in milliseconds (-1: none): ready entries, 0 on timeout, or -errno.
[[nodiscard]] inline int poll_fds(pollfd* fds, nfds_t n, int timeout_ms) noexcept {
  return detail::status_of(::poll(fds, n, timeout_ms));
}
/// ppoll(2) with a relative timeout (nullptr: none) and the thread's signal mask kept.
[[nodiscard]] inline int ppoll_fds(pollfd* fds, nfds_t n, const timespec* timeout) noexcept {
  return detail::status_of(::ppoll(fds, n, timeout, nullptr));
}

/// getrandom(2) from the urandom source: bytes stored (maybe fewer than `n`) or -errno.
[[nodiscard]] inline ssize_t get_random(void* buf, std::size_t n) noexcept {
  return detail::status_of(::getrandom(buf, n, 0));
}

/// socketpair(AF_UNIX, type) into raw descriptors (`type` may carry SOCK_CLOEXEC): 0 or -errno.
[[nodiscard]] inline int socket_pair(int type, int (&sv)[2]) noexcept {
  return detail::status_of(::socketpair(AF_UNIX, type, 0, sv));
}
/// send(2), recv(2), sendmsg(2), recvmsg(2): bytes or -errno.
[[nodiscard]] inline ssize_t socket_send(int fd, const void* buf, std::size_t n, int flags) noexcept {
  return detail::status_of(::send(fd, buf, n, flags));
}
[[nodiscard]] inline ssize_t socket_recv(int fd, void* buf, std::size_t n, int flags) noexcept {
  return detail::status_of(::recv(fd, buf, n, flags));
}
[[nodiscard]] inline ssize_t socket_sendmsg(int fd, const msghdr* m, int flags) noexcept {
  return detail::status_of(::sendmsg(fd, m, flags));
}
[[nodiscard]] inline ssize_t socket_recvmsg(int fd, msghdr* m, int flags) noexcept {
  return detail::status_of(::recvmsg(fd, m, flags));
}
/// shutdown(2): 0 or -errno.
[[nodiscard]] inline int socket_shutdown(int fd, int how) noexcept { return detail::status_of(::shutdown(fd, how)); }

}  // namespace mp::internal
