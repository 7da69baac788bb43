// Process-shared synchronization primitives. See include/mp/synchronize.hpp for the contract.
#include "mp/synchronize.hpp"

#include <algorithm>

#include "common/wait_policy.hpp"
#include "sync/robust_lock.hpp"

namespace mp {
namespace internal {

namespace {
/// The holder recorded in `m` has exited: take the lock over, marking it kOwnerDied.
bool take_over_if_holder_dead(MutexWord& m, std::uint32_t me) noexcept {
  return internal::take_over_if_holder_dead(m.word, m.holder_id, MutexWord::kPidMask,
                                            me | MutexWord::kWaiters | MutexWord::kOwnerDied);
}
}  // namespace

bool MutexWord::lock_slow(std::uint32_t me, Deadline deadline) noexcept {
  for (int i = 0; i < wait_policy::kLockSpins; ++i) {
    std::uint32_t v = word.load(std::memory_order_relaxed);
    if (v == 0 && try_lock(me)) return true;
    if (v & kWaiters) break;  // others are already asleep: spinning will not beat them
    cpu_relax();
  }
  HolderProbe probe;
  for (;;) {
    std::uint32_t v = word.load(std::memory_order_relaxed);
    if (v == 0) {
      // Having slept, take it in the "waiters" state: others may still be asleep (Drepper).
      if (word.compare_exchange_strong(v, me | kWaiters, std::memory_order_acquire, std::memory_order_relaxed)) {
        holder_id.store(internal::self_identity(), std::memory_order_relaxed);
        return true;
      }
      continue;
    }
    if (!(v & kWaiters)) {
      if (!word.compare_exchange_strong(v, v | kWaiters, std::memory_order_relaxed, std::memory_order_relaxed))
        continue;
      v |= kWaiters;
    }
    bool user_deadline_first = probe.deadline_first(deadline);
    if (futex_wait(word, v, probe.sleep_until(deadline)) == WaitResult::woken) continue;
    if (user_deadline_first) return try_lock(me) || take_over_if_holder_dead(*this, me);
    if (take_over_if_holder_dead(*this, me)) return true;
    probe.probed(Clock::now());
  }
}

// A Condition's shared state. Each waiter occupies a slot whose `state` word it sleeps on,
// so notify(n) can wake exactly the n oldest waiters and a waiter that arrives later is
// never woken by an earlier notify. All fields except a slot's futex wake-up are written
// with the condition's lock held.
struct ConditionState {
  static constexpr std::uint32_t kFree = 0, kWaiting = 1, kSignalled = 2;
  struct Slot {
    std::atomic<std::uint32_t> state{kFree};  // futex word of the waiter in this slot
    std::atomic<std::uint32_t> ticket{0};     // arrival order (wraps; compared by age)
    std::atomic<std::uint32_t> pid{0};        // waiter's process, to reclaim slots of dead waiters
  };
  std::atomic<std::uint32_t> next_ticket{0};
  std::atomic<std::uint32_t> high{0};  // slots [0, high) may be in use
  // Waiters that found every slot taken sleep here and are all woken by any notify.
  std::atomic<std::uint32_t> overflow_seq{0};
  std::atomic<std::uint32_t> overflow_waiters{0};
  static constexpr std::size_t kSlots = (4096 - 64) / sizeof(Slot);
  Slot slots[kSlots];
};
static_assert(sizeof(ConditionState) <= 4096, "a ConditionState must fit in one page");

// Barrier: Python's threading.Barrier state machine, guarded by a robust internal mutex.
// `seq` is bumped (and every sleeper woken) whenever `state` changes; sleepers read it with
// the mutex held, so a change made after they unlock makes their futex_wait return at once.
struct BarrierState {
  static constexpr std::int32_t kFilling = 0, kDraining = 1, kResetting = -1, kBroken = -2;
  MutexWord mu;
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::int32_t> state{kFilling};
  std::atomic<std::uint32_t> count{0};
};

}  // namespace internal

using internal::Clock;
using internal::Deadline;
using internal::WaitResult;

// ------------------------------------------------------------------------------------ Lock

Lock::Lock() : state_("mp-lock") {}

// ----------------------------------------------------------------------------------- RLock

RLock::RLock() : state_("mp-rlock") {}

bool RLock::is_owned() const noexcept {
  auto& s = *state_;
  return s.m.holder() == static_cast<std::uint32_t>(internal::self_pid()) &&
         s.owner_tid.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(internal::self_tid());
}

unsigned RLock::recursion_count() const noexcept {
  return is_owned() ? state_->count.load(std::memory_order_relaxed) : 0;
}

bool RLock::acquire_impl(Deadline deadline) noexcept {
  auto& s = *state_;
  auto pid = static_cast<std::uint32_t>(internal::self_pid());
  auto tid = static_cast<std::uint32_t>(internal::self_tid());
  if (s.m.holder() == pid && s.owner_tid.load(std::memory_order_relaxed) == tid) {
    s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
  }
  if (!s.m.try_lock(pid)) {
    if (deadline == Clock::time_point::min()) return false;  // try_acquire: no spinning
    if (!s.m.lock_slow(pid, deadline)) return false;
  }
  s.owner_tid.store(tid, std::memory_order_relaxed);
  s.count.store(1, std::memory_order_relaxed);
  return true;
}

void RLock::release() {
  if (!is_owned())
    throw RuntimeError(
        "RLock.release(): the calling thread does not own this lock; release it from the thread that acquired it");
  auto& s = *state_;
  std::uint32_t c = s.count.load(std::memory_order_relaxed);
  if (c > 1) {
    s.count.store(c - 1, std::memory_order_relaxed);
    return;
  }
  s.count.store(0, std::memory_order_relaxed);
  s.owner_tid.store(0, std::memory_order_relaxed);  // before the word: see RLockState
  s.m.unlock();
}

std::uint32_t RLock::release_save() {
  if (!is_owned()) throw RuntimeError("RLock: the calling thread does not own this lock");
  auto& s = *state_;
  std::uint32_t c = s.count.load(std::memory_order_relaxed);
  s.count.store(0, std::memory_order_relaxed);
  s.owner_tid.store(0, std::memory_order_relaxed);
  s.m.unlock();
  return c;
}

void RLock::acquire_restore(std::uint32_t count) noexcept {
  acquire_impl(std::nullopt);
  state_->count.store(count, std::memory_order_relaxed);
}

// ------------------------------------------------------------------------------- Semaphore

Semaphore::Semaphore(int value) : Semaphore(value, false) {}

Semaphore::Semaphore(int value, bool bounded) : state_("mp-semaphore") {
  if (value < 0) throw ValueError("Semaphore: the initial value must be >= 0, got " + std::to_string(value));
  state_->value.store(static_cast<std::uint32_t>(value), std::memory_order_relaxed);
  state_->max_value = bounded ? static_cast<std::uint32_t>(value) : static_cast<std::uint32_t>(INT_MAX);
}

bool Semaphore::try_acquire() noexcept {
  auto& v = state_->value;
  std::uint32_t cur = v.load(std::memory_order_relaxed);
  while (cur > 0)
    if (v.compare_exchange_weak(cur, cur - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  return false;
}

bool Semaphore::acquire_impl(Deadline deadline) noexcept {
  if (try_acquire()) return true;
  auto& s = *state_;
  for (int i = 0; i < internal::wait_policy::kLockSpins; ++i) {
    if (s.value.load(std::memory_order_relaxed) > 0 && try_acquire()) return true;
    internal::cpu_relax();
  }
  // Dekker-style handshake with release(): we announce ourselves in `waiters` and then read
  // `value` (both seq_cst); release() writes `value` and then reads `waiters`. Either it sees
  // us and wakes us, or we see its increment (or futex_wait finds the word changed).
  s.waiters.fetch_add(1, std::memory_order_seq_cst);
  bool got = false;
  for (;;) {
    std::uint32_t cur = s.value.load(std::memory_order_seq_cst);
    if (cur > 0) {
      if (s.value.compare_exchange_weak(cur, cur - 1, std::memory_order_acquire, std::memory_order_relaxed)) {
        got = true;
        break;
      }
      continue;
    }
    if (internal::futex_wait(s.value, 0, deadline) == WaitResult::timed_out) {
      got = try_acquire();
      break;
    }
  }
  s.waiters.fetch_sub(1, std::memory_order_relaxed);
  return got;
}

void Semaphore::release(int n) {
  if (n < 1) throw ValueError("Semaphore.release(n): n must be >= 1, got " + std::to_string(n));
  auto& s = *state_;
  std::uint32_t cur = s.value.load(std::memory_order_relaxed);
  do {
    if (static_cast<std::uint64_t>(cur) + static_cast<std::uint64_t>(n) > s.max_value) {
      if (s.max_value == static_cast<std::uint32_t>(INT_MAX))
        throw ValueError("Semaphore.release(): the value would overflow INT_MAX");
      throw ValueError("BoundedSemaphore.release(): released too many times (the value would exceed its initial " +
                       std::to_string(s.max_value) + ")");
    }
  } while (!s.value.compare_exchange_weak(cur, cur + static_cast<std::uint32_t>(n), std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  if (s.waiters.load(std::memory_order_seq_cst) != 0) internal::futex_wake(s.value, n);
}

// ------------------------------------------------------------------------------- Condition

namespace {
using Slot = internal::ConditionState::Slot;
constexpr auto kFree = internal::ConditionState::kFree;
constexpr auto kWaiting = internal::ConditionState::kWaiting;
constexpr auto kSignalled = internal::ConditionState::kSignalled;

// With the condition's lock held: a free slot, or nullptr when all are taken.
Slot* claim_slot(internal::ConditionState& st) {
  std::uint32_t high = st.high.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < high; ++i)
    if (st.slots[i].state.load(std::memory_order_relaxed) == kFree) return &st.slots[i];
  if (high < internal::ConditionState::kSlots) {
    st.high.store(high + 1, std::memory_order_relaxed);
    return &st.slots[high];
  }
  // Full: reclaim the slot of a waiter whose process died while waiting (rare, so the
  // liveness system calls are paid only here).
  for (auto& s : st.slots)
    if (internal::process_has_exited(static_cast<pid_t>(s.pid.load(std::memory_order_relaxed)))) return &s;
  return nullptr;
}

void free_slot(internal::ConditionState& st, Slot* slot) {
  slot->state.store(kFree, std::memory_order_relaxed);
  std::uint32_t high = st.high.load(std::memory_order_relaxed);
  while (high > 0 && st.slots[high - 1].state.load(std::memory_order_relaxed) == kFree) --high;
  st.high.store(high, std::memory_order_relaxed);
}

void signal(Slot& s) {
  s.state.store(kSignalled, std::memory_order_release);
  internal::futex_wake(s.state, 1);
}
}  // namespace

Condition::Condition() : Condition(RLock()) {}
Condition::Condition(Lock lock) : lock_(std::move(lock)), state_("mp-condition") {}
Condition::Condition(RLock lock) : lock_(std::move(lock)), state_("mp-condition") {}

bool Condition::acquire() {
  return std::visit([](auto& l) { return l.acquire(); }, lock_);
}
bool Condition::acquire_until(Clock::time_point deadline) {
  return std::visit([&](auto& l) { return l.acquire_until(deadline); }, lock_);
}
void Condition::release() {
  std::visit([](auto& l) { l.release(); }, lock_);
}

bool Condition::lock_is_mine() const noexcept {
  if (auto* r = std::get_if<RLock>(&lock_)) return r->is_owned();
  return std::get<Lock>(lock_).held_by_this_process();
}

bool Condition::wait_impl(Deadline deadline) {
  if (!lock_is_mine())
    throw RuntimeError(
        "Condition.wait(): the calling thread does not hold the condition's lock; acquire it first "
        "(std::unique_lock g(cond))");
  auto& st = *state_;
  Slot* slot = claim_slot(st);
  std::uint32_t overflow_seen = 0;
  if (slot) {
    slot->pid.store(static_cast<std::uint32_t>(internal::self_pid()), std::memory_order_relaxed);
    slot->ticket.store(st.next_ticket.fetch_add(1, std::memory_order_relaxed), std::memory_order_relaxed);
    slot->state.store(kWaiting, std::memory_order_relaxed);
  } else {
    st.overflow_waiters.fetch_add(1, std::memory_order_relaxed);
    overflow_seen = st.overflow_seq.load(std::memory_order_relaxed);
  }

  // Release the lock completely (every level of an RLock), sleep, restore it.
  std::uint32_t saved = 0;
  if (auto* r = std::get_if<RLock>(&lock_))
    saved = r->release_save();
  else
    std::get<Lock>(lock_).release();

  std::atomic<std::uint32_t>& word = slot ? slot->state : st.overflow_seq;
  std::uint32_t sleeping_value = slot ? kWaiting : overflow_seen;
  while (word.load(std::memory_order_acquire) == sleeping_value &&
         internal::futex_wait(word, sleeping_value, deadline) == WaitResult::woken) {
  }

  if (auto* r = std::get_if<RLock>(&lock_))
    r->acquire_restore(saved);
  else
    std::get<Lock>(lock_).acquire();

  // With the lock held again. A notify that raced with our timeout still counts as a wake-up:
  // it chose us, so reporting it keeps notify(n) from being lost.
  if (slot) {
    bool woken = slot->state.load(std::memory_order_relaxed) == kSignalled;
    free_slot(st, slot);
    return woken;
  }
  st.overflow_waiters.fetch_sub(1, std::memory_order_relaxed);
  return st.overflow_seq.load(std::memory_order_relaxed) != overflow_seen;
}

void Condition::notify(int n) {
  if (!lock_is_mine())
    throw RuntimeError("Condition.notify(): the calling thread does not hold the condition's lock; acquire it first");
  auto& st = *state_;
  std::uint32_t high = st.high.load(std::memory_order_relaxed);
  std::uint32_t waiting = 0;
  for (std::uint32_t i = 0; i < high; ++i) waiting += st.slots[i].state.load(std::memory_order_relaxed) == kWaiting;
  int woken = 0;
  if (n > 0 && static_cast<std::uint32_t>(n) >= waiting) {
    for (std::uint32_t i = 0; i < high; ++i)
      if (st.slots[i].state.load(std::memory_order_relaxed) == kWaiting) signal(st.slots[i]), ++woken;
  } else {
    // FIFO: the n waiters with the oldest tickets (age measured from next_ticket, so wrap-safe).
    std::uint32_t now = st.next_ticket.load(std::memory_order_relaxed);
    for (; woken < n; ++woken) {
      Slot* oldest = nullptr;
      std::uint32_t oldest_age = 0;
      for (std::uint32_t i = 0; i < high; ++i) {
        auto& s = st.slots[i];
        if (s.state.load(std::memory_order_relaxed) != kWaiting) continue;
        std::uint32_t age = now - s.ticket.load(std::memory_order_relaxed);
        if (!oldest || age > oldest_age) oldest = &s, oldest_age = age;
      }
      signal(*oldest);
    }
  }
  if (woken < n && st.overflow_waiters.load(std::memory_order_relaxed) != 0) {
    st.overflow_seq.fetch_add(1, std::memory_order_release);
    internal::futex_wake_all(st.overflow_seq);
  }
}

void Condition::notify_all() { notify(INT_MAX); }

// ----------------------------------------------------------------------------------- Event

Event::Event() : state_("mp-event") {}

void Event::set() noexcept {
  auto& s = *state_;
  std::uint32_t w = s.word.load(std::memory_order_relaxed);
  do {
    if (w & 1u) return;
  } while (!s.word.compare_exchange_weak(w, (w + 2u) | 1u, std::memory_order_seq_cst, std::memory_order_relaxed));
  // Same handshake as Semaphore: we wrote the word, now read waiters; a waiter does the reverse.
  if (s.waiters.load(std::memory_order_seq_cst) != 0) internal::futex_wake_all(s.word);
}

void Event::clear() noexcept { state_->word.fetch_and(~1u, std::memory_order_release); }

bool Event::wait_impl(Deadline deadline) noexcept {
  auto& s = *state_;
  const std::uint32_t start = s.word.load(std::memory_order_acquire);
  if (start & 1u) return true;
  // Set now, or set (turned on: generation bits changed) at any moment since we started.
  auto was_set = [start](std::uint32_t w) { return (w & 1u) || (w >> 1) != (start >> 1); };
  s.waiters.fetch_add(1, std::memory_order_seq_cst);
  bool result;
  for (;;) {
    std::uint32_t cur = s.word.load(std::memory_order_seq_cst);
    if (was_set(cur)) {
      result = true;
      break;
    }
    if (internal::futex_wait(s.word, cur, deadline) == WaitResult::timed_out) {
      result = was_set(s.word.load(std::memory_order_acquire));
      break;
    }
  }
  s.waiters.fetch_sub(1, std::memory_order_relaxed);
  return result;
}

// --------------------------------------------------------------------------------- Barrier

namespace {
using internal::BarrierState;

// The barrier's mutex, held for a scope; also the "condition variable" on `seq`.
class BarrierGuard {
 public:
  explicit BarrierGuard(BarrierState& b) : b_(b), me_(static_cast<std::uint32_t>(internal::self_pid())) {
    b_.mu.lock(me_, std::nullopt);
  }
  ~BarrierGuard() { b_.mu.unlock(); }
  BarrierGuard(const BarrierGuard&) = delete;
  BarrierGuard& operator=(const BarrierGuard&) = delete;

  /// Waits for a state change (or a spurious wake-up); false when `deadline` passed.
  bool wait(Deadline deadline) {
    std::uint32_t s = b_.seq.load(std::memory_order_relaxed);
    b_.mu.unlock();
    auto r = internal::futex_wait(b_.seq, s, deadline);
    b_.mu.lock(me_, std::nullopt);
    return r == WaitResult::woken;
  }
  void notify_all() {
    b_.seq.fetch_add(1, std::memory_order_release);
    internal::futex_wake_all(b_.seq);
  }
  std::int32_t state() const { return b_.state.load(std::memory_order_relaxed); }
  void set_state(std::int32_t s) {
    b_.state.store(s, std::memory_order_relaxed);
    notify_all();
  }

 private:
  BarrierState& b_;
  std::uint32_t me_;
};
}  // namespace

Barrier::Barrier(int parties, std::function<void()> action, std::chrono::nanoseconds timeout)
    : parties_(parties), action_(std::move(action)), timeout_(timeout), state_("mp-barrier") {
  if (parties < 1) throw ValueError("Barrier: parties must be >= 1, got " + std::to_string(parties));
}

int Barrier::wait() {
  return wait_impl(timeout_ > timeout_.zero() ? Deadline(internal::deadline_after(timeout_)) : std::nullopt);
}

int Barrier::wait_impl(Deadline deadline) {
  auto& b = *state_;
  BarrierGuard g(b);
  // Python's _enter: wait while the previous round drains or a reset completes.
  while (g.state() == BarrierState::kDraining || g.state() == BarrierState::kResetting) g.wait(std::nullopt);
  if (g.state() < 0) throw BrokenBarrierError("Barrier.wait(): the barrier is broken (call reset() to reuse it)");
  auto index = static_cast<int>(b.count.fetch_add(1, std::memory_order_relaxed));
  // Python's `finally`: leave; the last to leave a drained/reset round reopens the barrier.
  struct Leave {
    BarrierState& b;
    BarrierGuard& g;
    ~Leave() {
      if (b.count.fetch_sub(1, std::memory_order_relaxed) == 1 &&
          (g.state() == BarrierState::kDraining || g.state() == BarrierState::kResetting))
        g.set_state(BarrierState::kFilling);
    }
  } leave{b, g};
  if (index + 1 == parties_) {
    try {
      if (action_) action_();
    } catch (...) {
      g.set_state(BarrierState::kBroken);
      throw;
    }
    g.set_state(BarrierState::kDraining);
    return index;
  }
  while (g.state() == BarrierState::kFilling) {
    if (!g.wait(deadline) && g.state() == BarrierState::kFilling) {
      g.set_state(BarrierState::kBroken);
      throw BrokenBarrierError("Barrier.wait(): timed out waiting for the other parties; the barrier is now broken");
    }
  }
  if (g.state() < 0) throw BrokenBarrierError("Barrier.wait(): the barrier was aborted or reset while waiting");
  return index;
}

void Barrier::abort() {
  BarrierGuard g(*state_);
  g.set_state(BarrierState::kBroken);
}

void Barrier::reset() {
  auto& b = *state_;
  BarrierGuard g(b);
  if (b.count.load(std::memory_order_relaxed) > 0) {
    if (g.state() == BarrierState::kFilling || g.state() == BarrierState::kBroken)
      g.set_state(BarrierState::kResetting);
    else
      g.notify_all();
  } else {
    g.set_state(BarrierState::kFilling);
  }
}

int Barrier::n_waiting() const {
  auto& b = *state_;
  BarrierGuard g(b);
  return g.state() == BarrierState::kFilling ? static_cast<int>(b.count.load(std::memory_order_relaxed)) : 0;
}

bool Barrier::broken() const {
  BarrierGuard g(*state_);
  return g.state() == BarrierState::kBroken;
}

}  // namespace mp
