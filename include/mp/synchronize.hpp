// mp/synchronize.hpp — locks and friends that work across processes *and* threads.
//
// Mirrors: multiprocessing.Lock/RLock/Semaphore/BoundedSemaphore/Condition/Event/Barrier
// (which are also threading's). Each object lives in shared memory (mp::internal::Segment):
// copies of an object — in this process, or inherited by a child through fork() — are the
// *same* lock. They are futex-based: an uncontended acquire/release is two atomic
// operations and no system call; waiting never spins on the CPU for long.
//
// Timeouts: every blocking call has an untimed form and a timed form taking any
// std::chrono duration. A zero or negative timeout is an immediate try.
//
// Memory ordering: everything a process wrote before release() is visible to the process
// whose acquire() returns true (release/acquire semantics), across processes too.
//
// Dead holders: if the process holding a Lock/RLock dies (even by SIGKILL), the lock does
// not stay locked forever. A waiter notices the holder is gone (checked whenever a wait
// has lasted ~50 ms) and takes the lock over; `owner_died()` then returns true for the new
// holder, who should treat the data the lock protected as possibly half-updated
// (robust-mutex semantics, like pthread's EOWNERDEAD). Semaphores have no owner and no
// such recovery, exactly as in Python.
//
//   mp::Lock lock;
//   mp::Process p([](mp::Lock l) { std::scoped_lock g(l); /* ... */ }, lock);
//   { std::scoped_lock g(lock); /* ... */ }
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "mp/errors.hpp"
#include "mp/internal/futex.hpp"
#include "mp/internal/segment.hpp"

namespace mp {

namespace internal {
/// The word of a process-shared mutex: 0 when free, else the holder's pid, with the top
/// bit set while other processes may be asleep on it (Drepper's "mutex with waiters" state,
/// with the pid in place of the plain 1 so a dead holder can be recognised).
struct MutexWord {
  static constexpr std::uint32_t kWaiters = 0x80000000u;
  static constexpr std::uint32_t kPidMask = 0x3fffffffu;
  std::atomic<std::uint32_t> word{0};
  std::atomic<std::uint32_t> owner_died{0};  // set by a waiter that took over from a dead holder

  /// Fast path: one CAS. Never blocks.
  bool try_lock(std::uint32_t me) noexcept {
    std::uint32_t expected = 0;
    return word.compare_exchange_strong(expected, me, std::memory_order_acquire, std::memory_order_relaxed);
  }
  /// Slow path (spins briefly, then sleeps on the futex; recovers from a dead holder).
  bool lock_slow(std::uint32_t me, Deadline deadline) noexcept;
  /// Releases; false if the word was not locked at all.
  bool unlock() noexcept;
};
}  // namespace internal

/// multiprocessing.Lock: a non-recursive lock shared by processes and threads.
/// Satisfies std's TimedLockable (lock/try_lock/try_lock_for/try_lock_until/unlock), so
/// std::lock_guard, std::unique_lock and std::scoped_lock work. As in Python, any thread or
/// process may release it (it is not owner-checked), but releasing an unlocked Lock throws
/// mp::ValueError. Acquiring it twice from one thread deadlocks (use RLock).
class Lock {
 public:
  Lock();

  /// Blocks until acquired. Always returns true.
  bool acquire();
  /// Waits at most `timeout`; returns whether the lock was acquired.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(internal::deadline_after(timeout));
  }
  /// Python's acquire(block=False).
  bool try_acquire() noexcept;
  bool acquire_until(internal::Clock::time_point deadline);
  /// Releases the lock. Throws mp::ValueError if it is not locked.
  void release();

  /// True while some thread or process holds the lock (a snapshot).
  [[nodiscard]] bool locked() const noexcept;
  /// True when the current holder got the lock from a holder that died without releasing.
  [[nodiscard]] bool owner_died() const noexcept;

  // TimedLockable.
  void lock() { acquire(); }
  bool try_lock() noexcept { return try_acquire(); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) { return acquire(d); }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> t) {
    return acquire(t - Clock::now());
  }
  void unlock() { release(); }

 private:
  internal::Shared<internal::MutexWord> state_;
};

}  // namespace mp
