// mp/process.hpp — child processes, the multiprocessing.Process way.
//
// Mirrors: multiprocessing.Process, current_process(), parent_process(),
// active_children(), cpu_count(). Two styles, as in Python:
//
//   void work(int n) { std::printf("child %d\n", n); }
//   mp::Process p(work, 42);            // function + arguments
//   p.start(); p.join();                // p.exitcode() == 0
//
//   struct Worker : mp::Process {       // subclass and override run()
//     void run() override { std::puts("hello from the child"); }
//   };
//
// Guarantees:
// - start() forks (the default start method). The child runs the target, then its own
//   exit steps (joins its non-daemon children, terminates its daemon ones, flushes stdio)
//   and leaves with _exit(): the parent's static destructors and atexit handlers never run
//   in the child. Fork copies only the calling thread: locks held by other threads of the
//   parent at that moment stay locked forever in the child. In a program that already
//   runs threads, start processes early, or pick StartMethod::forkserver.
// - exitcode(): nullopt before the child ends; 0 on normal return; n for mp::exit(n);
//   1 for an uncaught exception (printed as "Process <name>:" + type + message on
//   stderr); -N when killed by signal N — exactly Python's convention.
// - Daemon children are terminated when the parent's main() returns (or exit() is
//   called) and are killed by the kernel if the parent dies abruptly (PR_SET_PDEATHSIG;
//   note the kernel sends it when the *thread* that started the child ends).
//   Non-daemon children are joined at normal exit, as Python does. Every child is reaped:
//   no zombies remain, even when the Process object is destroyed while the child runs.
// - All methods are safe to call from several threads of the parent.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <sys/types.h>

#include "mp/errors.hpp"
#include "mp/internal/futex.hpp"

namespace mp {

/// How a child process is created. See set_start_method().
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
/// Deliberately not an mp::Error, so `catch (const mp::Error&)` does not swallow it.
struct SystemExit {
  int code;
};
/// Ends the current mp child process with `code` (unwinding its stack first), like sys.exit().
[[noreturn]] inline void exit(int code) { throw SystemExit{code}; }

namespace internal {
struct ProcessState;
}

/// A copyable reference to a started child: what active_children() returns, and what
/// Process::handle() gives to code that outlives the Process object.
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

 private:
  std::shared_ptr<internal::ProcessState> s_;
};

/// Options for a Process, as keyword arguments: `mp::Process p({.name = "w", .daemon = true}, fn)`.
struct ProcessOptions {
  std::string name;     ///< default: "Process-N" (N counts per parent; "Process-1:2" in a child)
  bool daemon = false;  ///< default: the creating process's own daemon flag, as in Python
  bool inherit_daemon = true;  ///< when true and daemon is false, inherit the creator's flag
};

class Process {
 public:
  /// For subclasses that override run().
  Process();
  explicit Process(ProcessOptions opts);

  /// A process that calls `fn(args...)`. Arguments are copied now (decayed), like Python's
  /// args tuple; after fork the child calls fn with its own copies.
  template <class F, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, ProcessOptions> && !std::is_same_v<std::decay_t<F>, Process> &&
             std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>)
  explicit Process(F&& fn, Args&&... args) : Process(ProcessOptions{}, std::forward<F>(fn), std::forward<Args>(args)...) {}

  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>
  Process(ProcessOptions opts, F&& fn, Args&&... args) : Process(std::move(opts)) {
    target_ = [f = std::forward<F>(fn), tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
      std::apply([&](auto&... a) { std::invoke(f, a...); }, tup);
    };
  }

  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  /// Does not wait and does not kill: a running child keeps running and is still joined
  /// (non-daemon) or terminated (daemon) when the program exits, as in Python.
  virtual ~Process();

  /// Starts the child. Throws mp::ProcessError if already started or closed, mp::OSError
  /// if the system refuses to create a process.
  void start();
  /// What the child runs. The default calls the target given to the constructor.
  virtual void run();

  /// Waits for the child to end. Throws mp::ProcessError if not started.
  void join();
  /// Waits at most `timeout`; returns true if the child has ended.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_until(internal::deadline_after(timeout));
  }
  bool join_until(internal::Clock::time_point deadline);

  [[nodiscard]] bool is_alive() const;
  /// Sends SIGTERM (Python's terminate()). No effect once the child has been reaped.
  void terminate();
  /// Sends SIGKILL.
  void kill();
  /// Releases the process's resources. Throws mp::ValueError while the child still runs.
  void close();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  void name(std::string n) { name_ = std::move(n); }
  [[nodiscard]] bool daemon() const noexcept { return daemon_; }
  /// Sets the daemon flag. Throws mp::ProcessError after start().
  void daemon(bool d);
  /// The child's pid; 0 before start().
  [[nodiscard]] pid_t pid() const noexcept;
  [[nodiscard]] pid_t ident() const noexcept { return pid(); }
  /// Python's exitcode (see the header comment).
  [[nodiscard]] std::optional<int> exitcode() const;
  [[nodiscard]] ExitStatus status() const;
  /// A file descriptor that becomes readable when the child ends (a pidfd); -1 before start.
  [[nodiscard]] int sentinel() const;
  /// A copyable reference to the started child.
  [[nodiscard]] ProcessHandle handle() const;

 private:
  const internal::ProcessState& started(const char* what) const;
  std::string name_;
  bool daemon_ = false;
  bool closed_ = false;
  std::function<void()> target_;
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

/// Number of CPUs usable by this process (Python's os.cpu_count()).
[[nodiscard]] int cpu_count() noexcept;

/// Selects how Process::start() creates children (Python's set_start_method). Call it
/// early in main(), before starting threads: StartMethod::forkserver starts its server
/// here. Throws mp::RuntimeError if called again with a different method (force=false).
void set_start_method(StartMethod method, bool force = false);
[[nodiscard]] StartMethod get_start_method() noexcept;

namespace internal {
/// Runs `hook` at this process's normal shutdown: main()'s return / exit() in the main
/// process, or the end of run() in an mp child. Hooks run in reverse order of
/// registration, after daemon children are terminated and the rest joined.
void at_shutdown(void (*hook)());
}  // namespace internal

}  // namespace mp
