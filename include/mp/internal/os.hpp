// mp/internal/os.hpp — small, noexcept wrappers over process-level system calls.
// They return -errno (or a plain value) and never throw; the public API turns failures
// into named exceptions at its boundary.
#pragma once

#include <sys/types.h>

namespace mp::internal {

/// This process's pid, cached per process (refreshed after fork by an atfork handler).
pid_t self_pid() noexcept;
/// The calling thread's kernel thread id.
pid_t self_tid() noexcept;
/// True when process `pid` has exited (including a zombie not yet reaped) or never existed.
/// Uses a pidfd, so a zombie counts as dead. Pid reuse within the check is not detected.
bool process_has_exited(pid_t pid) noexcept;

}  // namespace mp::internal
