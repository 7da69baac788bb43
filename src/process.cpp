// Child processes. See include/mp/process.hpp for the contract.
#include "mp/process.hpp"

#include <cxxabi.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <typeinfo>
#include <unistd.h>

#include "mp/internal/fd.hpp"
#include "mp/internal/os.hpp"
#include "process_internal.hpp"

namespace mp {

// ---------------------------------------------------------------------------- ExitStatus

ExitStatus ExitStatus::from_wait_status(int status) noexcept {
  if (WIFEXITED(status)) return exited(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return killed(WTERMSIG(status));
  return running();
}

std::optional<int> ExitStatus::python_exitcode() const noexcept {
  if (state_ == State::exited) return value_;
  if (state_ == State::killed) return -value_;
  return std::nullopt;
}

std::string ExitStatus::describe() const {
  switch (state_) {
    case State::not_started: return "not started";
    case State::running: return "running";
    case State::exited: return "exited with code " + std::to_string(value_);
    case State::killed: {
      const char* abbrev = sigabbrev_np(value_);
      return std::string("killed by ") + (abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(value_));
    }
  }
  return "?";
}

namespace internal {

// -------------------------------------------------------------------------- ProcessState

ExitStatus ProcessState::status_locked() {
  if (!status.finished() && pid > 0) {
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      status = ExitStatus::from_wait_status(st);
      pidfd.reset();
    } else if (r < 0 && errno == ECHILD) {
      status = ExitStatus::exited(255);  // reaped behind our back (a SIGCHLD handler?)
      pidfd.reset();
    }
  }
  return status;
}

ExitStatus ProcessState::poll() {
  std::lock_guard g(mu);
  return status_locked();
}

bool ProcessState::wait_until(Deadline deadline) {
  for (;;) {
    int fd;
    {
      std::lock_guard g(mu);
      if (status_locked().finished()) return true;
      fd = pidfd.get();
    }
    int timeout_ms = -1;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) return false;
      timeout_ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    if (fd >= 0) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, timeout_ms);
      if (r < 0 && errno != EINTR) return false;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // no pidfd (EMFILE at start): rare fallback
    }
  }
}

void ProcessState::send(int sig) {
  std::lock_guard g(mu);
  if (pid > 0 && !status_locked().finished()) ::kill(pid, sig);
}

// ------------------------------------------------------------------ this process's identity

Self& self() {
  static Self* s = [] {
    auto* p = new Self;  // never destroyed: used by exit handlers
    p->name = "MainProcess";
    return p;
  }();
  return *s;
}

namespace {

std::mutex& children_mutex() {
  static auto* m = new std::mutex;
  return *m;
}
std::vector<std::shared_ptr<ProcessState>>& children() {
  static auto* v = new std::vector<std::shared_ptr<ProcessState>>;
  return *v;
}
std::vector<void (*)()>& shutdown_hooks() {
  static auto* v = new std::vector<void (*)()>;
  return *v;
}

/// Drops finished children from the registry (Python's _cleanup()).
void reap_finished() {
  std::lock_guard g(children_mutex());
  auto& v = children();
  v.erase(std::remove_if(v.begin(), v.end(), [](auto& s) { return s->poll().finished(); }), v.end());
}

std::vector<std::shared_ptr<ProcessState>> snapshot_children() {
  std::lock_guard g(children_mutex());
  return children();
}

void flush_std_streams() noexcept {
  try {
    std::cout.flush();
    std::cerr.flush();
  } catch (...) {
    // A failing stream at exit has nowhere to report to.
  }
  std::fflush(nullptr);
}

std::string demangle(const char* mangled) {
  int status = 0;
  char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && s ? s : mangled;
  std::free(s);
  return out;
}

std::atomic<bool> atexit_installed{false};
void exit_function() { run_shutdown(); }

}  // namespace

void run_shutdown() {
  static std::atomic<pid_t> done_in{0};
  if (done_in.exchange(self_pid()) == self_pid()) return;  // once per process
  // Python's util._exit_function: terminate daemon children, then join everybody.
  for (auto& c : snapshot_children())
    if (c->daemon) c->send(SIGTERM);
  for (auto& c : snapshot_children()) c->wait_until(std::nullopt);
  reap_finished();
  auto& hooks = shutdown_hooks();
  for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) (*it)();
  flush_std_streams();
}

void at_shutdown(void (*hook)()) { shutdown_hooks().push_back(hook); }

void register_child(std::shared_ptr<ProcessState> s) {
  if (!atexit_installed.exchange(true)) std::atexit(exit_function);
  std::lock_guard g(children_mutex());
  children().push_back(std::move(s));
}

void become_child(const std::string& name, bool daemon, pid_t parent) {
  Self& me = self();
  me.parent_name = me.name;
  me.parent_pid = parent;
  me.name = name;
  me.daemon = daemon;
  me.counter = 0;
  me.identity_prefix = name.starts_with("Process-") ? name.substr(8) + ":" : me.identity_prefix;
  // The parent's children are not ours: forget them without touching them.
  auto& v = children();
  for (auto& c : v) c->pidfd.reset();  // our inherited copies of the parent's pidfds
  new (&children_mutex()) std::mutex;  // another thread may have held it at fork time
  v.clear();
}

[[noreturn]] void child_main(Process& p, const std::string& name, bool daemon, pid_t parent) {
  if (daemon) {
    // Die with the parent even if it is killed; close the race where it died before prctl.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
  }
  become_child(name, daemon, parent);
  int code = 0;
  try {
    p.run();
  } catch (const SystemExit& e) {
    code = e.code;
  } catch (const std::exception& e) {
    flush_std_streams();
    std::fprintf(stderr, "Process %s:\n%s: %s\n", name.c_str(), demangle(typeid(e).name()).c_str(), e.what());
    code = 1;
  } catch (...) {
    flush_std_streams();
    auto* t = abi::__cxa_current_exception_type();
    std::fprintf(stderr, "Process %s:\n%s: (not a std::exception)\n", name.c_str(),
                 t ? demangle(t->name()).c_str() : "unknown exception");
    code = 1;
  }
  try {
    run_shutdown();
  } catch (...) {
    code = code ? code : 1;
  }
  flush_std_streams();
  ::_exit(code & 0xff);
}

}  // namespace internal

// ---------------------------------------------------------------------------- ProcessHandle

pid_t ProcessHandle::pid() const noexcept { return s_->pid; }
std::string ProcessHandle::name() const { return s_->name; }
bool ProcessHandle::daemon() const noexcept { return s_->daemon; }
bool ProcessHandle::is_alive() const { return !s_->poll().finished(); }
std::optional<int> ProcessHandle::exitcode() const { return s_->poll().python_exitcode(); }
ExitStatus ProcessHandle::status() const { return s_->poll(); }
void ProcessHandle::join() const { s_->wait_until(std::nullopt); }
bool ProcessHandle::join_until(internal::Clock::time_point d) const { return s_->wait_until(d); }
void ProcessHandle::terminate() const { s_->send(SIGTERM); }
void ProcessHandle::kill() const { s_->send(SIGKILL); }

// ---------------------------------------------------------------------------------- Process

Process::Process() : Process(ProcessOptions{}) {}

Process::Process(ProcessOptions opts) : name_(std::move(opts.name)), daemon_(opts.daemon) {
  auto& me = internal::self();
  if (name_.empty()) name_ = "Process-" + me.identity_prefix + std::to_string(++me.counter);
  if (!daemon_ && opts.inherit_daemon) daemon_ = me.daemon;
}

Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;
Process::~Process() = default;

void Process::run() {
  if (target_) target_();
}

void Process::daemon(bool d) {
  if (state_) throw ProcessError("Process.daemon: cannot change the daemon flag of '" + name_ + "' after start()");
  daemon_ = d;
}

void Process::start() {
  if (closed_) throw ValueError("Process.start(): '" + name_ + "' was closed");
  if (state_) throw ProcessError("Process.start(): '" + name_ + "' was already started (a process can only be started once)");
  if (internal::self().daemon && daemon_ == false) {
    // Python forbids daemonic processes from having children at all; we allow it but
    // keep them daemonic so they die with us.
    daemon_ = true;
  }
  internal::reap_finished();
  auto st = std::make_shared<internal::ProcessState>();
  st->name = name_;
  st->daemon = daemon_;
  pid_t parent = internal::self_pid();
  internal::flush_std_streams_before_fork();
  if (get_start_method() == StartMethod::forkserver) {
    internal::start_via_forkserver(*this, *st);
  } else {
    pid_t pid = ::fork();
    if (pid < 0) throw OSError(errno, "fork() for Process '" + name_ + "'");
    if (pid == 0) internal::child_main(*this, name_, daemon_, parent);
    st->pid = pid;
    st->pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  }
  st->status = ExitStatus::running();
  state_ = st;
  internal::register_child(std::move(st));
}

const internal::ProcessState& Process::started(const char* what) const {
  if (!state_) throw ProcessError(std::string("Process.") + what + "(): '" + name_ + "' has not been started");
  return *state_;
}

void Process::join() {
  if (state_ && state_->pid == internal::self_pid()) throw ProcessError("Process.join(): a process cannot join itself");
  started("join");
  state_->wait_until(std::nullopt);
}

bool Process::join_until(internal::Clock::time_point deadline) {
  started("join");
  return state_->wait_until(deadline);
}

bool Process::is_alive() const { return state_ && !state_->poll().finished(); }
void Process::terminate() { if (state_) state_->send(SIGTERM); }
void Process::kill() { if (state_) state_->send(SIGKILL); }

void Process::close() {
  if (state_ && !state_->poll().finished())
    throw ValueError("Process.close(): '" + name_ + "' is still running; join() or terminate() it first");
  closed_ = true;
}

pid_t Process::pid() const noexcept { return state_ ? state_->pid : 0; }
std::optional<int> Process::exitcode() const { return state_ ? state_->poll().python_exitcode() : std::nullopt; }
ExitStatus Process::status() const { return state_ ? state_->poll() : ExitStatus::not_started(); }
int Process::sentinel() const { return started("sentinel").pidfd.get(); }
ProcessHandle Process::handle() const {
  started("handle");
  return ProcessHandle(state_);
}

// ------------------------------------------------------------------------ module functions

CurrentProcess current_process() {
  auto& me = internal::self();
  return {me.name, internal::self_pid(), me.daemon};
}

std::optional<ParentProcess> parent_process() {
  auto& me = internal::self();
  if (me.parent_pid == 0) return std::nullopt;
  return ParentProcess{me.parent_name, me.parent_pid};
}

bool ParentProcess::is_alive() const { return !internal::process_has_exited(pid); }

std::vector<ProcessHandle> active_children() {
  internal::reap_finished();
  std::vector<ProcessHandle> out;
  for (auto& c : internal::snapshot_children()) out.emplace_back(c);
  return out;
}

int cpu_count() noexcept {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace mp
