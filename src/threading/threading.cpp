// Threads, the Python way: Thread, ThreadHandle, the registry of live threads (with its fork
// handling) and the module functions. Timer and ThreadLocal have their own files. See
// include/mp/threading.hpp for the contract.
//
// Ownership: a ThreadState is shared by the Thread object, any ThreadHandles and the OS
// thread itself, which holds one reference from its first instruction to its last. The
// pthread is created joinable; whoever claims `reap_claimed` first either pthread_join()s
// it (a joiner) or pthread_detach()es it (the state's destructor), so the thread's stack
// always goes back to glibc's cache and nothing ever calls std::terminate.
//
// Waiting: `done` (and `tid`) are futex words. The thread stores them with release order
// and calls futex_wake only when a waiter announced itself, so a start+join that nobody
// else watches costs no extra system call. An untimed join by the first joiner is a plain
// pthread_join (the cheapest possible wait, identical to std::thread::join).
#include "mp/threading.hpp"

#include <cxxabi.h>
#include <algorithm>
#include <pthread.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <typeinfo>

#include "mp/internal/os.hpp"
#include "os/process.hpp"
#include "mp/process.hpp"
#include "common/type_name.hpp"

namespace mp {
namespace internal {

/// Destroys the calling thread's ThreadLocal values (defined in thread_local.cpp).
void finish_thread_locals() noexcept;

struct ThreadState : std::enable_shared_from_this<ThreadState> {
  enum class Kind : std::uint8_t { thread, main, dummy };

  ThreadState(Kind k, std::string n, bool d) : name(std::move(n)), daemon(d), kind(k) {}
  ~ThreadState() {
    // Nobody joined: let the (finished or finishing) pthread free itself.
    if (joinable.load(std::memory_order_acquire) && !reap_claimed.exchange(true)) ::pthread_detach(handle);
  }

  mutable std::mutex name_mu;
  std::string name;
  bool daemon;
  Kind kind;
  std::unique_ptr<ThreadTarget> target;  // threads built from a callable
  Thread* owner = nullptr;               // threads built by subclassing: whose run() to call
  std::shared_ptr<ThreadState> keepalive;  // handed to the new thread by start()

  std::atomic<std::uint32_t> started{0};
  std::atomic<std::uint64_t> ident{0};
  std::atomic<std::uint32_t> tid{0};  // futex word, 0 until the thread published it
  std::atomic<std::uint32_t> tid_waiters{0};
  std::atomic<std::uint32_t> done{0};  // futex word, 1 once the thread's function has returned
  std::atomic<std::uint32_t> done_waiters{0};

  pthread_t handle{};
  std::atomic<bool> joinable{false};
  std::atomic<bool> reap_claimed{false};

  // Registry links (guarded by the registry mutex).
  ThreadState* prev = nullptr;
  ThreadState* next = nullptr;
  bool registered = false;

  void publish_tid(pid_t t) noexcept {
    tid.store(static_cast<std::uint32_t>(t), std::memory_order_seq_cst);
    if (tid_waiters.load(std::memory_order_seq_cst)) futex_wake_all(tid);
  }
  void mark_done() noexcept {
    done.store(1, std::memory_order_seq_cst);
    if (done_waiters.load(std::memory_order_seq_cst)) futex_wake_all(done);
  }
  /// Dekker pairing with mark_done(): either we see done, or it sees our waiter count.
  bool wait_done(Deadline deadline) noexcept {
    if (done.load(std::memory_order_acquire)) return true;
    done_waiters.fetch_add(1, std::memory_order_seq_cst);
    bool ok = true;
    while (!done.load(std::memory_order_seq_cst)) {
      if (futex_wait(done, 0, deadline) == WaitResult::timed_out && !done.load(std::memory_order_acquire)) {
        ok = false;
        break;
      }
    }
    done_waiters.fetch_sub(1, std::memory_order_relaxed);
    return ok;
  }
  /// Reaps the pthread if nobody has: it has finished or is finishing, so this is brief.
  void reap() noexcept {
    if (joinable.load(std::memory_order_acquire) && !reap_claimed.exchange(true)) ::pthread_join(handle, nullptr);
  }
};

namespace {

/// Every alive thread mp knows about. Leaked on purpose: daemon threads may still use it
/// while static destructors run.
struct Registry {
  std::mutex mu;
  ThreadState* head = nullptr;
  std::size_t count = 0;
  std::shared_ptr<ThreadState> main;
  std::atomic<int> thread_counter{0};
  std::atomic<int> dummy_counter{0};
  std::mutex hook_mu;
  std::shared_ptr<ExceptHook> hook;  // null: default_excepthook
  std::atomic<bool> exit_hooks_installed{false};
};

thread_local ThreadState* tl_current = nullptr;

void link(Registry& r, ThreadState* s) noexcept {
  s->prev = nullptr;
  s->next = r.head;
  if (r.head) r.head->prev = s;
  r.head = s;
  s->registered = true;
  ++r.count;
}

void unlink(Registry& r, ThreadState* s) noexcept {
  if (!s->registered) return;
  if (s->prev) s->prev->next = s->next;
  else r.head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
  s->registered = false;
  --r.count;
}

void after_fork_prepare() noexcept;
void after_fork_parent() noexcept;
void after_fork_child() noexcept;

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    // The main thread is the one whose tid is the pid. Created at static-init time (see
    // below), which runs on the main thread, so its pthread_t is known.
    reg->main = std::make_shared<ThreadState>(ThreadState::Kind::main, "MainThread", false);
    reg->main->started.store(1);
    reg->main->tid.store(static_cast<std::uint32_t>(kernel_pid()));
    if (kernel_tid() == kernel_pid())
      reg->main->ident.store(static_cast<std::uint64_t>(::pthread_self()));
    link(*reg, reg->main.get());
    ::pthread_atfork(after_fork_prepare, after_fork_parent, after_fork_child);
    return reg;
  }();
  return *r;
}

[[maybe_unused]] const bool registry_initialised_on_main_thread = (registry(), true);

// Both registry mutexes are held across fork() so the child never inherits one locked by
// a thread that does not exist there. They are never held together anywhere else.
void after_fork_prepare() noexcept {
  registry().mu.lock();
  registry().hook_mu.lock();
}
void after_fork_parent() noexcept {
  registry().hook_mu.unlock();
  registry().mu.unlock();
}

/// Only the forking thread exists in the child: it becomes the main thread and every other
/// thread reads as finished. Nothing here may touch a pthread that is not ours.
void after_fork_child() noexcept {
  Registry& r = registry();
  ThreadState* me = tl_current;
  for (ThreadState* s = r.head; s;) {
    ThreadState* next = s->next;
    if (s != me) {
      s->reap_claimed.store(true);  // never pthread_join/detach a thread of the parent
      s->done.store(1);
      unlink(r, s);
    }
    s = next;
  }
  try {
    if (me) {
      me->tid.store(static_cast<std::uint32_t>(kernel_pid()));  // not self_pid(): its atfork refresh may not have run yet
      r.main = me->shared_from_this();
    } else {
      r.main = std::make_shared<ThreadState>(ThreadState::Kind::main, "MainThread", false);
      r.main->started.store(1);
      r.main->tid.store(static_cast<std::uint32_t>(kernel_pid()));
      r.main->ident.store(static_cast<std::uint64_t>(::pthread_self()));
      link(r, r.main.get());
      tl_current = r.main.get();
    }
  } catch (...) {
    // Out of memory in a fresh child: the registry keeps its old main; names may be off.
  }
  r.hook_mu.unlock();
  r.mu.unlock();
}

/// Removes a foreign thread's dummy entry when that thread ends.
struct DummyGuard {
  std::shared_ptr<ThreadState> state;
  ~DummyGuard() {
    if (!state) return;
    Registry& r = registry();
    {
      std::lock_guard g(r.mu);
      unlink(r, state.get());
    }
    state->mark_done();
    if (tl_current == state.get()) tl_current = nullptr;
  }
};
thread_local DummyGuard tl_dummy;

ThreadState* current_state() {
  if (ThreadState* s = tl_current) return s;
  Registry& r = registry();
  if (kernel_tid() == self_pid()) {
    std::lock_guard g(r.mu);
    tl_current = r.main.get();
    return tl_current;
  }
  auto s = std::make_shared<ThreadState>(ThreadState::Kind::dummy, "Dummy-" + std::to_string(++r.dummy_counter), true);
  s->started.store(1);
  s->ident.store(static_cast<std::uint64_t>(::pthread_self()));
  s->tid.store(static_cast<std::uint32_t>(self_tid()));
  {
    std::lock_guard g(r.mu);
    link(r, s.get());
  }
  tl_current = s.get();
  tl_dummy.state = std::move(s);
  return tl_current;
}

void flush_std_streams() noexcept {
  try {
    std::cout.flush();
  } catch (...) {
    // Nothing to report to: the traceback that follows goes to stderr regardless.
  }
  std::fflush(stdout);
}

/// Called inside a catch block: builds the hook's arguments from the current exception.
void report_exception(ThreadState& st) noexcept {
  ExceptHookArgs args;
  try {
    args.exc_value = std::current_exception();
    auto* t = abi::__cxa_current_exception_type();
    args.exc_type = t ? demangle(t->name()) : "unknown exception";
    try {
      std::rethrow_exception(args.exc_value);
    } catch (const std::exception& e) {
      args.message = e.what();
    } catch (...) {
      args.message = "";
    }
    args.thread = ThreadHandle(st.shared_from_this());
    ExceptHook hook;
    {
      Registry& r = registry();
      std::lock_guard g(r.hook_mu);
      if (r.hook) hook = *r.hook;
    }
    if (hook) hook(args);
    else default_excepthook(args);
  } catch (...) {
    std::fprintf(stderr, "Exception in threading.excepthook:\n");
    auto* t = abi::__cxa_current_exception_type();
    std::string type = t ? demangle(t->name()) : "unknown exception";
    std::string what;
    try {
      throw;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "(not a std::exception)";
    }
    std::fprintf(stderr, "%s: %s\n", type.c_str(), what.c_str());
  }
}

void wait_for_non_daemon_threads() noexcept;

void install_exit_hooks() {
  Registry& r = registry();
  if (r.exit_hooks_installed.load(std::memory_order_acquire)) return;
  std::lock_guard g(r.hook_mu);
  if (r.exit_hooks_installed.load(std::memory_order_relaxed)) return;
  // Both are inherited by fork()ed children together with this flag: an mp child runs the
  // at_shutdown hook at the end of its run(); the main process runs the atexit handler
  // (and, when mp::Process registered its own atexit handler first, the hook as well —
  // waiting twice is harmless).
  std::atexit(wait_for_non_daemon_threads);
  at_shutdown(wait_for_non_daemon_threads);
  r.exit_hooks_installed.store(true, std::memory_order_release);
}

/// Python's threading._shutdown(): the main thread counts as finished, then every
/// non-daemon thread is waited for (including ones started while we wait).
void wait_for_non_daemon_threads() noexcept {
  Registry& r = registry();
  ThreadState* me = tl_current;
  {
    std::lock_guard g(r.mu);
    if (r.main && (me == nullptr || me == r.main.get())) r.main->mark_done();
  }
  for (;;) {
    std::shared_ptr<ThreadState> next;
    {
      std::lock_guard g(r.mu);
      for (ThreadState* s = r.head; s; s = s->next)
        if (s != me && s->kind == ThreadState::Kind::thread && !s->daemon && !s->done.load()) {
          next = s->shared_from_this();
          break;
        }
    }
    if (!next) return;
    next->wait_done(std::nullopt);
    // The thread unlinks itself before marking done, so it is gone from the registry now.
  }
}

void* thread_entry(void* arg) {
  auto* st = static_cast<ThreadState*>(arg);
  std::shared_ptr<ThreadState> self = std::move(st->keepalive);
  tl_current = st;
  st->ident.store(static_cast<std::uint64_t>(::pthread_self()), std::memory_order_relaxed);
  st->publish_tid(self_tid());
  struct Finish {
    ThreadState* st;
    ~Finish() {
      finish_thread_locals();
      {
        Registry& r = registry();
        std::lock_guard g(r.mu);
        unlink(r, st);
      }
      st->mark_done();
      tl_current = nullptr;
    }
  } finish{st};
  try {
    if (st->target) st->target->invoke();
    else if (st->owner) st->owner->run();
  } catch (abi::__forced_unwind&) {
    throw;  // pthread_exit()/cancellation: must propagate; Finish still runs.
  } catch (const SystemExit&) {
    // Python: SystemExit ends the thread silently.
  } catch (...) {
    report_exception(*st);
  }
  return nullptr;
}

}  // namespace

std::shared_ptr<ThreadState> make_thread_state(std::string name, std::optional<bool> daemon,
                                               std::unique_ptr<ThreadTarget> target) {
  Registry& r = registry();
  if (name.empty()) name = "Thread-" + std::to_string(++r.thread_counter);
  bool d = daemon ? *daemon : current_state()->daemon;
  auto s = std::make_shared<ThreadState>(ThreadState::Kind::thread, std::move(name), d);
  s->target = std::move(target);
  return s;
}

}  // namespace internal

using internal::ThreadState;

// ------------------------------------------------------------------------------ ThreadHandle

std::string ThreadHandle::name() const {
  std::lock_guard g(s_->name_mu);
  return s_->name;
}

void ThreadHandle::name(std::string n) const {
  std::lock_guard g(s_->name_mu);
  s_->name = std::move(n);
}

bool ThreadHandle::daemon() const noexcept { return s_->daemon; }
std::uint64_t ThreadHandle::ident() const noexcept { return s_->ident.load(std::memory_order_acquire); }

pid_t ThreadHandle::native_id() const {
  if (!s_->started.load(std::memory_order_acquire)) return 0;
  if (auto t = s_->tid.load(std::memory_order_acquire)) return static_cast<pid_t>(t);
  s_->tid_waiters.fetch_add(1, std::memory_order_seq_cst);
  std::uint32_t t;
  while ((t = s_->tid.load(std::memory_order_seq_cst)) == 0) internal::futex_wait(s_->tid, 0, std::nullopt);
  s_->tid_waiters.fetch_sub(1, std::memory_order_relaxed);
  return static_cast<pid_t>(t);
}

bool ThreadHandle::is_alive() const noexcept {
  return s_->started.load(std::memory_order_acquire) && !s_->done.load(std::memory_order_acquire);
}

namespace {
void check_joinable(const ThreadState& s) {
  if (!s.started.load(std::memory_order_acquire)) {
    std::lock_guard g(s.name_mu);
    throw RuntimeError("Thread.join(): cannot join thread '" + s.name + "' before it is started");
  }
  if (internal::tl_current == &s) throw RuntimeError("Thread.join(): cannot join the current thread (it would wait forever)");
  if (s.kind == ThreadState::Kind::dummy) throw RuntimeError("Thread.join(): cannot join a dummy thread (one not started by mp)");
}
}  // namespace

void ThreadHandle::join() const {
  check_joinable(*s_);
  if (s_->kind == ThreadState::Kind::thread && s_->joinable.load(std::memory_order_acquire) &&
      !s_->reap_claimed.exchange(true)) {
    ::pthread_join(s_->handle, nullptr);  // `done` was stored before the thread exited
    return;
  }
  s_->wait_done(std::nullopt);
}

bool ThreadHandle::join_until(internal::Clock::time_point deadline) const {
  check_joinable(*s_);
  if (!s_->wait_done(deadline)) return false;
  s_->reap();
  return true;
}

// ------------------------------------------------------------------------------------ Thread

Thread::Thread() : Thread(ThreadOptions{}) {}

Thread::Thread(ThreadOptions opts) : state_(internal::make_thread_state(std::move(opts.name), opts.daemon, nullptr)) {}

Thread::Thread(Thread&& o) noexcept : state_(std::move(o.state_)), has_target_(o.has_target_) {}

Thread& Thread::operator=(Thread&& o) noexcept {
  if (this != &o) {
    if (state_ && !has_target_ && state_->started.load() && internal::tl_current != state_.get())
      state_->wait_done(std::nullopt);
    state_ = std::move(o.state_);
    has_target_ = o.has_target_;
  }
  return *this;
}

Thread::~Thread() {
  // A subclass's run() uses this object: it must not outlive it.
  if (state_ && !has_target_ && state_->started.load(std::memory_order_acquire) &&
      internal::tl_current != state_.get())
    state_->wait_done(std::nullopt);
}

void Thread::run() {
  if (state_ && state_->target) state_->target->invoke();
}

void Thread::daemon(bool d) {
  if (state_->started.load()) throw RuntimeError("Thread.daemon: cannot set the daemon flag of '" + name() + "' after start()");
  state_->daemon = d;
}

void Thread::start() {
  ThreadState& st = *state_;
  if (st.started.exchange(1, std::memory_order_acq_rel))
    throw RuntimeError("Thread.start(): '" + name() + "' was already started (threads can only be started once)");
  internal::install_exit_hooks();
  if (!has_target_) st.owner = this;
  auto& r = internal::registry();
  {
    std::lock_guard g(r.mu);
    internal::link(r, &st);  // visible to enumerate_threads() from now on, as in Python
  }
  st.keepalive = state_;
  pthread_t h;
  int err = ::pthread_create(&h, nullptr, internal::thread_entry, &st);
  if (err != 0) {
    st.keepalive.reset();
    {
      std::lock_guard g(r.mu);
      internal::unlink(r, &st);
    }
    st.started.store(0);
    throw OSError(err, "Thread.start(): cannot start thread '" + name() + "'");
  }
  st.handle = h;
  st.ident.store(static_cast<std::uint64_t>(h), std::memory_order_release);
  st.joinable.store(true, std::memory_order_release);
}

// ------------------------------------------------------------------------- module functions

ThreadHandle current_thread() { return ThreadHandle(internal::current_state()->shared_from_this()); }

ThreadHandle main_thread() {
  auto& r = internal::registry();
  std::lock_guard g(r.mu);
  return ThreadHandle(r.main);
}

std::size_t active_count() {
  auto& r = internal::registry();
  std::lock_guard g(r.mu);
  return r.count;
}

std::vector<ThreadHandle> enumerate_threads() {
  auto& r = internal::registry();
  std::lock_guard g(r.mu);
  std::vector<ThreadHandle> out;
  out.reserve(r.count);
  for (ThreadState* s = r.head; s; s = s->next) out.emplace_back(s->shared_from_this());
  std::reverse(out.begin(), out.end());  // oldest first, like Python's dict order
  return out;
}

std::uint64_t get_ident() noexcept { return static_cast<std::uint64_t>(::pthread_self()); }
pid_t get_native_id() noexcept { return internal::self_tid(); }

void set_excepthook(ExceptHook hook) {
  auto& r = internal::registry();
  auto p = hook ? std::make_shared<ExceptHook>(std::move(hook)) : nullptr;
  std::lock_guard g(r.hook_mu);
  r.hook = std::move(p);
}

ExceptHook get_excepthook() {
  auto& r = internal::registry();
  std::lock_guard g(r.hook_mu);
  if (r.hook) return *r.hook;
  return default_excepthook;
}

void default_excepthook(const ExceptHookArgs& args) {
  internal::flush_std_streams();
  std::string name = args.thread ? args.thread->name() : "<unknown>";
  std::string text = "Exception in thread " + name + ":\n" + args.exc_type;
  text += args.message.empty() ? "\n" : ": " + args.message + "\n";
  std::fwrite(text.data(), 1, text.size(), stderr);  // one write: lines of two threads do not interleave
  std::fflush(stderr);
}

}  // namespace mp
