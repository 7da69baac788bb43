// mp/internal/os.hpp — small, noexcept wrappers over process-level system calls.
// They return -errno (or a plain value) and never throw; the public API turns failures
// into named exceptions at its boundary.
#pragma once

#include <sys/types.h>

namespace mp::internal {

namespace detail {
extern pid_t cached_pid;  // set at start-up and by an atfork handler in every forked child
pid_t refresh_self_pid() noexcept;
}  // namespace detail

/// This process's pid, cached per process (refreshed after fork by an atfork handler).
/// Inline: queues and locks read it on every operation.
inline pid_t self_pid() noexcept {
  const pid_t p = detail::cached_pid;
  return p != 0 ? p : detail::refresh_self_pid();
}
/// The calling thread's kernel thread id.
pid_t self_tid() noexcept;
/// True when process `pid` has exited (including a zombie not yet reaped) or never existed.
/// Uses a pidfd, so a zombie counts as dead. Pid reuse within the check is not detected.
bool process_has_exited(pid_t pid) noexcept;

}  // namespace mp::internal
