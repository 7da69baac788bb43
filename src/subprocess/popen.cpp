// mp::subprocess::Popen: spawning the child, reaping it exactly once, signalling it, and
// communicate(). See include/mp/subprocess.hpp for the contract.
//
// communicate() stays with the rest of Popen: its progress survives a TimeoutExpired in
// Popen::Impl, beside the reaping state, and it ends by waiting for the child like wait().
#include "mp/subprocess.hpp"

#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>

#include "mp/internal/futex.hpp"
#include "os/file.hpp"
#include "os/process.hpp"
#include "os/spawn.hpp"
#include "subprocess/pipe_read.hpp"

namespace mp::subprocess {

namespace {

/// Python's universal newlines on output: "\r\n" and lone "\r" become "\n".
void translate_newlines(std::string& s) {
  if (s.find('\r') == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  s = std::move(out);
}

/// Wait-status → Python's returncode.
int returncode_of(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return 0;
}

constexpr int kUnknown = INT_MIN;
/// Upper bound of communicate()'s up-front stdout buffer (the rest grows as usual).
constexpr std::size_t kOutputReserveCap = 64 * 1024 * 1024;

/// Before draining a pipe into `out`: makes room for what is waiting and faults that room
/// in with one call. For bulk output the page faults of the string's fresh memory, one per
/// 4 KiB, were a large part of communicate()'s cost; small outputs skip the two calls.
void prepare_drain(int fd, std::string& out) {
  constexpr std::size_t kWorthIt = 32 * 1024;
  std::size_t avail = internal::pipe_available(fd);
  if (avail < kWorthIt) return;
  if (out.capacity() - out.size() < avail) out.reserve(std::max(out.size() + avail, 2 * out.capacity()));
  internal::prefault_writable(out.data() + out.size(), avail);
}

}  // namespace

using detail::read_some;

struct Popen::Impl {
  std::vector<std::string> args;
  pid_t pid = 0;
  bool text = false;
  std::atomic<int> returncode{kUnknown};
  // The right to reap, a futex word (Drepper's 0 free / 1 taken / 2 taken with waiters):
  // only its holder calls waitpid() or kill() on a possibly-finished child, so exactly one
  // thread reaps and nobody signals a reaped (reusable) pid. It also guards `pidfd`.
  std::atomic<std::uint32_t> reaper{0};
  internal::UniqueFd pidfd;  // opened lazily for timed waits
  Pipe in{internal::UniqueFd{}, Pipe::Direction::write}, out, err;  // directions hold even when not PIPE
  // communicate() progress, kept across a TimeoutExpired (Python's contract).
  bool communicating = false;
  // The input still to write. During a call it views the caller's buffer (no copy of what
  // may be megabytes); only a call that ends early with input pending copies the rest into
  // `input_store`, since the caller's buffer need not outlive that call.
  std::string_view input;
  std::size_t input_offset = 0;
  std::string input_store;
  std::string out_acc, err_acc;

  /// Makes the pending input independent of the caller's buffer (see `input`).
  void keep_pending_input() {
    if (!in || input_offset == input.size() || input.data() == input_store.data()) return;
    input_store.assign(input.substr(input_offset));
    input = input_store;
    input_offset = 0;
  }

  void set_status(int status) noexcept { returncode.store(returncode_of(status), std::memory_order_release); }

  bool try_claim() noexcept {
    std::uint32_t free = 0;
    return reaper.compare_exchange_strong(free, 1, std::memory_order_acquire, std::memory_order_relaxed);
  }
  void release() noexcept {
    if (reaper.exchange(0, std::memory_order_release) == 2) internal::futex_wake_all(reaper);
  }
  /// Waits for the right to reap; false if `deadline` passed first.
  bool claim_until(internal::Deadline deadline) noexcept {
    if (try_claim()) return true;  // uncontended: no futex wake needed at release
    for (;;) {
      std::uint32_t v = reaper.load(std::memory_order_relaxed);
      if (v == 0) {
        if (reaper.compare_exchange_strong(v, 2, std::memory_order_acquire, std::memory_order_relaxed)) return true;
        continue;  // taken in the "waiters" state: others may still sleep on the word
      }
      if (v == 1 && !reaper.compare_exchange_strong(v, 2, std::memory_order_relaxed)) continue;
      if (internal::futex_wait(reaper, 2, deadline) == internal::WaitResult::timed_out &&
          returncode.load(std::memory_order_acquire) == kUnknown)
        return false;
      if (returncode.load(std::memory_order_acquire) != kUnknown) return false;  // someone else reaped
    }
  }
  /// Records the result of a waitpid-like call (1 reaped, 0 running, -errno).
  void record(int r, int status) noexcept {
    if (r == 1) set_status(status);
    else if (r < 0) returncode.store(0, std::memory_order_release);  // ECHILD: reaped elsewhere (SIGCHLD ignored)
    if (r != 0) pidfd.reset();
  }

  /// Reaps if possible within `deadline`; true once returncode is known.
  bool wait_until(internal::Deadline deadline) {
    while (returncode.load(std::memory_order_acquire) == kUnknown) {
      if (!claim_until(deadline)) {
        if (returncode.load(std::memory_order_acquire) != kUnknown) return true;
        return false;
      }
      if (returncode.load(std::memory_order_acquire) == kUnknown) {
        int status = 0;
        int r = internal::wait_child(pid, pidfd, deadline, &status);
        record(r, status);
      }
      release();
      if (returncode.load(std::memory_order_acquire) == kUnknown && deadline && internal::Clock::now() >= *deadline)
        return false;
    }
    return true;
  }
};

namespace {

/// The child's descriptor for one of its streams. `field` names the option in errors
/// (".stdin"), which say what was wrong and what to pass instead.
internal::ChildFd child_fd(const Redirect& r, internal::UniqueFd& parent_end, internal::UniqueFd& child_end,
                           internal::UniqueFd& high_copy, bool child_reads, const char* field) {
  using K = Redirect::Kind;
  using S = Redirect::Source;
  internal::ChildFd c;
  switch (r.kind()) {
    case K::inherit: return c;
    case K::devnull: c.kind = internal::ChildFd::Kind::devnull; return c;
    case K::stdout:
      if (std::strcmp(field, ".stderr") != 0)
        throw ValueError(std::string("Popen: ") + field + " = STDOUT: STDOUT is only valid for .stderr");
      c.kind = internal::ChildFd::Kind::same_as_stdout;
      return c;
    case K::pipe: {
      internal::UniqueFd rd, wr;
      if (int e = internal::make_pipe(rd, wr)) throw OSError(-e, std::string("Popen: pipe() for ") + field);
      parent_end = child_reads ? std::move(wr) : std::move(rd);
      child_end = child_reads ? std::move(rd) : std::move(wr);
      c.kind = internal::ChildFd::Kind::fd;
      c.fd = child_end.get();
      return c;
    }
    case K::fd: {
      if (r.source() != S::number && r.fd() < 0)
        throw ValueError(std::string("Popen: ") + field +
                         " was given a closed pipe end (closed, or the stream of a Popen started without PIPE); "
                         "pass an open end, PIPE, DEVNULL or a file descriptor");
      if (r.source() == S::write_end && child_reads)
        throw ValueError(std::string("Popen: ") + field +
                         " was given a pipe end this process writes to (another Popen's stdin()), which the "
                         "child cannot read from; pass a readable end such as p1.stdout()");
      if (r.source() == S::read_end && !child_reads)
        throw ValueError(std::string("Popen: ") + field +
                         " was given a pipe end this process reads from (another Popen's stdout() or "
                         "stderr()), which the child cannot write to; pass a writable end such as p1.stdin()");
      if (r.fd() < 0)
        throw ValueError(std::string("Popen: ") + field + " = " + std::to_string(r.fd()) +
                         " is not a file descriptor; pass PIPE, DEVNULL, a pipe end or a descriptor >= 0");
      // A private copy >= 3 so dup2 onto 0/1/2 never clobbers another source.
      if (int e = internal::dup_high(r.fd(), high_copy))
        throw OSError(-e, std::string("Popen: ") + field + " = fd " + std::to_string(r.fd()));
      c.kind = internal::ChildFd::Kind::fd;
      c.fd = high_copy.get();
      return c;
    }
  }
  return c;
}

[[noreturn]] void throw_spawn_error(int err, const std::string& program, const std::string& cwd) {
  if (err == ENOENT) {
    struct stat st;
    if (!cwd.empty() && internal::stat_path(cwd.c_str(), st) != 0)
      throw FileNotFoundError(cwd, "Popen: cannot change to working directory '" + cwd + "'");
    throw FileNotFoundError(program, "Popen: cannot run '" + program + "' (not found on PATH, nor a path to a program)");
  }
  if (err == EACCES) throw PermissionError(program, "Popen: cannot run '" + program + "'");
  throw OSError(err, "Popen: cannot run '" + program + "'");
}

}  // namespace

Popen::Popen(CommandLine cmd, PopenOptions opts) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.args = cmd.args();
  s.text = opts.text;
  if (s.args.empty() || (s.args[0].empty() && opts.executable.empty()))
    throw ValueError("Popen: empty command (args must name a program)");

  // argv, built entirely before spawning.
  std::vector<std::string> argv_store;
  if (opts.shell) {
    argv_store = {"/bin/sh", "-c"};
    argv_store.insert(argv_store.end(), s.args.begin(), s.args.end());
  }
  const std::vector<std::string>& argv_src = opts.shell ? argv_store : s.args;
  std::vector<char*> argv;
  argv.reserve(argv_src.size() + 1);
  for (auto& a : argv_src) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::string program = !opts.executable.empty() ? opts.executable : argv_src[0];

  std::vector<std::string> env_store;
  std::vector<char*> envp;
  const char* env_path = nullptr;
  if (opts.env) {
    env_store.reserve(opts.env->size());
    for (auto& [k, v] : *opts.env) {
      env_store.push_back(k + "=" + v);
      if (k == "PATH") env_path = env_store.back().c_str() + 5;
    }
    envp.reserve(env_store.size() + 1);
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
  }

  internal::SpawnRequest req;
  // With a replacement environment the lookup must use *its* PATH (Python's rule), not
  // ours (which spawn()'s search uses, like posix_spawnp): resolve in the parent.
  std::string resolved;
  if (opts.env && program.find('/') == std::string::npos) {
    resolved.resize(program.size() + 4096);
    int e = internal::find_on_path(program.c_str(), env_path ? env_path : "/bin:/usr/bin", resolved.data(),
                                   resolved.size());
    if (e) throw_spawn_error(-e, program, opts.cwd);
    resolved.resize(std::strlen(resolved.c_str()));
    req.path = resolved.c_str();
    req.search_path = false;
  } else {
    req.path = program.c_str();
  }
  req.argv = argv.data();
  req.envp = opts.env ? envp.data() : nullptr;
  req.cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();
  req.close_fds = opts.close_fds;
  std::vector<int> pass = opts.pass_fds;
  std::sort(pass.begin(), pass.end());
  pass.erase(std::unique(pass.begin(), pass.end()), pass.end());
  if (!pass.empty() && pass.front() < 3) throw ValueError("Popen: pass_fds must be >= 3 (0/1/2 are always passed)");
  req.pass_fds = pass.data();
  req.n_pass_fds = pass.size();
  req.new_session = opts.start_new_session;

  internal::UniqueFd in_child, out_child, err_child, in_copy, out_copy, err_copy, in_parent, out_parent, err_parent;
  req.in = child_fd(opts.stdin, in_parent, in_child, in_copy, true, ".stdin");
  req.out = child_fd(opts.stdout, out_parent, out_child, out_copy, false, ".stdout");
  req.err = child_fd(opts.stderr, err_parent, err_child, err_copy, false, ".stderr");

  pid_t pid = 0;
  if (int e = internal::spawn(req, &pid)) throw_spawn_error(-e, program, opts.cwd);
  s.pid = pid;
  s.in = Pipe(std::move(in_parent), Pipe::Direction::write);
  s.out = Pipe(std::move(out_parent), Pipe::Direction::read);
  s.err = Pipe(std::move(err_parent), Pipe::Direction::read);
  // The child's ends and the fd copies close here: only the child holds them now.
}

Popen::Popen(Popen&&) noexcept = default;

Popen& Popen::operator=(Popen&& o) noexcept {
  if (this != &o) {
    Popen doomed(std::move(*this));
    impl_ = std::move(o.impl_);
  }
  return *this;
}

Popen::~Popen() {
  if (!impl_) return;
  impl_->in.close();
  impl_->out.close();
  impl_->err.close();
  if (impl_->pid > 0 && !poll() && impl_->returncode.load() == kUnknown) internal::adopt_orphan(impl_->pid);
}

pid_t Popen::pid() const noexcept { return impl_->pid; }
const std::vector<std::string>& Popen::args() const noexcept { return impl_->args; }

std::optional<int> Popen::returncode() const noexcept {
  int rc = impl_->returncode.load(std::memory_order_acquire);
  return rc == kUnknown ? std::nullopt : std::optional<int>(rc);
}

std::optional<int> Popen::poll() {
  Impl& s = *impl_;
  if (s.returncode.load(std::memory_order_acquire) == kUnknown) {
    if (s.try_claim()) {
      if (s.returncode.load(std::memory_order_acquire) == kUnknown) {
        int status = 0;
        int r = internal::try_reap(s.pid, &status);
        s.record(r, status);
      }
      s.release();
    }
  }
  return returncode();
}

int Popen::wait() {
  impl_->wait_until(std::nullopt);
  return impl_->returncode.load(std::memory_order_acquire);
}

int Popen::wait_for(std::chrono::nanoseconds timeout) {
  if (!impl_->wait_until(internal::deadline_after(timeout))) throw TimeoutExpired(impl_->args, timeout, {}, {});
  return impl_->returncode.load(std::memory_order_acquire);
}

std::pair<std::string, std::string> Popen::communicate(std::string_view input,
                                                       std::optional<std::chrono::nanoseconds> timeout) {
  Impl& s = *impl_;
  internal::Deadline deadline;
  if (timeout) deadline = internal::deadline_after(*timeout);
  auto timed_out = [&] {
    return TimeoutExpired(s.args, *timeout, s.out_acc, s.err_acc);
  };
  try {
    if (!s.communicating) {
      if (!input.empty() && !s.in) throw ValueError("Popen.communicate(): input given but stdin is not a PIPE");
      s.communicating = true;
      s.input = input;
      s.input_offset = 0;
      s.out_acc = std::move(s.out.buffered_);
      s.err_acc = std::move(s.err.buffered_);
      s.out.buffered_.clear();
      s.err.buffered_.clear();
      if (s.in && s.input.empty()) s.in.close();
      for (Pipe* pipe : {&s.in, &s.out, &s.err})  // only our ends: the child's are separate open files
        if (*pipe)
          if (int e = internal::set_nonblocking(pipe->fileno(), true)) throw OSError(-e, "Popen.communicate(): fcntl");
      // Bulk transfer ahead (typically a filter): with pipes as large as the input, the child
      // never blocks on us, and both sides move data in a few large steps instead of many
      // 64 KiB round trips. Best effort: limits (pipe-max-size, per-user pages) just refuse.
      if (s.input.size() > internal::kDefaultPipeSize) {
        std::size_t want = std::min(s.input.size(), internal::kMaxPipeSize);
        for (Pipe* pipe : {&s.in, &s.out, &s.err})
          if (*pipe) internal::grow_pipe(pipe->fileno(), want);
        // A filter's output is usually about as large as its input: one buffer of that size
        // instead of growing 64 KiB -> 128 KiB -> ... -> 1 MiB, each step copying everything and
        // faulting in fresh pages (most of this path's cost). Untouched capacity costs no
        // memory; a much shorter output is shrunk at the end.
        if (s.out) s.out_acc.reserve(s.out_acc.size() + std::min(s.input.size(), kOutputReserveCap));
      }
    }
    {
      internal::SigpipeGuard guard;
      pollfd pfds[3];
      while (s.in || s.out || s.err) {
        int n = 0;
        int in_i = -1, out_i = -1, err_i = -1;
        if (s.in) pfds[in_i = n++] = {s.in.fileno(), POLLOUT, 0};
        if (s.out) pfds[out_i = n++] = {s.out.fileno(), POLLIN, 0};
        if (s.err) pfds[err_i = n++] = {s.err.fileno(), POLLIN, 0};
        timespec ts{}, *tsp = nullptr;
        if (deadline) {
          auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - internal::Clock::now()).count();
          if (left <= 0) throw timed_out();
          ts = {static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
          tsp = &ts;
        }
        int r = internal::ppoll_fds(pfds, static_cast<nfds_t>(n), tsp);
        if (r < 0) {
          if (r == -EINTR) continue;
          throw OSError(-r, "Popen.communicate(): poll");
        }
        if (r == 0) continue;  // the deadline check at the top decides
        if (in_i >= 0 && pfds[in_i].revents) {
          std::size_t left = s.input.size() - s.input_offset;
          ssize_t w = internal::write_to(s.in.fileno(), s.input.data() + s.input_offset, left);
          if (w > 0) {
            s.input_offset += static_cast<std::size_t>(w);
            if (s.input_offset == s.input.size()) s.in.close();
          } else if (w < 0 && w != -EINTR && w != -EAGAIN) {
            if (w == -EPIPE) guard.note_epipe();  // the child stopped reading: Python ignores it
            s.in.close();
          }
        }
        for (auto [idx, pipe, acc] : {std::tuple{out_i, &s.out, &s.out_acc}, std::tuple{err_i, &s.err, &s.err_acc}}) {
          if (idx < 0 || !pfds[idx].revents) continue;
          // Drain what is there (the fds are non-blocking now) before polling again.
          prepare_drain(pipe->fileno(), *acc);
          for (;;) {
            ssize_t got = read_some(pipe->fileno(), *acc);
            if (got == -EINTR) continue;
            if (got == 0 || (got < 0 && got != -EAGAIN)) pipe->close();
            if (got <= 0) break;
          }
        }
      }
    }
  } catch (...) {
    s.keep_pending_input();  // TimeoutExpired (or an OSError): a later call continues
    throw;
  }
  if (!s.wait_until(deadline)) throw timed_out();
  s.communicating = false;
  s.input = {};
  if (s.input_store.capacity()) std::string().swap(s.input_store);
  std::pair<std::string, std::string> result{std::move(s.out_acc), std::move(s.err_acc)};
  s.out_acc.clear();
  s.err_acc.clear();
  // Do not hand back a mostly empty reservation (see the reserve above).
  if (result.first.capacity() > 2 * result.first.size() + 4096) result.first.shrink_to_fit();
  if (s.text) {
    translate_newlines(result.first);
    translate_newlines(result.second);
  }
  return result;
}

void Popen::send_signal(int sig) {
  Impl& s = *impl_;
  if (!s.try_claim()) {
    // Another thread is waiting and may reap at any moment: as in Python, a small window
    // remains in which the pid could have been reaped (and, in theory, reused).
    if (s.returncode.load(std::memory_order_acquire) == kUnknown) (void)internal::kill_process(s.pid, sig);
    return;
  }
  // We alone may reap: if the child is not reaped now, the pid is still our child's.
  if (s.returncode.load(std::memory_order_acquire) == kUnknown) {
    int status = 0;
    int r = internal::try_reap(s.pid, &status);
    s.record(r, status);
    if (r == 0) (void)internal::kill_process(s.pid, sig);
  }
  s.release();
}

void Popen::terminate() { send_signal(SIGTERM); }
void Popen::kill() { send_signal(SIGKILL); }

Pipe& Popen::stdin() noexcept { return impl_->in; }
Pipe& Popen::stdout() noexcept { return impl_->out; }
Pipe& Popen::stderr() noexcept { return impl_->err; }

}  // namespace mp::subprocess
