// mp/subprocess.hpp — running programs, the Python subprocess way.
//
// Mirrors: subprocess.run/call/check_call/check_output, Popen, PIPE/DEVNULL/STDOUT,
// CompletedProcess, SubprocessError/TimeoutExpired/CalledProcessError.
//
//   namespace sp = mp::subprocess;
//   auto r = sp::run({"sort", "-r"}, {.input = "b\na\nc\n", .capture_output = true});
//   // r.returncode == 0, r.stdout == "c\nb\na\n"
//   sp::Popen p({"bc"}, {.stdin = sp::PIPE, .stdout = sp::PIPE});
//   auto [out, err] = p.communicate("6*7\n");                // out == "42\n"
//   sp::Popen ls({"ls"}, {.stdout = sp::PIPE});               // ls | sort, as in Python:
//   sp::Popen sorted({"sort"}, {.stdin = ls.stdout(), .stdout = sp::PIPE});
//   ls.stdout().close();                                     // sort has its own copy
//
// Guarantees:
// - Spawning is clone(CLONE_VM|CLONE_VFORK) + execve, as glibc's posix_spawn does it but
//   with half its system calls in the child: no copy of the parent's address space, no
//   allocation and only raw system calls in the child (which resets the handlers of
//   signals it will unblock, restores the spawning thread's mask, sets up fds and cwd,
//   then execs). Argument and environment arrays are built in the parent before spawning.
// - A program that cannot be started raises in the parent: FileNotFoundError naming the
//   program (or the cwd) when it does not exist, PermissionError when it is not
//   executable, mp::OSError for anything else — never a child that silently exits 127.
// - No file descriptor leaks into children: every fd mp opens is O_CLOEXEC, and by default
//   (close_fds) the child also closes every descriptor >= 3 it would otherwise inherit
//   from the rest of the program, except those listed in pass_fds.
// - No zombies: every child is reaped — by wait()/poll()/communicate(), or, when a Popen is
//   destroyed while its child still runs, by a small background reaper thread that exists
//   only while such orphans do. The destructor never blocks and never kills the child
//   (Python's Popen.__del__ behaviour; call wait() for `with Popen(...)` behaviour).
// - communicate() never deadlocks on large input or output: it multiplexes writing stdin
//   and draining stdout/stderr with ppoll(). Writing to a child that closed its stdin is
//   ignored (no SIGPIPE reaches the program).
// - Timeouts are std::chrono durations turned once into an absolute CLOCK_MONOTONIC
//   deadline; a zero or negative timeout means "check once". TimeoutExpired keeps the
//   output gathered so far, and a later communicate() continues where the timed-out one
//   stopped (Python's contract). run() kills the child on timeout, as Python does.
// - returncode: exit status, or -N when the child was killed by signal N (Python's rule).
// - Pipelines (Python's `Popen(["sort"], stdin=p1.stdout)`): a Pipe of one Popen may be
//   given as another's .stdin (a readable end: p1.stdout(), p1.stderr()) or .stdout/.stderr
//   (a writable end: p1.stdin()). The new child gets its own copy of the descriptor; this
//   process's end stays open in p1, exactly as in Python, until p1.stdout().close() (or
//   p1's destruction). Close it right after starting the next stage: an open read end
//   keeps p1 from getting SIGPIPE when its reader exits early, and an open write end
//   (p1.stdin()) keeps p1 from ever seeing end of file. A closed end, a stream that was
//   not PIPE, or an end the child could not use (p1.stdin() as .stdin) raises
//   mp::ValueError naming the field (".stdin") and what to pass, before anything starts.
// - A Popen may be used from several threads: wait()/poll() are serialised, exactly one
//   caller reaps. The pipes themselves are not synchronised (like Python file objects).
//
// Differences from Python: output is std::string both ways (bytes and str are the same
// type); `text = true` only translates "\r\n" and "\r" to "\n" in captured output
// (universal newlines). There is no preexec_fn (it cannot be made safe after vfork).
// A closed pipe end or one of a stream that was not PIPE, given as another child's
// stream, raises ValueError (Python: "I/O operation on closed file", or, for the None of
// a non-PIPE stream, silently inheriting ours); a wrong-way end raises ValueError where
// Python passes the descriptor on unchecked.
// The members are named stdin/stdout/stderr like Python's; glibc defines those macros as
// themselves, which is why that compiles.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "mp/errors.hpp"
#include "mp/internal/fd.hpp"

namespace mp::subprocess {

// ------------------------------------------------------------------------------- exceptions

/// Base of the subprocess module's exceptions (Python's SubprocessError).
class SubprocessError : public Error {
 public:
  using Error::Error;
};

/// A timeout passed before the child finished (Python's TimeoutExpired). Carries what the
/// child had written to captured pipes so far.
class TimeoutExpired : public SubprocessError {
 public:
  TimeoutExpired(std::vector<std::string> cmd, std::chrono::nanoseconds timeout, std::string output,
                 std::string stderr_output);
  [[nodiscard]] const std::vector<std::string>& cmd() const noexcept { return cmd_; }
  [[nodiscard]] std::chrono::nanoseconds timeout() const noexcept { return timeout_; }
  /// Captured stdout so far (Python's output / stdout).
  [[nodiscard]] const std::string& output() const noexcept { return output_; }
  [[nodiscard]] const std::string& stdout() const noexcept { return output_; }
  [[nodiscard]] const std::string& stderr() const noexcept { return stderr_; }

 private:
  std::vector<std::string> cmd_;
  std::chrono::nanoseconds timeout_;
  std::string output_;
  std::string stderr_;
};

/// check=true / check_call / check_output saw a non-zero returncode (Python's CalledProcessError).
class CalledProcessError : public SubprocessError {
 public:
  CalledProcessError(int returncode, std::vector<std::string> cmd, std::string output = {}, std::string stderr_output = {});
  /// The exit code, or -N when killed by signal N.
  [[nodiscard]] int returncode() const noexcept { return returncode_; }
  [[nodiscard]] const std::vector<std::string>& cmd() const noexcept { return cmd_; }
  [[nodiscard]] const std::string& output() const noexcept { return output_; }
  [[nodiscard]] const std::string& stdout() const noexcept { return output_; }
  [[nodiscard]] const std::string& stderr() const noexcept { return stderr_; }

 private:
  int returncode_;
  std::vector<std::string> cmd_;
  std::string output_;
  std::string stderr_;
};

/// The program (or the working directory) does not exist: Python's builtin FileNotFoundError
/// (declared in mp/errors.hpp); filename() is the program as given, or the cwd.
using FileNotFoundError = mp::FileNotFoundError;
/// The program exists but may not be executed: Python's builtin PermissionError (mp/errors.hpp).
using PermissionError = mp::PermissionError;

// ------------------------------------------------------------------------------- redirection

class Pipe;

/// Where a child's stdin/stdout/stderr goes: inherit (default), PIPE, DEVNULL, STDOUT (for
/// stderr only: wherever stdout goes), any open file descriptor of this process
/// (implicitly from int), or another Popen's pipe end (implicitly from Pipe&, Python's
/// `stdin=p1.stdout`). For a descriptor or a pipe end the caller keeps ownership and the
/// child gets a copy.
class Redirect {
 public:
  enum class Kind { inherit, pipe, devnull, stdout, fd };
  /// For Kind::fd, where the descriptor came from: a plain number (not checked beyond being
  /// open), or a Pipe end, whose direction and state Popen checks against the field.
  enum class Source { number, read_end, write_end };
  constexpr Redirect() noexcept = default;
  constexpr Redirect(int fd) noexcept : kind_(Kind::fd), fd_(fd) {}  // NOLINT: implicit, like Python's stdout=fd
  /// Another child's pipe end, as Python's `Popen(["sort"], stdin=p1.stdout)`: .stdin takes
  /// a readable end (p1.stdout(), p1.stderr()), .stdout/.stderr a writable one (p1.stdin()).
  /// Popen raises mp::ValueError naming the field for a closed end or the wrong direction.
  Redirect(const Pipe& end) noexcept;  // NOLINT: implicit, like Python's stdin=p1.stdout
  static constexpr Redirect of(Kind k) noexcept {
    Redirect r;
    r.kind_ = k;
    return r;
  }
  [[nodiscard]] constexpr Kind kind() const noexcept { return kind_; }
  [[nodiscard]] constexpr int fd() const noexcept { return fd_; }
  [[nodiscard]] constexpr Source source() const noexcept { return source_; }

 private:
  Kind kind_ = Kind::inherit;
  int fd_ = -1;
  Source source_ = Source::number;
};
inline constexpr Redirect INHERIT = Redirect::of(Redirect::Kind::inherit);
inline constexpr Redirect PIPE = Redirect::of(Redirect::Kind::pipe);
inline constexpr Redirect DEVNULL = Redirect::of(Redirect::Kind::devnull);
inline constexpr Redirect STDOUT = Redirect::of(Redirect::Kind::stdout);

/// The environment given to a child when `env` is set (it replaces the parent's).
using Env = std::map<std::string, std::string>;

/// The command: a list of arguments (`{"sort", "-r"}`), or one string — the program name,
/// or with shell=true the shell command line (`run("ls | wc -l", {.shell = true})`).
class CommandLine {
 public:
  CommandLine(std::initializer_list<std::string> args) : args_(args) {}
  CommandLine(std::vector<std::string> args) : args_(std::move(args)) {}
  CommandLine(const char* command) : args_{command}, single_(true) {}
  CommandLine(std::string command) : args_{std::move(command)}, single_(true) {}
  [[nodiscard]] const std::vector<std::string>& args() const noexcept { return args_; }
  [[nodiscard]] bool single_string() const noexcept { return single_; }

 private:
  std::vector<std::string> args_;
  bool single_ = false;
};

/// Popen's keyword arguments, in Python's order (designated initializers must follow it).
struct PopenOptions {
  std::string executable;  ///< program to run instead of args[0] (args[0] becomes its argv[0]); default: none
  Redirect stdin;          ///< default: inherit
  Redirect stdout;         ///< default: inherit
  Redirect stderr;         ///< default: inherit; STDOUT merges it into stdout
  bool close_fds = true;   ///< close inherited fds >= 3 in the child (except pass_fds)
  bool shell = false;      ///< run through /bin/sh -c (args[0] is the command line)
  std::string cwd;         ///< working directory of the child; default: ours
  std::optional<Env> env;  ///< the child's whole environment; default: ours (PATH lookup then uses env's PATH)
  bool start_new_session = false;  ///< setsid() in the child
  std::vector<int> pass_fds;       ///< fds kept open in the child (at the same numbers) despite close_fds
  bool text = false;               ///< translate "\r\n"/"\r" to "\n" in what communicate() returns
};

/// The bytes run() writes to the child's stdin (Python's `input=`), without copying them.
/// An lvalue std::string, a std::string_view or a string literal is *viewed*: like a
/// std::string_view, the caller's buffer must stay alive and unchanged until run()
/// returns (always true for `run(args, {.input = data})`). A std::string rvalue is moved
/// in and owned, so `{.input = make_text()}` is safe however the options are kept.
class Input {
 public:
  Input(const char* s) : view_(s) {}
  Input(std::string_view s) noexcept : view_(s) {}
  Input(const std::string& s) noexcept : view_(s) {}
  Input(std::string&& s) noexcept : owned_(std::move(s)), owns_(true) {}
  /// The bytes (valid while this Input, or the viewed buffer, lives).
  [[nodiscard]] std::string_view view() const noexcept { return owns_ ? std::string_view(owned_) : view_; }
  operator std::string_view() const noexcept { return view(); }
  [[nodiscard]] std::size_t size() const noexcept { return view().size(); }
  [[nodiscard]] bool empty() const noexcept { return view().empty(); }

 private:
  // Copies and moves stay correct because view() re-derives the owned case each time.
  std::string_view view_;
  std::string owned_;
  bool owns_ = false;
};

/// run()'s keyword arguments, in Python's order, followed by the other Popen ones.
struct RunOptions {
  Redirect stdin;                   ///< default: inherit (PIPE is implied by `input`)
  std::optional<Input> input;       ///< written to the child's stdin, which is then closed (not copied: see Input)
  Redirect stdout;                  ///< default: inherit
  Redirect stderr;                  ///< default: inherit
  bool capture_output = false;      ///< stdout = stderr = PIPE
  bool shell = false;
  std::string cwd;
  std::optional<std::chrono::nanoseconds> timeout;  ///< kill the child and throw TimeoutExpired after this
  bool check = false;               ///< throw CalledProcessError on a non-zero returncode
  bool text = false;
  std::optional<Env> env;
  std::string executable;
  bool close_fds = true;
  std::vector<int> pass_fds;
  bool start_new_session = false;
};

/// What run() returns (Python's CompletedProcess). stdout/stderr are empty unless captured.
struct CompletedProcess {
  std::vector<std::string> args;
  int returncode = 0;
  std::string stdout;
  std::string stderr;
  /// Throws CalledProcessError if returncode is non-zero.
  void check_returncode() const;
};

// -------------------------------------------------------------------------------- Popen

/// This process's end of a pipe to a child (Python's p.stdin / p.stdout / p.stderr).
/// Blocking I/O, not synchronised between threads. Empty (closed) unless that stream was PIPE.
/// It can be given to another Popen as its stdin/stdout/stderr (see Redirect); bytes that
/// readline() or read(n) have already read ahead stay here and do not reach that child.
class Pipe {
 public:
  /// Which way data flows through this end: p.stdin() is written to, p.stdout() and
  /// p.stderr() are read from.
  enum class Direction { read, write };
  Pipe() = default;
  explicit Pipe(internal::UniqueFd fd, Direction direction = Direction::read) noexcept
      : fd_(std::move(fd)), direction_(direction) {}
  [[nodiscard]] int fileno() const noexcept { return fd_.get(); }
  [[nodiscard]] bool closed() const noexcept { return !fd_; }
  /// Python's readable()/writable(): the end's direction (kept after close()).
  [[nodiscard]] bool readable() const noexcept { return direction_ == Direction::read; }
  [[nodiscard]] bool writable() const noexcept { return direction_ == Direction::write; }
  explicit operator bool() const noexcept { return !closed(); }
  void close() noexcept { fd_.reset(); }
  /// Writes all of `data`. Throws mp::OSError (EPIPE: the child closed its end — no SIGPIPE
  /// is raised), mp::ValueError if closed.
  void write(std::string_view data);
  /// Reads until end of file.
  std::string read();
  /// Reads until `n` bytes or end of file.
  std::string read(std::size_t n);
  /// Reads one line including its '\n' ("" at end of file).
  std::string readline();

 private:
  friend class Popen;
  internal::UniqueFd fd_;
  Direction direction_ = Direction::read;
  std::string buffered_;  // read ahead by readline()
};

inline Redirect::Redirect(const Pipe& end) noexcept
    : kind_(Kind::fd), fd_(end.fileno()), source_(end.writable() ? Source::write_end : Source::read_end) {}

/// subprocess.Popen: a started child process. Move-only. See the header comment for
/// destruction, reaping and thread-safety guarantees.
class Popen {
 public:
  /// Starts the program. Throws FileNotFoundError / PermissionError / mp::OSError if it
  /// cannot be started, mp::ValueError for inconsistent options (empty args, STDOUT for
  /// stdin/stdout, negative fds).
  explicit Popen(CommandLine args, PopenOptions opts = {});
  Popen(Popen&&) noexcept;
  Popen& operator=(Popen&&) noexcept;
  Popen(const Popen&) = delete;
  Popen& operator=(const Popen&) = delete;
  ~Popen();

  [[nodiscard]] pid_t pid() const noexcept;
  [[nodiscard]] const std::vector<std::string>& args() const noexcept;
  /// nullopt until the child has been reaped by wait()/poll()/communicate().
  [[nodiscard]] std::optional<int> returncode() const noexcept;

  /// Reaps the child if it has finished; its returncode, or nullopt while it runs (also
  /// while another thread is inside wait()).
  std::optional<int> poll();
  /// Waits for the child to end; returns its returncode.
  int wait();
  /// Waits at most `timeout`; throws TimeoutExpired if the child is still running.
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }

  /// Writes `input` to stdin (then closes it), reads stdout and stderr to end of file, and
  /// waits for the child. Returns {stdout, stderr} (empty for streams that are not PIPEs).
  /// Input requires stdin=PIPE (mp::ValueError otherwise). With a timeout, throws
  /// TimeoutExpired (carrying the partial output); calling communicate() again continues.
  std::pair<std::string, std::string> communicate(std::string_view input = {},
                                                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  /// Sends `sig` unless the child has already been reaped (then it does nothing: the pid
  /// may belong to another process by now).
  void send_signal(int sig);
  /// SIGTERM.
  void terminate();
  /// SIGKILL.
  void kill();

  Pipe& stdin() noexcept;
  Pipe& stdout() noexcept;
  Pipe& stderr() noexcept;

 private:
  struct Impl;
  int wait_for(std::chrono::nanoseconds timeout);
  std::unique_ptr<Impl> impl_;
};

// ----------------------------------------------------------------------- convenience functions

/// Runs the command, waits for it, returns its CompletedProcess. With .check, throws
/// CalledProcessError on failure; with .timeout, kills the child and throws TimeoutExpired.
CompletedProcess run(CommandLine args, RunOptions opts = {});
/// Runs the command and returns its returncode (Python's call()).
int call(CommandLine args, RunOptions opts = {});
/// Like call(), but throws CalledProcessError on a non-zero returncode; returns 0.
int check_call(CommandLine args, RunOptions opts = {});
/// Runs the command with stdout captured and returns it; throws CalledProcessError (with
/// the output) on a non-zero returncode.
std::string check_output(CommandLine args, RunOptions opts = {});

}  // namespace mp::subprocess
