// mp/internal/pool_state.hpp — the result states shared by Pool, ThreadPool and the
// executors: where a task's outcome lands, and how a waiter learns it is there.
//
// A submission (one apply, one map, one submit) owns one *sink*. Pools deliver each
// finished chunk of items to it — as encoded bytes (process pools) or as values (thread
// pools) — or fail it with an exception. AsyncResult, IMapIterator and Future are thin
// handles over these states. Delivery happens on the pool's result-handler thread (or a
// pool thread); waiting happens on any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "mp/internal/call.hpp"
#include "mp/internal/futex.hpp"

namespace mp {

/// What a task returning void produces (Python's None): `map` of a void function gives a
/// std::vector<mp::None>.
struct None {
  bool operator==(const None&) const = default;
};

/// A progress report: `done` of `total` items have finished. Called on the pool's
/// result-handler thread, once per finished chunk; keep it quick.
using ProgressFn = std::function<void(std::size_t done, std::size_t total)>;

namespace internal {

/// R, or None for void: what a state stores.
template <class R>
using Stored = std::conditional_t<std::is_void_v<R>, None, R>;

/// Wakes a set of waiters (as_completed, wait) when any of several states completes.
class Waiter {
 public:
  void notify(const void* who);
  /// The states that completed since the last call, oldest first; waits until `deadline`.
  std::vector<const void*> take(Deadline deadline);
  bool has_any();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<const void*> done_;
};

/// A one-shot "finished" flag that a waiter can spin on briefly and then sleep on with a
/// futex (a short spin keeps a busy request/response loop out of the kernel).
/// Everything written before set() is visible to a thread whose wait returned true.
class Completion {
 public:
  Completion() = default;
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;
  virtual ~Completion() = default;

  [[nodiscard]] bool ready() const noexcept { return word_.load(std::memory_order_acquire) == 1; }
  /// True once ready; false if `deadline` passed first.
  bool wait_until(Deadline deadline) const noexcept;

  /// Future-style bookkeeping (cancel, running, done callbacks, as_completed waiters).
  enum class Phase { pending, running, finished, cancelled };
  [[nodiscard]] Phase phase() const;
  /// Marks the submission started (dispatched to a worker); false if it was cancelled.
  bool mark_running();
  /// Cancels if not yet running; true if cancelled (now or before).
  bool try_cancel();
  /// Cancels a running submission whose pool can stop it (set_stopper): marks it cancelled
  /// and calls the stopper (which kills its worker). False when it is not running, is
  /// finished, or its pool cannot stop it (threads).
  bool cancel_running();
  /// How the pool stops this submission once running (a process pool kills its worker).
  /// Cleared when it finishes.
  void set_stopper(std::function<void()> stop);
  void add_done_callback(std::function<void()> cb);
  void add_waiter(std::shared_ptr<Waiter> w);
  void remove_waiter(const std::shared_ptr<Waiter>& w);

 protected:
  /// Publishes the outcome: wakes waiters, runs done callbacks (on the calling thread).
  void set_ready();

 private:
  mutable std::atomic<std::uint32_t> word_{0};
  mutable std::mutex mu_;
  Phase phase_ = Phase::pending;
  bool finished_ = false;
  std::vector<std::function<void()>> done_callbacks_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  std::function<void()> stopper_;
};

/// Where the outcomes of one submission's chunks go. `start` is the index of the chunk's
/// first item; `count` its number of items.
class Sink : public Completion {
 public:
  /// Decodes `count` results (fields, mp/internal/call.hpp) from `payload`. Throws mp::CodecError.
  virtual void deliver_bytes(std::size_t start, std::size_t count, std::string_view payload) = 0;
  virtual void fail(std::size_t start, std::size_t count, std::exception_ptr e) = 0;
  /// Whether Executor.shutdown(cancel_futures=true) may cancel it (single results only).
  [[nodiscard]] virtual bool cancellable() const { return false; }
  /// Publishes "cancelled" after try_cancel() succeeded.
  virtual void on_cancel() {}
};

template <class R>
Stored<R> decode_result(std::string_view bytes) {
  if constexpr (std::is_void_v<R>) {
    return None{};
  } else {
    return codec::decode<R>(bytes);
  }
}

/// The outcome of a submission whose result is one R (apply, submit, and — with R a
/// vector — map). Written once by the pool, then read by any number of threads.
template <class R>
class ResultState : public Sink {
 public:
  using Callback = std::function<void(const Stored<R>&)>;
  using ErrorCallback = std::function<void(std::exception_ptr)>;

  void set_callbacks(Callback cb, ErrorCallback ecb) {
    callback_ = std::move(cb);
    error_callback_ = std::move(ecb);
  }
  [[nodiscard]] bool successful() const noexcept { return ready() && !error_; }
  /// Only after ready().
  [[nodiscard]] const std::exception_ptr& error() const noexcept { return error_; }
  [[nodiscard]] Stored<R>& value() noexcept { return *value_; }

  void set_value(Stored<R> v) {
    if (this->ready()) return;
    if (this->phase() == Phase::cancelled) return cancel_now();  // stopped while it ran
    value_.emplace(std::move(v));
    if (callback_) run_callback([&] { callback_(*value_); });
    set_ready();
  }
  void set_error(std::exception_ptr e) {
    if (this->ready()) return;
    error_ = this->phase() == Phase::cancelled ? std::make_exception_ptr(CancelledError()) : std::move(e);
    if (error_callback_) run_callback([&] { error_callback_(error_); });
    set_ready();
  }
  void cancel_now() { set_error(std::make_exception_ptr(CancelledError())); }
  /// Future.cancel / AsyncResult.cancel: cancels a cancellable submission that has not
  /// started or (in a process pool) is running; true if it is (now) cancelled.
  bool cancel() {
    if (this->phase() == Phase::cancelled) return true;
    if (!cancellable()) return false;
    if (!this->try_cancel() && !this->cancel_running()) return false;
    on_cancel();
    return true;
  }
  [[nodiscard]] bool cancellable() const override { return true; }
  void on_cancel() override { cancel_now(); }

 private:
  template <class Fn>
  static void run_callback(Fn&& fn) noexcept {
    try {
      fn();
    } catch (const std::exception& e) {
      // Python prints callback errors from the result handler and goes on.
      std::fprintf(stderr, "mp.Pool: exception in a callback (ignored): %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "mp.Pool: unknown exception in a callback (ignored)\n");
    }
  }
  Callback callback_;
  ErrorCallback error_callback_;
  std::optional<Stored<R>> value_;
  std::exception_ptr error_;
};

/// apply / submit: one item, one result.
template <class R>
class ValueState final : public ResultState<R> {
 public:
  void deliver_bytes(std::size_t, std::size_t, std::string_view payload) override {
    auto field = take_field(payload);
    this->set_value(decode_result<R>(field));
  }
  void fail(std::size_t, std::size_t, std::exception_ptr e) override { this->set_error(std::move(e)); }
  void deliver_values(std::size_t, std::vector<Stored<R>>&& vals) { this->set_value(std::move(vals.at(0))); }
};

/// The `count` results of one chunk, decoded from a worker's reply payload.
template <class E>
std::vector<Stored<E>> decode_results(std::size_t count, std::string_view payload) {
  std::vector<Stored<E>> vals;
  vals.reserve(count);
  for (std::size_t i = 0; i < count; ++i) vals.push_back(decode_result<E>(take_field(payload)));
  return vals;
}

/// map / starmap: `total` items in chunks, one vector result; the first failure wins.
template <class E>
class MapState final : public ResultState<std::vector<Stored<E>>> {
 public:
  MapState(std::size_t total, ProgressFn progress) : total_(total), progress_(std::move(progress)) {
    slots_.resize(total);
    if (total == 0) this->set_value({});
  }
  /// A map's chunks run on several workers: neither cancel() nor Executor.shutdown's
  /// cancel_futures applies to it, and no chunk carries a stopper.
  [[nodiscard]] bool cancellable() const override { return false; }
  void deliver_bytes(std::size_t start, std::size_t count, std::string_view payload) override {
    deliver_values(start, decode_results<E>(count, payload));
  }
  void deliver_values(std::size_t start, std::vector<Stored<E>>&& vals) {
    std::size_t n = vals.size();
    for (std::size_t i = 0; i < n; ++i) slots_[start + i] = std::move(vals[i]);
    finished(n);
  }
  void fail(std::size_t, std::size_t count, std::exception_ptr e) override {
    if (!error_) error_ = std::move(e);
    finished(count);
  }

 private:
  void finished(std::size_t n) {
    done_ += n;
    if (progress_) progress_(done_, total_);
    if (done_ < total_ || this->ready()) return;
    if (error_) {
      this->set_error(error_);
    } else {
      std::vector<Stored<E>> out;
      out.reserve(total_);
      for (auto& s : slots_) out.push_back(std::move(*s));
      slots_.clear();
      this->set_value(std::move(out));
    }
  }
  std::size_t total_;
  std::size_t done_ = 0;
  ProgressFn progress_;
  std::vector<std::optional<Stored<E>>> slots_;
  std::exception_ptr error_;
};

/// imap / imap_unordered: results handed to one consuming iterator as they arrive.
/// With buffersize the number of items is unknown (`unknown_total`) until the input ends
/// (end_input).
template <class E>
class IMapState final : public Sink {
 public:
  static constexpr std::size_t unknown_total = static_cast<std::size_t>(-1);

  IMapState(std::size_t total, bool ordered, ProgressFn progress)
      : total_(total), ordered_(ordered), progress_(std::move(progress)) {
    if (ordered_ && total != unknown_total) slots_.resize(total);
    if (total == 0) {
      ready_ = true;
      set_ready();
    }
  }
  void deliver_bytes(std::size_t start, std::size_t count, std::string_view payload) override {
    deliver_values(start, decode_results<E>(count, payload));
  }
  void deliver_values(std::size_t start, std::vector<Stored<E>>&& vals) {
    std::size_t n = vals.size();
    std::unique_lock lk(mu_);
    for (std::size_t i = 0; i < n; ++i) put_locked(start + i, Item{std::move(vals[i]), nullptr});
    after(lk, n);
  }
  void fail(std::size_t start, std::size_t count, std::exception_ptr e) override {
    std::unique_lock lk(mu_);
    // The chunk's first position raises; the rest of the chunk is skipped (as CPython's
    // imap, whose iteration stops at a failed chunk).
    put_locked(start, Item{std::nullopt, e});
    for (std::size_t i = 1; i < count; ++i) put_locked(start + i, Item{std::nullopt, nullptr});
    after(lk, count);
  }
  /// buffersize: the input ended (or its iterator was dropped) after `total` items.
  void end_input(std::size_t total) {
    std::unique_lock lk(mu_);
    total_ = total;
    after(lk, 0);
  }
  /// How many results next() has taken (skipped items of a failed chunk included).
  std::size_t consumed() {
    std::lock_guard g(mu_);
    return consumed_;
  }

  /// The next result in order (or completion order): nullopt at the end. Throws the
  /// task's exception, or mp::TimeoutError when `deadline` passes first.
  std::optional<Stored<E>> next(Deadline deadline) {
    std::unique_lock lk(mu_);
    for (;;) {
      if (consumed_ == total_) return std::nullopt;
      if (ordered_) {
        // slots_.front() is item next_index_ (its slot exists once a later item arrived).
        while (!slots_.empty() && slots_.front() && !slots_.front()->value && !slots_.front()->error) {
          slots_.pop_front();  // a skipped item of a failed chunk
          ++next_index_;
          ++consumed_;
        }
        if (consumed_ == total_) return std::nullopt;
        if (!slots_.empty() && slots_.front()) {
          Item it = std::move(*slots_.front());
          slots_.pop_front();
          ++next_index_;
          ++consumed_;
          if (it.error) std::rethrow_exception(it.error);
          return std::move(it.value);
        }
      } else {
        while (!queue_.empty()) {
          Item it = std::move(queue_.front());
          queue_.pop_front();
          ++consumed_;
          if (it.error) std::rethrow_exception(it.error);
          if (it.value) return std::move(it.value);
        }
        if (consumed_ == total_) return std::nullopt;
      }
      if (!deadline) {
        cv_.wait(lk);
      } else if (cv_.wait_until(lk, *deadline) == std::cv_status::timeout && !has_next_locked()) {
        throw mp::TimeoutError("IMapIterator.next(timeout): no result arrived in time");
      }
    }
  }

 private:
  struct Item {
    std::optional<Stored<E>> value;
    std::exception_ptr error;
  };
  bool has_next_locked() const {
    if (consumed_ == total_) return true;
    return ordered_ ? !slots_.empty() && slots_.front().has_value() : !queue_.empty();
  }
  void put_locked(std::size_t i, Item it) {
    if (ordered_) {
      std::size_t k = i - next_index_;
      if (k >= slots_.size()) slots_.resize(k + 1);
      slots_[k] = std::move(it);
    } else {
      queue_.push_back(std::move(it));
    }
  }
  /// Counts n more finished items (under `lk`), then reports progress and, once every item
  /// of a known total has finished, readiness — both after unlocking.
  void after(std::unique_lock<std::mutex>& lk, std::size_t n) {
    done_ += n;
    std::size_t done = done_;
    std::size_t total = total_ == unknown_total ? 0 : total_;
    bool now_ready = !ready_ && done_ == total_;
    if (now_ready) ready_ = true;
    lk.unlock();
    cv_.notify_all();
    if (progress_ && n) progress_(done, total);
    if (now_ready) set_ready();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t total_;  // unknown_total until a lazy input ends
  bool ordered_;
  ProgressFn progress_;
  std::size_t done_ = 0;
  bool ready_ = false;
  std::deque<std::optional<Item>> slots_;  // ordered: items from next_index_ on
  std::deque<Item> queue_;                 // unordered: arrived, not yet taken
  std::size_t next_index_ = 0;
  std::size_t consumed_ = 0;
};

/// imap's buffersize (Python 3.15; Executor.map's, 3.14): pulls the input one chunk at a
/// time on the consuming thread, keeping at most buffersize chunks submitted and not yet
/// consumed. Held by the IMapIterator only, so dropping the iterator drops the input.
class IMapFeeder {
 public:
  /// pull(start) takes up to `chunksize` items from the input, submits them as one chunk
  /// whose first item is number `start`, and returns how many it took (fewer: the input
  /// ended). end(total) tells the results how many items there are.
  IMapFeeder(std::size_t chunksize, std::size_t buffersize, std::function<std::size_t(std::size_t)> pull,
             std::function<void(std::size_t)> end)
      : chunk_(chunksize), window_(chunksize * buffersize), pull_(std::move(pull)), end_(std::move(end)) {}
  IMapFeeder(const IMapFeeder&) = delete;
  IMapFeeder& operator=(const IMapFeeder&) = delete;
  /// Dropping the iterator early: what was submitted is the whole map.
  ~IMapFeeder() { finish(); }

  /// Submits chunks while a whole one fits in the window after `consumed` results.
  void top_up(std::size_t consumed) {
    while (!ended_ && submitted_ + chunk_ <= consumed + window_) {
      std::size_t n = pull_(submitted_);
      submitted_ += n;
      if (n < chunk_) finish();
    }
  }

 private:
  void finish() {
    if (ended_) return;
    ended_ = true;
    end_(submitted_);
  }
  std::size_t chunk_;
  std::size_t window_;
  std::function<std::size_t(std::size_t)> pull_;
  std::function<void(std::size_t)> end_;
  std::size_t submitted_ = 0;
  bool ended_ = false;
};

}  // namespace internal
}  // namespace mp
