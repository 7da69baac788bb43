// Child processes. See include/mp/process.hpp for the contract.
#include "mp/process.hpp"

#include <cxxabi.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <thread>
#include <typeinfo>

#include "mp/internal/fd.hpp"
#include "mp/internal/os.hpp"
#include "os/cgroup.hpp"
#include "os/file.hpp"
#include "os/process.hpp"
#include "process/internal.hpp"
#include "common/type_name.hpp"

namespace mp {

using namespace std::chrono_literals;

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

namespace {

/// Python's exitcode when the real status cannot be known.
constexpr int kStatusLost = 255;
/// How long daemon children get between SIGTERM and SIGKILL at exit.
constexpr auto kDaemonGrace = 5s;

bool fd_readable(int fd) noexcept {
  pollfd p{fd, POLLIN, 0};
  return poll_fds(&p, 1, 0) == 1;
}

timespec to_timespec(Clock::duration d) noexcept {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
  return {static_cast<time_t>(s.count()),
          static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(d - s).count())};
}

}  // namespace

// -------------------------------------------------------------------------- ProcessState

ExitStatus ProcessState::poll_locked() {
  if (status.finished() || owner != self_pid()) return status;
  if (!via_server) {
    int st = 0;
    pid_t r;
    do r = wait_pid(pid, &st, WNOHANG);
    while (r == -EINTR);
    if (r == pid) {
      status = ExitStatus::from_wait_status(st);
    } else if (r == -ECHILD) {
      status = ExitStatus::exited(kStatusLost);  // reaped behind our back (SIGCHLD ignored?)
    }
    return status;
  }
  if (!server_lost) {
    std::int32_t st = 0;
    ssize_t n = socket_recv(status_fd.get(), &st, sizeof st, MSG_DONTWAIT);
    if (n == sizeof st) {
      status = ExitStatus::from_wait_status(st);
      return status;
    }
    if (n > 0 || n == -EAGAIN || n == -EINTR) return status;
    server_lost = true;  // EOF before a status: the server died
  }
  // Without the server we can still tell *that* the child ended, not how.
  bool ended = pidfd ? fd_readable(pidfd.get()) : process_has_exited(pid);
  if (ended) status = ExitStatus::exited(kStatusLost);
  return status;
}

ExitStatus ProcessState::poll() {
  std::lock_guard g(mu);
  return poll_locked();
}

bool ProcessState::wait_until(Deadline deadline) {
  for (;;) {
    int fd;
    {
      std::lock_guard g(mu);
      if (poll_locked().finished()) return true;
      if (owner != self_pid())
        throw RuntimeError("Process.join(): '" + name +
                           "' is not a child of this process (can only join a child process); join it from the "
                           "process that started it");
      fd = via_server && !server_lost ? status_fd.get() : pidfd.get();
    }
    timespec ts{};
    timespec* tsp = nullptr;
    if (deadline) {
      auto left = *deadline - Clock::now();
      if (left <= Clock::duration::zero()) return false;
      ts = to_timespec(left);
      tsp = &ts;
    }
    if (fd >= 0) {
      pollfd p{fd, POLLIN, 0};
      (void)ppoll_fds(&p, 1, tsp);  // woken, timed out or EINTR: re-check in every case
    } else {
      // No pidfd (pidfd_open failed, e.g. EMFILE at start): nothing to sleep on but time.
      auto step = std::chrono::duration_cast<Clock::duration>(5ms);
      if (deadline) step = std::min(step, *deadline - Clock::now());
      std::this_thread::sleep_for(step);
    }
  }
}

void ProcessState::send(int sig) {
  std::lock_guard g(mu);
  if (owner != self_pid() || poll_locked().finished()) return;
  if (pidfd) {
    if (int e = pidfd_signal(pidfd.get(), sig); e == 0 || e == -ESRCH) return;
  }
  // No pidfd. A child of ours that we have not reaped (we hold mu) still owns its pid.
  (void)kill_process(pid, sig);
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

/// The Process object this process is running (fork start method), to refuse join(self).
const Process* g_running = nullptr;

/// Drops finished children from the registry (Python's _cleanup()), reaping them.
void reap_finished() noexcept {
  {
    std::lock_guard g(children_mutex());
    auto& v = children();
    v.erase(std::remove_if(v.begin(), v.end(), [](auto& s) { return s->poll().finished(); }), v.end());
  }
  reap_retired_servers();
}

std::vector<std::shared_ptr<ProcessState>> snapshot_children() {
  std::lock_guard g(children_mutex());
  return children();
}

std::atomic<bool> g_exit_handler_installed{false};
void exit_function() { run_shutdown(); }

std::atomic<pid_t> g_expected_parent{0};
/// Parent-death signal handler for daemons forked by a non-main thread: the kernel also
/// sends the signal when only that *thread* ended (the child then moves to another thread
/// of the same process, and getppid() is unchanged). Async-signal-safe: two syscalls.
extern "C" void on_parent_death(int) {
  if (parent_pid() != g_expected_parent.load(std::memory_order_relaxed)) (void)kill_process(kernel_pid(), SIGKILL);
}

void become_child(const ChildIdentity& id) {
  forget_parent_state();
  Self& me = self();
  me.parent_name = id.parent_name;
  me.parent_pid = id.parent_pid;
  me.name = id.name;
  me.daemon = id.daemon;
  me.counter = 0;
  me.identity_prefix = id.name.starts_with("Process-") ? id.name.substr(8) + ":" : me.identity_prefix;
}

void run_process_object(void* p) { static_cast<Process*>(p)->run(); }
void run_nothing(std::string_view) {}

}  // namespace

namespace {
std::atomic<int> g_fork_safe_threads{0};
std::atomic<bool> g_fork_warning_off{false};
std::atomic<bool> g_fork_warned{false};
}  // namespace

ForkSafeThread::ForkSafeThread() noexcept { g_fork_safe_threads.fetch_add(1, std::memory_order_relaxed); }
ForkSafeThread::~ForkSafeThread() { g_fork_safe_threads.fetch_sub(1, std::memory_order_relaxed); }

#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadSanitizer = true;  // GCC
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kThreadSanitizer = true;  // Clang
#else
constexpr bool kThreadSanitizer = false;
#endif
#else
constexpr bool kThreadSanitizer = false;
#endif

void warn_if_forking_with_threads(const char* what) noexcept {
  // ThreadSanitizer runs threads of its own in every process, started and restarted after
  // fork as it sees fit: no count of ours could tell them from the program's.
  if constexpr (kThreadSanitizer) return;
  if (g_fork_warning_off.load(std::memory_order_relaxed) || g_fork_warned.load(std::memory_order_relaxed)) return;
  const int others = thread_count() - 1 - g_fork_safe_threads.load(std::memory_order_relaxed);
  if (others <= 0) return;
  if (const char* env = std::getenv("MP_FORK_WARNING"); env && std::string_view(env) == "0") return;
  if (g_fork_warned.exchange(true)) return;
  std::fprintf(stderr,
               "mp: warning: %s forks process %d while it runs %d other thread%s: the child gets only the calling "
               "thread, so a lock another thread holds now stays locked in the child for good (a possible "
               "deadlock). Start processes before threads, or call "
               "mp::set_start_method(mp::StartMethod::forkserver) first thing in main(). "
               "mp::set_fork_warning(false) or MP_FORK_WARNING=0 turns this warning off.\n",
               what, static_cast<int>(self_pid()), others, others == 1 ? "" : "s");
}

/// Forgets what this process inherited from its parent without touching it: the parent's
/// children and its fork server are not ours.
void forget_parent_state() noexcept {
  g_fork_warned.store(false, std::memory_order_relaxed);  // once per process: this one has not warned
  new (&children_mutex()) std::mutex;  // another thread may have held it at fork time
  auto& v = children();
  for (auto& c : v) {  // our copies of the parent's fds; the states may outlive the registry
    c->pidfd.reset();
    c->status_fd.reset();
  }
  v.clear();
  forget_forkserver_after_fork();
}

void flush_std_streams() noexcept {
  // Buffered output would otherwise be written twice after fork (by parent and child), or
  // lost at _exit().
  try {
    std::cout.flush();
    std::cerr.flush();
  } catch (const std::exception&) {
    // A stream with exceptions enabled that fails: nothing to report to, carry on.
  }
  std::fflush(nullptr);
}

void die_with_parent(pid_t real_parent, bool forked_by_main_thread) noexcept {
  int sig = SIGKILL;
  if (!forked_by_main_thread) {
    sig = SIGRTMAX;
    g_expected_parent.store(real_parent, std::memory_order_relaxed);
    struct sigaction sa {};
    sa.sa_handler = on_parent_death;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    (void)set_signal_action(sig, &sa, nullptr);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    (void)set_thread_signal_mask(SIG_UNBLOCK, &set, nullptr);
  }
  (void)set_parent_death_signal(sig);
  // The parent may have died between fork() and prctl(): then no signal will ever come.
  if (parent_pid() != real_parent) (void)kill_process(kernel_pid(), SIGKILL);
}

void ensure_exit_handler() {
  if (!g_exit_handler_installed.exchange(true)) std::atexit(exit_function);
}

void run_shutdown() {
  static std::atomic<pid_t> done_in{0};
  if (done_in.exchange(self_pid()) == self_pid()) return;  // once per process
  // Python's util._exit_function: terminate daemon children, then join everybody. Unlike
  // Python, a daemon that ignores SIGTERM does not hang the exit: it is killed after a grace.
  auto kids = snapshot_children();
  for (auto& c : kids)
    if (c->daemon) c->send(SIGTERM);
  auto grace_end = Clock::now() + kDaemonGrace;
  for (auto& c : kids)
    if (c->daemon && !c->wait_until(grace_end)) c->send(SIGKILL);
  for (auto& c : kids) c->wait_until(std::nullopt);
  reap_finished();
  stop_forkserver_at_exit();
  auto& hooks = shutdown_hooks();
  for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) (*it)();
  flush_std_streams();
}

void at_shutdown(void (*hook)()) { shutdown_hooks().push_back(hook); }

void register_child(std::shared_ptr<ProcessState> s) {
  ensure_exit_handler();
  std::lock_guard g(children_mutex());
  children().push_back(std::move(s));
}

bool has_unfinished_server_children() {
  std::lock_guard g(children_mutex());
  return std::any_of(children().begin(), children().end(),
                     [](auto& s) { return s->via_server && !s->poll().finished(); });
}

[[noreturn]] void child_main(void (*body)(void*), void* ctx, const ChildIdentity& id) {
  if (id.daemon) die_with_parent(id.real_parent, id.forked_by_main_thread);
  become_child(id);
  int code = 0;
  try {
    body(ctx);
  } catch (const SystemExit& e) {
    code = e.code;
    if (!e.message.empty()) {  // Python's sys.exit("message")
      flush_std_streams();
      std::fprintf(stderr, "%s\n", e.message.c_str());
    }
  } catch (const std::exception& e) {
    flush_std_streams();
    std::fprintf(stderr, "Process %s:\n%s: %s\n", id.name.c_str(), demangle(typeid(e).name()).c_str(), e.what());
    code = 1;
  } catch (...) {
    flush_std_streams();
    auto* t = abi::__cxa_current_exception_type();
    std::fprintf(stderr, "Process %s:\n%s: (not a std::exception)\n", id.name.c_str(),
                 t ? demangle(t->name()).c_str() : "unknown exception");
    code = 1;
  }
  try {
    run_shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Process %s: error while shutting down: %s\n", id.name.c_str(), e.what());
    if (code == 0) code = 1;
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
void ProcessHandle::interrupt() const { s_->send(SIGINT); }

// ---------------------------------------------------------------------------------- Process

Process::Process() : Process(ProcessOptions{}) {}

Process::Process(ProcessOptions opts) : name_(std::move(opts.name)), creator_(internal::self_pid()) {
  auto& me = internal::self();
  if (name_.empty()) name_ = "Process-" + me.identity_prefix + std::to_string(++me.counter);
  daemon_ = opts.daemon.value_or(me.daemon);
}

Process::Process(ProcessOptions opts, std::unique_ptr<internal::Target> target) : Process(std::move(opts)) {
  target_ = std::move(target);
}

Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;

Process::~Process() {
  if (state_ && creator_ == internal::self_pid()) internal::reap_finished();
}

void Process::run() {
  if (target_) target_->call();
}

void Process::daemon(bool d) {
  if (closed_) throw ValueError("Process.daemon: '" + name_ + "' has been closed");
  if (state_)
    throw RuntimeError("Process.daemon: cannot change the daemon flag of '" + name_ +
                       "' after start() (process has already started); set it before start()");
  daemon_ = d;
}

void Process::check_creator(const char* what) const {
  if (creator_ != internal::self_pid())
    throw RuntimeError(std::string("Process.") + what + "(): '" + name_ +
                       "' was created by another process; only its creator can " + what + "() it");
}

const std::shared_ptr<internal::ProcessState>& Process::started(const char* what) const {
  if (closed_) throw ValueError(std::string("Process.") + what + "(): '" + name_ + "' has been closed");
  if (!state_)
    throw ValueError(std::string("Process.") + what + "(): '" + name_ +
                     "' has not been started (process not started); call start() first");
  return state_;
}

const std::shared_ptr<internal::ProcessState>& Process::joinable() const {
  if (internal::g_running == this) throw RuntimeError("Process.join(): a process cannot join itself");
  if (closed_) throw ValueError("Process.join(): '" + name_ + "' has been closed");
  check_creator("join");
  if (!state_)
    throw RuntimeError("Process.join(): '" + name_ +
                       "' has not been started (can only join a started process); call start() first");
  return state_;
}

void Process::start() {
  if (closed_) throw ValueError("Process.start(): '" + name_ + "' has been closed");
  if (state_)
    throw RuntimeError("Process.start(): '" + name_ +
                       "' was already started (cannot start a process twice); create a new Process");
  check_creator("start");
  auto& me = internal::self();
  if (me.daemon)
    throw RuntimeError("Process.start(): daemonic processes are not allowed to have children: this process ('" +
                       me.name + "') is a daemon, so it cannot start '" + name_ +
                       "'. Start children from a non-daemon process; inside a daemon (a Pool worker, for one) "
                       "use threads or mp::ThreadPool");
  internal::reap_finished();
  pid_t self = internal::self_pid();
  internal::ChildIdentity id{name_, daemon_, self, me.name, self, internal::self_tid() == self};
  auto st = std::make_shared<internal::ProcessState>();
  st->name = name_;
  st->daemon = daemon_;
  st->owner = self;
  if (get_start_method() == StartMethod::forkserver) {
    if (typeid(*this) != typeid(Process))
      throw ProcessError("Process.start(): '" + name_ + "' is a subclass of mp::Process (" +
                         internal::demangle(typeid(*this).name()) +
                         "); the fork server cannot run a subclass's run(). Use mp::Process(function, args...) "
                         "or StartMethod::fork");
    internal::ServerCall call = target_ ? target_->server_call() : internal::ServerCall{internal::run_nothing, {}, {}};
    internal::flush_std_streams();  // keeps our earlier output ahead of the child's
    internal::start_via_forkserver(call, id, *st);
  } else {
    internal::warn_if_forking_with_threads("Process.start()");
    internal::flush_std_streams();
    pid_t pid = internal::fork_process();
    if (pid < 0) throw OSError(-pid, "fork() for Process '" + name_ + "'");
    if (pid == 0) {
      internal::g_running = this;
      internal::child_main(internal::run_process_object, this, id);
    }
    st->pid = pid;
    st->pidfd.reset(std::max(internal::open_pidfd(pid), -1));  // -1: none (old kernel, out of fds)
  }
  pid_ = st->pid;
  state_ = st;
  internal::register_child(std::move(st));
}

void Process::join() { joinable()->wait_until(std::nullopt); }

bool Process::join_until(internal::Clock::time_point deadline) { return joinable()->wait_until(deadline); }

bool Process::is_alive() const {
  if (closed_) throw ValueError("Process.is_alive(): '" + name_ + "' has been closed");
  if (internal::g_running == this) return true;
  check_creator("is_alive");
  return state_ && !state_->poll().finished();
}

void Process::send_signal(const char* what, int sig) {
  if (closed_) throw ValueError(std::string("Process.") + what + "(): '" + name_ + "' has been closed");
  if (state_) {
    check_creator(what);
    state_->send(sig);
  }
}

void Process::terminate() { send_signal("terminate", SIGTERM); }
void Process::kill() { send_signal("kill", SIGKILL); }
void Process::interrupt() { send_signal("interrupt", SIGINT); }

void Process::close() {
  if (closed_) return;
  if (state_ && !state_->poll().finished())
    throw ValueError("Process.close(): '" + name_ + "' is still running; join() or terminate() it first");
  closed_ = true;
  state_.reset();
  target_.reset();
}

std::optional<int> Process::exitcode() const {
  if (closed_) throw ValueError("Process.exitcode(): '" + name_ + "' has been closed");
  return state_ ? state_->poll().python_exitcode() : std::nullopt;
}

ExitStatus Process::status() const {
  if (closed_) throw ValueError("Process.status(): '" + name_ + "' has been closed");
  return state_ ? state_->poll() : ExitStatus::not_started();
}

int Process::sentinel() const { return started("sentinel")->sentinel(); }

ProcessHandle Process::handle() const { return ProcessHandle(started("handle")); }

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

namespace {
/// MP_CPU_COUNT: a positive integer (returned), "process" (-1), unset or "default" (0).
/// Anything else is reported once on stderr and ignored.
int cpu_count_override() noexcept {
  const char* v = std::getenv("MP_CPU_COUNT");
  if (!v || !*v || std::string_view(v) == "default") return 0;
  if (std::string_view(v) == "process") return -1;
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v, &end, 10);
  if (*end == '\0' && errno == 0 && n >= 1 && n <= (1 << 20)) return static_cast<int>(n);
  static std::once_flag warned;
  std::call_once(warned, [v] {
    std::fprintf(stderr, "mp: MP_CPU_COUNT=%s is ignored: set a positive integer, \"process\" or \"default\"\n", v);
  });
  return 0;
}

int online_cpus() noexcept {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}
}  // namespace

int cpu_count() noexcept {
  int o = cpu_count_override();
  if (o > 0) return o;
  return o < 0 ? process_cpu_count() : online_cpus();
}

int process_cpu_count() noexcept {
  int o = cpu_count_override();
  if (o > 0) return o;
  int n = internal::affinity_cpu_count();
  if (n <= 0) n = online_cpus();
  int quota = internal::cgroup_cpu_limit();
  if (quota > 0 && quota < n) n = quota;
  return n;
}

void set_fork_warning(bool enabled) noexcept {
  internal::g_fork_warning_off.store(!enabled, std::memory_order_relaxed);
}

}  // namespace mp
