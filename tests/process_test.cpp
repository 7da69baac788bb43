// Tests for mp/process.hpp: real children, real exit codes, real signals, both start
// methods. Synchronisation is by pipes and pidfds only; timeouts are safety nets.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "helpers/forkserver.hpp"
#include "helpers/support.hpp"
#include "helpers/fd_exhaustion.hpp"
#include "mp/pool.hpp"
#include "os/cgroup.hpp"
#include "mp/process.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
#else
constexpr bool kTsan = false;
#endif

constexpr int kSafetyMs = 60'000;  // only ever reached when something is broken

void do_nothing() {}
void exit_with(int code) { mp::exit(code); }
void throw_runtime() { throw std::runtime_error("boom from the child"); }
[[noreturn]] void block_forever() {
  for (;;) pause();
}

/// A pipe whose ends close themselves.
struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    close_r();
    close_w();
  }
  void close_r() {
    if (r >= 0) ::close(std::exchange(r, -1));
  }
  void close_w() {
    if (w >= 0) ::close(std::exchange(w, -1));
  }
};

void write_str(int fd, const std::string& s) {
  for (size_t off = 0; off < s.size();) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

/// Reads until EOF (all writers closed), or until the safety timeout.
std::string read_all(int fd) {
  std::string out;
  char buf[512];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kSafetyMs) != 1) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

/// Reads one '\n'-terminated line (without the newline); "" on EOF or safety timeout.
std::string read_line(int fd) {
  std::string out;
  char c;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kSafetyMs) != 1) return out;
    if (::read(fd, &c, 1) != 1 || c == '\n') return out;
    out += c;
  }
}

/// Points fd `target` (0, 1 or 2) at `with` until destroyed: a forkserver child gets the
/// stdio the owner has at start().
struct Redirect {
  int target, saved;
  Redirect(int t, int with) : target(t), saved(::dup(t)) {
    std::fflush(nullptr);
    ::dup2(with, target);
  }
  ~Redirect() {
    std::fflush(nullptr);
    ::dup2(saved, target);
    ::close(saved);
  }
};

void write_pid(int fd, pid_t pid) { write_str(fd, std::to_string(pid) + "\n"); }
pid_t read_pid(int fd) {
  auto line = read_line(fd);
  return line.empty() ? 0 : std::stoi(line);
}

/// True once `pid` has exited (or no longer exists), waiting at most the safety timeout.
/// Works for processes that are not our children (pidfd).
bool wait_gone(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  bool gone = ::poll(&p, 1, kSafetyMs) == 1;
  ::close(fd);
  return gone;
}

bool exists(pid_t pid) { return mp_test::proc_state(pid) != 0; }

/// Waits until /proc/self/task/<tid> is gone: the kernel has finished that thread's exit
/// (including parent-death signals to the children it forked).
void wait_thread_released(pid_t tid) {
  std::string path = "/proc/self/task/" + std::to_string(tid);
  for (int i = 0; i < kSafetyMs && ::access(path.c_str(), F_OK) == 0; ++i) std::this_thread::sleep_for(1ms);
}

}  // namespace

// ----------------------------------------------------------------------------- basics, fork

TEST(Process, FunctionTargetExitsZero) {
  mp::Process p(do_nothing);
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_EQ(p.status(), mp::ExitStatus::not_started());
  p.start();
  EXPECT_GT(p.pid(), 0);
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(p.is_alive());
}

TEST(Process, ExitCodeFromMpExit) {
  mp::Process p(exit_with, 7);
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 7);
  EXPECT_EQ(p.status(), mp::ExitStatus::exited(7));
  EXPECT_EQ(p.status().describe(), "exited with code 7");
}

TEST(Process, ExitCodeKeepsLowEightBitsLikeAnyExitStatus) {
  mp::Process p(exit_with, 256 + 3);
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 3);
}

TEST(Process, ExitWithoutArgumentIsStatusZeroAndSilent) {
  Pipe err;
  int w = err.w;
  mp::Process p([w] {
    ::dup2(w, 2);
    mp::exit();  // Python's sys.exit() / sys.exit(None)
  });
  p.start();
  err.close_w();
  std::string text = read_all(err.r);
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(text, "");
}

TEST(Process, ExitWithMessageIsStatusOneAndPrintsIt) {
  Pipe err;
  int w = err.w;
  mp::Process p([w] {
    ::dup2(w, 2);
    mp::exit("config file missing: /etc/x.conf");  // Python's sys.exit("...")
  });
  p.start();
  err.close_w();
  std::string text = read_all(err.r);
  p.join();
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_EQ(text, "config file missing: /etc/x.conf\n");  // the message alone, as Python writes it
}

TEST(Process, UncaughtExceptionExitsOneAndIsPrinted) {
  Pipe err;
  int w = err.w;
  mp::Process p([w] {
    ::dup2(w, 2);
    throw_runtime();
  });
  p.start();
  err.close_w();
  std::string text = read_all(err.r);
  p.join();
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_NE(text.find("Process " + p.name() + ":"), std::string::npos) << text;
  EXPECT_NE(text.find("std::runtime_error: boom from the child"), std::string::npos) << text;
}

TEST(Process, TerminateGivesMinus15AndKillMinus9) {
  mp::Process a(block_forever);
  mp::Process b(block_forever);
  a.start();
  b.start();
  EXPECT_TRUE(a.is_alive());
  a.terminate();
  b.kill();
  a.join();
  b.join();
  EXPECT_EQ(a.exitcode(), -SIGTERM);
  EXPECT_EQ(b.exitcode(), -SIGKILL);
  EXPECT_EQ(b.status(), mp::ExitStatus::killed(SIGKILL));
  EXPECT_EQ(b.status().describe(), "killed by SIGKILL");
}

volatile sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

/// Installs a SIGINT handler, says "ready", waits for the signal, then "cleans up".
void clean_up_on_interrupt(int w) {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  ::sigprocmask(SIG_BLOCK, &block, &old);  // no SIGINT lost between the check and the wait
  write_str(w, "ready\n");
  while (!g_interrupted) ::sigsuspend(&old);
  write_str(w, "cleaned up\n");
}

// Python 3.14's Process.interrupt(): SIGINT, so the child's handler (cleanup) runs.
TEST(Process, InterruptSendsSigintSoTheChildsHandlerRuns) {
  Pipe out;
  mp::Process p(clean_up_on_interrupt, out.w);
  p.start();
  out.close_w();
  ASSERT_EQ(read_line(out.r), "ready");
  p.interrupt();
  EXPECT_EQ(read_line(out.r), "cleaned up");
  p.join();
  EXPECT_EQ(p.exitcode(), 0);

  mp::Process q(block_forever);  // default disposition: SIGINT ends it
  q.start();
  q.handle().interrupt();
  q.join();
  EXPECT_EQ(q.exitcode(), -SIGINT);
  q.interrupt();  // after the end: no effect, as terminate()
}

TEST(Process, TerminateAfterEndIsHarmless) {
  mp::Process p(do_nothing);
  p.terminate();  // before start: no effect
  p.start();
  p.join();
  p.terminate();
  p.kill();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, JoinWithTimeoutReturnsFalseWhileRunning) {
  mp::Process p(block_forever);
  p.start();
  EXPECT_FALSE(p.join(0ms));
  EXPECT_FALSE(p.join(-5s));  // a negative timeout is an immediate check
  EXPECT_TRUE(p.is_alive());
  p.kill();
  EXPECT_TRUE(p.join(60s));
  EXPECT_TRUE(p.join(0ms));  // already ended: immediate true
}

TEST(Process, SentinelBecomesReadableWhenChildEnds) {
  Pipe go;
  int r = go.r;
  mp::Process p([r] {
    char c;
    (void)!::read(r, &c, 1);
  });
  p.start();
  go.close_r();
  pollfd pf{p.sentinel(), POLLIN, 0};
  EXPECT_EQ(::poll(&pf, 1, 0), 0);  // the child is blocked on the pipe
  write_str(go.w, "x");  // a byte, not EOF: the child holds a copy of the write end
  EXPECT_EQ(::poll(&pf, 1, kSafetyMs), 1);
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, SentinelAndHandleBeforeStartRaiseValueError) {
  mp::Process p(do_nothing);
  try {
    (void)p.sentinel();
    FAIL() << "sentinel() before start() did not throw";
  } catch (const mp::ValueError& e) {  // Python: ValueError("process not started")
    EXPECT_NE(std::string(e.what()).find("process not started"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)p.handle(), mp::ValueError);
}

TEST(Process, SubclassRunsOverrideWithConstructorArguments) {
  struct Child : mp::Process {
    int code;
    explicit Child(int c) : mp::Process({.name = "child-" + std::to_string(c)}), code(c) {}
    void run() override { mp::exit(code + 1); }
  };
  Child c(41);
  EXPECT_EQ(c.name(), "child-41");
  c.start();
  c.join();
  EXPECT_EQ(c.exitcode(), 42);
}

TEST(Process, DefaultNamesCountUp) {
  mp::Process a(do_nothing), b(do_nothing);
  EXPECT_TRUE(a.name().starts_with("Process-"));
  EXPECT_NE(a.name(), b.name());
  mp::Process c({.name = "worker"}, do_nothing);
  EXPECT_EQ(c.name(), "worker");
}

TEST(Process, ChildNamesItsChildrenWithItsOwnPrefix) {
  Pipe out;
  int w = out.w;
  mp::Process p({.name = "Process-7"}, [w] { write_str(w, mp::Process(do_nothing).name() + "\n"); });
  p.start();
  out.close_w();
  EXPECT_EQ(read_line(out.r), "Process-7:1");
  p.join();
}

TEST(Process, CurrentProcessInChildAndParent) {
  EXPECT_EQ(mp::current_process().name, "MainProcess");
  EXPECT_FALSE(mp::parent_process().has_value());
  pid_t me = getpid();
  mp::Process p({.name = "kid", .daemon = true}, [me] {
    auto cur = mp::current_process();
    auto par = mp::parent_process();
    bool ok = cur.name == "kid" && cur.pid == getpid() && cur.daemon && par && par->pid == me &&
              par->name == "MainProcess" && par->is_alive();
    mp::exit(ok ? 0 : 3);
  });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, ActiveChildrenListsRunningOnes) {
  mp::Process p(block_forever);
  p.start();
  bool found = false;
  for (auto& k : mp::active_children()) found |= k.pid() == p.pid();
  EXPECT_TRUE(found);
  p.terminate();
  p.join();
  for (auto& k : mp::active_children()) EXPECT_NE(k.pid(), p.pid());
}

TEST(Process, HandleOutlivesProcessObject) {
  std::optional<mp::ProcessHandle> h;
  {
    mp::Process p(exit_with, 9);
    p.start();
    h = p.handle();
  }
  h->join();
  EXPECT_EQ(h->exitcode(), 9);
  EXPECT_FALSE(h->is_alive());
}

TEST(Process, CpuCountPositive) { EXPECT_GE(mp::cpu_count(), 1); }

// ---------------------------------------------------------------- process_cpu_count (3.13)

namespace {
/// Runs `check` in a child process (so environment, affinity and cgroup changes stay there)
/// and returns its exit code: the number of the first failed condition, 0 if all held.
int in_child(int (*check)()) {
  mp::Process p([check] { mp::exit(check()); });
  p.start();
  p.join();
  return p.exitcode().value_or(-1000);
}
}  // namespace

TEST(ProcessCpuCount, MpCpuCountOverridesBothCountsAndThePoolSize) {
  EXPECT_EQ(in_child(+[] {
              ::setenv("MP_CPU_COUNT", "3", 1);
              if (mp::cpu_count() != 3) return 1;
              if (mp::process_cpu_count() != 3) return 2;
              mp::Pool pool;  // Pool() takes its size from process_cpu_count()
              if (pool.pids().size() != 3) return 3;
              ::setenv("MP_CPU_COUNT", "process", 1);  // cpu_count() becomes process_cpu_count()
              cpu_set_t one;
              CPU_ZERO(&one);
              CPU_SET(0, &one);
              if (::sched_setaffinity(0, sizeof one, &one) != 0) return 4;
              if (mp::cpu_count() != 1 || mp::process_cpu_count() != 1) return 5;
              ::setenv("MP_CPU_COUNT", "default", 1);
              if (mp::cpu_count() != static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN))) return 6;
              ::setenv("MP_CPU_COUNT", "0", 1);  // not a positive integer: ignored, with a warning
              if (mp::process_cpu_count() != 1) return 7;
              return 0;
            }),
            0);
}

TEST(ProcessCpuCount, CountsOnlyTheCpusOfTheAffinityMask) {
  if (mp::process_cpu_count() < 2) GTEST_SKIP() << "needs a process that may use 2 CPUs";
  EXPECT_EQ(in_child(+[] {
              int before = mp::process_cpu_count();
              cpu_set_t set;
              if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
              for (int cpu = 0, kept = 0; cpu < CPU_SETSIZE; ++cpu)  // drop all but one CPU
                if (CPU_ISSET(cpu, &set) && kept++ > 0) CPU_CLR(cpu, &set);
              if (::sched_setaffinity(0, sizeof set, &set) != 0) return 2;
              if (mp::process_cpu_count() != 1) return 3;
              if (mp::cpu_count() < before) return 4;  // the system's count does not change
              return 0;
            }),
            0);
}

namespace {
/// A cgroup v1 "cpu" directory made for one test under this process's own cgroup, with a
/// quota of `quota_us` per 100 ms; removed at destruction. `dir` is empty when this system
/// does not let us make one (not root, no v1 cpu hierarchy, read-only /sys).
struct CpuCgroup {
  std::string dir;
  explicit CpuCgroup(long quota_us) {
    std::ifstream in("/proc/self/cgroup");
    std::string base;
    for (std::string line; std::getline(in, line);) {
      auto c1 = line.find(':'), c2 = line.find(':', c1 + 1);
      std::string ctl = "," + line.substr(c1 + 1, c2 - c1 - 1) + ",";
      if (ctl.find(",cpu,") != std::string::npos) base = "/sys/fs/cgroup/cpu" + line.substr(c2 + 1);
    }
    if (base.empty()) return;
    std::string d = base + "/mp-test-" + std::to_string(::getpid());
    if (::mkdir(d.c_str(), 0755) != 0) return;
    std::ofstream(d + "/cpu.cfs_period_us") << 100000;
    std::ofstream q(d + "/cpu.cfs_quota_us");
    q << quota_us;
    q.close();
    if (!q) {
      ::rmdir(d.c_str());
      return;
    }
    dir = d;
  }
  ~CpuCgroup() {
    if (!dir.empty()) EXPECT_EQ(::rmdir(dir.c_str()), 0) << dir;
  }
};
std::string g_cgroup_procs;  // the cgroup.procs file the child below moves itself into
}  // namespace

TEST(ProcessCpuCount, ACgroupCpuQuotaOfOneCpuGivesOne) {
  if (mp::process_cpu_count() < 2) GTEST_SKIP() << "needs a process that may use 2 CPUs";
  CpuCgroup cg(100000);  // 1 CPU's worth per period
  if (cg.dir.empty()) GTEST_SKIP() << "cannot create a cgroup v1 cpu group here (needs root and /sys/fs/cgroup/cpu)";
  g_cgroup_procs = cg.dir + "/cgroup.procs";
  EXPECT_EQ(in_child(+[] {
              std::ofstream(g_cgroup_procs) << ::getpid() << std::flush;
              if (mp::process_cpu_count() != 1) return 1;
              if (mp::cpu_count() < 2) return 2;
              mp::Pool pool;
              if (pool.pids().size() != 1) return 3;
              return 0;
            }),
            0);
}

namespace {
/// A fake root: the files process_cpu_count reads, written under a scratch directory.
struct FakeRoot {
  std::string root = "/tmp/mp-cpu-root-" + std::to_string(::getpid());
  FakeRoot() { std::filesystem::remove_all(root); }
  ~FakeRoot() { std::filesystem::remove_all(root); }
  void file(const std::string& path, const std::string& text) const {
    std::filesystem::create_directories(std::filesystem::path(root + path).parent_path());
    std::ofstream(root + path) << text;
  }
};
}  // namespace

TEST(ProcessCpuCount, ReadsV2CpuMaxAndTheTightestQuotaOnThePathToTheRoot) {
  FakeRoot f;
  f.file("/proc/self/cgroup", "0::/app.slice/job\n");
  f.file("/proc/self/mountinfo",
         "22 1 0:21 / /proc rw - proc proc rw\n"
         "30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
  f.file("/sys/fs/cgroup/cpu.max", "max 100000\n");
  f.file("/sys/fs/cgroup/app.slice/cpu.max", "150000 100000\n");  // 1.5 CPUs: 2
  f.file("/sys/fs/cgroup/app.slice/job/cpu.max", "max 100000\n");
  EXPECT_EQ(mp::internal::cgroup_cpu_limit(f.root), 2);
  f.file("/sys/fs/cgroup/app.slice/job/cpu.max", "50000 100000\n");  // tighter below: 1
  EXPECT_EQ(mp::internal::cgroup_cpu_limit(f.root), 1);
  f.file("/sys/fs/cgroup/app.slice/cpu.max", "max 100000\n");
  f.file("/sys/fs/cgroup/app.slice/job/cpu.max", "max 100000\n");
  EXPECT_EQ(mp::internal::cgroup_cpu_limit(f.root), 0);  // no quota anywhere
}

TEST(ProcessCpuCount, ReadsV1QuotaInAContainerWhoseCgroupIsTheMountRoot) {
  FakeRoot f;
  f.file("/proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n");
  f.file("/proc/self/mountinfo",
         "40 30 0:35 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
         "41 30 0:36 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n");
  f.file("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "250000\n");  // 2.5 CPUs: 3
  f.file("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(mp::internal::cgroup_cpu_limit(f.root), 3);
  f.file("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");  // unlimited
  EXPECT_EQ(mp::internal::cgroup_cpu_limit(f.root), 0);
  FakeRoot none;  // no cgroup files at all: no limit, no error
  EXPECT_EQ(mp::internal::cgroup_cpu_limit(none.root), 0);
}

// The count WorkerLost::oom_killed() compares (tests/pool_test.cpp has a real OOM kill).
TEST(Cgroup, OomKillCountsAreReadFromV1AndV2MemoryCgroups) {
  FakeRoot f;
  f.file("/proc/self/cgroup", "4:memory:/jobs/a\n0::/jobs/a\n");
  f.file("/proc/self/mountinfo",
         "41 30 0:36 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
         "42 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(mp::internal::cgroup_oom_kills(f.root), -1);  // no counter file: unknown
  f.file("/sys/fs/cgroup/memory/jobs/a/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  EXPECT_EQ(mp::internal::cgroup_oom_kills(f.root), 2);
  f.file("/sys/fs/cgroup/unified/jobs/a/memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n");
  EXPECT_EQ(mp::internal::cgroup_oom_kills(f.root), 3);
}

// ---------------------------------------------------------------------------------- misuse

namespace {

/// The message of the mp::RuntimeError `f` throws ("" if it throws nothing; other types escape).
template <class F>
std::string runtime_error_of(F f) {
  try {
    f();
  } catch (const mp::RuntimeError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// Python's AssertionErrors are mp::RuntimeError (mp/errors.hpp), its ValueErrors mp::ValueError.
TEST(Process, MisuseRaisesWhatPythonRaises) {
  mp::Process p(do_nothing);
  EXPECT_NE(runtime_error_of([&] { p.join(); }).find("can only join a started process"), std::string::npos);
  EXPECT_THROW((void)p.join(1s), mp::RuntimeError);  // same with a timeout
  EXPECT_FALSE(p.is_alive());
  p.daemon(true);  // fine before start
  p.start();
  EXPECT_NE(runtime_error_of([&] { p.start(); }).find("cannot start a process twice"), std::string::npos);
  EXPECT_NE(runtime_error_of([&] { p.daemon(false); }).find("process has already started"), std::string::npos);
  p.join();
  p.close();
  EXPECT_THROW(p.start(), mp::ValueError);
  EXPECT_THROW(p.join(), mp::ValueError);
  EXPECT_THROW((void)p.is_alive(), mp::ValueError);
  EXPECT_THROW((void)p.exitcode(), mp::ValueError);
  EXPECT_THROW((void)p.sentinel(), mp::ValueError);
  EXPECT_THROW(p.daemon(true), mp::ValueError);
}

namespace {

/// Tries to start a child and writes what happened to `w`.
void try_to_have_a_child(int w) {
  try {
    mp::Process grandchild(do_nothing);
    grandchild.start();
    grandchild.join();
    write_str(w, "started a child\n");
  } catch (const mp::RuntimeError& e) {
    write_str(w, std::string("RuntimeError: ") + e.what() + "\n");
  }
}

}  // namespace

TEST(Process, DaemonIsNotAllowedToHaveChildren) {
  Pipe out;
  mp::Process d({.name = "the-daemon", .daemon = true}, try_to_have_a_child, out.w);
  d.start();
  out.close_w();
  std::string line = read_line(out.r);
  d.join();
  EXPECT_EQ(d.exitcode(), 0);
  EXPECT_TRUE(line.starts_with("RuntimeError: ")) << line;
  EXPECT_NE(line.find("daemonic processes are not allowed to have children"), std::string::npos) << line;
  EXPECT_NE(line.find("'the-daemon'"), std::string::npos) << line;
}

TEST(Process, NonDaemonChildOfMainMayHaveChildren) {
  Pipe out;
  mp::Process p(try_to_have_a_child, out.w);
  p.start();
  out.close_w();
  EXPECT_EQ(read_line(out.r), "started a child");
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, CloseWhileRunningRaisesValueError) {
  mp::Process p(block_forever);
  p.start();
  EXPECT_THROW(p.close(), mp::ValueError);
  p.kill();
  p.join();
  p.close();
}

TEST(Process, JoinSelfRaises) {
  struct SelfJoiner : mp::Process {
    void run() override {
      if (!is_alive()) mp::exit(4);  // its own Process object is alive inside the child
      try {
        join();
      } catch (const mp::RuntimeError& e) {
        mp::exit(std::string(e.what()).find("cannot join itself") != std::string::npos ? 0 : 2);
      }
      mp::exit(3);
    }
  };
  SelfJoiner p;
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, SiblingObjectCannotBeUsedFromAChild) {
  mp::Process sibling(block_forever);
  sibling.start();
  mp::Process unstarted(do_nothing);
  mp::Process p([&sibling, &unstarted] {
    // The copies inherited through fork: not this process's children (Python's
    // AssertionError "can only join a child process" and friends).
    if (runtime_error_of([&] { sibling.join(); }).empty()) mp::exit(3);
    if (runtime_error_of([&] { (void)sibling.is_alive(); }).empty()) mp::exit(4);
    if (runtime_error_of([&] { sibling.handle().join(); }).empty()) mp::exit(5);
    if (runtime_error_of([&] { unstarted.start(); }).empty()) mp::exit(6);
    mp::exit(0);
  });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  sibling.kill();
  sibling.join();
}

TEST(Process, SetStartMethodTwiceWithAnotherMethodRaises) {
  mp::set_start_method(mp::StartMethod::fork, true);
  mp::set_start_method(mp::StartMethod::fork);  // same method: fine
  EXPECT_THROW(mp::set_start_method(mp::StartMethod::forkserver), mp::RuntimeError);
  EXPECT_EQ(mp::get_start_method(), mp::StartMethod::fork);
}

// -------------------------------------------------------------------------- thread safety

TEST(Process, ConcurrentJoinsAndPollsSeeTheSameStatus) {
  Pipe go;
  int r = go.r;
  mp::Process p([r] {
    char c;
    (void)!::read(r, &c, 1);
    mp::exit(5);
  });
  p.start();
  go.close_r();
  std::atomic<int> saw_five{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) ts.emplace_back([&] {
      p.join();
      saw_five += p.exitcode() == 5;
    });
  for (int i = 0; i < 4; ++i) ts.emplace_back([&] {
      while (!p.join(1ms)) (void)p.is_alive();
      saw_five += p.exitcode() == 5;
    });
  write_str(go.w, "x");  // a byte, not EOF: the child holds a copy of the write end
  for (auto& t : ts) t.join();
  EXPECT_EQ(saw_five.load(), 8);
  EXPECT_EQ(p.exitcode(), 5);
}

// ------------------------------------------------------------------ lifetime and reaping

TEST(Process, ChildIsReapedAfterItsProcessObjectIsDestroyed) {
  Pipe go;
  int r = go.r;
  pid_t pid;
  {
    mp::Process p([r] {
      char c;
      (void)!::read(r, &c, 1);
    });
    p.start();
    pid = p.pid();
  }  // destroyed while the child runs: neither waits nor kills
  EXPECT_TRUE(exists(pid));
  write_str(go.w, "x");  // a byte, not EOF: the child holds a copy of the write end
  ASSERT_TRUE(wait_gone(pid));  // it has exited: a zombie until someone reaps it
  (void)mp::active_children();  // one of the documented reaping points
  EXPECT_FALSE(exists(pid));
  EXPECT_EQ(mp_test::zombie_children(), 0);
}

namespace {
int g_order_fd = -1;
void announce_parent_exit() { write_str(g_order_fd, "parent exiting\n"); }
}  // namespace

TEST(Process, NonDaemonChildIsJoinedWhenParentRunEnds) {
  Pipe order, go;
  int ow = order.w, gr = go.r;
  mp::Process middle([ow, gr] {
    mp::Process child([ow, gr] {
      char c;
      (void)!::read(gr, &c, 1);
      write_str(ow, "child done\n");
    });
    child.start();
    g_order_fd = ow;
    mp::internal::at_shutdown(announce_parent_exit);  // runs after the children were joined
    write_pid(ow, child.pid());
  });  // returns at once: the exit steps must wait for `child`
  middle.start();
  order.close_w();
  go.close_r();
  pid_t child = read_pid(order.r);
  ASSERT_GT(child, 0);
  write_str(go.w, "x");  // a byte, not EOF: the child holds a copy of the write end
  EXPECT_EQ(read_all(order.r), "child done\nparent exiting\n");
  middle.join();
  EXPECT_EQ(middle.exitcode(), 0);
  EXPECT_FALSE(exists(child));  // reaped by its parent before the parent ended
}

namespace {
int g_term_fd = -1;
extern "C" void report_sigterm(int) {
  static const char msg[] = "daemon got SIGTERM\n";
  (void)!::write(g_term_fd, msg, sizeof msg - 1);
  ::_exit(0);
}
}  // namespace

TEST(Process, DaemonIsTerminatedWhenParentRunEnds) {
  Pipe out;
  int w = out.w;
  mp::Process middle([w] {
    Pipe ready;
    int rw = ready.w;
    mp::Process d({.daemon = true}, [w, rw] {
      g_term_fd = w;
      std::signal(SIGTERM, report_sigterm);
      write_str(rw, "ready\n");
      block_forever();
    });
    d.start();
    ready.close_w();
    if (read_line(ready.r) != "ready") mp::exit(3);
    write_pid(w, d.pid());
  });  // returns: the exit steps must terminate the daemon
  middle.start();
  out.close_w();
  pid_t daemon = read_pid(out.r);
  ASSERT_GT(daemon, 0);
  std::string rest = read_all(out.r);
  middle.join();
  EXPECT_EQ(middle.exitcode(), 0);
  // SIGTERM came from the exit steps (the parent-death signal would be SIGKILL), and the
  // daemon was reaped before `middle` ended.
  EXPECT_EQ(rest, "daemon got SIGTERM\n");
  EXPECT_FALSE(exists(daemon));
}

TEST(Process, DaemonDiesWhenParentIsKilled) {
  Pipe out;
  int w = out.w;
  mp::Process middle([w] {
    mp::Process d({.daemon = true}, block_forever);
    d.start();
    write_pid(w, d.pid());
    block_forever();
  });
  middle.start();
  out.close_w();
  pid_t daemon = read_pid(out.r);
  ASSERT_GT(daemon, 0);
  ASSERT_TRUE(exists(daemon));
  middle.kill();  // no exit steps run: only the kernel's parent-death signal is left
  middle.join();
  EXPECT_EQ(middle.exitcode(), -SIGKILL);
  EXPECT_TRUE(wait_gone(daemon));
}

TEST(Process, NonDaemonSurvivesWhenParentIsKilled) {
  Pipe out, go;
  int w = out.w, gr = go.r;
  mp::Process middle([w, gr] {
    mp::Process c([gr] {
      char ch;
      (void)!::read(gr, &ch, 1);
    });
    c.start();
    write_pid(w, c.pid());
    block_forever();
  });
  middle.start();
  out.close_w();
  go.close_r();
  pid_t child = read_pid(out.r);
  ASSERT_GT(child, 0);
  middle.kill();
  middle.join();
  // Python semantics: an orphaned non-daemon keeps running. Round-trip to prove it.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
  ASSERT_GE(fd, 0);
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);  // still running: it waits for our pipe
  write_str(go.w, "x");  // a byte, not EOF: the child holds a copy of the write end
  EXPECT_EQ(::poll(&p, 1, kSafetyMs), 1);
  ::close(fd);
}

TEST(Process, DaemonStartedFromAThreadOutlivesThatThread) {
  Pipe in, out;
  int ir = in.r, ow = out.w;
  std::optional<mp::Process> d;
  pid_t tid = 0;
  std::thread t([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    d.emplace(mp::ProcessOptions{.daemon = true}, [ir, ow] {
      char c;
      while (::read(ir, &c, 1) == 1) write_str(ow, std::string(1, c));
    });
    d->start();
  });
  t.join();
  in.close_r();
  out.close_w();
  wait_thread_released(tid);  // the kernel has sent the parent-death signal by now
  write_str(in.w, "x\n");
  EXPECT_EQ(read_line(out.r), "x");  // a killed daemon would give EOF
  d->terminate();
  d->join();
  EXPECT_EQ(d->exitcode(), -SIGTERM);
}

TEST(Process, DaemonStartedFromAThreadDiesWhenParentIsKilled) {
  if (kTsan) GTEST_SKIP() << "TSan intercepts signal handlers and defers them, so the handled parent-death signal of a thread-started daemon does not act under TSan";
  Pipe out;
  int w = out.w;
  mp::Process middle([w] {
    std::optional<mp::Process> d;
    std::thread t([&] {
      d.emplace(mp::ProcessOptions{.daemon = true}, block_forever);
      d->start();
    });
    t.join();
    write_pid(w, d->pid());
    block_forever();
  });
  middle.start();
  out.close_w();
  pid_t daemon = read_pid(out.r);
  ASSERT_GT(daemon, 0);
  middle.kill();
  middle.join();
  EXPECT_TRUE(wait_gone(daemon));
}

TEST(Process, ManyChildrenLeaveNoZombies) {
  std::vector<pid_t> pids;
  for (int i = 0; i < 8; ++i) {
    mp::Process p(exit_with, i);
    p.start();
    pids.push_back(p.pid());
    if (i % 2) p.join();  // half joined, half dropped while running
  }
  for (pid_t pid : pids) ASSERT_TRUE(wait_gone(pid));
  (void)mp::active_children();
  EXPECT_EQ(mp_test::zombie_children(), 0);
}

// ----------------------------------------------------------------------------- forkserver

namespace {

struct Point {
  int x, y;
  bool operator==(const Point&) const = default;
};

void check_args(int n, std::string s, std::vector<int> v, Point pt) {
  bool ok = n == 42 && s == "hello" && v == std::vector<int>{1, 2, 3} && pt == Point{3, 4};
  mp::exit(ok ? 0 : 3);
}

/// Writes "ok|bad <ppid> <parent name> <own name>" to stdout (forkserver children only
/// have stdio); ok when parent_process() is `owner` although the server forked us.
void report_identity(pid_t owner) {
  auto par = mp::parent_process();
  bool ok = par && par->pid == owner && ::getppid() != owner;
  write_str(1, std::string(ok ? "ok " : "bad ") + std::to_string(::getppid()) + " " + (par ? par->name : "-") + " " +
                   mp::current_process().name + "\n");
}

void print_and_throw() {
  std::fprintf(stderr, "child stderr\n");
  throw std::logic_error("served child failed");
}

void wait_for_stdin_eof() {
  char c;
  while (::read(0, &c, 1) > 0) {
  }
}

static_assert(mp::ServerStartable<void (*)(int), int>);
static_assert(mp::ServerStartable<decltype(check_args), int, std::string, std::vector<int>, Point>);
static_assert(!mp::ServerStartable<std::function<void()>>);
static_assert(!mp::ServerStartable<void (*)(int*), int*>);

using Forkserver = mp_test::ForkserverTest;

}  // namespace

TEST_F(Forkserver, StartJoinExitcode) {
  mp::Process p(exit_with, 7);
  p.start();
  EXPECT_GT(p.pid(), 0);
  p.join();
  EXPECT_EQ(p.exitcode(), 7);
  EXPECT_FALSE(p.is_alive());
}

TEST_F(Forkserver, PassesTransferableArguments) {
  mp::Process p(mp::forkserver_safe, check_args, 42, std::string("hello"), std::vector<int>{1, 2, 3}, Point{3, 4});
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(Forkserver, RunsCaptureLessLambdas) {
  mp::Process p([](int a, int b) { mp::exit(a * b); }, 6, 7);
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 42);
}

TEST_F(Forkserver, ChildReportsOwnerAsParentProcess) {
  Pipe out;
  mp::Process p({.name = "served"}, report_identity, ::getpid());
  {
    Redirect to_pipe(1, out.w);
    p.start();
  }
  out.close_w();
  auto line = read_line(out.r);
  EXPECT_TRUE(line.starts_with("ok ")) << line;
  EXPECT_TRUE(line.ends_with(" MainProcess served")) << line;
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(Forkserver, TerminateKillAndJoinTimeout) {
  mp::Process a(block_forever), b(block_forever);
  a.start();
  b.start();
  EXPECT_TRUE(a.is_alive());
  EXPECT_FALSE(a.join(0ms));
  a.terminate();
  b.kill();
  EXPECT_TRUE(a.join(60s));
  b.join();
  EXPECT_EQ(a.exitcode(), -SIGTERM);
  EXPECT_EQ(b.exitcode(), -SIGKILL);
  EXPECT_FALSE(a.is_alive());
}

TEST_F(Forkserver, ChildWritesToTheOwnersCurrentStderr) {
  Pipe err;
  int saved = ::dup(2);
  ::dup2(err.w, 2);  // the child gets our stderr as it is at start()
  mp::Process p(print_and_throw);
  p.start();
  ::dup2(saved, 2);
  ::close(saved);
  err.close_w();
  std::string text = read_all(err.r);
  p.join();
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_NE(text.find("child stderr\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Process " + p.name() + ":\nstd::logic_error: served child failed"), std::string::npos) << text;
}

TEST_F(Forkserver, SentinelBecomesReadableWhenChildEnds) {
  mp::Process p(block_forever);
  p.start();
  pollfd pf{p.sentinel(), POLLIN, 0};
  EXPECT_EQ(::poll(&pf, 1, 0), 0);
  p.kill();
  EXPECT_EQ(::poll(&pf, 1, kSafetyMs), 1);
  p.join();
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

TEST_F(Forkserver, RejectsCapturingLambdaAndSubclass) {
  int x = 3;
  mp::Process capturing([x] { mp::exit(x); });
  EXPECT_THROW(capturing.start(), mp::ProcessError);
  struct Sub : mp::Process {
    void run() override {}
  };
  Sub s;
  try {
    s.start();
    FAIL() << "a subclass started under forkserver";
  } catch (const mp::ProcessError& e) {
    EXPECT_NE(std::string(e.what()).find("subclass"), std::string::npos) << e.what();
  }
  EXPECT_EQ(capturing.exitcode(), std::nullopt);  // nothing was started
}

TEST_F(Forkserver, ConcurrentStartsFromThreads) {
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) ts.emplace_back([&ok, i] {
      mp::Process p(exit_with, 10 + i);
      p.start();
      p.join();
      ok += p.exitcode() == 10 + i;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 4);
}

TEST_F(Forkserver, ServerDeathIsReportedAndRecoverable) {
  Pipe out, go;
  mp::Process p(report_identity, ::getpid());
  mp::Process waiter(wait_for_stdin_eof);
  {
    Redirect to_pipe(1, out.w);
    p.start();
  }
  {
    Redirect from_pipe(0, go.r);
    waiter.start();
  }
  out.close_w();
  go.close_r();
  auto line = read_line(out.r);
  ASSERT_FALSE(line.empty());
  pid_t server = std::stoi(line.substr(line.find(' ') + 1));
  p.join();
  ::kill(server, SIGKILL);
  ASSERT_TRUE(wait_gone(server));
  go.close_w();  // the waiter (not a daemon) outlived its server; now let it end
  waiter.join();
  EXPECT_EQ(waiter.exitcode(), 255);  // the status died with the server: Python's 255
  mp::Process q(do_nothing);
  EXPECT_THROW(q.start(), mp::ProcessError);
  mp::set_start_method(mp::StartMethod::forkserver);  // same method: starts a new server
  mp::Process r(exit_with, 4);
  r.start();
  r.join();
  EXPECT_EQ(r.exitcode(), 4);
}

TEST(ForkserverOwner, DaemonDiesWhenOwnerIsKilled) {
  Pipe out;
  int w = out.w;
  mp::Process owner([w] {
    mp::set_start_method(mp::StartMethod::forkserver);
    ::dup2(w, 1);
    mp::Process d({.daemon = true}, report_identity, mp::current_process().pid);
    d.start();
    block_forever();
  });
  owner.start();
  out.close_w();
  auto line = read_line(out.r);
  ASSERT_TRUE(line.starts_with("ok ")) << line;
  pid_t server = std::stoi(line.substr(3));
  // the daemon printed and then ended (report_identity returns); its server is still up
  EXPECT_TRUE(exists(server));
  owner.kill();
  owner.join();
  EXPECT_TRUE(wait_gone(server));
}

TEST(ForkserverOwner, ServerAndChildrenEndWithOwnersNormalExit) {
  Pipe out;
  int w = out.w;
  mp::Process owner([w] {
    mp::set_start_method(mp::StartMethod::forkserver);
    ::dup2(w, 1);
    mp::Process d({.daemon = true}, block_forever);
    d.start();
    mp::Process p(report_identity, mp::current_process().pid);
    p.start();
    write_pid(w, d.pid());
  });  // returns: exit steps terminate d, join p, stop the server
  owner.start();
  out.close_w();
  std::string all = read_all(out.r);
  owner.join();
  EXPECT_EQ(owner.exitcode(), 0);
  auto sp = all.find("ok ");
  ASSERT_NE(sp, std::string::npos) << all;
  pid_t server = std::stoi(all.substr(sp + 3));
  EXPECT_FALSE(exists(server)) << "the owner reaps its server before exiting";
}

// ------------------------------------------------------------------------------- examples

TEST(Examples, ProcessFunction) {
  auto r = mp_test::run(mp_test::example("process_function"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  auto main_pid = r.out.find("main: pid ");
  auto child = r.out.find("child: pid ");
  ASSERT_NE(main_pid, std::string::npos) << r.out;
  ASSERT_NE(child, std::string::npos) << r.out;
  std::string mp = r.out.substr(main_pid + 10, r.out.find('\n', main_pid) - main_pid - 10);
  EXPECT_NE(r.out.find("ppid " + mp), std::string::npos) << "the child's parent is main\n" << r.out;
  EXPECT_LT(r.out.find("child: start"), r.out.find("child: end")) << r.out;
  EXPECT_LT(r.out.find("child: end"), r.out.find("main: child exitcode 0")) << r.out;
}

TEST(Examples, ProcessSubclass) {
  auto r = mp_test::run(mp_test::example("process_subclass"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("huangchun: running in pid"), std::string::npos) << r.out;
  EXPECT_LT(r.out.find("huangchun: done"), r.out.find("main: after join")) << r.out;
  EXPECT_NE(r.out.find("exitcode 0"), std::string::npos) << r.out;
}

TEST(Examples, JoinMany) {
  auto r = mp_test::run(mp_test::example("join_many"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  auto all = r.out.find("main: all three joined");
  ASSERT_NE(all, std::string::npos) << r.out;
  for (int ms : {100, 300, 500}) {
    auto done = r.out.find("slept " + std::to_string(ms) + " ms");
    ASSERT_NE(done, std::string::npos) << r.out;
    EXPECT_LT(done, all) << r.out;
  }
  EXPECT_NE(r.out.find("total "), std::string::npos) << r.out;
}

TEST(Examples, DaemonProcess) {
  auto r = mp_test::run(mp_test::example("daemon_process"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  auto at = r.out.find("daemon pid ");
  ASSERT_NE(at, std::string::npos) << r.out;
  pid_t daemon = std::stoi(r.out.substr(at + 11));
  EXPECT_GE(mp_test::count(r.out, "is alive"), 1) << r.out;
  EXPECT_EQ(mp_test::count(r.out, "son2: step"), 5) << r.out;  // the non-daemon finished
  EXPECT_NE(r.out.find("main: end of main"), std::string::npos) << r.out;
  EXPECT_TRUE(wait_gone(daemon)) << "the daemon outlived its main()";
}

TEST(Examples, TerminateIsAlive) {
  auto r = mp_test::run(mp_test::example("terminate_is_alive"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("after start: is_alive() = true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("right after terminate(): is_alive() = "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("after join(): is_alive() = false"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exitcode = -15"), std::string::npos) << r.out;
}

TEST(Examples, ProcessForkserver) {
  auto r = mp_test::run(mp_test::example("process_forkserver"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(mp_test::count(r.out, "square("), 3) << r.out;
  EXPECT_NE(r.out.find("exitcodes 0 0 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("refused: "), std::string::npos) << r.out;
}

// ------------------------------------------------------------------- the fork-with-threads warning

namespace {

/// Starts two children (fork) while `threads` other threads of ours run.
void fork_twice_beside_threads(int threads) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  std::atomic<int> started{0};
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&] {
      started.fetch_add(1);
      while (!stop.load()) std::this_thread::yield();
    });
  while (started.load() < threads) std::this_thread::yield();
  for (int i = 0; i < 2; ++i) {
    mp::Process p(do_nothing);
    p.start();
    p.join();
  }
  stop = true;
  for (auto& t : ts) t.join();
}

void fork_beside_one_thread() { fork_twice_beside_threads(1); }
int same(int x) { return x; }
void fork_alone() { fork_twice_beside_threads(0); }
void fork_beside_one_thread_silenced() {
  mp::set_fork_warning(false);
  fork_twice_beside_threads(1);
}
void fork_beside_one_thread_env_silenced() {
  ::setenv("MP_FORK_WARNING", "0", 1);
  fork_twice_beside_threads(1);
}
void fork_beside_a_pool() {
  mp::Pool pool(1);  // its result thread is mp's own, and workers never touch it
  (void)pool.apply(same, 0);
  fork_twice_beside_threads(0);
}
void forkserver_beside_one_thread() {
  std::atomic<bool> stop{false};
  std::thread t([&] {
    while (!stop.load()) std::this_thread::yield();
  });
  mp::set_start_method(mp::StartMethod::forkserver);  // the server itself is a fork
  stop = true;
  t.join();
  mp::set_start_method(mp::StartMethod::fork, true);
}

#if defined(__SANITIZE_THREAD__)
constexpr bool kUnderThreadSanitizer = true;  // its own threads: mp does not warn there
#else
constexpr bool kUnderThreadSanitizer = false;
#endif

/// What `scenario` writes to stderr, run in a child of ours (the warning is once per process).
std::string stderr_of(void (*scenario)()) {
  Pipe err;
  mp::Process p(
      [](void (*f)(), int w) {
        ::dup2(w, 2);
        f();
      },
      scenario, err.w);
  p.start();
  err.close_w();
  std::string text = read_all(err.r);
  p.join();
  EXPECT_EQ(p.exitcode(), 0) << text;
  return text;
}

}  // namespace

// Issue 18: Python 3.12 warns when a multi-threaded process forks; so does mp, once.
TEST(ForkWarning, ForkingBesideAnotherThreadWarnsOnce) {
  if (kUnderThreadSanitizer) GTEST_SKIP() << "ThreadSanitizer runs threads of its own: mp does not warn under it";
  std::string text = stderr_of(fork_beside_one_thread);
  EXPECT_EQ(mp_test::count(text, "mp: warning: Process.start() forks"), 1) << text;
  EXPECT_NE(text.find("1 other thread"), std::string::npos) << text;
  EXPECT_NE(text.find("StartMethod::forkserver"), std::string::npos) << text;
  EXPECT_NE(text.find("MP_FORK_WARNING=0"), std::string::npos) << text;
}

TEST(ForkWarning, NoWarningAloneBesideAPoolOrWhenTurnedOff) {
  if (kUnderThreadSanitizer) GTEST_SKIP() << "ThreadSanitizer runs threads of its own: mp does not warn under it";
  EXPECT_EQ(stderr_of(fork_alone), "");
  EXPECT_EQ(stderr_of(fork_beside_a_pool), "");
  EXPECT_EQ(stderr_of(fork_beside_one_thread_silenced), "");
  EXPECT_EQ(stderr_of(fork_beside_one_thread_env_silenced), "");
}

TEST(ForkWarning, StartingTheForkServerBesideAThreadWarns) {
  if (kUnderThreadSanitizer) GTEST_SKIP() << "ThreadSanitizer runs threads of its own: mp does not warn under it";
  std::string text = stderr_of(forkserver_beside_one_thread);
  EXPECT_EQ(mp_test::count(text, "mp: warning: set_start_method(forkserver) forks"), 1) << text;
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(Process, StartOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  for (mp::StartMethod method : {mp::StartMethod::fork, mp::StartMethod::forkserver}) {
    const bool fs = method == mp::StartMethod::forkserver;
    // The fork server belongs to the start method, not to one start(): it stays for the
    // next. Going back to fork (which stops it) on every way out makes it part of the run.
    auto r = mp_test::construct_out_of_descriptors([method] {
      struct BackToFork {
        ~BackToFork() { mp::set_start_method(mp::StartMethod::fork, true); }
      } back;
      mp::set_start_method(method, true);
      mp::Process p(exit_with, 0);
      p.start();
      p.join();
    });
    EXPECT_EQ(r.problem, "") << (fs ? "forkserver" : "fork");
    EXPECT_TRUE(r.succeeded) << (fs ? "forkserver" : "fork");
    // Under fork start() needs no descriptor (without a pidfd it waits by pid).
    EXPECT_GE(r.failures, fs ? 2 : 0) << (fs ? "forkserver" : "fork");
  }
}
