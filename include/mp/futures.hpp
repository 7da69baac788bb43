// mp/futures.hpp — executors and futures (Python's concurrent.futures).
//
// Mirrors: ProcessPoolExecutor, ThreadPoolExecutor (submit, map — with Python 3.14's
// buffersize: ex.map(f, std::views::iota(0), {.buffersize = 4}) pulls an endless range
// lazily, at most 4 chunks ahead of the results taken — shutdown), Future
// (result, exception, cancel, cancelled, running, done, add_done_callback), as_completed
// and wait with FIRST_COMPLETED / FIRST_EXCEPTION / ALL_COMPLETED.
//
//   int square(int x) { return x * x; }
//   mp::ProcessPoolExecutor ex(4);
//   std::vector<mp::Future<int>> fs;
//   for (int i = 0; i < 10; ++i) fs.push_back(ex.submit(square, i));
//   for (auto& f : mp::as_completed(fs)) std::printf("%d\n", f.result());
//
// Guarantees
// - ProcessPoolExecutor runs on mp::Pool and inherits its rules: functions must be plain
//   functions or capture-less lambdas, values travel through mp::codec. ThreadPoolExecutor
//   runs on mp::ThreadPool and takes any callable.
// - Crashes: a worker process killed while running a task fails *that* future with
//   mp::WorkerLost; the executor replaces the worker and stays usable. (CPython instead
//   marks the whole executor broken — BrokenProcessPool — and fails every pending future;
//   mp keeps the other work going, so mp::BrokenPool is only raised for work that a
//   shutdown or terminate cut off.)
// - result()/exception() wait; with a timeout they raise mp::TimeoutError. A cancelled
//   future's result() raises mp::CancelledError. Beyond Python, cancel() also stops a task
//   already running in a ProcessPoolExecutor (its worker is killed and replaced), and
//   submit({.timeout = 5s}, f, ...) bounds how long one task may run (mp::TimeoutError).
// - Done callbacks run on the thread that completes the future (the pool's result
//   handler), or at once in add_done_callback if it is already done.
// - The destructor calls shutdown(wait=true), like leaving `with Executor() as ex:`.
// - A Future has Python's identity semantics: copies of one future are equal and hash
//   alike, different submissions differ, and futures are ordered (by their shared state's
//   address), so they key std::unordered_map, std::map and std::set. wait() and
//   as_completed() take any range of futures or a map keyed by futures, and, as Python's
//   (which take set(fs)), handle a future given twice once:
//     std::unordered_map<mp::Future<int>, int> future_to_n;
//     for (int n : items) future_to_n.emplace(ex.submit(square, n), n);
//     for (auto& f : mp::as_completed(future_to_n)) use(future_to_n.at(f), f.result());
#pragma once

#include <algorithm>
#include <chrono>
#include <compare>
#include <functional>
#include <optional>
#include <set>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "mp/pool.hpp"
#include "mp/process.hpp"

namespace mp {

/// The result of a task submitted to an executor (concurrent.futures.Future).
template <class R>
class Future {
 public:
  using result_type = R;
  Future() = default;
  explicit Future(std::shared_ptr<internal::ResultState<R>> s) : s_(std::move(s)) {}

  /// Waits and returns the result; rethrows the task's exception; mp::CancelledError.
  R result() const {
    s_->wait_until(std::nullopt);
    return take();
  }
  template <class Rep, class Period>
  R result(std::chrono::duration<Rep, Period> timeout) const {
    if (!s_->wait_until(internal::deadline_after(timeout)))
      throw TimeoutError("Future.result(timeout): the result was not ready in time");
    return take();
  }
  /// Waits; the task's exception, or nullptr if it succeeded.
  std::exception_ptr exception() const {
    s_->wait_until(std::nullopt);
    return s_->error();
  }
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    if (!s_->wait_until(internal::deadline_after(timeout)))
      throw TimeoutError("Future.exception(timeout): the future was not done in time");
    return s_->error();
  }
  /// Cancels the task; true if it is (now) cancelled, and result() then raises
  /// mp::CancelledError. Beyond Python, a task already running in a ProcessPoolExecutor is
  /// cancelled too: its worker is killed and replaced, the other tasks go on (Python's
  /// cancel() returns false once a task runs; a ThreadPoolExecutor's still does).
  bool cancel() { return s_->cancel(); }
  [[nodiscard]] bool cancelled() const { return s_->phase() == internal::Completion::Phase::cancelled; }
  [[nodiscard]] bool running() const { return s_->phase() == internal::Completion::Phase::running && !s_->ready(); }
  [[nodiscard]] bool done() const noexcept { return s_->ready(); }
  /// Calls fn(*this) when the future is done (at once if it already is).
  template <class Fn>
  void add_done_callback(Fn fn) {
    std::weak_ptr<internal::ResultState<R>> w = s_;
    s_->add_done_callback([w, fn = std::move(fn)]() mutable {
      if (auto s = w.lock()) fn(Future(s));
    });
  }
  [[nodiscard]] const std::shared_ptr<internal::ResultState<R>>& state() const noexcept { return s_; }

  /// Identity, as Python's futures: copies of one future (including the one a done
  /// callback receives) are equal and hash alike (std::hash<mp::Future<R>>); futures of
  /// different submissions differ. The order is the shared state's address, arbitrary but
  /// total, so a Future is a key of std::unordered_map, std::map and std::set alike.
  /// Default-constructed futures are equal to each other only.
  friend bool operator==(const Future& a, const Future& b) noexcept { return a.s_ == b.s_; }
  friend std::strong_ordering operator<=>(const Future& a, const Future& b) noexcept { return a.s_ <=> b.s_; }

 private:
  R take() const {
    if (s_->error()) std::rethrow_exception(s_->error());
    if constexpr (!std::is_void_v<R>) return s_->value();
  }
  std::shared_ptr<internal::ResultState<R>> s_;
};

}  // namespace mp

/// Hashes a Future by identity (its shared state), consistent with operator==: futures are
/// keys of std::unordered_map, as Python's are dict keys.
template <class R>
struct std::hash<mp::Future<R>> {
  std::size_t operator()(const mp::Future<R>& f) const noexcept {
    return std::hash<std::shared_ptr<mp::internal::ResultState<R>>>{}(f.state());
  }
};

namespace mp {

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

template <class R>
struct DoneAndNotDone {
  std::vector<Future<R>> done;
  std::vector<Future<R>> not_done;
};

namespace internal {

/// What wait() and as_completed() accept, as Python's `fs` iterable: a range of futures,
/// or a map keyed by futures (iterating a Python dict gives its keys).
template <class T>
struct FutureElement {};
template <class R>
struct FutureElement<Future<R>> {
  using future = Future<R>;
};
template <class R, class V>
struct FutureElement<std::pair<const Future<R>, V>> {
  using future = Future<R>;
};
template <class Range>
using FutureOf = typename FutureElement<std::ranges::range_value_t<Range>>::future;
template <class Range>
concept FutureRange = std::ranges::input_range<Range> && requires { typename FutureOf<Range>; };

/// The futures of `fs`, each once, in first-seen order (Python takes set(fs): a future
/// given twice is waited for and returned once).
template <FutureRange Range>
std::vector<FutureOf<Range>> distinct_futures(Range&& fs) {
  std::vector<FutureOf<Range>> out;
  std::unordered_set<FutureOf<Range>> seen;
  for (auto&& e : fs) {
    const FutureOf<Range>* f;
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(e)>, FutureOf<Range>>) f = &e;
    else f = &e.first;
    if (seen.insert(*f).second) out.push_back(*f);
  }
  return out;
}

/// Registers one Waiter on every future for as long as it lives.
template <class R>
class WaitSet {
 public:
  explicit WaitSet(std::vector<Future<R>> fs) : fs_(std::move(fs)), w_(std::make_shared<Waiter>()) {
    for (auto& f : fs_) f.state()->add_waiter(w_);
  }
  ~WaitSet() {
    for (auto& f : fs_) f.state()->remove_waiter(w_);
  }
  WaitSet(const WaitSet&) = delete;
  WaitSet& operator=(const WaitSet&) = delete;
  const std::vector<Future<R>>& futures() const { return fs_; }
  Waiter& waiter() { return *w_; }

 private:
  std::vector<Future<R>> fs_;
  std::shared_ptr<Waiter> w_;
};

}  // namespace internal

/// Waits until `return_when` holds for `fs` or the timeout passes (concurrent.futures.wait);
/// never throws TimeoutError: what is not done is in `not_done`. `fs` is any range of
/// futures or a map keyed by futures (its keys are waited for); a future given twice
/// appears once, as in Python's sets, in the order first given.
template <internal::FutureRange Range, class R = typename internal::FutureOf<Range>::result_type>
DoneAndNotDone<R> wait(Range&& fs, std::optional<std::chrono::nanoseconds> timeout = std::nullopt,
                       ReturnWhen return_when = ALL_COMPLETED) {
  internal::WaitSet<R> ws(internal::distinct_futures(std::forward<Range>(fs)));
  internal::Deadline deadline;
  if (timeout) deadline = internal::deadline_after(*timeout);
  for (;;) {
    DoneAndNotDone<R> r;
    bool failed = false;
    for (auto& f : ws.futures()) {
      if (f.done()) {
        r.done.push_back(f);
        failed |= f.state()->error() != nullptr && !f.cancelled();
      } else {
        r.not_done.push_back(f);
      }
    }
    bool ok = r.not_done.empty() || (return_when == FIRST_COMPLETED && !r.done.empty()) ||
              (return_when == FIRST_EXCEPTION && failed);
    if (ok || (deadline && internal::Clock::now() >= *deadline)) return r;
    ws.waiter().take(deadline);
  }
}

/// The futures of `fs` in the order they complete (concurrent.futures.as_completed), as
/// an input range. Iterating waits; past `timeout` it raises mp::TimeoutError. It keeps
/// its own copies of the futures: `fs` need not outlive it.
template <class R>
class AsCompleted {
 public:
  AsCompleted(std::vector<Future<R>> fs, internal::Deadline deadline)
      : ws_(std::make_unique<internal::WaitSet<R>>(std::move(fs))), deadline_(deadline) {}

  /// The next future to complete, or nullopt when all have been returned.
  std::optional<Future<R>> next() {
    const auto& fs = ws_->futures();
    for (;;) {
      if (yielded_.size() == fs.size()) return std::nullopt;
      for (std::size_t i = 0; i < fs.size(); ++i)
        if (!yielded_.count(i) && fs[i].done()) {
          yielded_.insert(i);
          return fs[i];
        }
      if (deadline_ && internal::Clock::now() >= *deadline_)
        throw TimeoutError("as_completed: " + std::to_string(fs.size() - yielded_.size()) +
                           " futures were not done in time");
      ws_->waiter().take(deadline_);
    }
  }

  class iterator {
   public:
    using value_type = Future<R>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(AsCompleted* a) : a_(a) { ++*this; }
    const Future<R>& operator*() const { return cur_; }
    iterator& operator++() {
      auto n = a_->next();
      if (n) {
        cur_ = *n;
      } else {
        a_ = nullptr;
      }
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return a_ == nullptr; }

   private:
    AsCompleted* a_ = nullptr;
    Future<R> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  std::unique_ptr<internal::WaitSet<R>> ws_;
  internal::Deadline deadline_;
  std::set<std::size_t> yielded_;
};

/// `fs`: any range of futures, or a map keyed by futures — the Python idiom
/// `for f in as_completed(future_to_item)` is `for (auto& f : mp::as_completed(future_to_item))`.
/// A future given twice is returned once (Python's rule).
template <internal::FutureRange Range, class R = typename internal::FutureOf<Range>::result_type>
AsCompleted<R> as_completed(Range&& fs) {
  return AsCompleted<R>(internal::distinct_futures(std::forward<Range>(fs)), std::nullopt);
}
template <internal::FutureRange Range, class Rep, class Period,
          class R = typename internal::FutureOf<Range>::result_type>
AsCompleted<R> as_completed(Range&& fs, std::chrono::duration<Rep, Period> timeout) {
  return AsCompleted<R>(internal::distinct_futures(std::forward<Range>(fs)), internal::deadline_after(timeout));
}

namespace internal {

/// What ProcessPoolExecutor and ThreadPoolExecutor share, over Pool or ThreadPool.
template <class PoolT>
class Executor {
 public:
  /// Schedules fn(args...); throws mp::RuntimeError after shutdown().
  template <class F, class... A>
  auto submit(F fn, A&&... a) {
    check_open();
    auto r = pool_.apply_async(fn, std::forward<A>(a)...);
    using R = decltype(r.get());
    return Future<R>(r.state());
  }
  /// fn over `range`, results in order as an input range (Executor.map); iterating
  /// rethrows a task's exception. Misuse is pool.map's static_assert (see pool.hpp).
  template <class F, class Range>
  auto map(F fn, Range&& range, std::size_t chunksize = 1) {
    check_open();
    return pool_.imap(fn, std::forward<Range>(range), chunksize);
  }
  /// map with options (Python 3.14's buffersize): `executor.map(f, std::views::iota(0),
  /// {.chunksize = 2, .buffersize = 4})` keeps at most 4 chunks submitted ahead of the
  /// results taken, pulling the range lazily on the iterating thread (mp::IMapOptions;
  /// zero or negative buffersize: mp::ValueError). The executor must outlive the iteration.
  template <class F, class Range>
  auto map(F fn, Range&& range, IMapOptions opts) {
    check_open();
    return pool_.imap(fn, std::forward<Range>(range), std::move(opts));
  }
  /// No new work. wait: block until the submitted work is done and the workers are gone.
  /// cancel_futures: cancel what has not started (those futures raise CancelledError).
  void shutdown(bool wait = true, bool cancel_futures = false) {
    if (!shut_) {
      shut_ = true;
      pool_.close();
    }
    if (cancel_futures) pool_.cancel_pending();
    if (wait && !joined_) {
      joined_ = true;
      pool_.join();
    }
  }
  [[nodiscard]] PoolT& pool() noexcept { return pool_; }

 protected:
  template <class... P>
  explicit Executor(P&&... p) : pool_(std::forward<P>(p)...) {}
  ~Executor() {
    try {
      shutdown(true);
    } catch (...) {
      pool_.terminate();
    }
  }

 protected:
  void check_open() const {
    if (shut_) throw RuntimeError("cannot schedule new futures after shutdown");
  }

 private:
  PoolT pool_;
  bool shut_ = false;
  bool joined_ = false;
};

}  // namespace internal

/// The options of ProcessPoolExecutor::submit, given with designated initializers:
/// `ex.submit({.timeout = 5s}, f, a...)`.
struct SubmitOptions {
  /// Beyond Python: a task still running this long after a worker received it fails with
  /// mp::TimeoutError; its worker alone is killed and replaced. Zero: no limit.
  std::chrono::nanoseconds timeout{0};
  /// With PoolOptions::max_pending: how long submit may wait for room before it raises
  /// mp::Full. Unset: as long as it takes.
  std::optional<std::chrono::nanoseconds> submit_timeout;
};

/// concurrent.futures.ProcessPoolExecutor over mp::Pool. max_workers 0: process_cpu_count();
/// max_tasks_per_child 0: never recycle a worker (Python's None), negative: mp::ValueError.
class ProcessPoolExecutor : public internal::Executor<Pool> {
 public:
  explicit ProcessPoolExecutor(int max_workers = 0, Initializer initializer = {},
                               int max_tasks_per_child = 0)
      : Executor(PoolOptions{max_workers, std::move(initializer), max_tasks_per_child}) {}
  /// With the pool's options, e.g. `ProcessPoolExecutor ex({.processes = 4, .max_pending = 100})`:
  /// submit blocks while 100 tasks wait for a worker (beyond Python, CPython gh-73781).
  explicit ProcessPoolExecutor(PoolOptions opts) : Executor(std::move(opts)) {}

  using Executor::submit;
  /// submit with options: `ex.submit({.timeout = 5s}, f, a...)` (see SubmitOptions).
  template <class F, class... A>
  auto submit(SubmitOptions opts, F fn, A&&... a) {
    check_open();
    using R = std::invoke_result_t<F&, std::decay_t<A>&...>;
    auto r = pool().apply_async(fn, Args<std::decay_t<A>...>{{std::forward<A>(a)...}},
                                ApplyOptions<R>{.timeout = opts.timeout, .submit_timeout = opts.submit_timeout});
    return Future<R>(r.state());
  }

  /// Python 3.14's terminate_workers(): shutdown(wait=false, cancel_futures=true), then
  /// SIGTERM to every worker (SIGKILL to one still alive after a second). Futures not yet
  /// started raise mp::CancelledError, running ones mp::BrokenPool; no new work is taken.
  /// The workers are reaped before it returns (Python's only signals them).
  void terminate_workers() {
    shutdown(false, true);
    pool().terminate();
  }
  /// As terminate_workers(), with SIGKILL at once (Python 3.14's kill_workers()).
  void kill_workers() {
    shutdown(false, true);
    pool().kill();
  }
};

/// concurrent.futures.ThreadPoolExecutor over mp::ThreadPool. max_workers 0:
/// min(32, process_cpu_count() + 4), as in Python 3.13.
class ThreadPoolExecutor : public internal::Executor<ThreadPool> {
 public:
  explicit ThreadPoolExecutor(int max_workers = 0, std::function<void()> initializer = {})
      : Executor(ThreadPoolOptions{max_workers ? max_workers : std::min(32, process_cpu_count() + 4), std::move(initializer)}) {}
};

}  // namespace mp

