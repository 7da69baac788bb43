#include "mp/internal/os.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
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

std::atomic<std::uint64_t> detail::cached_identity{0};

namespace {
/// Field `field` (1-based, as in proc(5), ≥ 3) of /proc/<pid>/stat as a number, or 0 when
/// it cannot be read.
std::uint64_t stat_field(pid_t pid, int field) noexcept {
  // Raw calls and a stack buffer: no allocation, so it is safe in a child forked from a
  // multithreaded parent. The command name (field 2) may hold spaces and parentheses:
  // fields are counted from the last ')'.
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (!p) return 0;
  // After ')': one separator before each of fields 3 .. `field`.
  for (int f = 2; f < field && p; ++f) p = std::strchr(p + 1, ' ');
  if (!p) return 0;
  std::uint64_t v = 0;
  for (++p; *p >= '0' && *p <= '9'; ++p) v = v * 10 + static_cast<std::uint64_t>(*p - '0');
  return v;
}
}  // namespace

std::uint64_t process_start_time(pid_t pid) noexcept { return stat_field(pid, 22); }

int thread_count() noexcept { return static_cast<int>(stat_field(self_pid(), 20)); }

std::uint64_t detail::refresh_identity() noexcept {
  const pid_t pid = self_pid();
  const std::uint64_t start = process_start_time(pid);
  if (start == 0) return 0;  // unknown: holders fall back to the pid alone; try again next time
  const std::uint64_t id = static_cast<std::uint64_t>(pid) << 32 | (start & 0xffffffffu);
  cached_identity.store(id, std::memory_order_relaxed);
  return id;
}

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
