// A process started at a chosen pid (clone3 with set_tid), for tests that need the kernel
// to reuse a dead process's pid at once instead of cycling pid_max. Needs CAP_SYS_ADMIN or
// CAP_CHECKPOINT_RESTORE in the user namespace that owns our pid namespace (root here);
// without it start() returns nullopt and the test skips.
#pragma once

#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>

namespace mp_test {

/// A child that only waits (pause) at a pid of our choosing; killed and reaped at the end.
class ProcessAtPid {
 public:
  /// Starts it at `pid`, which must be free (its previous process reaped), with a start
  /// time (clock ticks after boot, as /proc/<pid>/stat shows) later than `after_tick`: the
  /// dead process's, which could otherwise share its 10 ms tick — a reuse no program can
  /// cause without set_tid, as pids are handed out in turn through pid_max. nullopt when
  /// the kernel refuses (no privilege, the pid taken meanwhile).
  static std::optional<ProcessAtPid> start(pid_t pid, std::uint64_t after_tick) {
    const long hz = ::sysconf(_SC_CLK_TCK);
    for (;;) {  // wait for the tick to pass: a clock condition, at most one tick
      timespec ts{};
      ::clock_gettime(CLOCK_BOOTTIME, &ts);
      auto tick = static_cast<std::uint64_t>(ts.tv_sec) * static_cast<std::uint64_t>(hz) +
                  static_cast<std::uint64_t>(ts.tv_nsec) * static_cast<std::uint64_t>(hz) / 1000000000u;
      if (tick > after_tick) break;
      ::sched_yield();
    }
    pid_t tid = pid;
    clone_args args;
    std::memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    args.set_tid = reinterpret_cast<std::uintptr_t>(&tid);
    args.set_tid_size = 1;
    long r = ::syscall(SYS_clone3, &args, sizeof args);
    if (r == 0) {
      for (;;) ::pause();  // the child: hold the pid until killed (async-signal-safe only)
    }
    if (r < 0) return std::nullopt;
    return ProcessAtPid(static_cast<pid_t>(r));
  }
  ProcessAtPid(ProcessAtPid&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  ProcessAtPid(const ProcessAtPid&) = delete;
  ProcessAtPid& operator=(const ProcessAtPid&) = delete;
  ProcessAtPid& operator=(ProcessAtPid&&) = delete;
  ~ProcessAtPid() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

 private:
  explicit ProcessAtPid(pid_t p) : pid_(p) {}
  pid_t pid_;
};

}  // namespace mp_test
