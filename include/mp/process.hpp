// mp/process.hpp — child processes, the multiprocessing.Process way.
//
// Mirrors: multiprocessing.Process, current_process(), parent_process(),
// active_children(), cpu_count(), process_cpu_count(), set_start_method(). Two styles, as in Python:
//
//   void work(int n) { std::printf("child %d\n", n); }
//   mp::Process p(work, 42);            // function + arguments (copied now, like args=(42,))
//   p.start(); p.join();                // p.exitcode() == 0
//
// The arguments follow the function one by one (not as a tuple); arguments work() cannot
// be called with are a static_assert that says so (tests/compile_fail/).
//
//   struct Worker : mp::Process {       // subclass and override run()
//     void run() override { std::puts("hello from the child"); }
//   };
//
// Exit state (exitcode(), Python's convention exactly): nullopt before the child ends;
// 0 when run() returns or for mp::exit(); n for mp::exit(n); 1 for mp::exit("message")
// (the message printed on the child's stderr, as sys.exit("message")) and for an uncaught
// exception (printed on the child's stderr as "Process <name>:" then "<type>: <what()>");
// -N when killed by signal N (terminate() gives -15, kill() gives -9); 255 when the status
// was lost (the child was reaped by someone else, e.g. SIGCHLD set to SIG_IGN, or its fork
// server was killed).
// status() gives the same as a value type (ExitStatus) instead of a signed int.
//
// Lifetime guarantees:
// - Non-daemon children are joined when this process ends normally (main() returns or
//   std::exit()), as Python does. Daemon children are sent SIGTERM at that point and, if
//   they are still alive 5 s later, SIGKILL; then everything is reaped. Daemon children
//   are also killed when this process dies abruptly (SIGKILL, crash): the kernel delivers
//   their parent-death signal (PR_SET_PDEATHSIG), and a child whose parent died before
//   that was armed notices it right after fork (getppid() check) and dies at once.
//   PR_SET_PDEATHSIG fires when the parent *thread* that forked ends; a daemon started
//   from a thread other than main is therefore armed with a handled real-time signal that
//   re-checks getppid() and only kills the child if the parent *process* is gone.
// - No zombies: every child is reaped by join(), by exitcode()/is_alive() once it has
//   ended, by the next start()/active_children() or Process destructor when its Process
//   object is already gone, and at the latest at this process's exit.
// - Destroying a Process neither waits nor kills: a running child keeps running and is
//   still joined (non-daemon) or terminated (daemon) at exit, as in Python.
// - Thread safety: once start() has returned, join()/join(timeout)/is_alive()/exitcode()/
//   status()/terminate()/kill()/sentinel() may be called concurrently from any threads;
//   exactly one of them reaps the child and all see the same status. start(), close(),
//   the setters and assignment must not race with other calls on the same object.
// - The child leaves through _exit() after its own exit steps (its daemon children are
//   terminated, the others joined, stdio flushed): the parent's static destructors and
//   atexit handlers never run twice. Inside a child, end early with mp::exit(code), not
//   std::exit() (which would run the parent's copies of those handlers).
// - Daemonic processes are not allowed to have children, as in Python: start() inside a
//   daemon (a Process started with daemon = true, a Pool worker, a manager's server)
//   throws mp::RuntimeError, and so does creating an mp::Pool there (its workers are
//   processes). Use threads or mp::ThreadPool inside a daemon.
//
// Misuse raises what Python raises, with Python's AssertionError mapped to
// mp::RuntimeError (mp/errors.hpp): start() twice, start()/join()/is_alive() on an object
// created by another process, join() before start(), join() of itself, daemon(bool) after
// start(), start() inside a daemon. Python's ValueError stays mp::ValueError: sentinel() or
// handle() before start() ("process not started"), any use after close(), close() while
// the child runs.
//
// Start methods (set_start_method):
// - StartMethod::fork (default): start() forks the calling process. Fast, and the child
//   sees everything the parent had (captures, subclass members, mp objects). The hazard:
//   fork copies only the calling thread, so a mutex held by another thread at that instant
//   (malloc's, a logger's, your own) stays locked forever in the child. In a program that
//   already runs threads, start processes before starting threads, or use forkserver.
// - StartMethod::forkserver: set_start_method() forks a small server while the program is
//   still single-threaded; start() then asks it (over a unix socket) to fork the child, so
//   the child never inherits another thread's locks. The server is a fork of this very
//   binary, so function addresses are identical: the target must be a function pointer
//   or a captureless lambda, and the arguments mp::Transferable values (they are encoded
//   with mp::codec and decoded in the child). Subclasses overriding run() and lambdas
//   with captures cannot be started this way: start() throws mp::ProcessError (check at
//   compile time with `mp::Process p(mp::forkserver_safe, fn, args...)`). The child sees
//   the program as it was when set_start_method() was called (globals, and mp objects
//   created before that call), writes to the parent's *current* stdin/stdout/stderr, and
//   reports the parent as parent_process(). All Process methods work the same (the server
//   reports the child's pid and wait status back; signals go through a pidfd). The server
//   dies with its owner and reaps everything it forked. Pools, executors and managers
//   start their processes through it too (see pool.hpp and managers.hpp for what their
//   initializers and registrations may then be), and its children know this process's
//   manager authkeys.
// - Under fork, start() in a process that runs other threads warns once on stderr (see
//   set_fork_warning), as Python 3.12 does.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "mp/internal/call.hpp"
#include "mp/internal/futex.hpp"

namespace mp {

/// How a child process is created. See set_start_method() and the header comment.
enum class StartMethod {
  fork,        ///< fork() the caller (default; fast; copies the whole address space).
  forkserver,  ///< ask a server process, forked while the program was single-threaded, to fork.
};

/// What became of a process, as a value (folly's ProcessReturnCode): never a magic int.
class ExitStatus {
 public:
  enum class State { not_started, running, exited, killed };
  static ExitStatus not_started() noexcept { return {State::not_started, 0}; }
  static ExitStatus running() noexcept { return {State::running, 0}; }
  static ExitStatus exited(int code) noexcept { return {State::exited, code}; }
  static ExitStatus killed(int signal) noexcept { return {State::killed, signal}; }
  /// From a waitpid() status word.
  static ExitStatus from_wait_status(int status) noexcept;

  [[nodiscard]] State state() const noexcept { return state_; }
  [[nodiscard]] bool finished() const noexcept { return state_ == State::exited || state_ == State::killed; }
  /// The exit code (State::exited) — 0 otherwise.
  [[nodiscard]] int code() const noexcept { return state_ == State::exited ? value_ : 0; }
  /// The terminating signal (State::killed) — 0 otherwise.
  [[nodiscard]] int signal() const noexcept { return state_ == State::killed ? value_ : 0; }
  /// Python's exitcode: nullopt while not finished, the code, or -signal.
  [[nodiscard]] std::optional<int> python_exitcode() const noexcept;
  /// "exited with code 3", "killed by SIGKILL", "running"...
  [[nodiscard]] std::string describe() const;
  bool operator==(const ExitStatus&) const = default;

 private:
  ExitStatus(State s, int v) noexcept : state_(s), value_(v) {}
  State state_;
  int value_;
};

/// Thrown by mp::exit(); ends the current child with that exit code (Python's SystemExit).
/// A non-empty `message` is written to the child's stderr (followed by a newline) before
/// it exits, as Python does for sys.exit("message"). Deliberately not an mp::Error, so
/// `catch (const mp::Error&)` does not swallow it. In an mp::Thread it ends that thread
/// silently; in a Pool task it ends the worker (the task fails with mp::WorkerLost). The
/// main program has nothing to catch it (it would reach std::terminate): return from
/// main() there.
struct SystemExit {
  int code = 0;
  std::string message;
};
/// Ends the current mp child process with `code` (unwinding its stack first), like
/// sys.exit(code). Only the low 8 bits reach the parent, as with any exit status.
[[noreturn]] inline void exit(int code) { throw SystemExit{code, {}}; }
/// Ends the current mp child process with status 0, like sys.exit() / sys.exit(None).
[[noreturn]] inline void exit() { throw SystemExit{0, {}}; }
/// Ends the current mp child process with status 1 after writing `message` and a newline
/// to its stderr, like sys.exit("message").
[[noreturn]] inline void exit(std::string message) { throw SystemExit{1, std::move(message)}; }

// mp::StatelessCallable (a target the fork server can run) is in mp/internal/call.hpp.
/// An argument the fork server can carry: encodable, and not an address (which would name
/// memory the child does not share).
template <class T>
concept ServerArgument = Transferable<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T>;
template <class F, class... Args>
concept ServerStartable = StatelessCallable<std::decay_t<F>> && (ServerArgument<std::decay_t<Args>> && ...) &&
                          std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>;

/// Tag for the Process constructor that checks ServerStartable at compile time.
struct ForkserverSafe {
  explicit ForkserverSafe() = default;
};
inline constexpr ForkserverSafe forkserver_safe{};

namespace internal {

struct ProcessState;

/// The call as the fork server runs it: `trampoline(payload)` in the child it forks.
/// `fds` (at most kMaxServerFds, borrowed: the caller keeps them open until start()
/// returns) travel with the request; in the child, server_fds() returns them, in order, as
/// its own descriptors (mp's own processes use this for their segments and eventfds).
struct ServerCall {
  void (*trampoline)(std::string_view payload);
  std::string payload;
  std::vector<int> fds;
};
inline constexpr std::size_t kMaxServerFds = 8;
/// In a child started by the fork server: the descriptors its ServerCall sent (else empty).
const std::vector<int>& server_fds() noexcept;

/// What a payload the fork server passes back may be wrong with (it cannot be, short of a
/// broken server: the messages say where it came from).
inline constexpr CallErrors kServerCallErrors{"Process arguments: truncated payload from the fork server",
                                              "Process arguments: truncated payload from the fork server",
                                              "Process arguments: unexpected bytes after the last argument"};

/// The payload is the callable and one field per argument (mp/internal/call.hpp).
template <class F, class... A>
void server_trampoline(std::string_view payload) {
  CallReader r(payload, kServerCallErrors);
  F f = r.template callable<F>();
  std::tuple<A...> args = r.template args<A...>();
  r.finish();
  std::apply([&](A&... a) { std::invoke(f, a...); }, args);
}

/// A callable and its copied arguments, runnable here (fork) or describable to the server.
class Target {
 public:
  virtual ~Target() = default;
  virtual void call() = 0;
  /// Throws mp::ProcessError when the target cannot be started by the fork server.
  [[nodiscard]] virtual ServerCall server_call() const = 0;
};

template <class F, class... A>
class TargetImpl final : public Target {
 public:
  template <class G, class... B>
  explicit TargetImpl(G&& g, B&&... b) : f_(std::forward<G>(g)), args_(std::forward<B>(b)...) {}
  void call() override {
    std::apply([this](A&... a) { std::invoke(f_, a...); }, args_);
  }
  [[nodiscard]] ServerCall server_call() const override {
    if constexpr (!StatelessCallable<F>) {
      throw ProcessError(
          "Process.start(): under StartMethod::forkserver the target must be a function or a captureless lambda "
          "(this one carries state, e.g. lambda captures or a std::function): pass the data as arguments instead");
    } else if constexpr (!(ServerArgument<A> && ...)) {
      throw ProcessError(
          "Process.start(): under StartMethod::forkserver every argument must be mp::Transferable and not a pointer "
          "(it is encoded with mp::codec for the server); give the type a serialize() function or use "
          "StartMethod::fork");
    } else {
      ServerCall c{&server_trampoline<F, A...>, {}, {}};
      put_callable(c.payload, f_);
      std::apply([&](const A&... a) { (put_field(c.payload, a), ...); }, args_);
      return c;
    }
  }

 private:
  F f_;
  std::tuple<A...> args_;
};

}  // namespace internal

/// A copyable reference to a started child: what active_children() returns, and what
/// Process::handle() gives to code that outlives the Process object. Same guarantees as
/// the corresponding Process methods.
class ProcessHandle {
 public:
  explicit ProcessHandle(std::shared_ptr<internal::ProcessState> s) noexcept : s_(std::move(s)) {}
  [[nodiscard]] pid_t pid() const noexcept;
  [[nodiscard]] std::string name() const;
  [[nodiscard]] bool daemon() const noexcept;
  [[nodiscard]] bool is_alive() const;
  [[nodiscard]] std::optional<int> exitcode() const;
  [[nodiscard]] ExitStatus status() const;
  void join() const;
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) const {
    return join_until(internal::deadline_after(timeout));
  }
  bool join_until(internal::Clock::time_point deadline) const;
  void terminate() const;
  void kill() const;
  void interrupt() const;

 private:
  std::shared_ptr<internal::ProcessState> s_;
};

/// Options for a Process, as keyword arguments: `mp::Process p({.name = "w", .daemon = true}, fn)`.
struct ProcessOptions {
  std::string name;             ///< default: "Process-N" (N counts per creator; "Process-1:2" in Process-1)
  std::optional<bool> daemon;   ///< default: the creating process's own daemon flag, as in Python
};

/// multiprocessing.Process. Move-only; the child is started at most once.
class Process {
 public:
  /// For subclasses that override run().
  Process();
  explicit Process(ProcessOptions opts);

  /// A process that calls `fn(args...)`. Arguments are copied now (decayed), like Python's
  /// args tuple; the child calls fn with its own copies (passed as lvalues).
  /// Arguments that do not match fn's parameters are a static_assert saying what to write.
  template <class F, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, ProcessOptions> && !std::is_same_v<std::decay_t<F>, ForkserverSafe> &&
             !std::is_base_of_v<Process, std::decay_t<F>>)
  explicit Process(F&& fn, Args&&... args) : Process(ProcessOptions{}, std::forward<F>(fn), std::forward<Args>(args)...) {}

  template <class F, class... Args>
    requires(!std::is_convertible_v<F &&, std::unique_ptr<internal::Target>>)
  Process(ProcessOptions opts, F&& fn, Args&&... args) : Process(std::move(opts)) {
    static_assert(std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>,
                  "mp::Process(fn, args...): fn cannot be called with these arguments. The arguments after fn must "
                  "match fn's parameters, one by one (copied now): for void fn(int, std::string) write "
                  "mp::Process p(fn, 1, std::string(\"x\")) (Python's Process(target=fn, args=(1, \"x\"))), "
                  "not a tuple of them; to run code of a subclass, override run()");
    if constexpr (std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>)
      target_ = std::make_unique<internal::TargetImpl<std::decay_t<F>, std::decay_t<Args>...>>(
          std::forward<F>(fn), std::forward<Args>(args)...);
  }

  /// As Process(fn, args...), and fails to compile unless the fork server could start it
  /// (see ServerStartable): the compile-time form of forkserver's start-time check.
  template <class F, class... Args>
  Process(ForkserverSafe, F&& fn, Args&&... args) : Process(ForkserverSafe{}, ProcessOptions{}, std::forward<F>(fn),
                                                           std::forward<Args>(args)...) {}
  template <class F, class... Args>
  Process(ForkserverSafe, ProcessOptions opts, F&& fn, Args&&... args)
      : Process(std::move(opts), std::forward<F>(fn), std::forward<Args>(args)...) {
    static_assert(StatelessCallable<std::decay_t<F>>,
                  "mp::forkserver_safe: the target must be a function pointer or a captureless lambda; pass the "
                  "data as arguments");
    static_assert((ServerArgument<std::decay_t<Args>> && ...),
                  "mp::forkserver_safe: every argument must be mp::Transferable (see mp/codec.hpp) and not a pointer");
  }

  /// mp's own processes (pool workers, manager servers): a target that says itself how the
  /// fork server starts it (internal::Target::server_call).
  Process(ProcessOptions opts, std::unique_ptr<internal::Target> target);

  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  /// Neither waits nor kills (see the header comment); reaps children that have ended.
  virtual ~Process();

  /// Starts the child with the current start method. Throws mp::RuntimeError if already
  /// started ("cannot start a process twice"), if this object was created by another
  /// process (a copy inherited through fork), or inside a daemonic process ("daemonic
  /// processes are not allowed to have children"); mp::ProcessError if the fork server
  /// cannot run this target; mp::ValueError after close(); mp::OSError if the system
  /// refuses to create a process.
  void start();
  /// What the child runs. The default calls the target given to the constructor.
  virtual void run();

  /// Waits for the child to end and reaps it. Throws mp::RuntimeError if not started ("can
  /// only join a started process"), if called from the child itself ("a process cannot
  /// join itself"), or if this process is not the one that started it; mp::ValueError
  /// after close().
  void join();
  /// Waits at most `timeout` (zero or negative: just checks); returns true if the child
  /// has ended. Same errors as join().
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_until(internal::deadline_after(timeout));
  }
  bool join_until(internal::Clock::time_point deadline);

  /// True from start() until the child has ended (it may still be true right after
  /// terminate(): the signal is asynchronous). False before start(). Inside the child,
  /// true for its own Process object. Throws mp::RuntimeError from another process.
  [[nodiscard]] bool is_alive() const;
  /// Sends SIGTERM (Python's terminate()). No effect before start() or once the child has
  /// ended: the signal goes through a pidfd, so it never reaches a recycled pid.
  void terminate();
  /// Sends SIGKILL. Same rules as terminate().
  void kill();
  /// Sends SIGINT (Python 3.14's interrupt()): the child's SIGINT handler runs, so a child
  /// that handles Ctrl-C cleans up; with the default disposition it ends (exitcode -2).
  /// Same rules as terminate().
  void interrupt();
  /// Releases the process's resources (its sentinel fd). Throws mp::ValueError while the
  /// child still runs; afterwards every method but name()/daemon()/pid() throws mp::ValueError.
  void close();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  void name(std::string n) { name_ = std::move(n); }
  [[nodiscard]] bool daemon() const noexcept { return daemon_; }
  /// Sets the daemon flag. Throws mp::RuntimeError after start(), mp::ValueError after close().
  void daemon(bool d);
  /// The child's pid; 0 before start().
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] pid_t ident() const noexcept { return pid(); }
  /// Python's exitcode (see the header comment). nullopt before start().
  [[nodiscard]] std::optional<int> exitcode() const;
  /// The same as a value: not_started, running, exited(code) or killed(signal).
  [[nodiscard]] ExitStatus status() const;
  /// A file descriptor that becomes readable (POLLIN) when the child ends, for use with
  /// poll()/epoll (Python's sentinel). Owned by the Process: do not read or close it.
  /// Throws mp::ValueError before start() ("process not started"), as Python does.
  [[nodiscard]] int sentinel() const;
  /// A copyable reference to the started child. Throws mp::ValueError before start().
  [[nodiscard]] ProcessHandle handle() const;

 private:
  const std::shared_ptr<internal::ProcessState>& started(const char* what) const;
  const std::shared_ptr<internal::ProcessState>& joinable() const;
  void check_creator(const char* what) const;
  void send_signal(const char* what, int sig);
  std::string name_;
  bool daemon_ = false;
  bool closed_ = false;
  pid_t creator_ = 0;  // the process that constructed this object
  pid_t pid_ = 0;
  std::unique_ptr<internal::Target> target_;
  std::shared_ptr<internal::ProcessState> state_;
};

/// Information about the running process (Python's current_process()).
struct CurrentProcess {
  std::string name;  ///< "MainProcess" in the main program, "Process-N" in a child
  pid_t pid;
  bool daemon;
};
[[nodiscard]] CurrentProcess current_process();

/// The process that started this one (Python's parent_process()); nullopt in the main process.
struct ParentProcess {
  std::string name;
  pid_t pid;
  [[nodiscard]] bool is_alive() const;
};
[[nodiscard]] std::optional<ParentProcess> parent_process();

/// The children of this process that are still alive; reaps those that have ended.
[[nodiscard]] std::vector<ProcessHandle> active_children();

/// Number of CPUs online in the system (Python's os.cpu_count()). At least 1. The
/// environment variable MP_CPU_COUNT (Python's PYTHON_CPU_COUNT) overrides it: a positive
/// integer is returned as is; "process" makes cpu_count() return process_cpu_count().
[[nodiscard]] int cpu_count() noexcept;

/// Number of CPUs this process may use (Python 3.13's os.process_cpu_count()): the CPUs of
/// its affinity mask (taskset, sched_setaffinity), and, beyond Python, no more than the
/// CPU quota of its cgroups rounded up (cgroup v1 cpu.cfs_quota_us or v2 cpu.max, the
/// tightest on the way to the root), so a container given 2 CPUs of a 64-core host gets 2.
/// At least 1. A positive MP_CPU_COUNT overrides it, as PYTHON_CPU_COUNT does in Python.
/// mp::Pool, ThreadPool and the executors take their default size from it. Reads /proc
/// and /sys on each call (tens of microseconds): call it once, not per task.
[[nodiscard]] int process_cpu_count() noexcept;

/// Selects how Process::start() creates children (Python's set_start_method). Call it
/// early in main(), before starting threads: StartMethod::forkserver forks its server
/// here (throws mp::OSError if it cannot). Calling it again with the same method does
/// nothing; with another method it throws mp::RuntimeError unless `force` is true.
/// Switching away from forkserver stops the server (it lingers, invisible, until the
/// children it forked have ended and been reported). Children start with the default,
/// StartMethod::fork, whatever their parent uses.
void set_start_method(StartMethod method, bool force = false);
[[nodiscard]] StartMethod get_start_method() noexcept;

/// Under StartMethod::fork, Process::start() (and so a Pool starting or replacing a worker)
/// in a process that runs other threads prints, once per process, a warning on stderr that
/// the child may deadlock on a lock one of those threads held (Python 3.12's
/// DeprecationWarning "This process is multi-threaded, use of fork() may lead to deadlocks
/// in the child"). mp's own pool result thread does not count: a worker never touches it.
/// set_fork_warning(false), or MP_FORK_WARNING=0 in the environment, turns it off. Not
/// under ThreadSanitizer, whose own threads cannot be told from the program's.
void set_fork_warning(bool enabled) noexcept;

namespace internal {
/// Runs `hook` at this process's normal shutdown: main()'s return / exit() in the main
/// process, or the end of run() in an mp child. Hooks run in reverse order of
/// registration, after daemon children are terminated and the rest joined.
void at_shutdown(void (*hook)());
}  // namespace internal

}  // namespace mp
