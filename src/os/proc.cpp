#include "mp/internal/os.hpp"

#include <cerrno>
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mp::internal {

pid_t detail::cached_pid = 0;

pid_t detail::refresh_self_pid() noexcept {
  cached_pid = static_cast<pid_t>(::syscall(SYS_getpid));
  return cached_pid;
}

namespace {
void refresh_pid_after_fork() noexcept { (void)detail::refresh_self_pid(); }
[[maybe_unused]] const bool atfork_installed = [] {
  refresh_pid_after_fork();
  ::pthread_atfork(nullptr, nullptr, refresh_pid_after_fork);
  return true;
}();
}  // namespace

pid_t self_tid() noexcept {
  static thread_local pid_t tid = 0;
  static thread_local pid_t tid_pid = 0;
  if (tid_pid != self_pid()) {  // a forked child's thread has a new tid
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    tid_pid = self_pid();
  }
  return tid;
}

namespace {
/// process_has_exited without a descriptor, for when no pidfd can be opened (EMFILE,
/// ENFILE, ENOMEM). A one-byte process_vm_readv from the target: the kernel looks up its
/// memory before checking permissions, and a process that has exited has none, so ESRCH
/// means exited (a zombie too) or never existed; a live process answers EFAULT (address 0
/// is never mapped) or EPERM (not ours to read). Whatever else (ENOSYS where the kernel
/// lacks cross-memory attach, a seccomp filter's EPERM) counts as alive: check again later.
/// kill(pid, 0) and /proc/<pid>/stat cannot do this: kill succeeds on a zombie, and
/// reading /proc needs a descriptor.
bool exited_without_descriptor(pid_t pid) noexcept {
  char byte = 0;
  iovec local{&byte, 1};
  iovec remote{nullptr, 1};
  return ::process_vm_readv(pid, &local, 1, &remote, 1, 0) < 0 && errno == ESRCH;
}
}  // namespace

bool process_has_exited(pid_t pid) noexcept {
  if (pid <= 0) return true;
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    if (errno == ESRCH) return true;
    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) return exited_without_descriptor(pid);
    return false;  // assume alive, check again later
  }
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, 0);
  ::close(fd);
  return r == 1;  // a pidfd is readable once the process has terminated
}

}  // namespace mp::internal
