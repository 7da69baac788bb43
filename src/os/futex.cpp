// The futex system call, wrapped once. See include/mp/internal/futex.hpp for the contract.
#include "mp/internal/futex.hpp"

#include <cerrno>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mp::internal {

WaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, Deadline deadline) noexcept {
  timespec ts{};
  timespec* tp = nullptr;
  if (deadline) {
    if (*deadline <= Clock::now()) return WaitResult::timed_out;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tp = &ts;
  }
  // Shared (not private) futex; absolute monotonic timeout via WAIT_BITSET.
  long r = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_BITSET, expected, tp, nullptr,
                   FUTEX_BITSET_MATCH_ANY);
  if (r == -1 && errno == ETIMEDOUT) return WaitResult::timed_out;
  return WaitResult::woken;  // woken, EAGAIN (value changed) or EINTR: the caller re-checks
}

int futex_wake(std::atomic<std::uint32_t>& word, int n) noexcept {
  long r = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, n, nullptr, nullptr, 0);
  return r < 0 ? 0 : static_cast<int>(r);
}

}  // namespace mp::internal
