// Tests for mp/process.hpp: real children, real exit codes, real signals.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <csignal>

#include "helpers/support.hpp"
#include "mp/process.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

namespace {

void do_nothing() {}
void exit_with(int code) { mp::exit(code); }
void throw_runtime() { throw std::runtime_error("boom from the child"); }

}  // namespace

TEST(Process, FunctionTargetExitsZero) {
  mp::Process p(do_nothing);
  EXPECT_EQ(p.exitcode(), std::nullopt);
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
}

TEST(Process, UncaughtExceptionExitsOneAndIsPrinted) {
  // Redirect the child's stderr into a pipe to read what it printed.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  mp::Process p([&] {
    dup2(fds[1], 2);
    throw_runtime();
  });
  p.start();
  close(fds[1]);
  std::string err;
  char buf[256];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) err.append(buf, n);
  close(fds[0]);
  p.join();
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_NE(err.find("Process " + p.name() + ":"), std::string::npos) << err;
  EXPECT_NE(err.find("std::runtime_error: boom from the child"), std::string::npos) << err;
}

TEST(Process, TerminateGivesMinus15AndKillMinus9) {
  mp::Process a([] { for (;;) pause(); });
  mp::Process b([] { for (;;) pause(); });
  a.start();
  b.start();
  EXPECT_TRUE(a.is_alive());
  a.terminate();
  b.kill();
  a.join();
  b.join();
  EXPECT_EQ(a.exitcode(), -SIGTERM);
  EXPECT_EQ(b.exitcode(), -SIGKILL);
  EXPECT_EQ(b.status().describe(), "killed by SIGKILL");
}

TEST(Process, JoinWithTimeoutReturnsFalseWhileRunning) {
  mp::Process p([] { for (;;) pause(); });
  p.start();
  EXPECT_FALSE(p.join(20ms));
  EXPECT_TRUE(p.is_alive());
  p.kill();
  EXPECT_TRUE(p.join(60s));
}

TEST(Process, MisuseRaises) {
  mp::Process p(do_nothing);
  EXPECT_THROW(p.join(), mp::ProcessError);
  p.start();
  EXPECT_THROW(p.start(), mp::ProcessError);
  EXPECT_THROW(p.daemon(true), mp::ProcessError);
  p.join();
  p.close();
  EXPECT_THROW(p.start(), mp::ValueError);
}

TEST(Process, SubclassRunsOverride) {
  struct Child : mp::Process {
    int code;
    explicit Child(int c) : code(c) {}
    void run() override { mp::exit(code + 1); }
  };
  Child c(41);
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

TEST(Process, CurrentProcessInChildAndParent) {
  EXPECT_EQ(mp::current_process().name, "MainProcess");
  EXPECT_FALSE(mp::parent_process().has_value());
  pid_t me = getpid();
  mp::Process p({.name = "kid"}, [me] {
    auto cur = mp::current_process();
    auto par = mp::parent_process();
    bool ok = cur.name == "kid" && cur.pid == getpid() && par && par->pid == me && par->name == "MainProcess";
    mp::exit(ok ? 0 : 3);
  });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, ActiveChildrenListsRunningOnes) {
  mp::Process p([] { for (;;) pause(); });
  p.start();
  auto kids = mp::active_children();
  bool found = false;
  for (auto& k : kids) found |= k.pid() == p.pid();
  EXPECT_TRUE(found);
  p.terminate();
  p.join();
  for (auto& k : mp::active_children()) EXPECT_NE(k.pid(), p.pid());
}

TEST(Process, CpuCountPositive) { EXPECT_GE(mp::cpu_count(), 1); }
