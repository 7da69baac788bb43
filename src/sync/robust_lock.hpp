// The one "holder died" takeover of mp's robust locks: when a waiter checks that the holder
// of a pid-in-word lock still lives, and how it takes the lock from one that does not.
// Used by MutexWord (Lock, RLock, Barrier; src/sync/synchronize.cpp) and by the queue's
// producer and consumer locks (SideLock, src/queue/queue.cpp).
//
// A robust lock's word records its holder's pid. A waiter sleeps in bounded slices and
// checks the holder between them (process_has_exited: a pidfd, so a zombie counts as dead,
// and a descriptor-free probe when no pidfd can be opened, so a waiter at its RLIMIT_NOFILE
// limit still sees a dead holder):
// first kFirstProbe into the wait, then at doubling intervals up to kLastProbe. A dead
// holder is detected within about a second, and a long wait on a live one costs a handful
// of wake-ups per second at most. The takeover is one compare-exchange from the word seen
// with the dead holder to the waiter's own word: it fails if anything changed since (a
// release, another waiter's takeover), so exactly one waiter takes over from a given holder.
//
// Only this is shared: the two locks sleep differently. MutexWord sleeps on its own word
// with a waiters bit (Drepper's mutex) and marks a takeover kOwnerDied; SideLock sleeps on
// a separate WaitWord behind an asymmetric fence, so that its release is a plain store.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "mp/internal/futex.hpp"
#include "mp/internal/os.hpp"

namespace mp::internal {

/// When a waiter next checks its lock's holder: the probe schedule above, one per wait.
class HolderProbe {
 public:
  static constexpr auto kFirstProbe = std::chrono::milliseconds(50);
  static constexpr auto kLastProbe = std::chrono::milliseconds(1000);

  HolderProbe() noexcept : every_(kFirstProbe), next_(Clock::now() + every_) {}

  /// Whether the caller's own deadline comes no later than the next probe.
  [[nodiscard]] bool deadline_first(const Deadline& deadline) const noexcept {
    return deadline && *deadline <= next_;
  }
  /// Until when to sleep: the caller's deadline or the next probe, whichever comes first.
  [[nodiscard]] Deadline sleep_until(const Deadline& deadline) const noexcept {
    return deadline_first(deadline) ? deadline : Deadline(next_);
  }
  [[nodiscard]] bool due(Clock::time_point now) const noexcept { return now >= next_; }
  /// A probe was made (at `now`): the next comes twice as long after it, at most kLastProbe.
  void probed(Clock::time_point now) noexcept {
    every_ = std::min(every_ * 2, std::chrono::duration_cast<Clock::duration>(kLastProbe));
    next_ = now + every_;
  }

 private:
  Clock::duration every_;
  Clock::time_point next_;
};

/// Whether the process recorded as a lock's holder is gone: `holder` is the pid in the lock
/// word, `id` the identity (self_identity(): pid and start time) the holder published beside
/// it. The pid may have been given to a new process since (pid reuse): a live process at
/// that pid whose start time differs from the published one is not the holder. An identity
/// not published (0, or another pid's: the holder died between taking the word and
/// publishing, or the start time could not be read) leaves the pid alone to decide.
inline bool holder_gone(std::uint32_t holder, std::uint64_t id) noexcept {
  const bool published = id != 0 && (id >> 32) == holder;
  if (holder == static_cast<std::uint32_t>(self_pid()))  // a dead holder's pid, reused by us?
    return published && id != self_identity();
  if (process_has_exited(static_cast<pid_t>(holder))) return true;
  if (!published) return false;
  const std::uint64_t start = process_start_time(static_cast<pid_t>(holder));
  return start != 0 && (start & 0xffffffffu) != (id & 0xffffffffu);
}

/// If the holder recorded in `word` (the bits under `pid_mask`) and `holder_id` is gone
/// (holder_gone), takes the lock over by storing `taken` in its place and publishing this
/// process's identity. False when the lock is free, held by this process, held by a live
/// process, or changed before the compare-exchange. The dead holder's identity is cleared
/// before the word changes hands, so no waiter ever pairs the new holder's pid with it.
inline bool take_over_if_holder_dead(std::atomic<std::uint32_t>& word, std::atomic<std::uint64_t>& holder_id,
                                     std::uint32_t pid_mask, std::uint32_t taken) noexcept {
  std::uint32_t cur = word.load(std::memory_order_acquire);
  const std::uint32_t holder = cur & pid_mask;
  if (cur == 0) return false;
  std::uint64_t id = holder_id.load(std::memory_order_acquire);
  if (!holder_gone(holder, id)) return false;
  if (id != 0 && !holder_id.compare_exchange_strong(id, 0, std::memory_order_acq_rel, std::memory_order_relaxed))
    return false;  // another waiter is taking over
  if (!word.compare_exchange_strong(cur, taken, std::memory_order_acquire, std::memory_order_relaxed)) return false;
  holder_id.store(self_identity(), std::memory_order_relaxed);
  return true;
}

}  // namespace mp::internal
