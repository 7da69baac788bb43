// The out-of-line parts of the wait policy (src/common/wait_policy.hpp): which CPU we run
// on, and whether the machine has a CPU to spare for the peer we would spin for.
#include "common/wait_policy.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "mp/internal/fd.hpp"
#include "os/file.hpp"

namespace mp::internal {

std::int32_t current_cpu() noexcept { return ::sched_getcpu(); }

namespace wait_policy {

namespace {

/// The CPUs this process may run on (its affinity mask, not the machine's count).
int usable_cpus() noexcept {
  static const int n = [] {
    cpu_set_t set;
    return ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                          : static_cast<int>(std::thread::hardware_concurrency());
  }();
  return n;
}

/// "0.52 0.58 0.59 3/157 12345": the 3 (threads runnable right now), or -1.
int runnable_threads() noexcept {
  UniqueFd fd(open_path("/proc/loadavg", O_RDONLY | O_CLOEXEC));
  if (!fd) return -1;
  char buf[128];
  ssize_t n = read_from(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* slash = std::strchr(buf, '/');
  if (!slash) return -1;
  const char* p = slash;
  while (p > buf && p[-1] >= '0' && p[-1] <= '9') --p;
  return p == slash ? -1 : std::atoi(p);
}

}  // namespace

bool spare_cpu_for_peer() noexcept {
  if (usable_cpus() < 2) return false;
  static std::atomic<Clock::rep> next_sample{0};
  static std::atomic<bool> spare{true};
  auto now = Clock::now().time_since_epoch().count();
  if (now >= next_sample.load(std::memory_order_relaxed)) {
    next_sample.store(now + std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(10)).count(),
                      std::memory_order_relaxed);
    int running = runnable_threads();
    spare.store(running <= 0 || running <= usable_cpus(), std::memory_order_relaxed);
  }
  return spare.load(std::memory_order_relaxed);
}

}  // namespace wait_policy
}  // namespace mp::internal
