// mp/internal/ring.hpp — the byte ring under mp::Queue: a multi-producer, multi-consumer
// message queue in one shared-memory segment, robust to processes dying at any instruction.
//
// Layout (one Segment, fork-shared): a header of cache-line-separated fields, then
// `capacity` bytes of ring (a power of two). Each message is a record
//     [u32 length][u32 tag = kind | writer_pid << 3][payload, padded to 8 bytes]
// A record never splits its 8-byte header across the end of the ring (positions are
// multiples of 8); its payload may wrap and is copied in two pieces.
//
// Protocol (why a dead process can never corrupt the queue):
// - Producers serialize on `put_lock`, consumers on `get_lock` (robust pid-in-word
//   locks: a waiter that finds the holder dead takes the lock over). Taking one is a
//   compare-exchange; releasing it is a plain store, ordered before the look at the
//   sleepers' word by an asymmetric fence (src/os/membarrier.hpp): sleepers pay
//   for it with a membarrier call before they sleep, so the hot path pays nothing.
// - The producer state is ONE 64-bit word `head` = (byte position | items published << 32),
//   the consumer state is ONE 64-bit word `tail` = (byte position | items taken << 32).
//   A producer copies its whole record into free space and only then publishes it with a
//   single store to `head`; a consumer copies the record out and only then releases it with
//   a single store to `tail`. A process killed before its store changed nothing visible
//   (the half-written record is overwritten by the next producer; the half-read record is
//   read again by the next consumer); killed after it, the operation is complete.
// - Counts live in the same word as positions, so qsize / maxsize / JoinableQueue's
//   unfinished count can never drift from the bytes actually published.
// - Messages too large for half the ring travel as FIRST, MIDDLE..., LAST fragments while
//   the producer holds `put_lock` for the whole message and the receiving consumer holds
//   `get_lock`. A fragment without its FIRST (its consumer died) is skipped; an assembly
//   whose writer died, timed out (ABORT record) or was followed by a new FIRST is discarded.
//
// Waiting: a blocked side first spins for an adaptive budget (1 to 50 µs, tuned per
// process from how long its recent waits took, and cut to nothing when its waker ran on
// the same CPU, where spinning only delays the peer; the policy and its reasons are in
// src/common/wait_policy.hpp), then sleeps on a futex WaitWord whose bit 0 says "someone
// sleeps": the other side makes a system call only when that bit is set, and clears it
// when it wakes everyone, so a sleeper that died costs at most one spurious wake-up.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "mp/internal/futex.hpp"
#include "mp/internal/os.hpp"
#include "mp/internal/segment.hpp"

namespace mp::internal {

/// A futex word for "wait until something changes": bit 0 = sleepers present, bits 1..31
/// a sequence bumped by every notify that saw sleepers. Shared between processes.
struct WaitWord {
  std::atomic<std::uint32_t> word{0};
  /// CPU of the last process that woke sleepers: a sleeper woken from its own CPU learns
  /// that spinning is useless (its peer only runs when it stops).
  std::atomic<std::int32_t> waker_cpu{-1};

  /// Announces a sleeper; returns the value to pass to futex_wait. The caller must re-check
  /// its condition (with a seq_cst load) after this and before sleeping.
  std::uint32_t prepare() noexcept { return word.fetch_or(1, std::memory_order_seq_cst) | 1u; }
  /// Wakes all sleepers if any announced themselves. Call after a seq_cst store that
  /// changed the condition (Dekker: store condition, load word / set word, load condition).
  void notify() noexcept {
    std::uint32_t v = word.load(std::memory_order_seq_cst);
    while (v & 1u) {
      if (word.compare_exchange_weak(v, v + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        waker_cpu.store(current_cpu(), std::memory_order_relaxed);
        futex_wake_all(word);
        return;
      }
    }
  }
};

struct RingHeader;  // defined in src/queue/queue.cpp

/// Protocol points where tests may inject a fault (e.g. raise(SIGKILL)) to prove that a
/// process dying there leaves the queue consistent. The hook is null in normal use, costing
/// one relaxed load per operation.
enum class RingPoint {
  put_before_publish,    ///< record written, `head` not yet stored (put_lock held)
  put_between_fragments, ///< a non-final fragment published (put_lock held)
  get_before_release,    ///< record copied out, `tail` not yet stored (get_lock held)
  get_between_fragments, ///< a fragment consumed mid-assembly (get_lock held)
};
using RingFaultHook = void (*)(RingPoint);
/// Per process; set it in a test child only.
extern std::atomic<RingFaultHook> ring_fault_hook;

/// Receives one message from Ring::get. `reserve(n)` is called once per message with its
/// total size and returns where to put the n bytes (it may throw, e.g. std::bad_alloc: the
/// message is then dropped and the exception propagates).
class RingSink {
 public:
  virtual void* reserve(std::size_t n) = 0;
  /// A whole message lying contiguously at `data`: by default copied to reserve(n).
  virtual void accept(const void* data, std::size_t n) {
    void* dst = reserve(n);
    if (n != 0) std::memcpy(dst, data, n);  // an empty vector's data() may be null
  }

 protected:
  ~RingSink() = default;
};

/// Sizes of a ring. `maxsize` counts messages (0: no limit but the bytes); `capacity` is
/// in bytes, rounded up to a power of two (at least 4096).
struct RingOptions {
  std::size_t maxsize = 0;
  std::size_t capacity = std::size_t{1} << 20;
  bool shutdown_when_producers_exit = false;  ///< see Ring::producers_gone
};

/// Most producer processes a ring with shutdown_when_producers_exit records at once.
inline constexpr std::size_t kMaxProducers = 32;

/// How far a watched ring word must move (items, bytes) before a spinning waiter returns.
struct RingProgress {
  std::uint32_t count = 0;
  std::uint32_t bytes = 0;
};

/// The shared state of one queue plus this process's view of it. Copies share both the
/// queue and the per-process state (spin budgets, the closed flag of mp::Queue).
class Ring {
 public:
  explicit Ring(RingOptions opts);

  /// Appends one message of `n` bytes. Blocks (spin, then futex) while there is no room,
  /// until `deadline` (nullopt: forever; a past deadline: one attempt). Returns false if
  /// the deadline passed first: nothing was delivered.
  [[nodiscard]] bool put(const void* data, std::size_t n, Deadline deadline);
  /// Takes the oldest message into `sink`. Returns false if none arrived before `deadline`.
  [[nodiscard]] bool get(RingSink& sink, Deadline deadline);

  /// Messages published and not yet taken (a snapshot).
  [[nodiscard]] std::size_t qsize() const noexcept;
  [[nodiscard]] std::size_t maxsize() const noexcept;
  [[nodiscard]] std::size_t capacity() const noexcept;
  /// Largest payload that travels as a single record; larger ones are fragmented.
  [[nodiscard]] std::size_t max_whole_message() const noexcept;

  /// JoinableQueue: one more taken message is finished. Throws mp::ValueError if every
  /// message ever put is already marked done.
  void task_done();
  /// JoinableQueue: waits until every message put has been marked done. False on timeout.
  [[nodiscard]] bool join(Deadline deadline);
  /// Messages put and not yet marked done.
  [[nodiscard]] std::size_t unfinished() const noexcept;

  /// Python 3.13's Queue.shutdown, for every process sharing the ring: from now on put()
  /// returns false at once, get() returns false once the ring is empty, and every sleeper
  /// wakes to see it. `immediate`: the messages waiting are taken out and dropped here (and
  /// counted done, so join() returns once the ones already taken are), and get() returns
  /// false at once everywhere.
  void shutdown(bool immediate);
  [[nodiscard]] bool is_shut_down() const noexcept;

  /// shutdown_when_producers_exit: true when at least one process ever put into the ring
  /// and every such process has ended (killed or not; a pid since reused by another
  /// process still counts as ended). get() checks this whenever the ring is empty, and
  /// while waiting at the robust locks' probe intervals (src/sync/robust_lock.hpp), and
  /// then shuts the ring down as shutdown(false) does.
  [[nodiscard]] bool producers_gone() const noexcept;
  [[nodiscard]] bool watches_producers() const noexcept { return watch_producers_; }

  /// Queue::close's per-process flag: shared by the copies in this process, and reset in a
  /// forked child (as Python's Queue._after_fork does).
  [[nodiscard]] bool closed() const noexcept {
    return local_->closed_by.load(std::memory_order_relaxed) == self_pid();
  }
  void set_closed() noexcept;

 private:
  struct Local {
    std::atomic<std::int64_t> spin_get_ns;
    std::atomic<std::int64_t> spin_put_ns;
    std::atomic<int> closed_by{0};  // pid of the process that called close()
    std::atomic<int> producer_pid{0};  // pid of the process that registered as a producer
    Local();
  };
  enum class Read { got, empty };

  void register_producer();

  bool lock_put(Deadline deadline) noexcept;
  bool lock_get(Deadline deadline) noexcept;
  void unlock_put() noexcept;
  void unlock_get() noexcept;
  bool try_write_whole(const void* data, std::size_t n, std::uint64_t& seen_tail) noexcept;
  bool put_fragmented(const void* data, std::size_t n, Deadline deadline);
  Read try_read(RingSink& sink, std::uint64_t& seen_head, bool& released_space);
  bool assemble(RingSink& sink, std::uint64_t& tail, std::uint32_t len, std::uint32_t tag);
  bool await_change(const std::atomic<std::uint64_t>& w, std::uint64_t seen, WaitWord& sig, Deadline deadline,
                    std::atomic<std::int64_t>& budget, int max_pauses, RingProgress enough = {}) noexcept;
  RingProgress room_worth_waiting_for(std::uint64_t seen_tail, std::size_t n) const noexcept;
  std::uint32_t free_bytes(std::uint64_t head, std::uint64_t tail) const noexcept;
  bool below_maxsize(std::uint64_t head, std::uint64_t tail) const noexcept;  // room for one more item
  void copy_in(std::uint32_t pos, const void* src, std::size_t n) noexcept;
  void copy_out(std::uint32_t pos, void* dst, std::size_t n) const noexcept;
  void publish_head(std::uint64_t head, std::uint32_t pos, std::uint32_t len, std::uint32_t kind, const void* a,
                    std::size_t an, const void* b, std::size_t bn, bool counts) noexcept;

  std::shared_ptr<Segment> seg_;
  RingHeader* h_;
  unsigned char* data_;
  std::uint32_t cap_;
  std::uint32_t mask_;
  bool watch_producers_;  // immutable copy of the header's flag: the put fast path reads no shared line for it
  std::shared_ptr<Local> local_;
};

}  // namespace mp::internal
