// mp/internal/managers/referents.hpp — the referents a SyncManager makes (server side).
//
// Part of <mp/managers.hpp> (include that). These are the objects that live in the
// server process behind m.dict(), m.list(), m.Namespace(), m.Value(), m.Queue() and
// m.JoinableQueue(); the synchronisation referents are mp::Lock, mp::Event... themselves.
// A program serving its own types with BaseManager::register_ may use them directly
// (mp::managed::Queue<int> is the seeds' task queue).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mp/errors.hpp"
#include "mp/internal/futex.hpp"
#include "mp/sharedctypes.hpp"

namespace mp {

namespace managed {

using Timeout = std::int64_t;  ///< nanoseconds; < 0 waits forever (wire form of a timeout)

template <class Rep, class Period>
Timeout to_wire(std::chrono::duration<Rep, Period> d) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return ns < 0 ? 0 : ns;
}
inline internal::Deadline from_wire(Timeout t) {
  if (t < 0) return std::nullopt;
  return internal::deadline_after(std::chrono::nanoseconds(t));
}

/// Python-style index: negative counts from the end. Throws IndexError when out of range.
inline std::size_t wrap_index(std::int64_t i, std::size_t size, const char* what) {
  std::int64_t n = static_cast<std::int64_t>(size);
  if (i < 0) i += n;
  if (i < 0 || i >= n) throw IndexError(std::string(what) + " index out of range");
  return static_cast<std::size_t>(i);
}

/// An omitted slice bound (Python's None in l[:3] or l[::-1]): INT64_MIN, which as an index
/// could only be clamped to the start anyway.
inline constexpr std::int64_t slice_none = INT64_MIN;

/// Python's slice.indices(): clamps start and stop into the sequence as CPython does
/// (slice_none is an omitted bound, whose meaning depends on the step's sign). Throws
/// ValueError when step is 0. `count` is the number of items the slice selects.
struct SliceBounds {
  std::int64_t start, stop, step, count;
};
inline SliceBounds slice_bounds(std::int64_t start, std::int64_t stop, std::int64_t step, std::size_t size) {
  if (step == 0) throw ValueError("slice step cannot be zero");
  if (step == INT64_MIN) step = -INT64_MAX;  // as CPython: -step must not overflow
  const std::int64_t n = static_cast<std::int64_t>(size);
  auto clamp = [&](std::int64_t i) {
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  start = start == slice_none ? (step < 0 ? n - 1 : 0) : clamp(start);
  stop = stop == slice_none ? (step < 0 ? -1 : n) : clamp(stop);
  std::int64_t count = 0;
  if (step < 0 && stop < start) count = (start - stop - 1) / (-step) + 1;
  if (step > 0 && start < stop) count = (stop - start - 1) / step + 1;
  return {start, stop, step, count};
}

template <class K, class V>
struct Dict {
  std::map<K, V> d;
  Dict() = default;
  explicit Dict(std::map<K, V> init) : d(std::move(init)) {}
};

template <class T>
struct List {
  std::vector<T> v;
  List() = default;
  explicit List(std::vector<T> init) : v(std::move(init)) {}
};

template <class T>
struct Set {
  std::set<T> s;
  Set() = default;
  explicit Set(std::set<T> init) : s(std::move(init)) {}
};

/// Attribute bag: name -> (type key, encoded value).
struct Namespace {
  std::map<std::string, std::pair<std::string, std::string>> attrs;
};

template <class T>
struct ValueBox {
  T value{};
  ValueBox() = default;
  explicit ValueBox(T v) : value(std::move(v)) {}
};

/// A thread-safe FIFO with Python queue.Queue semantics (the referent of m.Queue<T>()).
template <class T>
class Queue {
 public:
  explicit Queue(std::int64_t maxsize = 0) : maxsize_(maxsize) {}
  void put(T item, bool block, Timeout timeout) {
    std::unique_lock g(mu_);
    auto room = [&] { return maxsize_ <= 0 || static_cast<std::int64_t>(items_.size()) < maxsize_; };
    if (!block) {
      if (!room()) throw Full("Queue.put: the queue is full");
    } else if (!wait(g, not_full_, from_wire(timeout), room)) {
      throw Full("Queue.put: no room became free before the timeout");
    }
    items_.push_back(std::move(item));
    ++unfinished_;
    not_empty_.notify_one();
  }
  T get(bool block, Timeout timeout) {
    std::unique_lock g(mu_);
    auto any = [&] { return !items_.empty(); };
    if (!block) {
      if (!any()) throw Empty("Queue.get: the queue is empty");
    } else if (!wait(g, not_empty_, from_wire(timeout), any)) {
      throw Empty("Queue.get: nothing arrived before the timeout");
    }
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }
  std::int64_t qsize() {
    std::lock_guard g(mu_);
    return static_cast<std::int64_t>(items_.size());
  }
  std::int64_t maxsize() const noexcept { return maxsize_; }
  void task_done() {
    std::lock_guard g(mu_);
    if (unfinished_ == 0) throw ValueError("JoinableQueue.task_done() called more times than items were put");
    if (--unfinished_ == 0) all_done_.notify_all();
  }
  bool join(Timeout timeout) {
    std::unique_lock g(mu_);
    return wait(g, all_done_, from_wire(timeout), [&] { return unfinished_ == 0; });
  }

 private:
  template <class P>
  static bool wait(std::unique_lock<std::mutex>& g, std::condition_variable& cv, internal::Deadline d, P pred) {
    if (!d) {
      cv.wait(g, pred);
      return true;
    }
    return cv.wait_until(g, *d, pred);
  }
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_, all_done_;
  std::deque<T> items_;
  std::int64_t maxsize_;
  std::uint64_t unfinished_ = 0;
};

template <class T>
struct JoinableQueue : Queue<T> {
  using Queue<T>::Queue;
};

}  // namespace managed

}  // namespace mp
