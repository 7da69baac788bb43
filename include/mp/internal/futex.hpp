// mp/internal/futex.hpp — the one place mp waits on and wakes a 32-bit word.
//
// Words live in memory shared between processes, so the futex calls never use
// FUTEX_PRIVATE_FLAG (which hashes by address-space and would lose cross-process
// wake-ups). Deadlines are absolute CLOCK_MONOTONIC time points passed to
// FUTEX_WAIT_BITSET, so a retry after a spurious wake-up never extends the wait.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace mp::internal {

static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be plain 32-bit lock-free atomics");

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC on Linux
using Deadline = std::optional<Clock::time_point>;  // nullopt: wait forever

/// Turns a Python-style timeout into a deadline: negative counts as zero (immediate).
template <class Rep, class Period>
Clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  auto now = Clock::now();
  if (timeout <= timeout.zero()) return now;
  // Compare in the caller's unit first: converting a huge timeout to nanoseconds would overflow.
  using Caller = std::chrono::duration<Rep, Period>;
  if (timeout >= std::chrono::duration_cast<Caller>(Clock::time_point::max() - now)) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

enum class WaitResult { woken, timed_out };

/// Sleeps while `*word == expected`, until woken or `deadline` passes. May return
/// `woken` spuriously: callers always loop and re-check their condition.
WaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, Deadline deadline) noexcept;
/// Wakes up to `n` waiters on `word` (INT_MAX: all). Returns how many were woken.
int futex_wake(std::atomic<std::uint32_t>& word, int n) noexcept;
inline int futex_wake_all(std::atomic<std::uint32_t>& word) noexcept { return futex_wake(word, 0x7fffffff); }

/// The CPU the caller runs on (sched_getcpu, a vDSO call), or -1. The spin-then-sleep
/// waits compare it with the waker's (ring.hpp's WaitWord records it); defined with the
/// wait policy (src/common/wait_policy.cpp).
std::int32_t current_cpu() noexcept;

/// One pause of a spin-wait loop (x86 `pause`), cheap and polite to the sibling hyperthread.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace mp::internal
