// src/os/process.hpp — processes and signals: fork, kill, waitpid, pidfds, prctl,
// sigaction and signal masks, one thin inline wrapper each.
//
// Convention (include/mp/internal/os.hpp): >= 0 on success (a pid, a descriptor, 0),
// -errno on failure, noexcept, no retry on EINTR. Inline on purpose: each is one system
// call and an errno read, so the code between fork() and _exit/exec and the signal
// handlers that use them stay async-signal-safe. ::_exit is called directly: it cannot
// fail and returns nothing, so a wrapper would add nothing.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace mp::internal {

/// fork(2), running the atfork handlers: 0 in the child, the child's pid, or -errno.
[[nodiscard]] inline pid_t fork_process() noexcept {
  pid_t p = ::fork();
  return p < 0 ? -errno : p;
}
/// _Fork(3): fork without running atfork handlers (for a single-threaded process that
/// only forks again or exits). 0 in the child, the child's pid, or -errno.
[[nodiscard]] inline pid_t fork_without_handlers() noexcept {
  pid_t p = ::_Fork();
  return p < 0 ? -errno : p;
}
/// kill(2): 0 or -errno.
[[nodiscard]] inline int kill_process(pid_t pid, int sig) noexcept { return ::kill(pid, sig) == 0 ? 0 : -errno; }
/// waitpid(2): the pid reaped, 0 (WNOHANG, still running), or -errno.
[[nodiscard]] inline pid_t wait_pid(pid_t pid, int* status, int flags) noexcept {
  pid_t r = ::waitpid(pid, status, flags);
  return r < 0 ? -errno : r;
}
/// pidfd_open(2): a descriptor (readable once the process has ended) or -errno.
[[nodiscard]] inline int open_pidfd(pid_t pid) noexcept {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return fd < 0 ? -errno : fd;
}
/// pidfd_send_signal(2): 0 or -errno.
[[nodiscard]] inline int pidfd_signal(int pidfd, int sig) noexcept {
  return ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0 ? 0 : -errno;
}
/// getppid(2) (cannot fail).
[[nodiscard]] inline pid_t parent_pid() noexcept { return ::getppid(); }
/// getpid(2) and gettid(2) straight from the kernel, not self_pid()'s cache: for atfork
/// and signal handlers, which may run before that cache is refreshed in a new child.
[[nodiscard]] inline pid_t kernel_pid() noexcept { return ::getpid(); }
[[nodiscard]] inline pid_t kernel_tid() noexcept { return static_cast<pid_t>(::syscall(SYS_gettid)); }

/// prctl(PR_SET_PDEATHSIG): `sig` is sent to this process when its parent thread ends
/// (0 clears it). 0 or -errno.
[[nodiscard]] inline int set_parent_death_signal(int sig) noexcept {
  return ::prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0 ? 0 : -errno;
}
/// prctl(PR_GET_PDEATHSIG) into `sig`: 0 or -errno.
[[nodiscard]] inline int get_parent_death_signal(int& sig) noexcept {
  return ::prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) == 0 ? 0 : -errno;
}
/// prctl(PR_SET_NAME): the calling thread's name in ps/top (at most 15 bytes). 0 or -errno.
[[nodiscard]] inline int set_thread_name(const char* name) noexcept {
  return ::prctl(PR_SET_NAME, name, 0, 0, 0) == 0 ? 0 : -errno;
}

/// sigaction(2): 0 or -errno.
[[nodiscard]] inline int set_signal_action(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
  return ::sigaction(sig, act, old) == 0 ? 0 : -errno;
}
/// signal(2) with SIG_DFL, SIG_IGN or a plain handler: 0 or -errno.
[[nodiscard]] inline int set_signal_handler(int sig, sighandler_t handler) noexcept {
  return ::signal(sig, handler) == SIG_ERR ? -errno : 0;
}
/// sigprocmask(2) (the process's mask; one thread after fork): 0 or -errno.
[[nodiscard]] inline int set_signal_mask(int how, const sigset_t* set, sigset_t* old) noexcept {
  return ::sigprocmask(how, set, old) == 0 ? 0 : -errno;
}
/// pthread_sigmask(3) (the calling thread's mask): 0 or -errno.
[[nodiscard]] inline int set_thread_signal_mask(int how, const sigset_t* set, sigset_t* old) noexcept {
  return -::pthread_sigmask(how, set, old);
}
/// signalfd(2), new descriptor: a descriptor or -errno.
[[nodiscard]] inline int open_signalfd(const sigset_t* mask, int flags) noexcept {
  int fd = ::signalfd(-1, mask, flags);
  return fd < 0 ? -errno : fd;
}
/// raise(3): 0 or -errno.
[[nodiscard]] inline int raise_signal(int sig) noexcept { return ::raise(sig) == 0 ? 0 : -errno; }

/// gethostname(2) into `buf` (truncated, maybe without NUL when too long): 0 or -errno.
[[nodiscard]] inline int host_name(char* buf, std::size_t n) noexcept { return ::gethostname(buf, n) == 0 ? 0 : -errno; }

}  // namespace mp::internal
