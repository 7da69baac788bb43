// membarrier(2) wrappers. See src/os/membarrier.hpp.
#include "os/membarrier.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "mp/internal/os.hpp"

namespace mp::internal {

namespace {

long membarrier(int cmd) noexcept { return ::syscall(__NR_membarrier, cmd, 0, 0); }

// The process (pid) that found registration impossible; a forked child has a different pid
// and so tries again.
std::atomic<pid_t> refused_pid{0};

[[gnu::noinline, gnu::cold]] bool register_now(pid_t me) noexcept {
  long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported >= 0 && (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
      membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0) {
    detail::light_fences_pid.store(me, std::memory_order_relaxed);
    return true;
  }
  refused_pid.store(me, std::memory_order_relaxed);
  return false;
}

}  // namespace

std::atomic<pid_t> detail::light_fences_pid{0};

bool detail::register_light_fences() noexcept {
  const pid_t me = self_pid();
  if (refused_pid.load(std::memory_order_relaxed) == me) return false;
  return register_now(me);
}

bool heavy_fence() noexcept {
  static const bool available = [] {
    long supported = membarrier(MEMBARRIER_CMD_QUERY);
    return supported >= 0 && (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
  }();
  return available && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
}

}  // namespace mp::internal
