// Drives examples/tour: usage on -h/--help and on an unknown name (exit 2), one named
// example run with a summary, and escape codes only when stdout is a terminal.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <mp/subprocess.hpp>

#include "helpers/support.hpp"

namespace sp = mp::subprocess;
using mp_test::example;

namespace {

sp::CompletedProcess tour(std::vector<std::string> args) {
  args.insert(args.begin(), example("tour"));
  return sp::run(args, {.capture_output = true, .timeout = std::chrono::seconds(120)});
}

}  // namespace

TEST(ExamplesTour, HelpPrintsUsageAndExitsTwo) {
  for (const char* flag : {"--help", "-h"}) {
    auto r = tour({flag});
    EXPECT_EQ(r.returncode, 2) << flag;
    EXPECT_EQ(r.stdout.rfind("usage: tour [NAME]\n", 0), 0u) << flag << ":\n" << r.stdout;
    EXPECT_NE(r.stdout.find("\n  balance_lock\n"), std::string::npos) << r.stdout;  // the names from tour.list
    EXPECT_EQ(r.stdout.find("examples run"), std::string::npos) << r.stdout;     // nothing was run
    EXPECT_EQ(r.stderr, "") << flag;
  }
}

TEST(ExamplesTour, UnknownNameOrOptionPrintsUsageOnStderrAndExitsTwo) {
  auto r = tour({"no_such_example"});
  EXPECT_EQ(r.returncode, 2);
  EXPECT_EQ(r.stdout, "");
  EXPECT_EQ(r.stderr.rfind("tour: no example named 'no_such_example'", 0), 0u) << r.stderr;
  EXPECT_NE(r.stderr.find("\nusage: tour [NAME]\n"), std::string::npos) << r.stderr;

  auto o = tour({"--colour"});
  EXPECT_EQ(o.returncode, 2);
  EXPECT_EQ(o.stderr.rfind("tour: unknown option '--colour'\nusage: tour [NAME]\n", 0), 0u) << o.stderr;

  auto two = tour({"thread_loop", "thread_local"});
  EXPECT_EQ(two.returncode, 2);
  EXPECT_EQ(two.stdout, "");
  EXPECT_NE(two.stderr.find("usage: tour [NAME]"), std::string::npos) << two.stderr;
}

TEST(ExamplesTour, RunsOneNamedExampleWithoutEscapeCodesIntoAPipe) {
  auto r = tour({"thread_lock_counter"});
  EXPECT_EQ(r.returncode, 0) << r.stdout << r.stderr;
  EXPECT_EQ(r.stdout,
            "\n== thread_lock_counter — 100 threads decrement n under a Lock: n ends at 0\n"
            "n = 0\n"
            "\ntour: 1 example run, 0 failed\n");
  EXPECT_EQ(r.stdout.find('\033'), std::string::npos);
}

TEST(ExamplesTour, BoldHeadingsOnATerminal) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0) << std::strerror(errno);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0) << std::strerror(errno);
  sp::Popen p({example("tour"), "thread_lock_counter"}, {.stdout = slave});
  ::close(slave);  // the tour (and what it runs) now hold the only copies
  std::string out;
  char buf[512];
  for (;;) {  // until every copy of the terminal's other end is closed (EIO)
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(master);
  EXPECT_EQ(p.wait(), 0) << out;
  EXPECT_NE(out.find("\033[1m== thread_lock_counter\033[0m — "), std::string::npos) << out;
  EXPECT_NE(out.find("tour: 1 example run, 0 failed"), std::string::npos) << out;
}
