// Tests for mp/subprocess.hpp: real programs (mostly tests/helpers/test_helper.cpp), real
// pipes, real signals. Timeouts here are either the behaviour under test (with a child
// that can never finish in time) or a generous safety net.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string_view>
#include <string>
#include <thread>

#include "helpers/fd_exhaustion.hpp"
#include "helpers/support.hpp"
#include "mp/subprocess.hpp"
#include "mp/threading.hpp"

using namespace std::chrono_literals;
namespace sp = mp::subprocess;

namespace {

const std::string helper = MP_TEST_HELPER;

/// Waits (safety net: 60 s) until `pid` is no longer our zombie nor running.
bool gone_eventually(pid_t pid) {
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (mp_test::proc_state(pid) == 0) return true;
    std::this_thread::yield();
    std::this_thread::sleep_for(1ms);  // polling a condition, not synchronising by sleeping
  }
  return false;
}

}  // namespace

// ----------------------------------------------------------------------------------- run()

TEST(Run, ReturnsTheExitCode) {
  auto r = sp::run({helper, "exit-code", "3"});
  EXPECT_EQ(r.returncode, 3);
  EXPECT_EQ(r.args, (std::vector<std::string>{helper, "exit-code", "3"}));
  EXPECT_EQ(r.stdout, "");
}

TEST(Run, InputAndCaptureOutput) {
  auto r = sp::run({helper, "echo"}, {.input = "through the child\n", .capture_output = true});
  EXPECT_EQ(r.returncode, 0);
  EXPECT_EQ(r.stdout, "through the child\n");
  EXPECT_EQ(r.stderr, "");
}

TEST(Run, InputViewsAStringWithoutCopyingIt) {
  const std::string data(300 * 1024, 'y');  // larger than a pipe: the write/read loop runs
  auto r = sp::run({helper, "echo"}, {.input = data, .capture_output = true});
  EXPECT_EQ(r.stdout, data);
  std::string_view view(data);
  EXPECT_EQ(sp::run({helper, "echo"}, {.input = view.substr(0, 5), .capture_output = true}).stdout, "yyyyy");
}

TEST(Run, InputOwnsAMovedInStringAcrossCopiesOfTheOptions) {
  // A temporary string is moved into the options, so options kept in a variable (and
  // copied, as call() and check_call() do) never point at a destroyed buffer. The text is
  // longer than the small-string buffer, so a stale view would read freed memory (ASan).
  std::optional<sp::RunOptions> kept;
  kept.emplace(sp::RunOptions{.input = std::string("moved in, owned by the options\n"), .capture_output = true});
  sp::RunOptions copy = *kept;
  kept.reset();
  EXPECT_EQ(sp::run({helper, "echo"}, copy).stdout, "moved in, owned by the options\n");
  EXPECT_EQ(sp::call({helper, "echo"}, std::move(copy)), 0);
}

TEST(Run, CheckRaisesCalledProcessErrorCarryingTheOutput) {
  try {
    sp::run({"sh", "-c", "echo partial; echo why >&2; exit 4"}, {.capture_output = true, .check = true});
    FAIL() << "expected CalledProcessError";
  } catch (const sp::CalledProcessError& e) {
    EXPECT_EQ(e.returncode(), 4);
    EXPECT_EQ(e.output(), "partial\n");
    EXPECT_EQ(e.stderr(), "why\n");
    EXPECT_EQ(e.cmd().at(0), "sh");
    EXPECT_NE(std::string(e.what()).find("returned non-zero exit status 4"), std::string::npos) << e.what();
  }
}

TEST(Run, CheckReturncodeOnCompletedProcess) {
  auto r = sp::run({helper, "exit-code", "0"});
  EXPECT_NO_THROW(r.check_returncode());
  r.returncode = -9;
  EXPECT_THROW(r.check_returncode(), sp::CalledProcessError);
}

TEST(Run, TimeoutKillsTheChildAndKeepsItsOutput) {
  try {
    sp::run({"sh", "-c", "echo before; exec sleep 1000"}, {.capture_output = true, .timeout = 100ms});
    FAIL() << "expected TimeoutExpired";
  } catch (const sp::TimeoutExpired& e) {
    EXPECT_EQ(e.output(), "before\n");  // collected after the kill, so always complete
    EXPECT_EQ(e.timeout(), 100ms);
    EXPECT_NE(std::string(e.what()).find("timed out after 0.1 seconds"), std::string::npos) << e.what();
  }
}

TEST(Run, ShellRunsACommandLine) {
  auto r = sp::run("echo one two | wc -w", {.capture_output = true, .shell = true});
  EXPECT_EQ(r.returncode, 0);
  EXPECT_EQ(r.stdout.substr(r.stdout.find_first_not_of(' ')), "2\n");
  EXPECT_EQ(r.args, std::vector<std::string>{"echo one two | wc -w"});
}

TEST(Run, CwdIsTheChildsWorkingDirectory) {
  auto r = sp::run({"pwd"}, {.capture_output = true, .cwd = "/"});
  EXPECT_EQ(r.stdout, "/\n");
}

TEST(Run, EnvReplacesTheEnvironmentAndItsPathIsUsedForLookup) {
  auto r = sp::run({"sh", "-c", "echo $FOO:${HOME:-unset}"},
                   {.capture_output = true, .env = sp::Env{{"FOO", "bar"}, {"PATH", "/usr/bin:/bin"}}});
  EXPECT_EQ(r.stdout, "bar:unset\n");
  EXPECT_THROW(sp::run({"sh", "-c", "true"}, {.env = sp::Env{{"PATH", "/nonexistent"}}}), sp::FileNotFoundError);
}

TEST(Run, TextTranslatesUniversalNewlines) {
  auto raw = sp::run({"printf", "a\\r\\nb\\rc\\n"}, {.capture_output = true});
  EXPECT_EQ(raw.stdout, "a\r\nb\rc\n");
  auto text = sp::run({"printf", "a\\r\\nb\\rc\\n"}, {.capture_output = true, .text = true});
  EXPECT_EQ(text.stdout, "a\nb\nc\n");
}

TEST(Run, StderrToStdoutMergesBothStreams) {
  auto r = sp::run({helper, "spew", "10000"}, {.stdout = sp::PIPE, .stderr = sp::STDOUT});
  EXPECT_EQ(r.stdout.size(), 20000u);
  EXPECT_EQ(mp_test::count(r.stdout, "o"), 10000);
  EXPECT_EQ(mp_test::count(r.stdout, "e"), 10000);
  EXPECT_EQ(r.stderr, "");
}

TEST(Run, DevnullDiscardsAndFdRedirectWritesToOurDescriptor) {
  auto quiet = sp::run({helper, "print", "lost"}, {.stdout = sp::DEVNULL});
  EXPECT_EQ(quiet.returncode, 0);
  char path[] = "/tmp/mp-subprocess-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  auto r = sp::run({helper, "print", "into the file"}, {.stdout = fd});
  EXPECT_EQ(r.returncode, 0);
  close(fd);
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "into the file");
  unlink(path);
}

TEST(Run, DevnullStdinReadsEndOfFile) {
  auto r = sp::run({helper, "echo"}, {.stdin = sp::DEVNULL, .capture_output = true});
  EXPECT_EQ(r.returncode, 0);
  EXPECT_EQ(r.stdout, "");
}

TEST(Run, InconsistentOptionsRaiseValueError) {
  EXPECT_THROW(sp::run({helper, "echo"}, {.stdin = sp::PIPE, .input = "x"}), mp::ValueError);
  EXPECT_THROW(sp::run({helper, "echo"}, {.stdout = sp::PIPE, .capture_output = true}), mp::ValueError);
  EXPECT_THROW(sp::run({helper, "echo"}, {.stdout = sp::STDOUT}), mp::ValueError);
  EXPECT_THROW(sp::run(std::vector<std::string>{}), mp::ValueError);
  EXPECT_THROW(sp::run({helper, "echo"}, {.pass_fds = {1}}), mp::ValueError);
}

TEST(Functions, CallCheckCallAndCheckOutput) {
  EXPECT_EQ(sp::call({helper, "exit-code", "5"}), 5);
  EXPECT_EQ(sp::check_call({helper, "exit-code", "0"}), 0);
  EXPECT_THROW(sp::check_call({helper, "exit-code", "1"}), sp::CalledProcessError);
  EXPECT_EQ(sp::check_output({helper, "print", "a", "b"}), "a\nb\n");
  try {
    sp::check_output({"sh", "-c", "echo got this far; exit 2"});
    FAIL();
  } catch (const sp::CalledProcessError& e) {
    EXPECT_EQ(e.returncode(), 2);
    EXPECT_EQ(e.output(), "got this far\n");
  }
}

// --------------------------------------------------------------------------- spawn errors

TEST(SpawnErrors, MissingProgramRaisesFileNotFoundErrorNamingIt) {
  int fds = mp_test::open_fd_count();
  try {
    sp::Popen p({"mp-no-such-program", "arg"}, {.stdout = sp::PIPE});
    FAIL() << "expected FileNotFoundError";
  } catch (const sp::FileNotFoundError& e) {
    EXPECT_EQ(e.filename(), "mp-no-such-program");
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find("'mp-no-such-program'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sp::run({"/no/such/dir/prog"}), sp::FileNotFoundError);
  EXPECT_THROW(sp::run({"prog"}, {.executable = "/no/such/prog"}), sp::FileNotFoundError);
  EXPECT_EQ(mp_test::open_fd_count(), fds);  // the pipe made for stdout was closed again
  EXPECT_EQ(mp_test::zombie_children(), 0);
}

TEST(SpawnErrors, MissingCwdRaisesFileNotFoundErrorNamingTheDirectory) {
  try {
    sp::run({helper, "exit-code", "0"}, {.cwd = "/no/such/directory"});
    FAIL();
  } catch (const sp::FileNotFoundError& e) {
    EXPECT_EQ(e.filename(), "/no/such/directory");
  }
}

TEST(SpawnErrors, NonExecutableFileRaisesPermissionError) {
  char path[] = "/tmp/mp-noexec-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  chmod(path, 0644);
  if (geteuid() == 0 && access(path, X_OK) == 0) GTEST_SKIP() << "root may execute anything here";
  EXPECT_THROW(sp::run({path}), sp::PermissionError);
  unlink(path);
}

TEST(SpawnErrors, ExceptionsFormAPythonLikeHierarchy) {
  EXPECT_THROW(sp::run({"mp-no-such-program"}), mp::OSError);
  EXPECT_THROW(sp::run({"mp-no-such-program"}), mp::Error);
  EXPECT_THROW(sp::check_call({"false"}), sp::SubprocessError);
}

// ------------------------------------------------------------------------------------ Popen

TEST(Popen, ExecutableReplacesTheProgramButNotArgv0) {
  sp::Popen p({"some-argv0", "exit-code", "6"}, {.executable = helper});
  EXPECT_EQ(p.wait(), 6);
}

TEST(Popen, PollIsNulloptWhileRunningThenTheCode) {
  int ctl[2];
  ASSERT_EQ(pipe2(ctl, O_CLOEXEC), 0);
  sp::Popen p({helper, "wait-fd", std::to_string(ctl[0])}, {.stdout = sp::DEVNULL, .pass_fds = {ctl[0]}});
  close(ctl[0]);
  EXPECT_GT(p.pid(), 0);
  EXPECT_EQ(p.poll(), std::nullopt);
  EXPECT_EQ(p.returncode(), std::nullopt);
  close(ctl[1]);  // lets the child finish
  EXPECT_EQ(p.wait(), 0);
  EXPECT_EQ(p.poll(), 0);
  EXPECT_EQ(p.returncode(), 0);
}

TEST(Popen, WaitWithTimeoutRaisesTimeoutExpiredThenKillGivesMinus9) {
  sp::Popen p({"sleep", "1000"});
  EXPECT_THROW(p.wait(0ms), sp::TimeoutExpired);
  EXPECT_THROW(p.wait(20ms), sp::TimeoutExpired);
  p.kill();
  EXPECT_EQ(p.wait(60s), -SIGKILL);
  EXPECT_EQ(p.returncode(), -9);
}

TEST(Popen, TerminateGivesMinus15AndSignalsAfterReapingAreIgnored) {
  sp::Popen p({"sleep", "1000"});
  p.terminate();
  EXPECT_EQ(p.wait(), -SIGTERM);
  p.kill();  // reaped: must not signal whatever now has that pid
  p.send_signal(SIGTERM);
  EXPECT_EQ(p.returncode(), -SIGTERM);
}

TEST(Popen, CommunicateMovesLargeInputAndOutputWithoutDeadlock) {
  std::string big(8 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  sp::Popen p({helper, "echo"}, {.stdin = sp::PIPE, .stdout = sp::PIPE, .stderr = sp::PIPE});
  auto [out, err] = p.communicate(big);
  EXPECT_EQ(out.size(), big.size());
  EXPECT_TRUE(out == big);
  EXPECT_EQ(err, "");
  EXPECT_EQ(p.returncode(), 0);
}

TEST(Popen, CommunicateDrainsStdoutAndStderrTogether) {
  // 4 MiB on each stream: a reader draining one stream at a time would deadlock.
  sp::Popen p({helper, "spew", std::to_string(4 << 20)}, {.stdout = sp::PIPE, .stderr = sp::PIPE});
  auto [out, err] = p.communicate();
  EXPECT_EQ(out.size(), std::size_t{4} << 20);
  EXPECT_EQ(err.size(), std::size_t{4} << 20);
  EXPECT_EQ(out.find_first_not_of('o'), std::string::npos);
  EXPECT_EQ(err.find_first_not_of('e'), std::string::npos);
}

TEST(Popen, CommunicateTimeoutKeepsPartialOutputAndTheNextCallContinues) {
  int ctl[2];
  ASSERT_EQ(pipe2(ctl, O_CLOEXEC), 0);
  sp::Popen p({helper, "wait-fd", std::to_string(ctl[0])}, {.stdout = sp::PIPE, .pass_fds = {ctl[0]}});
  close(ctl[0]);
  try {
    p.communicate({}, 30ms);  // the child cannot finish: it waits for ctl
    FAIL() << "expected TimeoutExpired";
  } catch (const sp::TimeoutExpired& e) {
    EXPECT_TRUE(std::string("first\n").starts_with(e.output())) << e.output();
  }
  close(ctl[1]);
  auto [out, err] = p.communicate();
  EXPECT_EQ(out, "first\nsecond\n");
  EXPECT_EQ(p.returncode(), 0);
}

TEST(Popen, CommunicateIgnoresAChildThatStopsReadingItsInput) {
  sp::Popen p({helper, "exit-code", "0"}, {.stdin = sp::PIPE});
  auto [out, err] = p.communicate(std::string(4 << 20, 'x'));  // EPIPE: ignored, no SIGPIPE
  EXPECT_EQ(p.returncode(), 0);
}

TEST(Popen, CommunicateInputWithoutStdinPipeRaisesValueError) {
  sp::Popen p({helper, "exit-code", "0"});
  EXPECT_THROW(p.communicate("input"), mp::ValueError);
  p.wait();
}

TEST(Popen, PipesWorkInteractively) {
  sp::Popen p({helper, "echo"}, {.stdin = sp::PIPE, .stdout = sp::PIPE});
  p.stdin().write("line one\n");
  EXPECT_EQ(p.stdout().readline(), "line one\n");
  p.stdin().write("line two\nand three\n");
  EXPECT_EQ(p.stdout().readline(), "line two\n");
  p.stdin().close();
  EXPECT_EQ(p.stdout().read(), "and three\n");
  EXPECT_EQ(p.stdout().readline(), "");
  EXPECT_EQ(p.wait(), 0);
  EXPECT_TRUE(p.stderr().closed());
  EXPECT_THROW(p.stderr().read(), mp::ValueError);
}

// Python:  p1 = Popen(["printf", "b\\na\\nc\\n"], stdout=PIPE)
//          p2 = Popen(["sort"], stdin=p1.stdout, stdout=PIPE); p1.stdout.close()
//          p3 = Popen(["tr", "a-z", "A-Z"], stdin=p2.stdout, stdout=PIPE); p2.stdout.close()
//          out, _ = p3.communicate()
TEST(Popen, PipelineStagesTakeAnotherPopensPipeEndDirectly) {
  int before = mp_test::open_fd_count();
  {
    sp::Popen p1({"printf", "b\\na\\nc\\n"}, {.stdout = sp::PIPE});
    sp::Popen p2({"sort"}, {.stdin = p1.stdout(), .stdout = sp::PIPE});
    EXPECT_FALSE(p1.stdout().closed()) << "as in Python, our copy stays open until we close it";
    p1.stdout().close();  // so that p1 would get SIGPIPE if p2 exited early
    sp::Popen p3({"tr", "a-z", "A-Z"}, {.stdin = p2.stdout(), .stdout = sp::PIPE});
    p2.stdout().close();
    auto [out, err] = p3.communicate();
    EXPECT_EQ(out, "A\nB\nC\n");
    EXPECT_EQ(p1.wait(), 0);
    EXPECT_EQ(p2.wait(), 0);
    EXPECT_EQ(p3.returncode(), 0);

    // The other direction: a child's stdout written into another child's stdin.
    sp::Popen sink({"sort", "-r"}, {.stdin = sp::PIPE, .stdout = sp::PIPE});
    sp::Popen source({"printf", "x\\nz\\ny\\n"}, {.stdout = sink.stdin()});
    sink.stdin().close();
    EXPECT_EQ(sink.communicate().first, "z\ny\nx\n");
    EXPECT_EQ(source.wait(), 0);
  }
  EXPECT_EQ(mp_test::open_fd_count(), before);
}

TEST(Popen, AWrongDirectionOrClosedPipeEndRaisesValueErrorNamingTheField) {
  auto message = [](const sp::Redirect& in, const sp::Redirect& out, const sp::Redirect& err) -> std::string {
    try {
      sp::Popen p({helper, "exit-code", "0"}, {.stdin = in, .stdout = out, .stderr = err});
      p.wait();
    } catch (const mp::ValueError& e) {
      return e.what();
    }
    return "(no error)";
  };
  sp::Popen p1({helper, "echo"}, {.stdin = sp::PIPE, .stdout = sp::PIPE});
  sp::Popen no_pipes({helper, "exit-code", "0"});
  int before = mp_test::open_fd_count();
  std::string m = message(p1.stdin(), {}, {});  // Python's stdin=p1.stdin: a write end
  EXPECT_NE(m.find(".stdin"), std::string::npos) << m;
  EXPECT_NE(m.find("writes to"), std::string::npos) << m;
  EXPECT_NE(m.find("p1.stdout()"), std::string::npos) << m << " (says what to pass)";
  m = message({}, p1.stdout(), {});
  EXPECT_NE(m.find(".stdout"), std::string::npos) << m;
  EXPECT_NE(m.find("p1.stdin()"), std::string::npos) << m;
  m = message({}, {}, p1.stdout());
  EXPECT_NE(m.find(".stderr"), std::string::npos) << m;
  m = message(no_pipes.stdout(), {}, {});  // that stream was never a PIPE
  EXPECT_NE(m.find(".stdin"), std::string::npos) << m;
  EXPECT_NE(m.find("closed"), std::string::npos) << m;
  m = message(-1, {}, {});
  EXPECT_NE(m.find(".stdin = -1"), std::string::npos) << m;
  m = message({}, sp::STDOUT, {});
  EXPECT_NE(m.find(".stdout = STDOUT"), std::string::npos) << m;
  EXPECT_EQ(mp_test::open_fd_count(), before) << "nothing was opened for the refused children";
  p1.stdin().close();
  m = message({}, p1.stdin(), {});  // closed, though the right direction
  EXPECT_NE(m.find(".stdout"), std::string::npos) << m;
  EXPECT_NE(m.find("closed"), std::string::npos) << m;
  EXPECT_TRUE(p1.stdin().writable());
  EXPECT_TRUE(p1.stdout().readable());
  EXPECT_EQ(p1.communicate().first, "");
  EXPECT_EQ(no_pipes.wait(), 0);
}

TEST(Popen, ReadWithCountStopsAtCountOrEndOfFile) {
  sp::Popen p({helper, "print", "abcdef"}, {.stdout = sp::PIPE});
  EXPECT_EQ(p.stdout().read(3), "abc");
  EXPECT_EQ(p.stdout().read(100), "def\n");
  EXPECT_EQ(p.wait(), 0);
}

TEST(Popen, WritingToAChildThatExitedRaisesEpipeInsteadOfKillingUs) {
  sp::Popen p({helper, "exit-code", "0"}, {.stdin = sp::PIPE});
  p.wait();
  try {
    p.stdin().write(std::string(1 << 20, 'x'));
    FAIL() << "expected EPIPE";
  } catch (const mp::OSError& e) {
    EXPECT_EQ(e.code(), std::errc::broken_pipe);
  }
  // Still alive, and no SIGPIPE left pending for someone else to trip over.
  sigset_t pending;
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE));
}

TEST(Popen, SeveralThreadsWaitingAgreeOnTheReturncode) {
  int ctl[2];
  ASSERT_EQ(pipe2(ctl, O_CLOEXEC), 0);
  sp::Popen p({helper, "wait-fd", std::to_string(ctl[0])}, {.stdout = sp::DEVNULL, .pass_fds = {ctl[0]}});
  close(ctl[0]);
  std::atomic<int> sum{0};
  std::vector<mp::Thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&, i] {
      if (i % 2) sum += p.wait();
      else sum += p.wait(60s);
    });
    waiters.back().start();
  }
  for (int i = 0; i < 10; ++i) (void)p.poll();
  close(ctl[1]);
  for (auto& w : waiters) w.join();
  EXPECT_EQ(sum, 0);
  EXPECT_EQ(p.returncode(), 0);
}

TEST(Popen, MoveKeepsOwnershipOfTheChild) {
  sp::Popen a({helper, "exit-code", "9"});
  sp::Popen b = std::move(a);
  EXPECT_EQ(b.wait(), 9);
  sp::Popen c({helper, "exit-code", "1"});
  c = std::move(b);  // c's own child is handed off (reaped), c now owns b's
  EXPECT_EQ(c.returncode(), 9);
}

// ------------------------------------------------------------------------ fds and zombies

TEST(Hygiene, NoFileDescriptorLeaksIntoTheChild) {
  // A descriptor opened without O_CLOEXEC by "somebody else" in the program.
  int leaky = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 3);
  auto r = sp::run({helper, "list-fds"}, {.input = "", .capture_output = true});
  EXPECT_EQ(r.stdout, "0 1 2\n");
  auto without = sp::run({helper, "list-fds"}, {.capture_output = true, .close_fds = false});
  EXPECT_NE(without.stdout.find(" " + std::to_string(leaky)), std::string::npos) << without.stdout;
  close(leaky);
}

TEST(Hygiene, PassFdsKeepsExactlyThoseDescriptors) {
  int a = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int b = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int c = open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto r = sp::run({helper, "list-fds"}, {.capture_output = true, .pass_fds = {c, a}});
  EXPECT_EQ(r.stdout, "0 1 2 " + std::to_string(a) + " " + std::to_string(c) + "\n");
  close(a);
  close(b);
  close(c);
}

TEST(Hygiene, PopenCreatesOnlyCloexecDescriptorsAndClosesTheChildEnds) {
  int before = mp_test::open_fd_count();
  {
    sp::Popen p({helper, "echo"}, {.stdin = sp::PIPE, .stdout = sp::PIPE, .stderr = sp::PIPE});
    EXPECT_EQ(mp_test::open_fd_count(), before + 3);  // only our three ends
    for (int fd : {p.stdin().fileno(), p.stdout().fileno(), p.stderr().fileno()})
      EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    p.communicate("x");
  }
  EXPECT_EQ(mp_test::open_fd_count(), before);
}

TEST(Hygiene, ADestroyedPopenWithARunningChildLeavesNoZombie) {
  int ctl[2];
  ASSERT_EQ(pipe2(ctl, O_CLOEXEC), 0);
  pid_t pid;
  {
    sp::Popen p({helper, "wait-fd", std::to_string(ctl[0])}, {.stdout = sp::DEVNULL, .pass_fds = {ctl[0]}});
    pid = p.pid();
  }  // destroyed while the child waits: handed to the reaper, no blocking
  close(ctl[0]);
  EXPECT_NE(mp_test::proc_state(pid), 0);
  close(ctl[1]);  // the child exits now; the reaper must collect it
  EXPECT_TRUE(gone_eventually(pid)) << "child " << pid << " left as a zombie";
}

TEST(Hygiene, ChildDoesNotInheritAnIgnoredSigpipe) {
  struct sigaction old{}, ign{};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old);
  auto r = sp::run({"grep", "SigIgn", "/proc/self/status"}, {.capture_output = true});
  sigaction(SIGPIPE, &old, nullptr);
  // SigIgn is a hex mask; bit 12 (SIGPIPE = 13) must be clear.
  auto pos = r.stdout.find("SigIgn:");
  ASSERT_NE(pos, std::string::npos) << r.stdout;
  unsigned long long mask = std::stoull(r.stdout.substr(pos + 7), nullptr, 16);
  EXPECT_EQ(mask & (1ULL << (SIGPIPE - 1)), 0u) << r.stdout;
}

namespace {
/// The hex mask after `field` ("SigBlk:") in a /proc/<pid>/status text.
unsigned long long status_mask(const std::string& status, const std::string& field) {
  auto pos = status.find(field);
  if (pos == std::string::npos) return ~0ULL;
  return std::stoull(status.substr(pos + field.size()), nullptr, 16);
}
void count_signal(int) {}
}  // namespace

TEST(Hygiene, ChildInheritsTheSignalMaskAndIgnoredSignalsButNotHandlers) {
  // posix_spawn's contract, kept by mp's own clone+exec: the child starts with the
  // spawning thread's mask and ignored set; handled signals are default there; the
  // spawning thread gets its own mask back untouched.
  struct sigaction ign{}, handled{}, old_hup{}, old_usr1{};
  ign.sa_handler = SIG_IGN;
  handled.sa_handler = count_signal;
  sigaction(SIGHUP, &ign, &old_hup);
  sigaction(SIGUSR1, &handled, &old_usr1);
  sigset_t usr2, before, after;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &usr2, &before);
  auto r = sp::run({"grep", "-E", "^Sig(Blk|Ign|Cgt)", "/proc/self/status"}, {.capture_output = true});
  pthread_sigmask(SIG_SETMASK, nullptr, &after);
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  sigaction(SIGUSR1, &old_usr1, nullptr);
  sigaction(SIGHUP, &old_hup, nullptr);
  ASSERT_EQ(r.returncode, 0) << r.stdout;
  EXPECT_NE(status_mask(r.stdout, "SigBlk:") & (1ULL << (SIGUSR2 - 1)), 0u) << r.stdout;
  EXPECT_NE(status_mask(r.stdout, "SigIgn:") & (1ULL << (SIGHUP - 1)), 0u) << r.stdout;
  EXPECT_EQ(status_mask(r.stdout, "SigCgt:") & (1ULL << (SIGUSR1 - 1)), 0u) << r.stdout;
  EXPECT_EQ(sigismember(&after, SIGUSR2), 1);
  EXPECT_EQ(sigismember(&after, SIGUSR1), sigismember(&before, SIGUSR1));
}

TEST(Run, StartNewSessionMakesTheChildASessionLeader) {
  // Field 6 of /proc/<pid>/stat is the session id: the shell's own pid once setsid() ran.
  auto r = sp::run({"sh", "-c", "set -- $(cat /proc/$$/stat); [ \"$6\" = \"$$\" ] && echo leader || echo member"},
                   {.capture_output = true, .start_new_session = true});
  EXPECT_EQ(r.stdout, "leader\n");
  r = sp::run({"sh", "-c", "set -- $(cat /proc/$$/stat); [ \"$6\" = \"$$\" ] && echo leader || echo member"},
              {.capture_output = true});
  EXPECT_EQ(r.stdout, "member\n");
}

// ------------------------------------------------------------------------------ examples

TEST(Examples, SubprocessCallShowsOutputExitCodesAndAMissingProgram) {
  auto r = mp_test::run(mp_test::example("subprocess_call"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("$ seq 3\n1\n2\n3\nExit code: 0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("HELLO FROM THE SHELL\nExit code: 0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(stderr silenced)\nExit code: 2\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FileNotFoundError: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("'no-such-program'"), std::string::npos) << r.out;
}

TEST(Examples, SubprocessCommunicateFeedsInputAndCollectsOutput) {
  auto r = mp_test::run(mp_test::example("subprocess_communicate"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("$ sort\nexit\npython.org\nset q = mx\nExit code: 0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stdout: 42\nstderr: oops\nExit code: 3\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("HELLO, SUBPROCESS\nExit code: 0\n"), std::string::npos) << r.out;
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(Popen, AConstructorOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  auto r = mp_test::construct_out_of_descriptors([] {
    sp::Popen p({helper, "exit-code", "0"}, {.stdin = sp::PIPE, .stdout = sp::PIPE, .stderr = sp::PIPE});
    (void)p.communicate();
  });
  EXPECT_EQ(r.problem, "");
  EXPECT_TRUE(r.succeeded);
  EXPECT_GE(r.failures, 6) << "three pipes: six descriptors, each failed once";
}
