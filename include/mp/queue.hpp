// mp/queue.hpp — typed FIFO queues shared by processes and threads.
//
// Mirrors: multiprocessing.Queue, multiprocessing.SimpleQueue, multiprocessing.JoinableQueue
// (and queue.Empty / queue.Full as mp::Empty / mp::Full).
//
//   mp::Queue<std::string> q(3);                       // at most 3 items, like Queue(3)
//   mp::Process p([](mp::Queue<std::string> q) { q.put("hello baby"); }, q);
//   p.start();
//   std::string s = q.get();                           // blocks until it arrives
//
// What a queue is: a handle to a ring buffer in shared memory (an mp::internal::Segment).
// Copies of a Queue — in this process, in another thread, or inherited by a child through
// fork (e.g. passed as an mp::Process argument) — are the same queue. There is no feeder
// thread and no pipe: put() copies the encoded value straight into the ring and get()
// copies it straight out.
//
// Guarantees:
// - Any number of producers and consumers, in any mix of processes and threads.
// - FIFO: messages leave in the order their put() calls completed; in particular, the
//   messages of one producer (thread) arrive in the order it put them. Every message is
//   delivered to exactly one get().
// - Values travel through mp::codec: a trivially copyable T is copied with memcpy,
//   std::string / std::vector<trivial> as raw bytes, other types with cereal. A T the codec
//   cannot handle does not compile. A value that fails to decode (a cereal type whose
//   load throws) raises mp::CodecError from get() and is consumed.
// - Memory ordering: everything the producer wrote before put() is visible to the thread
//   whose get() returns that message.
// - maxsize counts items, as in Python (0 = no item limit). Independently, the ring holds
//   at most `capacity_bytes` (default 1 MiB) of undelivered data: an unbounded queue's put()
//   blocks when that much is waiting, like a pipe (Python's feeder thread would instead
//   buffer without limit in the producer's memory). Raise capacity_bytes for bursts.
// - Messages of any size. One larger than half the ring travels in fragments: the producer
//   keeps the producer side of the queue for the whole message and a single consumer
//   receives it whole; so it needs a consumer taking it while it is put.
// - Blocking: a waiting side polls for a short adaptive time (up to 50 µs, longer while
//   waits are short, none when its peer shares its CPU), then sleeps on a futex: an idle
//   queue burns no CPU, and a busy consumer is never woken by a system call. The other
//   side enters the kernel only when someone actually sleeps.
// - Timeouts: get(timeout) / put(v, timeout) take any std::chrono duration; the deadline
//   is computed once (absolute CLOCK_MONOTONIC), so spurious wake-ups never extend it. A
//   zero or negative timeout is one immediate attempt (the *_nowait forms).
//
// Processes that die (even by SIGKILL) in the middle of put() or get():
// - The queue is never corrupted and nobody else hangs: producers (and consumers) take
//   turns through a robust lock; a process that finds the holder dead takes over.
//   Takeover happens on the waiter's liveness probe, ~50 ms after the death.
// - A put() interrupted before its message was published leaves no trace: a half-written
//   message is never delivered. Publishing is one atomic store, so a put() killed at any
//   instruction either delivered the whole message or nothing.
// - A get() interrupted before it released the message leaves it in the queue for the
//   next consumer; one killed after releasing it took the message with it (lost).
// - A fragmented (larger than half the ring) message whose writer dies mid-way is
//   discarded by its consumer; one whose consumer dies mid-way is lost, and its remaining
//   fragments are skipped.
// - JoinableQueue: a consumer that dies between get() and task_done() leaves that item
//   unfinished forever, so join() would wait forever — exactly as in Python.
//
// Producers that end (beyond Python; opt-in, QueueOptions::shutdown_when_producers_exit):
// - Each process's first put() records it as a producer (pid and start time, in a table of
//   internal::kMaxProducers = 32 slots in the shared header). Once every recorded process
//   has ended — exited, or killed even by SIGKILL mid-put — the queue shuts itself down as
//   shutdown(false) does: put() raises mp::ShutDown, get() drains what was published and
//   then raises mp::ShutDown (a get(timeout) too, rather than mp::Empty). A half-written
//   message of a killed producer is never delivered, as above.
// - A producer counts as gone only when its process has ended: a process that put items
//   and lives on (e.g. the parent that filled the queue for its children) keeps the queue
//   open. A pid that a new process took after the producer died does not keep it open.
// - Before any process has put, nobody has produced yet: get() waits as usual.
// - A getter notices the end when it finds the queue empty, and while it waits, at the
//   robust locks' probe intervals (50 ms, doubling up to 1 s); no descriptor is needed.
// - The table is full when 32 live processes have put: the first put() of a 33rd process
//   raises mp::RuntimeError and puts nothing. Slots of ended producers are reused.
// - The put fast path is unchanged but for one branch on a per-process flag.
//
// Differences from Python: no feeder thread (so join_thread/cancel_join_thread have nothing
// to do, and a put() can block on a full ring even with maxsize 0); close() only makes
// this process's handles refuse further put/get (ValueError), as in Python.
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "mp/internal/futex.hpp"
#include "mp/internal/ring.hpp"

namespace mp {

/// Options for a queue, as keyword arguments: `mp::Queue<int> q({.maxsize = 3})`.
struct QueueOptions {
  std::size_t maxsize = 0;                        ///< most items waiting at once; 0 = no item limit
  std::size_t capacity_bytes = std::size_t{1} << 20;  ///< ring size (rounded up to a power of two, ≥ 4 KiB, ≤ 1 GiB)
  /// Beyond Python: shut the queue down by itself (as shutdown() does) once every process
  /// that ever put into it has ended, normally or killed. See "Producers that end" above.
  bool shutdown_when_producers_exit = false;
};

namespace internal {
/// Per-thread buffer for encoding values that are not sent as raw bytes.
std::string& codec_scratch();

template <class T>
class ValueSink final : public RingSink {
 public:
  void* reserve(std::size_t n) override {
    size_ = n;
    if constexpr (TriviallyTransferable<T>) {
      if (n == sizeof(T)) return bytes_.data();
      scratch_.resize(n);
      return scratch_.data();
    } else if constexpr (std::is_same_v<T, std::string>) {
      str_.resize(n);
      return str_.data();
    } else if constexpr (is_byte_vector<T>::value) {
      using E = typename T::value_type;
      if (n % sizeof(E) == 0) {
        vec_.resize(n / sizeof(E));
        return vec_.data();
      }
      scratch_.resize(n);
      return scratch_.data();
    } else {
      scratch_.resize(n);
      return scratch_.data();
    }
  }

  void accept(const void* data, std::size_t n) override {
    if constexpr (std::is_same_v<T, std::string>) {
      size_ = n;
      str_.assign(static_cast<const char*>(data), n);  // no zero-fill before the copy, as resize() would
    } else {
      RingSink::accept(data, n);
    }
  }

  T take() {
    if constexpr (TriviallyTransferable<T>) {
      if (size_ != sizeof(T))
        throw CodecError("mp::Queue: received a " + std::to_string(size_) + "-byte message for a " +
                         std::to_string(sizeof(T)) + "-byte type");
      return std::bit_cast<T>(bytes_);
    } else if constexpr (std::is_same_v<T, std::string>) {
      return std::move(str_);
    } else if constexpr (is_byte_vector<T>::value) {
      if (size_ % sizeof(typename T::value_type) != 0) return codec::decode<T>(scratch_);  // throws CodecError
      return std::move(vec_);
    } else {
      return codec::decode<T>(scratch_);
    }
  }

 private:
  struct Empty {};
  std::size_t size_ = 0;
  [[no_unique_address]] std::conditional_t<TriviallyTransferable<T>, std::array<unsigned char, sizeof(T)>, Empty>
      bytes_{};
  [[no_unique_address]] std::conditional_t<std::is_same_v<T, std::string>, std::string, Empty> str_{};
  [[no_unique_address]] std::conditional_t<is_byte_vector<T>::value, T, Empty> vec_{};
  std::string scratch_;
};
}  // namespace internal

/// multiprocessing.Queue: a bounded or unbounded FIFO of T shared by processes and threads.
/// A copyable handle: copies are the same queue.
template <class T>
class Queue {
  static_assert(Transferable<T>,
                "mp::Queue<T>: T cannot be sent between processes. Make it trivially copyable, or give it "
                "`template <class Archive> void serialize(Archive& ar) { ar(field1, field2, ...); }` and a default "
                "constructor (cereal), or include the cereal header for the standard type it uses.");

 public:
  /// A queue holding at most `maxsize` items (0: no item limit), like Queue(maxsize).
  /// Throws mp::OSError if shared memory cannot be created.
  explicit Queue(std::size_t maxsize = 0) : Queue(QueueOptions{.maxsize = maxsize}) {}
  explicit Queue(QueueOptions opts)
      : ring_({.maxsize = opts.maxsize,
               .capacity = opts.capacity_bytes,
               .shutdown_when_producers_exit = opts.shutdown_when_producers_exit}) {}

  /// Appends `value`, waiting as long as needed for room. Throws mp::ValueError if this
  /// process closed the queue.
  void put(const T& value) { put_until(value, std::nullopt, "put"); }
  /// Appends `value`, waiting at most `timeout` for room; throws mp::Full if there was none.
  template <class Rep, class Period>
  void put(const T& value, std::chrono::duration<Rep, Period> timeout) {
    put_until(value, internal::deadline_after(timeout), "put");
  }
  /// put() with an absolute deadline (steady_clock).
  void put_until(const T& value, internal::Clock::time_point deadline) { put_until(value, deadline, "put"); }
  /// Appends `value` only if there is room right now; else throws mp::Full.
  void put_nowait(const T& value) { put_until(value, internal::Clock::now(), "put_nowait"); }

  /// Removes and returns the oldest item, waiting as long as needed. Throws mp::ValueError
  /// if this process closed the queue, mp::CodecError if the item cannot be decoded as T.
  T get() { return get_until(std::nullopt, "get"); }
  /// Waits at most `timeout`; throws mp::Empty if nothing arrived.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_until(internal::deadline_after(timeout), "get");
  }
  /// get() with an absolute deadline (steady_clock).
  T get_until(internal::Clock::time_point deadline) { return get_until(deadline, "get"); }
  /// Returns an item only if one is there right now; else throws mp::Empty.
  T get_nowait() { return get_until(internal::Clock::now(), "get_nowait"); }

  /// Items waiting (a snapshot: other processes may change it at once, as in Python).
  [[nodiscard]] std::size_t qsize() const noexcept { return ring_.qsize(); }
  /// No item waiting (snapshot).
  [[nodiscard]] bool empty() const noexcept { return ring_.qsize() == 0; }
  /// maxsize items waiting (snapshot); always false for maxsize 0.
  [[nodiscard]] bool full() const noexcept { return ring_.maxsize() != 0 && ring_.qsize() >= ring_.maxsize(); }
  [[nodiscard]] std::size_t maxsize() const noexcept { return ring_.maxsize(); }
  /// The ring's size in bytes (after rounding).
  [[nodiscard]] std::size_t capacity_bytes() const noexcept { return ring_.capacity(); }

  /// This process will not use the queue any more: further put/get through any handle in
  /// this process throw mp::ValueError. Other processes, including children forked later,
  /// are unaffected; queued items stay.
  void close() noexcept { ring_.set_closed(); }
  /// Python waits here for the feeder thread to flush; mp has none (put() writes directly
  /// into shared memory), so this only checks that close() was called (mp::RuntimeError if
  /// not, like Python's assertion).
  void join_thread() const {
    if (!ring_.closed()) throw RuntimeError("Queue.join_thread(): call close() first");
  }
  /// No-op: there is no feeder thread whose flush a process exit could wait for.
  void cancel_join_thread() noexcept {}

  /// Python 3.13's Queue.shutdown, across processes (CPython's multiprocessing.Queue lacks
  /// it): in every process sharing the queue, put() now raises mp::ShutDown, and get()
  /// raises it once the queue is empty; blocked putters and getters wake to do so.
  /// `immediate`: the items waiting are dropped now (for a JoinableQueue they count as
  /// done, so join() returns once the items consumers already took are marked done) and
  /// get() raises at once. Cannot be undone; calling it again only upgrades to immediate.
  void shutdown(bool immediate = false) { ring_.shutdown(immediate); }
  /// True once shutdown() was called in any process (Python's is_shutdown).
  [[nodiscard]] bool is_shutdown() const noexcept { return ring_.is_shut_down(); }

 protected:
  internal::Ring& ring() noexcept { return ring_; }
  const internal::Ring& ring() const noexcept { return ring_; }
  void check_open(const char* op) const {
    if (ring_.closed())
      throw ValueError(std::string("Queue.") + op + "(): the queue is closed in this process (close() was called)");
  }

 private:
  void put_until(const T& value, internal::Deadline deadline, const char* op) {
    check_open(op);
    bool ok;
    if constexpr (TriviallyTransferable<T>) {
      ok = ring_.put(std::addressof(value), sizeof(T), deadline);
    } else if constexpr (std::is_same_v<T, std::string>) {
      ok = ring_.put(value.data(), value.size(), deadline);
    } else if constexpr (internal::is_byte_vector<T>::value) {
      ok = ring_.put(value.data(), value.size() * sizeof(typename T::value_type), deadline);
    } else {
      std::string& buf = internal::codec_scratch();
      buf.clear();
      codec::encode_into(value, buf);
      ok = ring_.put(buf.data(), buf.size(), deadline);
      if (buf.capacity() > (std::size_t{1} << 20)) std::string().swap(buf);
    }
    if (!ok) {
      if (ring_.is_shut_down())
        throw ShutDown(std::string("Queue.") + op + "(): the queue was shut down (" + shut_by() +
                       "): it takes no more items");
      throw Full(std::string("Queue.") + op + "(): the queue is full" + (nowait(op) ? "" : " until the timeout"));
    }
  }

  T get_until(internal::Deadline deadline, const char* op) {
    check_open(op);
    internal::ValueSink<T> sink;
    if (!ring_.get(sink, deadline)) {
      if (ring_.is_shut_down())
        throw ShutDown(std::string("Queue.") + op + "(): the queue was shut down (" + shut_by() +
                       ") and has no items left");
      throw Empty(std::string("Queue.") + op + "(): the queue is empty" + (nowait(op) ? "" : " until the timeout"));
    }
    return sink.take();
  }

  const char* shut_by() const noexcept {
    return ring_.watches_producers() ? "shutdown(), or every producer process ended" : "shutdown()";
  }
  static bool nowait(const char* op) noexcept { return std::string_view(op).ends_with("_nowait"); }

  internal::Ring ring_;
};

/// multiprocessing.SimpleQueue: put / get / empty / close, no item limit (the ring's
/// byte capacity still bounds what may wait; see Queue).
template <class T>
class SimpleQueue {
 public:
  SimpleQueue() : q_(QueueOptions{}) {}
  explicit SimpleQueue(QueueOptions opts) : q_(opts) {}

  /// Appends `value` (blocks only while the ring's bytes are all in use).
  void put(const T& value) { q_.put(value); }
  /// Removes and returns the oldest item, waiting as long as needed.
  T get() { return q_.get(); }
  /// No item waiting (snapshot).
  [[nodiscard]] bool empty() const noexcept { return q_.empty(); }
  /// Further put/get in this process throw mp::ValueError.
  void close() noexcept { q_.close(); }

 private:
  Queue<T> q_;
};

/// multiprocessing.JoinableQueue: a Queue that also counts unfinished items. Every put()
/// adds one; task_done() (called by a consumer when it has finished with an item it got)
/// removes one; join() waits until the count is zero. Only published messages count: a
/// producer killed mid-put never leaves a phantom unfinished item.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  using Queue<T>::Queue;

  /// Marks one item as finished. Throws mp::ValueError if called more times than items were
  /// put (Python: "task_done() called too many times").
  void task_done() { this->ring().task_done(); }
  /// Blocks until every item ever put has been marked done.
  void join() { (void)this->ring().join(std::nullopt); }
  /// Waits at most `timeout`; returns whether every item has been marked done.
  template <class Rep, class Period>
  [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout) {
    return this->ring().join(internal::deadline_after(timeout));
  }
  /// Items put and not yet marked done (a snapshot).
  [[nodiscard]] std::size_t unfinished_tasks() const noexcept { return this->ring().unfinished(); }
};

}  // namespace mp
