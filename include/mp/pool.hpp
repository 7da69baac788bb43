// mp/pool.hpp — pools of worker processes and threads (multiprocessing.Pool, ThreadPool).
//
// Mirrors: multiprocessing.Pool and multiprocessing.pool.ThreadPool — apply, apply_async,
// map, map_async, imap, imap_unordered, starmap, starmap_async, close, join, terminate —
// and AsyncResult (get, get(timeout), wait, ready, successful) — including Python 3.15's
// imap/imap_unordered buffersize: pool.imap(f, std::views::iota(0), {.buffersize = 4})
// pulls an endless range lazily, at most 4 chunks ahead of the results taken (IMapOptions).
//
//   int square(int x) { return x * x; }
//   mp::Pool pool(4);                                      // 4 worker processes
//   std::vector<int> items(100);  std::iota(items.begin(), items.end(), 0);
//   std::vector<int> sq = pool.map(square, items);
//   auto r = pool.apply_async(square, 7);  r.get();        // 49
//
// How functions reach the workers. Workers are forks of this program — of this process
// under StartMethod::fork, of the fork server under forkserver (Python 3.14's Linux
// default; workers are then named ForkServerPoolWorker-N) — so code addresses are the
// same in them: a plain function, a function pointer and a lambda *without captures* can
// be sent and are called there. A lambda with captures (or any
// callable with state) cannot: its captured values would have to travel too, and a
// captured pointer or reference would point into memory the worker does not share. It is
// a compile-time error ("pass captured values as arguments instead"). ThreadPool runs
// tasks in this process and accepts any copyable callable.
// Arguments and results travel through mp::codec (see codec.hpp): a type the codec
// cannot move is a compile-time error. The initializer runs in each worker before its
// first task; under fork it may capture (it exists before the workers are forked), under
// forkserver it must be a function or captureless lambda (mp::ValueError otherwise).
//
// Calling forms: f's arguments follow f one by one — pool.apply(f, 2, 3),
// pool.apply_async(f, 2, 3) — except when callbacks follow, where they are grouped:
// pool.apply_async(f, mp::args(2, 3), callback, error_callback). map/imap take a range
// of single arguments, starmap a range of std::tuple/std::pair/std::array of arguments.
// A call that breaks these rules (or the two above) fails to compile with a static_assert
// naming the call and saying what to write instead, as its first error (tests/compile_fail/,
// registered by tests/misuse_compile_fail.cmake).
//
// Guarantees
// - Workers take work on demand: a worker is given more tasks only as it finishes
//   earlier ones (a short prefetch window per worker when many tasks are queued), so a
//   long task never holds up work another worker could do.
// - Callbacks and error callbacks run in this process, on the pool's single
//   result-handler thread, one at a time (as in CPython). They must not block on the
//   pool's other results. A callback that throws is reported on stderr and ignored.
// - A task that throws: its result's get() rethrows the exception — as the same type for
//   the standard exceptions (std::runtime_error, std::invalid_argument, std::out_of_range,
//   std::logic_error, ...) and mp's own (mp::ValueError, ...), as mp::RemoteError(type
//   name, message) for anything else. In map, the first failing chunk fails the map. A
//   result that cannot be encoded raises mp::CodecError ("Error sending result: ...",
//   Python's MaybeEncodingError), never mistaken for the task's own exception.
// - Per task, beyond Python: apply_async(f, mp::args(...), {.timeout = 5s}) kills only a
//   task that runs too long (mp::TimeoutError); AsyncResult::cancel() / Future::cancel()
//   stop a running task the same way (mp::CancelledError); PoolOptions::max_pending bounds
//   the tasks waiting for a worker. WorkerLost says pid, exitcode() and oom_killed().
// - Crash safety (beyond CPython, whose Pool hangs forever): a worker killed while it
//   runs a task (SIGKILL, a segfault, abort(), exit()) fails exactly that task with
//   mp::WorkerLost (pid, exit code or signal, OOM kill); tasks queued behind it are re-dispatched, a new worker
//   takes its place, and the pool goes on. Only the task that was running is blamed.
// - maxtasksperchild > 0: a worker exits after that many tasks (chunks) and is replaced;
//   0 (the default) never recycles, as Python's None; a negative value is mp::ValueError.
// - close() stops new submissions; join() (after close or terminate) returns when every
//   submitted task has finished, its callbacks have run and the workers have exited.
// - terminate() stops the workers now (SIGTERM, then SIGKILL after 1 s); tasks that had
//   not finished fail with mp::BrokenPool. No zombie is left. The destructor calls
//   terminate(), like leaving Python's `with Pool() as p:` block (close()+join() first
//   when you want the work finished).
// - All methods are thread-safe. Create pools from the main thread (the kernel's
//   parent-death signal follows the thread that forked the workers).
// - Workers are daemonic processes, and daemonic processes are not allowed to have
//   children (as in Python): creating a Pool or a ProcessPoolExecutor, or starting an
//   mp::Process, inside a task (or in any daemon Process) throws mp::RuntimeError. Use
//   mp::ThreadPool or threads there.
// - An AsyncResult compares, orders and hashes by identity (copies of one result are
//   equal; std::hash<mp::AsyncResult<R>>), as Python objects do: it can key a map.
// - A task that calls mp::exit() ends its worker (the message of mp::exit("message") is
//   printed on the worker's stderr): that task fails with mp::WorkerLost, as above.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "mp/internal/futex.hpp"
#include "mp/internal/pool_state.hpp"

namespace mp {

/// The pending result of apply_async / map_async / starmap_async (Python's AsyncResult).
template <class R>
class AsyncResult {
 public:
  explicit AsyncResult(std::shared_ptr<internal::ResultState<R>> s) : s_(std::move(s)) {}

  /// Waits for the result and returns it; rethrows the task's exception (see pool.hpp).
  R get() const {
    wait();
    return take();
  }
  /// As get(), but raises mp::TimeoutError if the result is not ready within `timeout`
  /// (a zero or negative timeout only checks).
  template <class Rep, class Period>
  R get(std::chrono::duration<Rep, Period> timeout) const {
    if (!s_->wait_until(internal::deadline_after(timeout)))
      throw TimeoutError("AsyncResult.get(timeout): the result was not ready in time");
    return take();
  }
  void wait() const { s_->wait_until(std::nullopt); }
  /// True if the result became ready within `timeout`.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return s_->wait_until(internal::deadline_after(timeout));
  }
  [[nodiscard]] bool ready() const noexcept { return s_->ready(); }
  /// True if the task finished without an exception. Throws mp::ValueError when not ready
  /// (as CPython does).
  [[nodiscard]] bool successful() const {
    if (!s_->ready()) throw ValueError("AsyncResult.successful(): the result is not ready yet");
    return s_->successful();
  }
  [[nodiscard]] const std::shared_ptr<internal::ResultState<R>>& state() const noexcept { return s_; }
  /// Beyond Python (whose AsyncResult cannot be cancelled): cancels an apply_async task —
  /// not started yet, or running in a process Pool (its worker is killed and replaced);
  /// get() then raises mp::CancelledError. False once it has finished, for map_async, and
  /// for a task running on a ThreadPool thread.
  bool cancel() { return s_->cancel(); }
  [[nodiscard]] bool cancelled() const { return s_->phase() == internal::Completion::Phase::cancelled; }

  /// Identity, as for Python objects: copies of one AsyncResult are equal and hash alike
  /// (std::hash<mp::AsyncResult<R>>), results of different calls differ. The order is the
  /// shared state's address: arbitrary but total, so std::set and std::map work too.
  friend bool operator==(const AsyncResult& a, const AsyncResult& b) noexcept { return a.s_ == b.s_; }
  friend std::strong_ordering operator<=>(const AsyncResult& a, const AsyncResult& b) noexcept { return a.s_ <=> b.s_; }

 private:
  R take() const {
    if (s_->error()) std::rethrow_exception(s_->error());
    if constexpr (!std::is_void_v<R>) return s_->value();
  }
  std::shared_ptr<internal::ResultState<R>> s_;
};

/// The results of imap / imap_unordered, as an input range (Python's IMapIterator):
/// `for (int x : pool.imap(square, v))`. Iterating rethrows a task's exception at its
/// position (the rest of that chunk is skipped). next(timeout) raises mp::TimeoutError.
template <class R>
class IMapIterator {
 public:
  using value_type = internal::Stored<R>;
  explicit IMapIterator(std::shared_ptr<internal::IMapState<R>> s,
                        std::shared_ptr<internal::IMapFeeder> feed = nullptr)
      : s_(std::move(s)), feed_(std::move(feed)) {}

  /// The next result, or nullopt when all have been returned. With buffersize, a result
  /// taken makes room for the next chunk, which is pulled from the input and submitted
  /// here, on the calling thread.
  std::optional<value_type> next() { return take(std::nullopt); }
  template <class Rep, class Period>
  std::optional<value_type> next(std::chrono::duration<Rep, Period> timeout) {
    return take(internal::deadline_after(timeout));
  }

  class iterator {
   public:
    using value_type = internal::Stored<R>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(IMapIterator* it) : it_(it) { ++*this; }
    value_type& operator*() const { return **cur_; }
    iterator& operator++() {
      cur_ = std::make_shared<std::optional<value_type>>(it_->next());
      if (!cur_->has_value()) it_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return it_ == nullptr; }

   private:
    IMapIterator* it_ = nullptr;
    std::shared_ptr<std::optional<value_type>> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  std::optional<value_type> take(internal::Deadline deadline) {
    if (!feed_) return s_->next(deadline);
    std::optional<value_type> v;
    try {
      v = s_->next(deadline);
    } catch (...) {
      feed_->top_up(s_->consumed());  // a task's exception was taken too
      throw;
    }
    feed_->top_up(s_->consumed());
    return v;
  }
  std::shared_ptr<internal::IMapState<R>> s_;
  std::shared_ptr<internal::IMapFeeder> feed_;  // buffersize only
};

/// The options of imap / imap_unordered and Executor.map, with designated initializers:
/// `pool.imap(f, items, {.chunksize = 2, .buffersize = 4})`.
struct IMapOptions {
  /// Items per task sent to a worker (0 is taken as 1).
  std::size_t chunksize = 1;
  /// Python 3.15's imap buffersize (3.14's Executor.map): at most this many chunks
  /// submitted whose results next() has not yet taken. The input is then pulled lazily, a
  /// chunk at a time, on the thread that iterates — so an endless input (std::views::iota(0),
  /// a generator) runs in bounded memory. Unset (Python's None): the whole input is
  /// collected and submitted at the call. Zero or negative: mp::ValueError.
  std::optional<long> buffersize;
  /// progress(done, total) as chunks finish; with buffersize, total is 0 until the input ends.
  ProgressFn progress;
};

/// Positional arguments for apply_async when callbacks follow: `pool.apply_async(f,
/// mp::args(2, 3), on_result, on_error)` (Python's `args=(2, 3), callback=...`).
template <class... A>
struct Args {
  std::tuple<A...> values;
};
template <class... A>
Args<std::decay_t<A>...> args(A&&... a) {
  return {std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
}

/// A process pool's initializer (Python's initializer=): any callable under
/// StartMethod::fork, where workers are copies of this process. Under forkserver a worker
/// is a copy of the fork server, so only a function or a captureless lambda (sent by code
/// address) can run there: the pool's constructor raises mp::ValueError for one with state.
class Initializer {
 public:
  Initializer() = default;
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, Initializer> && std::is_invocable_v<std::decay_t<F>&>)
  Initializer(F&& f) : fn_(std::forward<F>(f)) {  // NOLINT(google-explicit-constructor): as std::function
    using D = std::decay_t<F>;
    if constexpr (std::is_convertible_v<D, void (*)()>) {
      if constexpr (std::is_pointer_v<D>) {
        code_ = f;
      } else {
        code_ = +D(f);  // a captureless lambda's own function
      }
    } else if constexpr (StatelessCallable<D>) {
      code_ = [] { D{}(); };
    }
  }
  explicit operator bool() const noexcept { return static_cast<bool>(fn_); }
  void operator()() const { fn_(); }
  /// The initializer as a code address, valid in every process of this program; null when
  /// it carries state (or is empty).
  [[nodiscard]] auto code() const noexcept -> void (*)() { return fn_ ? code_ : nullptr; }

 private:
  std::function<void()> fn_;
  void (*code_)() = nullptr;
};

/// Options of a process Pool, as keyword arguments: `mp::Pool pool({.processes = 4})`.
struct PoolOptions {
  int processes = 0;         ///< worker count; 0 = process_cpu_count()
  Initializer initializer;   ///< run in each worker before its first task
  int maxtasksperchild = 0;           ///< recycle a worker after this many tasks; 0 = never (Python's None); < 0: ValueError
  /// Beyond Python (CPython gh-73781): at most this many tasks (chunks) wait for a worker;
  /// apply_async, map_async and submit block while the pool is that full (a map larger than
  /// the bound streams in as workers take its chunks). 0: no bound. ApplyOptions and
  /// SubmitOptions take `submit_timeout` to raise mp::Full instead of waiting longer. A
  /// callback that submits (it runs on the pool's result thread) is never blocked.
  std::size_t max_pending = 0;
};

namespace internal {

template <class T>
struct is_args : std::false_type {};
template <class... A>
struct is_args<Args<A...>> : std::true_type {};

template <class T>
struct is_tuple_like : std::false_type {};
template <class... A>
struct is_tuple_like<std::tuple<A...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};
template <class T, std::size_t N>
struct is_tuple_like<std::array<T, N>> : std::true_type {};

/// A callable that can be sent to a worker process: see mp::StatelessCallable.
template <class F>
concept SendableCallable = StatelessCallable<std::decay_t<F>>;

template <class F>
constexpr void check_sendable() {
  static_assert(SendableCallable<F>,
                "mp::Pool / mp::ProcessPoolExecutor: this callable cannot be sent to a worker process. Workers are forked from this "
                "program, so a plain function or a lambda WITHOUT captures works; a lambda with captures (or "
                "any callable with state) does not, because its captured values — often pointers into this "
                "process's memory — would not be there. Pass the captured values as arguments instead: "
                "pool.apply(fn, x, y) / pool.map(fn, items) / executor.submit(fn, x, y). (mp::ThreadPool and "
                "mp::ThreadPoolExecutor accept any callable.)");
}

template <class T>
constexpr void check_transferable_arg() {
  static_assert(Transferable<T>,
                "mp::Pool / mp::ProcessPoolExecutor: an argument (or map item) of this type cannot be sent to a "
                "worker process. Make it trivially copyable, or give it `template <class Archive> void "
                "serialize(Archive& ar) { ar(field1, field2, ...); }` and a default constructor (cereal), or "
                "include the cereal header for the standard type it uses; pointers cannot be sent. "
                "(mp::ThreadPool and mp::ThreadPoolExecutor do not encode.)");
}
template <class R>
constexpr void check_transferable_result() {
  static_assert(std::is_void_v<R> || Transferable<R>,
                "mp::Pool / mp::ProcessPoolExecutor: the function's result type cannot be sent back from the "
                "worker process. Make it trivially copyable, or give it `template <class Archive> void "
                "serialize(Archive& ar) { ar(field1, field2, ...); }` and a default constructor (cereal), or "
                "include the cereal header for the standard type it uses; pointers cannot be sent. "
                "(mp::ThreadPool and mp::ThreadPoolExecutor do not encode.)");
}

/// Runs `count` items of a task inside a worker: decodes each item's arguments, calls the
/// function, appends each result as a field to `out`. Instantiated in the parent; its
/// address is valid in the (forked) worker. `in` is positioned after the runner's address.
using Runner = void (*)(CallReader& in, std::string& out);

/// Thrown in a worker when a task's result cannot be encoded (see run_items).
struct ResultNotSent {
  const std::type_info* type;
  std::uint32_t item, count;
  std::string reason;
};

template <class F, class R, class... A>
void run_items(CallReader& in, std::string& out) {
  const auto f = in.template callable<std::decay_t<F>>();
  auto count = in.template raw<std::uint32_t>();
  for (std::uint32_t i = 0; i < count; ++i) {
    std::tuple<A...> args = in.template args<A...>();
    if constexpr (std::is_void_v<R>) {
      std::apply(f, args);
      put_bytes(out, {});
    } else {
      R r = std::apply(f, args);
      // The task ran; its result cannot travel (Python's MaybeEncodingError): a CodecError
      // for the caller, not the task's own exception (the worker describes it).
      try {
        put_field(out, r);
      } catch (const std::exception& e) {
        throw ResultNotSent{&typeid(R), i, count, e.what()};
      } catch (...) {
        throw ResultNotSent{&typeid(R), i, count, "an exception that is not a std::exception"};
      }
    }
  }
}

/// One chunk of work for a process pool: the encoded message and where its outcome goes.
struct PoolTask {
  std::string msg;  // [runner address][callable][u32 count][count x arguments] (mp/internal/call.hpp)
  std::shared_ptr<Sink> sink;
  std::size_t start = 0;
  std::uint32_t count = 0;
  std::chrono::nanoseconds timeout{0};  // > 0: the worker is killed when the task runs longer
};

template <class F, class R, class... A>
std::string task_header(const F& f, std::uint32_t count) {
  std::string msg;
  put_raw(msg, Runner{&run_items<F, R, A...>});
  put_callable(msg, f);
  put_raw(msg, count);
  return msg;
}

/// CPython's automatic chunksize: ceil(len / (4 * workers)), at least 1.
inline std::size_t auto_chunksize(std::size_t n, std::size_t workers) {
  if (n == 0) return 1;
  std::size_t c = n / (4 * workers);
  if (n % (4 * workers)) ++c;
  return c ? c : 1;
}

/// The interface Pool and ThreadPool share; Derived provides
///   template <class F, class R, class... A> void submit_items(F, std::vector<std::tuple<A...>>&&,
///        std::size_t chunksize, std::shared_ptr<State>)
/// and workers() (the worker count).
template <class Derived>
class PoolApi {
 public:
  /// Runs fn(args...) in a worker and waits for its result (Python's apply).
  /// Misuse (f not callable with these arguments, mp::args) is a static_assert saying
  /// what to write.
  template <class F, class... A>
  auto apply(F fn, A&&... a) {
    static_assert(!(is_args<std::decay_t<A>>::value || ...),
                  "pool.apply(f, args...): pass f's arguments one by one, pool.apply(f, 2, 3) (Python's "
                  "apply(f, (2, 3))); mp::args(...) is only for apply_async with callbacks: "
                  "pool.apply_async(f, mp::args(2, 3), callback)");
    if constexpr (!(is_args<std::decay_t<A>>::value || ...)) {
      static_assert(std::is_invocable_v<F&, std::decay_t<A>&...>,
                    "pool.apply(f, args...): f cannot be called with these arguments. The arguments after f must "
                    "match f's parameters, one by one: for int f(int, int) write pool.apply(f, 2, 3)");
      if constexpr (std::is_invocable_v<F&, std::decay_t<A>&...>) return apply_async(fn, std::forward<A>(a)...).get();
    }
  }

  /// Submits fn(args...) and returns at once (Python's apply_async without callbacks).
  /// Arguments that do not match fn's parameters are a static_assert that also explains
  /// how to pass callbacks (after mp::args(...)).
  template <class F, class... A>
    requires(!(is_args<std::decay_t<A>>::value || ...))
  auto apply_async(F fn, A&&... a) {
    static_assert(std::is_invocable_v<F&, std::decay_t<A>&...>,
                  "pool.apply_async(f, args...): f cannot be called with these arguments. The arguments after f "
                  "must match f's parameters, one by one: pool.apply_async(f, 2, 3). To pass a callback, put f's "
                  "arguments in mp::args: pool.apply_async(f, mp::args(2, 3), callback, error_callback)");
    if constexpr (std::is_invocable_v<F&, std::decay_t<A>&...>)
      return apply_async(fn, Args<std::decay_t<A>...>{{std::forward<A>(a)...}}, nullptr, nullptr);
  }

  /// apply_async with callbacks: `callback(result)` (or `callback()` for a void task) on
  /// success, `error_callback(std::exception_ptr)` on failure; both run in this process on
  /// the result-handler thread before get() returns. Either may be nullptr.
  template <class F, class... A, class Cb, class ECb = std::nullptr_t>
  auto apply_async(F fn, Args<A...> a, Cb callback, ECb error_callback = nullptr) {
    static_assert(std::is_invocable_v<F&, A&...>,
                  "pool.apply_async(f, mp::args(...), callback): f cannot be called with the arguments in "
                  "mp::args(...); they must match f's parameters: for int f(int, int) write "
                  "pool.apply_async(f, mp::args(2, 3), callback)");
    if constexpr (std::is_invocable_v<F&, A&...>) {
      using R = std::invoke_result_t<F&, A&...>;
      if constexpr (!task_ok<F, R>(static_cast<std::tuple<A...>*>(nullptr))) {
        return AsyncResult<R>(nullptr);  // after task_ok's static_assert: no cascade of errors
      } else {
        auto st = std::make_shared<ValueState<R>>();
        st->set_callbacks(wrap_callback<R>(std::move(callback)), wrap_error_callback(std::move(error_callback)));
        std::vector<std::tuple<A...>> items;
        items.push_back(std::move(a.values));
        self().template submit_items<F, R, A...>(fn, std::move(items), 1, st);
        return AsyncResult<R>(st);
      }
    }
  }

  /// fn over every item of `range`, results in order (Python's map). chunksize 0 picks
  /// CPython's automatic size; `progress(done, total)` is called as chunks finish.
  /// Misuse (items not a range, fn not callable with one item) is a static_assert saying
  /// what to write (see check_map).
  template <class F, class Range>
  auto map(F fn, Range&& range, std::size_t chunksize = 0, ProgressFn progress = {}) {
    if constexpr (check_map<false, F, Range>())
      return map_async(fn, std::forward<Range>(range), chunksize, nullptr, nullptr, std::move(progress)).get();
  }
  template <class F, class Range, class Cb = std::nullptr_t, class ECb = std::nullptr_t>
  auto map_async(F fn, Range&& range, std::size_t chunksize = 0, Cb callback = nullptr,
                 ECb error_callback = nullptr, ProgressFn progress = {}) {
    if constexpr (check_map<false, F, Range>())
      return map_impl<false>(fn, std::forward<Range>(range), chunksize, std::move(callback),
                             std::move(error_callback), std::move(progress));
  }
  /// Like map, each item being a tuple (or pair/array) of arguments (Python's starmap).
  template <class F, class Range>
  auto starmap(F fn, Range&& range, std::size_t chunksize = 0, ProgressFn progress = {}) {
    if constexpr (check_map<true, F, Range>())
      return starmap_async(fn, std::forward<Range>(range), chunksize, nullptr, nullptr, std::move(progress)).get();
  }
  template <class F, class Range, class Cb = std::nullptr_t, class ECb = std::nullptr_t>
  auto starmap_async(F fn, Range&& range, std::size_t chunksize = 0, Cb callback = nullptr,
                     ECb error_callback = nullptr, ProgressFn progress = {}) {
    if constexpr (check_map<true, F, Range>())
      return map_impl<true>(fn, std::forward<Range>(range), chunksize, std::move(callback),
                            std::move(error_callback), std::move(progress));
  }

  /// Results in order, as they become available (Python's imap; chunksize defaults to 1).
  /// The whole range is collected and submitted at the call; for a lazy pull of an endless
  /// range use the options form with buffersize.
  template <class F, class Range>
  auto imap(F fn, Range&& range, std::size_t chunksize = 1, ProgressFn progress = {}) {
    return imap(fn, std::forward<Range>(range), IMapOptions{chunksize, std::nullopt, std::move(progress)});
  }
  /// imap with options: `pool.imap(f, std::views::iota(0), {.chunksize = 2, .buffersize = 4})`
  /// (IMapOptions). With buffersize the range is pulled as results are taken, never more than
  /// buffersize chunks ahead of them; the pool must outlive the iteration.
  template <class F, class Range>
  auto imap(F fn, Range&& range, IMapOptions opts) {
    if constexpr (check_map<false, F, Range>()) return imap_impl(fn, std::forward<Range>(range), std::move(opts), true);
  }
  /// Results in completion order (Python's imap_unordered).
  template <class F, class Range>
  auto imap_unordered(F fn, Range&& range, std::size_t chunksize = 1, ProgressFn progress = {}) {
    return imap_unordered(fn, std::forward<Range>(range), IMapOptions{chunksize, std::nullopt, std::move(progress)});
  }
  template <class F, class Range>
  auto imap_unordered(F fn, Range&& range, IMapOptions opts) {
    if constexpr (check_map<false, F, Range>()) return imap_impl(fn, std::forward<Range>(range), std::move(opts), false);
  }

 private:
  /// The misuse checks of map (Star = false: map, map_async, imap, imap_unordered, and
  /// Executor.map) and starmap: one static_assert that says what to write, then false (the
  /// caller compiles nothing more, so no cascade of errors follows).
  template <bool Star, class F, class Range>
  static constexpr bool check_map() {
    if constexpr (!std::ranges::input_range<Range>) {
      static_assert(Star || std::ranges::input_range<Range>,
                    "pool.map(f, items): items must be a range of f's arguments (a std::vector, std::array, ...): "
                    "for Python's pool.map(f, range(n)) fill a std::vector<int> with 0..n-1 (std::iota) and pass "
                    "it");
      static_assert(!Star || std::ranges::input_range<Range>,
                    "pool.starmap(f, items): items must be a range of argument tuples, e.g. "
                    "std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}}");
      return false;
    } else {
      using T = std::decay_t<std::ranges::range_reference_t<Range>>;
      if constexpr (!Star) {
        static_assert(std::is_invocable_v<F&, T&>,
                      "pool.map(f, items): f must take one item as its only argument. For a function of several "
                      "parameters make each item a std::tuple of its arguments and call pool.starmap(f, items) "
                      "(Python's starmap), e.g. std::vector<std::tuple<int, int>> items{{1, 2}, {3, 4}}");
        return std::is_invocable_v<F&, T&>;
      } else if constexpr (!is_tuple_like<T>::value) {
        static_assert(is_tuple_like<T>::value,
                      "pool.starmap(f, items): each item must be a std::tuple, std::pair or std::array holding f's "
                      "arguments, e.g. std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}}; for a function of one "
                      "argument use pool.map(f, items)");
        return false;
      } else {
        constexpr bool ok =
            decltype(invocable_with_elements<F, T>(std::make_index_sequence<std::tuple_size_v<T>>{}))::value;
        static_assert(ok,
                      "pool.starmap(f, items): f cannot be called with the elements of an item as its arguments; "
                      "for int f(int, int) the items are std::tuple<int, int> (or std::pair<int, int>)");
        return ok;
      }
    }
  }
  /// Derived's own checks of a task (Pool: the callable and values can be sent), made
  /// before any state is created: the first error is their static_assert (Clang instantiates
  /// a result state's decoding as soon as it is created).
  template <class F, class R, class... A>
  static constexpr bool task_ok(std::tuple<A...>*) {
    return Derived::template task_ok<F, R, A...>();
  }
  template <class F, class T, std::size_t... I>
  static auto invocable_with_elements(std::index_sequence<I...>)
      -> std::bool_constant<std::is_invocable_v<F&, std::tuple_element_t<I, T>&...>>;

  Derived& self() { return static_cast<Derived&>(*this); }

  template <class R, class Cb>
  static typename ResultState<R>::Callback wrap_callback(Cb cb) {
    if constexpr (std::is_null_pointer_v<Cb>) {
      return {};
    } else if constexpr (std::is_void_v<R>) {
      return [cb = std::move(cb)](const None&) mutable { cb(); };
    } else {
      return [cb = std::move(cb)](const Stored<R>& v) mutable { cb(v); };
    }
  }
  template <class ECb>
  static std::function<void(std::exception_ptr)> wrap_error_callback(ECb ecb) {
    if constexpr (std::is_null_pointer_v<ECb>) {
      return {};
    } else {
      return [ecb = std::move(ecb)](std::exception_ptr e) mutable { ecb(std::move(e)); };
    }
  }

  template <class T>
  static auto as_tuple(T&& v) {
    return std::apply([](auto&&... x) { return std::make_tuple(std::forward<decltype(x)>(x)...); },
                      std::forward<T>(v));
  }

  template <bool Star, class F, class Range>
  static auto collect(Range&& range) {
    using T = std::decay_t<std::ranges::range_reference_t<Range>>;
    if constexpr (Star) {
      static_assert(is_tuple_like<T>::value, "starmap: each item must be a std::tuple, std::pair or std::array");
      using Tup = decltype(as_tuple(std::declval<T>()));
      std::vector<Tup> items;
      for (auto&& v : range) items.push_back(as_tuple(v));
      return items;
    } else {
      std::vector<std::tuple<T>> items;
      if constexpr (std::ranges::sized_range<Range>) items.reserve(std::ranges::size(range));
      for (auto&& v : range) items.emplace_back(v);
      return items;
    }
  }

  template <class F, class... A>
  static auto result_type_of(std::tuple<A...>*) -> std::invoke_result_t<F&, A&...>;

  template <class F, class Tup, std::size_t... I, class State>
  void submit_tuple(F fn, std::vector<Tup>&& items, std::size_t chunksize, std::shared_ptr<State> st,
                    std::index_sequence<I...>) {
    using R = decltype(result_type_of<F>(static_cast<Tup*>(nullptr)));
    self().template submit_items<F, R, std::tuple_element_t<I, Tup>...>(fn, std::move(items), chunksize, st);
  }

  template <bool Star, class F, class Range, class Cb, class ECb>
  auto map_impl(F fn, Range&& range, std::size_t chunksize, Cb callback, ECb error_callback, ProgressFn progress) {
    auto items = collect<Star, F>(std::forward<Range>(range));
    using Tup = typename decltype(items)::value_type;
    using R = decltype(result_type_of<F>(static_cast<Tup*>(nullptr)));
    using VR = std::vector<Stored<R>>;
    if constexpr (!task_ok<F, R>(static_cast<Tup*>(nullptr))) {
      return AsyncResult<VR>(nullptr);  // after task_ok's static_assert: no cascade of errors
    } else {
      if (chunksize == 0) chunksize = auto_chunksize(items.size(), self().workers());
      auto st = std::make_shared<MapState<R>>(items.size(), std::move(progress));
      st->set_callbacks(wrap_callback<VR>(std::move(callback)), wrap_error_callback(std::move(error_callback)));
      if (!items.empty())
        submit_tuple(fn, std::move(items), chunksize, st, std::make_index_sequence<std::tuple_size_v<Tup>>{});
      return AsyncResult<VR>(st);
    }
  }

  template <class F, class Range>
  auto imap_impl(F fn, Range&& range, IMapOptions opts, bool ordered) {
    using T = std::decay_t<std::ranges::range_reference_t<Range>>;
    using R = decltype(result_type_of<F>(static_cast<std::tuple<T>*>(nullptr)));
    if constexpr (!task_ok<F, R>(static_cast<std::tuple<T>*>(nullptr))) {
      return IMapIterator<R>(nullptr);  // after task_ok's static_assert: no cascade of errors
    } else {
      if (opts.buffersize && *opts.buffersize <= 0)
        throw ValueError("buffersize must be None or > 0 (leave IMapOptions::buffersize unset to submit the whole "
                         "input at once)");
      std::size_t chunksize = opts.chunksize ? opts.chunksize : 1;
      if (!opts.buffersize) {
        auto items = collect<false, F>(std::forward<Range>(range));
        auto st = std::make_shared<IMapState<R>>(items.size(), ordered, std::move(opts.progress));
        if (!items.empty()) self().template submit_items<F, R, T>(fn, std::move(items), chunksize, st);
        return IMapIterator<R>(st);
      }
      auto st = std::make_shared<IMapState<R>>(IMapState<R>::unknown_total, ordered, std::move(opts.progress));
      // The range and its position live in the feeder, which only the iterator holds.
      // An lvalue range is referred to (it must outlive the iteration); an rvalue one is moved in.
      struct Source {
        Range range;
        std::optional<std::ranges::iterator_t<Range>> pos;
      };
      auto src = std::make_shared<Source>(Source{std::forward<Range>(range), std::nullopt});
      auto pull = [this, fn, src, st, chunksize](std::size_t start) {
        if (!src->pos) src->pos.emplace(std::ranges::begin(src->range));
        auto& pos = *src->pos;
        std::vector<std::tuple<T>> items;
        items.reserve(chunksize);
        while (items.size() < chunksize && pos != std::ranges::end(src->range)) {
          items.emplace_back(*pos);
          ++pos;
        }
        std::size_t n = items.size();
        if (n) self().template submit_items<F, R, T>(fn, std::move(items), chunksize, st, start);
        return n;
      };
      auto feed = std::make_shared<IMapFeeder>(chunksize, static_cast<std::size_t>(*opts.buffersize),
                                               std::move(pull), [st](std::size_t total) { st->end_input(total); });
      feed->top_up(0);
      return IMapIterator<R>(st, std::move(feed));
    }
  }
};

class ProcessPoolCore;
class ThreadPoolCore;

/// One chunk of work for a thread pool.
struct ThreadTask {
  std::function<void()> fn;
  std::size_t start = 0;
  std::size_t count = 0;
};

}  // namespace internal

/// A pool of worker processes (multiprocessing.Pool). See the header comment.
/// The options of one apply_async, given with designated initializers:
/// `pool.apply_async(f, mp::args(2, 3), {.callback = cb, .timeout = 5s})`.
template <class R>
struct ApplyOptions {
  /// Called with the result (no argument for a void task), on the result-handler thread.
  std::conditional_t<std::is_void_v<R>, std::function<void()>, std::function<void(const R&)>> callback;
  /// Called with the task's exception, on the result-handler thread.
  std::function<void(std::exception_ptr)> error_callback;
  /// Beyond Python (pebble's and loky's per-task timeout): a task still running this long
  /// after its worker received it fails with mp::TimeoutError; that worker alone is killed
  /// (SIGKILL) and replaced, and every other task goes on. Zero: no limit.
  std::chrono::nanoseconds timeout{0};
  /// With PoolOptions::max_pending: how long apply_async may wait for room before it raises
  /// mp::Full. Unset: as long as it takes.
  std::optional<std::chrono::nanoseconds> submit_timeout;
};

class Pool : public internal::PoolApi<Pool> {
 public:
  /// `processes` workers (0: process_cpu_count()). Throws mp::ValueError for a negative count or
  /// a negative maxtasksperchild, mp::RuntimeError inside a daemonic process (a Pool
  /// worker, a daemon Process: "daemonic processes are not allowed to have children", as
  /// in Python; use mp::ThreadPool there), mp::OSError when the workers cannot be created.
  explicit Pool(int processes = 0, Initializer initializer = {}, int maxtasksperchild = 0);
  explicit Pool(PoolOptions opts);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  /// terminate(): unfinished tasks fail with mp::BrokenPool, workers are stopped and reaped.
  ~Pool();

  /// No more tasks may be submitted; workers exit once the queued work is done.
  void close();
  /// Waits for the queued work and the workers. Throws mp::ValueError unless close() or
  /// terminate() was called first.
  void join();
  /// Stops the workers now; unfinished tasks fail with mp::BrokenPool. Sends SIGTERM, then
  /// SIGKILL to a worker still alive after one second.
  void terminate();
  /// As terminate(), with SIGKILL at once (Process::kill's counterpart; what
  /// ProcessPoolExecutor::kill_workers uses).
  void kill();

  /// The number of workers.
  [[nodiscard]] std::size_t workers() const noexcept;
  /// The pids of the current workers (changes when workers are replaced).
  [[nodiscard]] std::vector<pid_t> pids() const;
  /// Cancels the queued (not yet started) single-result tasks — apply_async / submit —
  /// whose results then raise mp::CancelledError. Returns how many. (Executor.shutdown's
  /// cancel_futures.)
  std::size_t cancel_pending();

  using PoolApi<Pool>::apply_async;
  /// apply_async with options: `pool.apply_async(f, mp::args(2, 3), {.timeout = 5s})`
  /// (ApplyOptions: callback, error_callback, timeout). A task with a timeout waits for an
  /// idle worker, so its time starts when it starts.
  template <class F, class... A>
    requires std::is_invocable_v<F&, A&...>
  auto apply_async(F fn, Args<A...> a, ApplyOptions<std::invoke_result_t<F&, A&...>> opts) {
    using R = std::invoke_result_t<F&, A&...>;
    if constexpr (!task_ok<F, R, A...>()) {
      return AsyncResult<R>(nullptr);  // after task_ok's static_assert: no cascade of errors
    } else {
      if (opts.timeout < std::chrono::nanoseconds::zero())
        throw ValueError("Pool.apply_async: timeout must be positive (or zero for none)");
      auto st = std::make_shared<internal::ValueState<R>>();
      typename internal::ResultState<R>::Callback cb;
      if (opts.callback) {
        if constexpr (std::is_void_v<R>)
          cb = [f = std::move(opts.callback)](const None&) { f(); };
        else
          cb = std::move(opts.callback);
      }
      st->set_callbacks(std::move(cb), std::move(opts.error_callback));
      std::vector<std::tuple<A...>> items;
      items.push_back(std::move(a.values));
      internal::Deadline admit;
      if (opts.submit_timeout) admit = internal::deadline_after(*opts.submit_timeout);
      submit_encoded<F, R, A...>(fn, items, 1, st, opts.timeout, admit);
      return AsyncResult<R>(st);
    }
  }

  /// Internal: whether fn(A...) -> R can run in a worker; otherwise a static_assert says
  /// why and what to do (used by PoolApi before it creates any state).
  template <class F, class R, class... A>
  static constexpr bool task_ok() {
    internal::check_sendable<F>();
    (internal::check_transferable_arg<A>(), ...);
    internal::check_transferable_result<R>();
    return internal::SendableCallable<F> && (Transferable<A> && ...) && (std::is_void_v<R> || Transferable<R>);
  }
  /// Internal: queues encoded chunks (used by PoolApi, after task_ok).
  template <class F, class R, class... A>
  /// `base`: the index of items[0] in its submission (imap's buffersize submits a chunk at a time).
  void submit_items(F fn, std::vector<std::tuple<A...>>&& items, std::size_t chunksize,
                    std::shared_ptr<internal::Sink> sink, std::size_t base = 0) {
    if constexpr (task_ok<F, R, A...>())  // one clear error, not a cascade
      submit_encoded<F, R, A...>(fn, items, chunksize, std::move(sink), {}, std::nullopt, base);
  }

 private:
  template <class F, class R, class... A>
  void submit_encoded(F fn, const std::vector<std::tuple<A...>>& items, std::size_t chunksize,
                      std::shared_ptr<internal::Sink> sink, std::chrono::nanoseconds timeout = {},
                      internal::Deadline admit = std::nullopt, std::size_t base = 0) {
    using Fn = std::conditional_t<std::is_function_v<F>, F*, F>;
    std::vector<internal::PoolTask> tasks;
    tasks.reserve(items.size() / chunksize + 1);
    for (std::size_t start = 0; start < items.size(); start += chunksize) {
      auto n = static_cast<std::uint32_t>(std::min(chunksize, items.size() - start));
      internal::PoolTask t{internal::task_header<Fn, R, A...>(fn, n), sink, base + start, n, timeout};
      for (std::size_t i = start; i < start + n; ++i)
        std::apply([&](const auto&... x) { (internal::put_field(t.msg, x), ...); }, items[i]);
      tasks.push_back(std::move(t));
    }
    submit(std::move(tasks), admit);
  }

  /// Queues the tasks; with max_pending, waits for room (until `admit`: then mp::Full).
  void submit(std::vector<internal::PoolTask>&& tasks, internal::Deadline admit);
  std::unique_ptr<internal::ProcessPoolCore> core_;
};

/// Options of a ThreadPool.
struct ThreadPoolOptions {
  int processes = 0;                  ///< thread count; 0 = process_cpu_count()
  std::function<void()> initializer;  ///< run in each thread before its first task
};

/// A pool of threads with Pool's interface (multiprocessing.pool.ThreadPool). Any copyable
/// callable works (it runs in this process); arguments and results are not encoded.
/// Callbacks run on the pool thread that finished the task, one at a time (serialized by
/// the pool), before get() returns. The destructor, like Pool's, terminates: queued tasks
/// that have not started fail with mp::BrokenPool; running ones are waited for (a thread
/// cannot be killed).
class ThreadPool : public internal::PoolApi<ThreadPool> {
 public:
  explicit ThreadPool(int processes = 0, std::function<void()> initializer = {});
  explicit ThreadPool(ThreadPoolOptions opts);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

  void close();
  void join();
  void terminate();
  [[nodiscard]] std::size_t workers() const noexcept;
  /// As Pool::cancel_pending().
  std::size_t cancel_pending();

  /// Internal: any task runs in this process.
  template <class F, class R, class... A>
  static constexpr bool task_ok() {
    return true;
  }
  /// Internal: queues closures over the chunks (used by PoolApi).
  template <class F, class R, class... A, class State>
  void submit_items(F fn, std::vector<std::tuple<A...>>&& items, std::size_t chunksize, std::shared_ptr<State> st,
                    std::size_t base = 0) {
    auto shared_items = std::make_shared<std::vector<std::tuple<A...>>>(std::move(items));
    using Fn = std::conditional_t<std::is_function_v<F>, F*, F>;
    auto f = std::make_shared<Fn>(fn);
    std::vector<internal::ThreadTask> tasks;
    for (std::size_t start = 0; start < shared_items->size(); start += chunksize) {
      std::size_t n = std::min(chunksize, shared_items->size() - start);
      std::size_t first = base + start;  // the chunk's position in its submission
      tasks.push_back({[this, f, shared_items, st, start, first, n] {
        std::vector<internal::Stored<R>> vals;
        vals.reserve(n);
        try {
          for (std::size_t i = start; i < start + n; ++i) {
            if constexpr (std::is_void_v<R>) {
              std::apply(*f, (*shared_items)[i]);
              vals.push_back(None{});
            } else {
              vals.push_back(std::apply(*f, (*shared_items)[i]));
            }
          }
        } catch (...) {
          auto e = std::current_exception();
          deliver([&] { st->fail(first, n, e); });
          return;
        }
        deliver([&] { st->deliver_values(first, std::move(vals)); });
      }, first, n});
    }
    submit(std::move(tasks), st);
  }

 private:
  void submit(std::vector<internal::ThreadTask>&& tasks, std::shared_ptr<internal::Sink> sink);
  void deliver(const std::function<void()>& fn);
  std::unique_ptr<internal::ThreadPoolCore> core_;
};

}  // namespace mp

/// Hashes an AsyncResult by identity (its shared state), consistent with operator==.
template <class R>
struct std::hash<mp::AsyncResult<R>> {
  std::size_t operator()(const mp::AsyncResult<R>& r) const noexcept {
    return std::hash<std::shared_ptr<mp::internal::ResultState<R>>>{}(r.state());
  }
};
