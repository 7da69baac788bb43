// mp/threading.hpp — threads, the Python threading way.
//
// Mirrors: threading.Thread, Timer, local, current_thread(), main_thread(),
// active_count(), enumerate(), get_ident(), get_native_id(), excepthook. The
// synchronization primitives (Lock, RLock, Condition, Semaphore, Event, Barrier) are the
// ones of <mp/synchronize.hpp>: one Lock for threads and processes alike.
//
//   void task(std::string who) { std::printf("%s in %s\n", who.c_str(), mp::current_thread().name().c_str()); }
//   mp::Thread t(task, std::string("zmm"));    // function + arguments (copied, like args=)
//   t.start(); t.join();                       // prints "zmm in Thread-1"
//
//   struct Worker : mp::Thread { void run() override { /* ... */ } };   // or subclass
//
// Guarantees:
// - Exit rule (Python's): when main() returns or exit() is called, the process waits for
//   every non-daemon mp::Thread to finish; daemon threads do not hold it and simply stop
//   existing when the process ends. How: the OS threads belong to the library, not to the
//   Thread objects (no std::thread is ever left joinable, so std::terminate can never be
//   reached). The first start() in a process registers an atexit handler (and an
//   mp::internal::at_shutdown hook, which is what runs in mp child processes, since those
//   leave through _exit()). That handler waits for each non-daemon thread. Caveat of
//   atexit ordering: static objects whose construction finished *after* the first
//   start() are destroyed before the handler runs; threads must not rely on those.
// - Destroying a Thread never blocks and never terminates, except for a subclass whose
//   run() is still executing: then the destructor waits for run() to return, so the
//   object's memory is not freed under it. That is a safety net, not a licence: derived
//   members are destroyed before the base destructor runs (and a subclass destroyed right
//   after start() may see the base run() called), so join() a subclass thread before
//   destroying it. A thread with a callable target keeps running after its Thread object
//   is gone, exactly as in Python: the callable lives in the library's shared state.
// - An exception escaping a thread goes to the excepthook (default: prints
//   "Exception in thread <name>:" then "<type>: <what()>" on stderr); the process goes on.
//   mp::exit()/mp::SystemExit thrown in a thread ends that thread silently, as in Python.
// - join()/join(timeout): everything the thread did happens-before join() returning true.
//   A zero or negative timeout is an immediate check. After a successful join the thread
//   no longer appears in enumerate_threads()/active_count().
// - Threads not created by mp (std::thread, pthreads) appear as daemon "Dummy-N" threads
//   once they call current_thread(), and disappear when they end.
// - After fork(), only the forking thread exists in the child: it becomes main_thread()
//   there and every other thread reads as finished (is_alive() false, join() returns).
// - All functions here are safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "mp/errors.hpp"
#include "mp/internal/futex.hpp"

namespace mp {

namespace internal {
struct ThreadState;
/// Shared by the Thread object, its handles and the OS thread (which holds one reference
/// while it runs). Defined in src/threading/threading.cpp; only the target hook is visible here.
struct ThreadTarget {
  virtual ~ThreadTarget() = default;
  virtual void invoke() = 0;
};
template <class F, class Tuple>
struct BoundTarget final : ThreadTarget {
  BoundTarget(F f, Tuple t) : fn(std::move(f)), args(std::move(t)) {}
  void invoke() override {
    std::apply([&](auto&... a) { std::invoke(fn, a...); }, args);
  }
  F fn;
  Tuple args;
};
std::shared_ptr<ThreadState> make_thread_state(std::string name, std::optional<bool> daemon,
                                               std::unique_ptr<ThreadTarget> target);
}  // namespace internal

/// A copyable reference to a thread: what current_thread(), main_thread() and
/// enumerate_threads() return, and what Thread::handle() gives out. Two handles compare
/// equal when they refer to the same thread.
class ThreadHandle {
 public:
  explicit ThreadHandle(std::shared_ptr<internal::ThreadState> s) noexcept : s_(std::move(s)) {}

  /// The thread's name ("MainThread", "Thread-N", "Dummy-N" or what was set).
  [[nodiscard]] std::string name() const;
  /// Renames the thread (Python's `t.name = ...`). Names are labels; they need not be unique.
  void name(std::string n) const;
  [[nodiscard]] bool daemon() const noexcept;
  /// Python's ident (pthread_self() of the thread as an integer); 0 before start().
  [[nodiscard]] std::uint64_t ident() const noexcept;
  /// The kernel thread id (gettid()); 0 before start(). Right after start() it may wait a
  /// moment for the new thread to publish it.
  [[nodiscard]] pid_t native_id() const;
  /// True from start() until the thread's function has returned.
  [[nodiscard]] bool is_alive() const noexcept;
  /// Waits for the thread to end. Throws mp::RuntimeError when joining the current thread,
  /// a thread not started yet, or a dummy thread.
  void join() const;
  /// Waits at most `timeout` (zero or negative: just checks); returns true if it ended.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) const {
    return join_until(internal::deadline_after(timeout));
  }
  bool join_until(internal::Clock::time_point deadline) const;

  friend bool operator==(const ThreadHandle& a, const ThreadHandle& b) noexcept { return a.s_ == b.s_; }

 private:
  std::shared_ptr<internal::ThreadState> s_;
};

/// Options for a Thread, as keyword arguments: `mp::Thread t({.name = "LoopThread"}, loop)`.
struct ThreadOptions {
  std::string name;             ///< default: "Thread-N" (N counts threads created in this process)
  std::optional<bool> daemon;   ///< default: the creating thread's daemon flag (false in MainThread)
};

/// threading.Thread. Construct with a callable (+ arguments, copied like Python's args
/// tuple), or derive and override run(). Not copyable; movable until started.
class Thread {
 public:
  /// For subclasses that override run().
  Thread();
  explicit Thread(ThreadOptions opts);

  template <class F, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, ThreadOptions> && !std::is_base_of_v<Thread, std::decay_t<F>> &&
             std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>)
  explicit Thread(F&& fn, Args&&... args) : Thread(ThreadOptions{}, std::forward<F>(fn), std::forward<Args>(args)...) {}

  /// A thread that calls `fn(args...)` on its own copies of the arguments (one allocation:
  /// the callable lives in the thread's shared state, so it outlives this object).
  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>
  Thread(ThreadOptions opts, F&& fn, Args&&... args)
      : state_(internal::make_thread_state(
            std::move(opts.name), opts.daemon,
            std::make_unique<internal::BoundTarget<std::decay_t<F>, std::tuple<std::decay_t<Args>...>>>(
                std::forward<F>(fn), std::make_tuple(std::forward<Args>(args)...)))),
        has_target_(true) {}

  /// Moving is for threads not started yet, or started with a callable target: a started
  /// subclass thread runs run() on the original object, which must stay where it is.
  Thread(Thread&&) noexcept;
  Thread& operator=(Thread&&) noexcept;
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;
  /// See the header comment: never terminates; waits only for a subclass's running run().
  virtual ~Thread();

  /// Starts the thread. Throws mp::RuntimeError if it was already started, mp::OSError if
  /// the system refuses to create a thread (EAGAIN: too many threads).
  void start();
  /// What the thread runs. The default calls the target given to the constructor; it is
  /// the thread's entry point only for threads constructed without a target.
  virtual void run();

  /// See ThreadHandle::join().
  void join() const { handle().join(); }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) const {
    return handle().join(timeout);
  }
  bool join_until(internal::Clock::time_point deadline) const { return handle().join_until(deadline); }

  [[nodiscard]] bool is_alive() const noexcept { return handle().is_alive(); }
  [[nodiscard]] std::string name() const { return handle().name(); }
  void name(std::string n) { handle().name(std::move(n)); }
  [[nodiscard]] bool daemon() const noexcept { return handle().daemon(); }
  /// Sets the daemon flag. Throws mp::RuntimeError after start(), as Python does.
  void daemon(bool d);
  [[nodiscard]] std::uint64_t ident() const noexcept { return handle().ident(); }
  [[nodiscard]] pid_t native_id() const { return handle().native_id(); }
  [[nodiscard]] ThreadHandle handle() const noexcept { return ThreadHandle(state_); }

 private:
  std::shared_ptr<internal::ThreadState> state_;
  bool has_target_ = false;
};

/// The calling thread (Python's current_thread()).
[[nodiscard]] ThreadHandle current_thread();
/// The thread that started the program (in a forked child: the thread that forked).
[[nodiscard]] ThreadHandle main_thread();
/// Number of alive threads known to mp: the main thread, started mp::Threads that have not
/// finished, and dummy threads (Python's active_count()).
[[nodiscard]] std::size_t active_count();
/// The alive threads counted by active_count() (Python's threading.enumerate()).
[[nodiscard]] std::vector<ThreadHandle> enumerate_threads();
/// The calling thread's ident (Python's get_ident()); same value as current_thread().ident().
[[nodiscard]] std::uint64_t get_ident() noexcept;
/// The calling thread's kernel thread id (Python's get_native_id()).
[[nodiscard]] pid_t get_native_id() noexcept;

/// What the excepthook receives (Python's ExceptHookArgs).
struct ExceptHookArgs {
  std::exception_ptr exc_value;  ///< the exception itself (rethrow it to inspect)
  std::string exc_type;          ///< demangled type name, e.g. "std::runtime_error"
  std::string message;           ///< what(), or "" for a non-std::exception
  std::optional<ThreadHandle> thread;
};
using ExceptHook = std::function<void(const ExceptHookArgs&)>;
/// Replaces the hook called for an exception escaping a thread's run (threading.excepthook).
/// An empty function restores the default. If the hook itself throws, that is reported as
/// "Exception in threading.excepthook:" on stderr and the thread still ends normally.
void set_excepthook(ExceptHook hook);
[[nodiscard]] ExceptHook get_excepthook();
/// The default hook (threading.__excepthook__): prints
/// "Exception in thread <name>:\n<type>: <message>\n" to stderr.
void default_excepthook(const ExceptHookArgs& args);

/// threading.Timer: a thread that calls fn(args...) after `interval`, unless cancel() was
/// called first. start()/join()/daemon/name work as for any Thread. Like any thread with a
/// callable target, a started Timer still fires after the Timer object is destroyed
/// (Python's behaviour); cancel() it first if that is not wanted. The wait is an absolute
/// CLOCK_MONOTONIC futex deadline, so it is neither shortened nor extended by wake-ups.
class Timer : public Thread {
 public:
  template <class Rep, class Period, class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>
  Timer(std::chrono::duration<Rep, Period> interval, F&& fn, Args&&... args)
      : Timer(std::chrono::duration_cast<std::chrono::nanoseconds>(interval),
              [f = std::forward<F>(fn), tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
                std::apply([&](auto&... a) { std::invoke(f, a...); }, tup);
              },
              std::make_shared<Shared>()) {}
  /// Stops the timer if it has not fired yet (its function will then never run). Safe to
  /// call from any thread, any number of times, before or after start().
  void cancel() noexcept;
  /// True once cancel() was called or the function has started.
  [[nodiscard]] bool finished() const noexcept;

 private:
  struct Shared {
    std::atomic<std::uint32_t> state{0};  // futex word: 0 pending, 1 cancelled, 2 fired
  };
  Timer(std::chrono::nanoseconds interval, std::function<void()> fn, std::shared_ptr<Shared> shared);
  static void body(Shared& shared, std::chrono::nanoseconds interval, std::function<void()>& fn);
  std::shared_ptr<Shared> shared_;
};

namespace internal {
/// Storage behind ThreadLocal: one map per ThreadLocal object from "thread record" to
/// the value, and per thread a map from ThreadLocal id to the value, so each side can
/// destroy what it owns when it ends first.
struct LocalValue {
  virtual ~LocalValue() = default;
};
struct LocalControl;
struct ThreadRecord;
class ThreadLocalBase {
 protected:
  ThreadLocalBase();
  ~ThreadLocalBase();
  /// The calling thread's value, or nullptr.
  LocalValue* find() const noexcept;
  /// Stores `v` as the calling thread's value (replacing and destroying any old one).
  LocalValue* store(std::unique_ptr<LocalValue> v) const;
  /// Destroys the calling thread's value, if any.
  void erase() const;

 private:
  std::shared_ptr<LocalControl> ctrl_;
  std::uint64_t id_;
};
}  // namespace internal

/// threading.local as a typed object: each thread sees its own T, created on first use
/// (value-initialised, or by the factory given to the constructor — like a local subclass's
/// __init__ running once per thread). A thread's value is destroyed when that thread ends
/// or when the ThreadLocal is destroyed, whichever comes first. get() from the owning thread
/// needs no lock. Not copyable or movable (its identity is the key).
///
///   mp::ThreadLocal<std::string> student;
///   // in each thread: student.set(name); ... std::cout << *student;
template <class T>
class ThreadLocal : private internal::ThreadLocalBase {
 public:
  ThreadLocal() = default;
  /// Each thread's value starts as factory().
  explicit ThreadLocal(std::function<T()> factory) : factory_(std::move(factory)) {}
  ThreadLocal(const ThreadLocal&) = delete;
  ThreadLocal& operator=(const ThreadLocal&) = delete;

  /// The calling thread's value, created now if this thread has none.
  T& get() const {
    if (auto* v = find()) return static_cast<Holder*>(v)->value;
    return static_cast<Holder*>(store(factory_ ? std::make_unique<Holder>(factory_()) : std::make_unique<Holder>()))
        ->value;
  }
  /// Replaces the calling thread's value.
  T& set(T value) const {
    if (auto* v = find()) return static_cast<Holder*>(v)->value = std::move(value);
    return static_cast<Holder*>(store(std::make_unique<Holder>(std::move(value))))->value;
  }
  /// True when the calling thread has a value (Python: hasattr(local, ...)).
  [[nodiscard]] bool has_value() const noexcept { return find() != nullptr; }
  /// Destroys the calling thread's value (the next get() creates a fresh one).
  void reset() const { erase(); }

  T& operator*() const { return get(); }
  T* operator->() const { return &get(); }

 private:
  struct Holder final : internal::LocalValue {
    Holder() : value() {}
    explicit Holder(T v) : value(std::move(v)) {}
    T value;
  };
  std::function<T()> factory_;
};

}  // namespace mp
