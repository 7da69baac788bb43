// mp's one policy for waiting on another process or thread: spin (poll without sleeping)
// for a while, then sleep. Every wait in mp that a busy peer usually ends within
// microseconds follows it: the queue's put/get (src/queue/queue.cpp), a Connection's
// receive (src/connection/receive.cpp), the manager client and server
// (src/managers/socket.cpp), the robust locks (src/sync/synchronize.cpp, SideLock in
// src/queue/queue.cpp), the Pool (src/pool/pool.cpp, src/pool/state.cpp) and mp::mpi's
// serve loop (src/mpi/serve.cpp). The constants are here and nowhere else; tune them here.
//
// Why spin at all: a sleeper must be woken, and the wake-up costs more than the message it
// announces: a futex or pipe wake-up is 5-50 µs on a VM (more when the sleeper's CPU has
// gone idle), and it is paid by the waker, on its hot path. A busy peer changes the word or
// writes the pipe within a microsecond or two; a waiter that polls meanwhile catches it and
// neither side enters the kernel. Worse, the kernel treats a pipe wake-up as a hand-off
// (WF_SYNC) and moves the sleeper onto the waker's CPU, where the two then take turns.
//
// Why bounded (kSpinMaxNs = 50 µs, as Linux's suggested net.core.busy_read): a wait longer
// than a few wake-ups is cheaper asleep, and an idle waiter must soon cost nothing.
//
// Why adapt (next_spin_ns): the right budget depends on the peer, which changes. A wait that
// ended within kSpinMaxNs, even after sleeping, would have been caught by spinning that
// long, so the budget grows to twice that wait; a longer wait (an idle peer) halves it, down
// to kSpinMinNs. Judging by spin success alone has a trap: once both sides sleep, every wait
// lasts a wake-up, longer than a short spin, and spinning would never be tried again.
// The budget starts at kSpinInitialNs and is kept per queue side in each process, and per
// Connection.
//
// Why give up when the waker ran on our CPU: then the peer could only run because we
// stopped; spinning there just burnt its time slice, so the next wait sleeps at once
// (budget 0, from which a short wait grows it again). Each site has its own evidence: the
// queue's WaitWord records the waker's CPU; a Connection sees whether it woke on the CPU
// where it polled in vain (the kernel wakes a pipe reader on its writer's CPU).
//
// Why give up when the machine has no spare CPU (spare_cpu_for_peer): on a loaded machine
// a spinning thread only takes CPU time from others, the peer included, and the scheduler
// favours a sleeper it wakes. The manager's polling checks this (each of its polls is a
// system call, and its budget rule cannot see the wake-up); the queue and Connection learn
// the same through the rule above, since a peer that could not run wakes them from their CPU.
//
// Variants, each for a reason given where it is defined below: a bounded spin before a
// lock's futex wait (kLockSpins), the back-off between polls (Backoff), a budget judged by
// the spin's outcome alone (OutcomeBudget), spins that yield (YieldingSpin), and polling
// with nothing to sleep on (poll_backoff).
//
// What the queue's and the Connection's hot paths use is inline and allocation-free; the
// spin loops themselves stay at their sites, out of line where they were.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "mp/internal/futex.hpp"

namespace mp::internal {

namespace wait_policy {

/// The adaptive spin budget, in nanoseconds: its start, floor and ceiling (see the top).
inline constexpr std::int64_t kSpinInitialNs = 20'000;
inline constexpr std::int64_t kSpinMinNs = 1'000;
inline constexpr std::int64_t kSpinMaxNs = 50'000;

/// The budget after a wait that took `waited_ns` (spin and sleep) with budget `spin_ns`.
/// `peer_ran_here`: the wait slept and its waker ran on the CPU where we spun.
constexpr std::int64_t next_spin_ns(std::int64_t spin_ns, std::int64_t waited_ns, bool peer_ran_here) noexcept {
  if (peer_ran_here) return 0;
  return waited_ns <= kSpinMaxNs ? std::clamp<std::int64_t>(2 * waited_ns, spin_ns, kSpinMaxNs)
                                 : std::clamp<std::int64_t>(spin_ns / 2, kSpinMinNs, kSpinMaxNs);
}

/// A lock's (and Semaphore's) spin before its futex wait, in polls: a count, not a time, so
/// the spin costs no clock reads, and not adaptive: the holder is running a short critical
/// section (a memcpy in the queue, a few stores in Lock/RLock/Barrier), usually shorter than
/// a futex round trip; when it is not, the waiter sleeps after ~100 pauses (a few µs).
inline constexpr int kLockSpins = 100;

/// Most pauses (~30 ns each) between two polls of a spin. Each poll of a shared word pulls
/// the cache line the peer is about to write, and the peer's next locked instruction stalls
/// until it comes back; so polls thin out, exponentially, up to this many pauses apart.
/// Short when a consumer waits for data (latency matters), longer when a producer waits for
/// room (the consumer is busy and its line should be left alone), and in between when each
/// poll is a system call (a Connection's non-blocking read; the manager's poll(), which
/// polls at a fixed interval).
inline constexpr int kPausesWaitingForData = 8;
inline constexpr int kPausesWaitingForRoom = 64;
inline constexpr int kPausesBetweenReads = 32;
inline constexpr int kPausesBetweenPolls = 16;

/// The exponential back-off between polls: 1, 2, 4 ... `max_pauses` pauses.
class Backoff {
 public:
  explicit constexpr Backoff(int max_pauses) noexcept : max_(max_pauses) {}
  void pause() noexcept {
    for (int i = 0; i < pauses_; ++i) cpu_relax();
    pauses_ = std::min(pauses_ * 2, max_);
  }

 private:
  int pauses_ = 1;
  int max_;
};

/// The budget of a spin whose owner never sees how long the whole wait took, because the
/// sleep happens elsewhere (the manager's ReadWaiter polls, then leaves blocking to recv):
/// it can only judge by the spin's outcome. A spin that catches the message restores the
/// full budget; one that does not halves it, and below kSpinMinNs spinning stops, so a peer
/// that is slow or idle soon costs nothing. That is the trap next_spin_ns avoids, so every
/// kProbeEvery-th wait spins with the full budget again (at most 50 µs per 32 waits), and a
/// pair that has become active again finds its way back.
class OutcomeBudget {
 public:
  static constexpr unsigned kProbeEvery = 32;
  static constexpr std::chrono::nanoseconds kMax{kSpinMaxNs};
  static constexpr std::chrono::nanoseconds kMin{kSpinMinNs};

  /// How long to spin this time; zero: do not spin.
  std::chrono::nanoseconds next() noexcept {
    if (budget_ != budget_.zero()) return budget_;
    return ++cold_waits_ % kProbeEvery == 0 ? kMax : budget_.zero();
  }
  void caught() noexcept { budget_ = kMax; }
  void missed() noexcept { budget_ = budget_ / 2 < kMin ? budget_.zero() : budget_ / 2; }

 private:
  unsigned cold_waits_ = 0;
  std::chrono::nanoseconds budget_ = kMax;
};

/// Whether a CPU is free for the peer while we spin: more than one CPU usable by this
/// process (its affinity mask), and no more runnable threads on the machine than usable
/// CPUs (we and a spinning peer count among them), from /proc/loadavg, read at most every
/// 10 ms per process.
bool spare_cpu_for_peer() noexcept;

/// The Pool's spins yield: kYieldAfter pure pauses, then a sched_yield() between polls.
/// A Pool runs as many workers as CPUs, so its machine is oversubscribed by design, and a
/// spinner that yields lets the very thread it waits for run. Because yielding costs the
/// machine little (the CPU goes to any runnable thread), these spins may outlast
/// kSpinMaxNs: kPoolIdleSpin for the pool's handler thread and workers between tasks (both
/// ends of a busy pool's rings), kResultSpin for a caller waiting on one result.
inline constexpr unsigned kYieldAfter = 64;
inline constexpr auto kPoolIdleSpin = std::chrono::microseconds(200);
inline constexpr auto kResultSpin = std::chrono::microseconds(100);

class YieldingSpin {
 public:
  explicit constexpr YieldingSpin(Clock::duration budget) noexcept : budget_(budget) {}
  /// One step of the spin; false once `budget` (timed from the first yield) or `deadline`
  /// has passed, checked every 16 yields.
  bool again(const Deadline& deadline = std::nullopt) noexcept {
    if (++n_ < kYieldAfter) {
      cpu_relax();
      return true;
    }
    if (n_ == kYieldAfter) t0_ = Clock::now();
    ::sched_yield();
    if ((n_ & 15) != 0) return true;
    const auto now = Clock::now();
    return now - t0_ < budget_ && !(deadline && now >= *deadline);
  }
  void reset() noexcept { n_ = 0; }

 private:
  unsigned n_ = 0;
  Clock::time_point t0_;
  Clock::duration budget_;
};

/// A wait with nothing to sleep on (mp::mpi's serve loop polls MPI_Iprobe, because Open MPI's
/// blocking receive busy-polls a core): kPollYields yields first (the next message of
/// a busy sender arrives within microseconds), then naps growing by kPollNapStep up to
/// kPollNapMax, which bounds both the idle cost and the latency of the first message.
/// `idle` counts the polls that found nothing, from 1.
inline constexpr unsigned kPollYields = 200;
inline constexpr unsigned kPollNapStepUs = 50;
inline constexpr unsigned kPollNapMaxUs = 1000;
inline void poll_backoff(unsigned idle) noexcept {
  if (idle < kPollYields) ::sched_yield();
  else ::usleep(std::min(kPollNapMaxUs, kPollNapStepUs * (idle - kPollYields + 1)));
}

}  // namespace wait_policy
}  // namespace mp::internal
