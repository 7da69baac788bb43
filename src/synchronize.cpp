// Process-shared synchronization primitives. See include/mp/synchronize.hpp.
#include "mp/synchronize.hpp"

#include <algorithm>

#include "mp/internal/os.hpp"

namespace mp {
namespace internal {

namespace {
// How long a waiter sleeps before checking whether the holder is still alive.
constexpr auto kLivenessProbe = std::chrono::milliseconds(50);
constexpr int kSpins = 100;
}  // namespace

bool MutexWord::lock_slow(std::uint32_t me, Deadline deadline) noexcept {
  // Spin briefly: most critical sections are shorter than a futex round trip.
  for (int i = 0; i < kSpins; ++i) {
    if (word.load(std::memory_order_relaxed) == 0 && try_lock(me)) return true;
    cpu_relax();
  }
  for (;;) {
    std::uint32_t v = word.load(std::memory_order_relaxed);
    if (v == 0) {
      // Take it in the "waiters" state: we cannot know whether others still sleep.
      if (word.compare_exchange_strong(v, me | kWaiters, std::memory_order_acquire, std::memory_order_relaxed))
        return true;
      continue;
    }
    if (!(v & kWaiters) &&
        !word.compare_exchange_strong(v, v | kWaiters, std::memory_order_relaxed, std::memory_order_relaxed))
      continue;
    auto probe = Clock::now() + kLivenessProbe;
    bool user_deadline_first = deadline && *deadline <= probe;
    if (futex_wait(word, v | kWaiters, user_deadline_first ? deadline : Deadline(probe)) == WaitResult::timed_out) {
      if (user_deadline_first) return try_lock(me);
      // Long wait: is the holder still alive? If not, take the lock over.
      std::uint32_t cur = word.load(std::memory_order_relaxed);
      auto holder = static_cast<pid_t>(cur & kPidMask);
      if (cur != 0 && holder != static_cast<pid_t>(me) && process_has_exited(holder) &&
          word.compare_exchange_strong(cur, me | kWaiters, std::memory_order_acquire, std::memory_order_relaxed)) {
        owner_died.store(1, std::memory_order_relaxed);
        return true;
      }
    }
  }
}

bool MutexWord::unlock() noexcept {
  std::uint32_t v = word.load(std::memory_order_relaxed);
  do {
    if (v == 0) return false;
  } while (!word.compare_exchange_weak(v, 0, std::memory_order_release, std::memory_order_relaxed));
  if (v & kWaiters) futex_wake(word, 1);
  return true;
}

}  // namespace internal

Lock::Lock() : state_("mp-lock") {}

bool Lock::try_acquire() noexcept {
  return state_->try_lock(static_cast<std::uint32_t>(internal::self_pid()));
}

bool Lock::acquire() {
  auto me = static_cast<std::uint32_t>(internal::self_pid());
  return state_->try_lock(me) || state_->lock_slow(me, std::nullopt);
}

bool Lock::acquire_until(internal::Clock::time_point deadline) {
  auto me = static_cast<std::uint32_t>(internal::self_pid());
  return state_->try_lock(me) || state_->lock_slow(me, deadline);
}

void Lock::release() {
  state_->owner_died.store(0, std::memory_order_relaxed);
  if (!state_->unlock()) throw ValueError("Lock.release(): the lock is not locked (released too many times)");
}

bool Lock::locked() const noexcept { return state_->word.load(std::memory_order_relaxed) != 0; }
bool Lock::owner_died() const noexcept { return state_->owner_died.load(std::memory_order_relaxed) != 0; }

}  // namespace mp
