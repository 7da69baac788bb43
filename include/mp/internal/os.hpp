// mp/internal/os.hpp — small, noexcept wrappers over process-level system calls, and the
// overview of mp's OS layer.
//
// The OS layer is every system call mp makes, in one place: this header and fd.hpp,
// futex.hpp, segment.hpp beside it (what public templates need), and src/os/*.hpp for what
// only the library needs (file.hpp: descriptors, paths, polling, raw socket I/O;
// memory.hpp: mappings and shm names; process.hpp: processes and signals; socket.hpp:
// connections with deadlines; spawn.hpp: fork+exec for subprocess; membarrier.hpp). All
// of it lives in mp::internal; no second namespace.
//
// One error convention, as in reproc: a wrapper that can fail returns a status that is
// >= 0 on success (0, a count, a descriptor or a pid) and -errno on failure; never a
// positive errno and never -1-and-look-at-errno. Wrappers are noexcept and never throw,
// and every status is [[nodiscard]]; callers that ignore one on purpose
// say so with (void). The public API turns a failure into a named exception at its
// boundary, with the sign flipped there: `throw OSError(-r, "what failed")`. The few
// exceptions state themselves: a value with its own meaning (process_has_exited's bool,
// futex_wait's WaitResult, futex_wake's count, resolve_tcp's getaddrinfo code), values
// that cannot fail (self_pid, parent_pid, kernel_pid), close_fd (returns nothing:
// Linux releases the descriptor even when close reports an error), and code after
// fork() that calls ::_exit, which cannot fail.
//
// What stays outside the layer, on purpose: ::_exit (see above); the pthread_* calls of
// threading/ and the atfork registrations (the threads library, not system calls);
// sched_yield, sched_getcpu and usleep inside spin-then-sleep loops, and the affinity
// query that sizes them (src/common/wait_policy: scheduler hints, not calls that fail in a
// way a caller acts on); libc queries (sysconf, isatty, opendir/readdir). Anything else outside src/os is a bug to fix.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace mp::internal {

namespace detail {
extern pid_t cached_pid;  // set at start-up and by an atfork handler in every forked child
pid_t refresh_self_pid() noexcept;
extern std::atomic<std::uint64_t> cached_identity;  // self_identity() of the process that set it
std::uint64_t refresh_identity() noexcept;
}  // namespace detail

/// This process's pid, cached per process (refreshed after fork by an atfork handler).
/// Inline: queues and locks read it on every operation.
inline pid_t self_pid() noexcept {
  const pid_t p = detail::cached_pid;
  return p != 0 ? p : detail::refresh_self_pid();
}
/// The calling thread's kernel thread id.
pid_t self_tid() noexcept;
/// This process's identity as a lock holder: pid << 32 | the low 32 bits of its start time
/// (clock ticks after boot, /proc/self/stat), which a later process given the same pid does
/// not share. Cached per process. 0 when the start time cannot be read (no descriptor free):
/// the holder is then recognised by its pid alone.
inline std::uint64_t self_identity() noexcept {
  const std::uint64_t id = detail::cached_identity.load(std::memory_order_relaxed);
  return id != 0 && (id >> 32) == static_cast<std::uint64_t>(self_pid()) ? id : detail::refresh_identity();
}
/// The start time of process `pid` in clock ticks after boot (field 22 of /proc/<pid>/stat),
/// or 0 when it cannot be read (no such process, no descriptor free).
std::uint64_t process_start_time(pid_t pid) noexcept;
/// How many threads this process runs (field 20 of /proc/self/stat); 0 when unknown.
int thread_count() noexcept;
/// True when process `pid` has exited (including a zombie not yet reaped) or never existed.
/// Uses a pidfd, so a zombie counts as dead; with no descriptor free (EMFILE, ENFILE) it
/// asks the kernel for the process's memory instead, which an exited process (a zombie
/// too) no longer has. In that fallback a process whose main thread has exited while
/// other threads run also counts as exited. Pid reuse within the check is not detected.
bool process_has_exited(pid_t pid) noexcept;

}  // namespace mp::internal
