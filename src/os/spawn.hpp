// src/os/spawn.hpp — the system-call layer under mp::subprocess: clone+exec with fd
// redirections (posix_spawn's job, with fewer system calls), pipes, waiting with a
// deadline, SIGPIPE suppression. Functions are noexcept and return 0 or -errno (the
// convention of include/mp/internal/os.hpp); mp/subprocess.hpp turns those into exceptions.
#pragma once

#include <csignal>
#include <cstddef>
#include <optional>

#include <sys/types.h>

#include "mp/internal/fd.hpp"
#include "mp/internal/futex.hpp"

namespace mp::internal {

/// What the child's fd 0/1/2 become.
struct ChildFd {
  enum class Kind { inherit, fd, devnull, same_as_stdout };
  Kind kind = Kind::inherit;
  int fd = -1;  // Kind::fd: a descriptor >= 3 of the parent (dup2'ed to the target)
};

/// Everything spawn() needs, prepared by the caller before the call (no allocation in the
/// child, which runs between clone(CLONE_VM | CLONE_VFORK) and exec on our memory).
struct SpawnRequest {
  const char* path = nullptr;  ///< program: absolute/relative path, or a name searched on PATH
  bool search_path = true;     ///< posix_spawnp semantics (ignored when path contains '/')
  char* const* argv = nullptr;
  char* const* envp = nullptr;  ///< nullptr: this process's environ
  const char* cwd = nullptr;    ///< nullptr: ours
  ChildFd in, out, err;
  bool close_fds = true;               ///< close every fd >= 3 not in pass_fds
  const int* pass_fds = nullptr;       ///< sorted, ascending, each >= 3
  std::size_t n_pass_fds = 0;
  bool new_session = false;
};

/// Starts the child; on success stores its pid and returns 0. Otherwise returns -errno
/// of the failing step (exec errors included: the child stores its errno in our memory).
[[nodiscard]] int spawn(const SpawnRequest& req, pid_t* pid) noexcept;

/// O_NONBLOCK on or off: 0 or -errno.
[[nodiscard]] int set_nonblocking(int fd, bool on) noexcept;
inline constexpr std::size_t kDefaultPipeSize = 64 * 1024;
inline constexpr std::size_t kMaxPipeSize = 1024 * 1024;  // the default /proc/sys/fs/pipe-max-size
/// F_SETPIPE_SZ to at least `bytes` (never shrinks); failures are ignored (it is an optimisation).
void grow_pipe(int fd, std::size_t bytes) noexcept;

/// Bytes waiting in a pipe (FIONREAD), or 0 if that cannot be told.
[[nodiscard]] std::size_t pipe_available(int fd) noexcept;
/// Faults in, writable, the whole pages inside [p, p + n) with one call (MADV_POPULATE_WRITE,
/// Linux 5.14) instead of one page fault per page on first write; no effect on the bytes.
/// Best effort: older kernels just refuse.
void prefault_writable(void* p, std::size_t n) noexcept;

/// Looks `name` up on the PATH list `path` (colon-separated) like execvp; on success
/// stores the full path in `out` and returns 0, else -ENOENT or -EACCES.
[[nodiscard]] int find_on_path(const char* name, const char* path, char* out, std::size_t out_size) noexcept;

/// waitpid() with a deadline. Returns 1 with `*status` when the child was reaped, 0 when
/// the deadline passed first, or -errno (ECHILD: reaped by someone else). `pidfd` is opened
/// lazily on the first timed wait and kept for the next ones (safe: an unreaped child's pid
/// cannot be reused).
[[nodiscard]] int wait_child(pid_t pid, UniqueFd& pidfd, Deadline deadline, int* status) noexcept;
/// waitpid(WNOHANG): 1 reaped, 0 still running, -errno.
[[nodiscard]] int try_reap(pid_t pid, int* status) noexcept;

/// Blocks SIGPIPE in the calling thread for its lifetime, so that writing to a pipe whose
/// reader is gone fails with EPIPE instead of killing the program; a SIGPIPE raised
/// meanwhile is consumed before the old mask is restored.
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept;
  ~SigpipeGuard();
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;
  /// Call after a write failed with EPIPE.
  void note_epipe() noexcept { epipe_ = true; }

 private:
  sigset_t old_{};
  bool was_pending_ = false;
  bool epipe_ = false;
};

/// Hands a still-running child to the background reaper (see subprocess.hpp).
void adopt_orphan(pid_t pid) noexcept;

}  // namespace mp::internal
