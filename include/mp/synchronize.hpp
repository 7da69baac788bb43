// mp/synchronize.hpp — locks and friends that work across processes *and* threads.
//
// Mirrors: multiprocessing.Lock / RLock / Semaphore / BoundedSemaphore / Condition / Event /
// Barrier (which are also threading's). One set of primitives serves both: every object
// lives in shared memory (an mp::internal::Segment), so copies of an object — in this
// process, or inherited by a child through fork(), or captured by reference before fork —
// are the *same* lock. Copying is cheap (a reference count); the shared state lives until
// the last copy in the last process is gone.
//
//   mp::Lock lock;
//   mp::Process p([](mp::Lock l) { std::scoped_lock g(l); /* critical section */ }, lock);
//   p.start();
//   { std::scoped_lock g(lock); /* critical section */ }
//
// Waiting: futex-based. An uncontended Lock acquire + release is two atomic instructions
// (a compare-exchange and an exchange) and no system call; a contended waiter spins
// briefly, then sleeps in the kernel. Futex words are never FUTEX_PRIVATE (that would lose
// cross-process wake-ups).
//
// Timeouts: every blocking call has an untimed form and a timed form taking any
// std::chrono duration (`acquire(50ms)`), plus an `_until` form taking a steady_clock time
// point. The deadline is computed once and passed to the kernel as an absolute
// CLOCK_MONOTONIC time, so spurious wake-ups never extend a wait. A zero or negative
// timeout means "try once, do not block" (Python's multiprocessing treats a negative
// timeout the same way).
//
// Memory ordering: release()/set()/notify()/the last Barrier arrival are release
// operations; the acquire()/wait() that observes them is an acquire operation. Everything a
// thread or process wrote before release() is visible to whoever's acquire() returns true
// next; everything written before Event::set() is visible after wait() returns true.
//
// Dead holders (robust-mutex semantics, like pthread's EOWNERDEAD): if the process holding a
// Lock or RLock dies — even by SIGKILL — the lock does not stay locked forever. A waiter
// notices that the holder's pid has exited (it checks after 50 ms of waiting, then at
// growing intervals of at most 1 s, and when a timed wait expires) and takes the lock over;
// `owner_died()` then returns true until that holder releases it. The data the lock
// protected may be half-updated: check it. Only whole processes are detected: a *thread*
// that exits holding a lock leaves it held (as in Python). A holder is identified by its pid
// and its start time (from /proc), published beside the lock word: when the kernel has given
// a dead holder's pid to a new process, the waiter sees a different start time and still
// takes over. (Start times count 10 ms ticks: a pid reused within the same tick, which only
// a privileged checkpoint-restore can cause, would go unnoticed; a holder that could not
// read its own start time, with no descriptor free, is identified by its pid alone.)
// Semaphores, Events, Conditions and Barriers have no owner and no such recovery, exactly
// as in Python: a process killed inside a Semaphore never gives its slot back.
//
// Thread and fork safety: every method may be called from any thread of any process that
// shares the object. Fork while another thread holds a lock behaves like a held lock: the
// holder (in the parent) still releases it normally.
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>
#include <variant>

#include "mp/errors.hpp"
#include "mp/internal/futex.hpp"
#include "mp/internal/os.hpp"
#include "mp/internal/segment.hpp"

namespace mp {

namespace internal {

/// The word of a process-shared mutex. Drepper's futex mutex ("Futexes Are Tricky",
/// mutex 3: 0 free / 1 locked / 2 locked with waiters) with the holder's pid in place of
/// the 1 so that a dead holder can be recognised:
///   0                          free
///   pid                        locked, nobody asleep on it
///   pid | kWaiters             locked, waiters may sleep: unlock must futex_wake
///   ... | kOwnerDied           taken over from a holder that died without unlocking
struct MutexWord {
  static constexpr std::uint32_t kWaiters = 0x80000000u;
  static constexpr std::uint32_t kOwnerDied = 0x40000000u;
  static constexpr std::uint32_t kPidMask = 0x3fffffffu;  // pid_max is at most 2^22
  std::atomic<std::uint32_t> word{0};
  /// The holder's identity (internal::self_identity(): pid and start time), published after
  /// the word is taken and cleared before it is released, so that a waiter can tell a dead
  /// holder from a new process that was given its pid (src/sync/robust_lock.hpp).
  std::atomic<std::uint64_t> holder_id{0};

  /// Fast path: one compare-exchange (acquire). Never blocks.
  bool try_lock(std::uint32_t me) noexcept {
    std::uint32_t expected = 0;
    if (!word.compare_exchange_strong(expected, me, std::memory_order_acquire, std::memory_order_relaxed))
      return false;
    holder_id.store(internal::self_identity(), std::memory_order_relaxed);
    return true;
  }
  /// Slow path: spins briefly, then sleeps on the futex; takes over from a dead holder.
  /// Returns false only when `deadline` passed first.
  bool lock_slow(std::uint32_t me, Deadline deadline) noexcept;
  bool lock(std::uint32_t me, Deadline deadline) noexcept { return try_lock(me) || lock_slow(me, deadline); }
  /// Fast path: one exchange (release); a futex_wake only if someone may be asleep.
  /// Returns false if the word was not locked at all.
  bool unlock() noexcept {
    holder_id.store(0, std::memory_order_relaxed);
    std::uint32_t old = word.exchange(0, std::memory_order_release);
    if (old & kWaiters) [[unlikely]]
      futex_wake(word, 1);
    return old != 0;
  }
  [[nodiscard]] std::uint32_t holder() const noexcept { return word.load(std::memory_order_relaxed) & kPidMask; }
};

/// RLock's shared state: the mutex word (holder pid) plus which thread of that process
/// owns it and how many times. owner_tid is cleared before the word is released, so a
/// thread reading its own tid there while the word holds its pid really is the owner.
struct RLockState {
  MutexWord m;
  std::atomic<std::uint32_t> owner_tid{0};
  std::atomic<std::uint32_t> count{0};
};

struct SemaphoreState {
  std::atomic<std::uint32_t> value{0};    // the futex word
  std::atomic<std::uint32_t> waiters{0};  // threads that may be asleep on `value`
  std::uint32_t max_value = 0;            // BoundedSemaphore's bound; 0: unbounded
};

struct EventState {
  // Bit 0: the flag. Bits 1..31: how many times set() has turned the flag on (wraps), so a
  // waiter can tell that set() happened during its wait even if clear() followed.
  std::atomic<std::uint32_t> word{0};
  std::atomic<std::uint32_t> waiters{0};
};

struct ConditionState;  // src/sync/synchronize.cpp
struct BarrierState;


/// std's TimedLockable names (lock/try_lock/try_lock_for/try_lock_until/unlock) on top of
/// Python's acquire/acquire_until/release, so std::lock_guard, std::unique_lock and
/// std::scoped_lock work with every mp lock. `D` provides acquire(), acquire(duration),
/// acquire_until(internal::Clock::time_point) (a past deadline is one try) and release().
template <class D>
class TimedLockable {
 public:
  void lock() { self().acquire(); }
  bool try_lock() { return self().acquire_until(Clock::time_point::min()); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) { return self().acquire(d); }
  template <class C, class Duration>
  bool try_lock_until(std::chrono::time_point<C, Duration> t) {
    if constexpr (std::is_same_v<C, Clock>)
      return self().acquire_until(std::chrono::time_point_cast<Clock::duration>(t));
    else
      return self().acquire(t - C::now());
  }
  void unlock() { self().release(); }

 private:
  D& self() noexcept { return static_cast<D&>(*this); }
};

}  // namespace internal

// ------------------------------------------------------------------------------------ Lock

/// multiprocessing.Lock: a non-recursive lock shared by processes and threads.
/// Satisfies std's TimedLockable (lock/try_lock/try_lock_for/try_lock_until/unlock), so
/// std::lock_guard, std::unique_lock and std::scoped_lock work. As in Python, any thread or
/// process may release it (it is not owner-checked), but releasing an unlocked Lock throws
/// mp::ValueError. Acquiring it twice from one thread deadlocks (use RLock).
///
///   mp::Lock l;
///   if (l.acquire(100ms)) { /* ... */ l.release(); }
class Lock : public internal::TimedLockable<Lock> {
 public:
  /// A new, unlocked lock. Throws mp::OSError when shared memory cannot be allocated.
  Lock();

  /// Blocks until acquired. Always returns true.
  bool acquire() { return state_->lock(internal::self_pid(), std::nullopt); }
  /// Waits at most `timeout` (<= 0: one try); returns whether the lock was acquired.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(internal::deadline_after(timeout));
  }
  /// Waits until `deadline` at the latest; a deadline in the past is a single try.
  bool acquire_until(internal::Clock::time_point deadline) { return state_->lock(internal::self_pid(), deadline); }
  /// Python's acquire(block=False): never blocks.
  bool try_acquire() noexcept { return state_->try_lock(internal::self_pid()); }
  /// Releases the lock (from any thread or process). Throws mp::ValueError if it is not locked.
  void release() {
    if (!state_->unlock()) [[unlikely]]
      throw ValueError("Lock.release(): the lock is not locked (released more times than acquired)");
  }

  /// True while some thread or process holds the lock (a snapshot).
  [[nodiscard]] bool locked() const noexcept { return state_->word.load(std::memory_order_relaxed) != 0; }
  /// True when the lock is held and the current holder took it over from a holder process
  /// that died without releasing it. Cleared by release().
  [[nodiscard]] bool owner_died() const noexcept {
    return (state_->word.load(std::memory_order_relaxed) & internal::MutexWord::kOwnerDied) != 0;
  }
  /// True when the lock is held by some thread of the calling process (Lock does not know
  /// which thread). Used by Condition to check its precondition.
  [[nodiscard]] bool held_by_this_process() const noexcept {
    return state_->holder() == static_cast<std::uint32_t>(internal::self_pid());
  }


 private:
  internal::Shared<internal::MutexWord> state_;
};

// ----------------------------------------------------------------------------------- RLock

/// multiprocessing.RLock: a recursive lock owned by one thread of one process. The owner
/// may acquire it again; it becomes free when released as many times as acquired. Releasing
/// it from a thread that does not own it throws mp::RuntimeError (Python raises
/// AssertionError/RuntimeError). Robust like Lock: a dead owner process is taken over and
/// owner_died() reports it (the recursion count restarts at 1). TimedLockable.
///
///   mp::RLock r;
///   std::scoped_lock a(r);
///   std::scoped_lock b(r);  // same thread: fine
class RLock : public internal::TimedLockable<RLock> {
 public:
  /// A new, unlocked lock. Throws mp::OSError when shared memory cannot be allocated.
  RLock();
  /// Internal: adopts an RLockState already constructed at the start of `state`'s segment
  /// (used by mp::Value/mp::Array to keep their lock in their own segment).
  struct Adopt {};
  RLock(Adopt, internal::Shared<internal::RLockState> state) noexcept : state_(std::move(state)) {}

  /// Blocks until the calling thread owns the lock (at once if it already does: one more
  /// level). Always returns true.
  bool acquire() { return acquire_impl(std::nullopt); }
  /// Waits at most `timeout` (<= 0: one try); returns whether the calling thread owns it.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(internal::deadline_after(timeout));
  }
  bool acquire_until(internal::Clock::time_point deadline) { return acquire_impl(deadline); }
  /// Never blocks (or spins).
  bool try_acquire() noexcept { return acquire_impl(internal::Clock::time_point::min()); }
  /// Releases one level. Throws mp::RuntimeError if the calling thread does not own it.
  void release();

  /// True when the calling thread owns the lock.
  [[nodiscard]] bool is_owned() const noexcept;
  /// True while any thread holds it (a snapshot).
  [[nodiscard]] bool locked() const noexcept { return state_->m.word.load(std::memory_order_relaxed) != 0; }
  /// How many times the calling thread holds it (0 if it does not own it).
  [[nodiscard]] unsigned recursion_count() const noexcept;
  /// As Lock::owner_died().
  [[nodiscard]] bool owner_died() const noexcept {
    return (state_->m.word.load(std::memory_order_relaxed) & internal::MutexWord::kOwnerDied) != 0;
  }


 private:
  friend class Condition;
  bool acquire_impl(internal::Deadline deadline) noexcept;
  /// Condition::wait: releases every level at once; returns the count to restore.
  std::uint32_t release_save();
  void acquire_restore(std::uint32_t count) noexcept;
  internal::Shared<internal::RLockState> state_;
};

// ------------------------------------------------------------------------------- Semaphore

/// multiprocessing.Semaphore: a counter that acquire() decrements, blocking while it is
/// zero, and release() increments. Any thread or process may release. TimedLockable, so
/// std::lock_guard works (lock() = acquire(), unlock() = release()).
///
///   mp::Semaphore s(4);          // at most 4 inside at once
///   { std::lock_guard g(s); /* ... */ }
class Semaphore : public internal::TimedLockable<Semaphore> {
 public:
  /// Throws mp::ValueError if `value` is negative.
  explicit Semaphore(int value = 1);

  /// Blocks until the counter is positive, then decrements it. Always returns true.
  bool acquire() { return acquire_impl(std::nullopt); }
  /// Waits at most `timeout` (<= 0: one try); returns whether it decremented the counter.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(internal::deadline_after(timeout));
  }
  bool acquire_until(internal::Clock::time_point deadline) { return acquire_impl(deadline); }
  /// Decrements if positive; never blocks.
  bool try_acquire() noexcept;
  /// Adds `n` (default 1) and wakes up to `n` waiters. Throws mp::ValueError if n < 1 or the
  /// counter would overflow INT_MAX (BoundedSemaphore: above its initial value).
  void release(int n = 1);
  /// The counter's current value (a snapshot). Python's get_value().
  [[nodiscard]] int get_value() const noexcept {
    return static_cast<int>(state_->value.load(std::memory_order_relaxed));
  }


 protected:
  Semaphore(int value, bool bounded);

 private:
  bool acquire_impl(internal::Deadline deadline) noexcept;
  internal::Shared<internal::SemaphoreState> state_;
};

/// multiprocessing.BoundedSemaphore: a Semaphore whose release() throws mp::ValueError if it
/// would raise the counter above its initial value (a release without a matching acquire).
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(int value = 1) : Semaphore(value, true) {}
};

// ------------------------------------------------------------------------------- Condition

/// multiprocessing.Condition: waits for a notification while atomically releasing a lock.
/// The lock is an RLock by default (as in multiprocessing) or the Lock/RLock you pass; the
/// Condition is itself TimedLockable (it forwards to that lock).
///
/// wait() requires the calling thread to hold the lock (mp::RuntimeError otherwise). It
/// releases it completely — even an RLock held recursively — sleeps until notified, then
/// re-acquires it to the same depth before returning. notify(n) wakes the n longest
/// waiting waiters (FIFO), notify_all() every waiter that was waiting when it was called;
/// a waiter that starts waiting afterwards is not woken by it. Both require holding the
/// lock (mp::RuntimeError otherwise). Exactness holds for up to ~300 simultaneous waiters
/// per Condition; beyond that, the extra waiters are woken by any notify (a permitted
/// spurious wake-up: always wait in a loop, or use wait_for).
/// A waiter killed while waiting may absorb one notify(), as in Python.
///
///   mp::Condition c;            // its own RLock
///   std::unique_lock g(c);
///   c.wait_for([&] { return ready(); });
class Condition : public internal::TimedLockable<Condition> {
 public:
  /// A condition with its own new RLock.
  Condition();
  /// A condition using `lock` (shared: a copy refers to the same lock).
  explicit Condition(Lock lock);
  explicit Condition(RLock lock);

  /// Waits until notified. Returns true.
  bool wait() { return wait_impl(std::nullopt); }
  /// Waits at most `timeout`; false when it expired without a notification. The lock is
  /// re-acquired before returning in both cases (that part is not limited by the timeout).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(internal::deadline_after(timeout));
  }
  bool wait_until(internal::Clock::time_point deadline) { return wait_impl(deadline); }

  /// Waits until `pred()` is true (checked with the lock held, first before waiting).
  /// Returns the last value of pred() — false only if the deadline passed first.
  template <class Pred>
  bool wait_for(Pred pred) {
    while (!pred()) wait_impl(std::nullopt);
    return true;
  }
  template <class Pred, class Rep, class Period>
  bool wait_for(Pred pred, std::chrono::duration<Rep, Period> timeout) {
    return wait_for_until(std::move(pred), internal::deadline_after(timeout));
  }
  template <class Pred>
  bool wait_for_until(Pred pred, internal::Clock::time_point deadline) {
    bool result = pred();
    while (!result) {
      if (internal::Clock::now() >= deadline) break;
      wait_impl(deadline);
      result = pred();
    }
    return result;
  }

  /// Wakes up to `n` waiters. Throws mp::RuntimeError if the lock is not held.
  void notify(int n = 1);
  /// Wakes every waiter. Throws mp::RuntimeError if the lock is not held.
  void notify_all();

  // The underlying lock (Python's `with cond:`), with that lock's semantics.
  bool acquire();
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(internal::deadline_after(timeout));
  }
  bool acquire_until(internal::Clock::time_point deadline);
  void release();

 private:
  bool wait_impl(internal::Deadline deadline);
  bool lock_is_mine() const noexcept;
  std::variant<RLock, Lock> lock_;
  internal::Shared<internal::ConditionState> state_;
};

// ----------------------------------------------------------------------------------- Event

/// multiprocessing.Event: a flag that wait() blocks on until set() sets it.
/// set() wakes every waiter. A waiter returns true if the flag was set at any moment during
/// its wait — even if clear() followed before it woke (as threading.Event does).
/// Everything written before set() is visible after wait() returns true.
///
///   mp::Event e;
///   mp::Process p([](mp::Event ev) { ev.set(); }, e);
///   p.start(); e.wait();
class Event {
 public:
  Event();
  [[nodiscard]] bool is_set() const noexcept { return (state_->word.load(std::memory_order_acquire) & 1u) != 0; }
  /// Sets the flag and wakes every waiter. No effect if already set.
  void set() noexcept;
  /// Resets the flag; later wait() calls block.
  void clear() noexcept;
  /// Blocks until the flag is set. Returns true.
  bool wait() noexcept { return wait_impl(std::nullopt); }
  /// Waits at most `timeout`; returns false if the flag was not set in time.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) noexcept {
    return wait_until(internal::deadline_after(timeout));
  }
  bool wait_until(internal::Clock::time_point deadline) noexcept { return wait_impl(deadline); }

 private:
  bool wait_impl(internal::Deadline deadline) noexcept;
  internal::Shared<internal::EventState> state_;
};

// --------------------------------------------------------------------------------- Barrier

/// multiprocessing.Barrier (= threading.Barrier): `parties` threads/processes call wait();
/// all block until the last one arrives, then all are released together.
/// - wait() returns the caller's arrival index, 0 .. parties-1, different for each.
/// - `action`, if given, runs once per trip in the last arriving thread (in its process,
///   using that process's copy of the function) before the others are released; if it
///   throws, the barrier breaks and the exception propagates from that wait().
/// - A wait that times out breaks the barrier: it and every other waiter throw
///   mp::BrokenBarrierError, as do later waits until reset().
/// - abort() breaks it; reset() returns it to the initial state (threads waiting at that
///   moment throw mp::BrokenBarrierError).
/// - Threads released by a trip leave before a new round can start (Python's "draining").
///
///   mp::Barrier b(3);
///   // in each of 3 processes: auto index = b.wait();
class Barrier {
 public:
  /// Throws mp::ValueError if parties < 1. `timeout` (zero: none) is the default for wait().
  explicit Barrier(int parties, std::function<void()> action = {},
                   std::chrono::nanoseconds timeout = std::chrono::nanoseconds::zero());

  /// Waits for all parties (or the default timeout). Returns the arrival index.
  int wait();
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_impl(internal::deadline_after(timeout));
  }
  /// Wakes every waiter with BrokenBarrierError; the barrier stays broken until reset().
  void abort();
  /// Back to the initial state; current waiters throw BrokenBarrierError.
  void reset();

  [[nodiscard]] int parties() const noexcept { return parties_; }
  /// How many are waiting in the current round.
  [[nodiscard]] int n_waiting() const;
  [[nodiscard]] bool broken() const;

 private:
  int wait_impl(internal::Deadline deadline);
  int parties_;
  std::function<void()> action_;
  std::chrono::nanoseconds timeout_;
  internal::Shared<internal::BarrierState> state_;
};

}  // namespace mp
