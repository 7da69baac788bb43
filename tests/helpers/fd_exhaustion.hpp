// Runs a constructor out of descriptors at every step, and checks that each failure leaves
// nothing behind (issue 20: "a constructor that throws leaves no process, descriptor or
// segment behind").
//
// In a forked process (so the test binary's own limit is untouched), RLIMIT_NOFILE is set
// to allow exactly k new descriptors, for k = 0, 1, 2, ... until the constructor succeeds:
// every point where it acquires a descriptor fails once. After each failure (any exception)
// the limit is restored and the process must have no child (running or zombie), the same
// descriptors as before, and nothing left in TMPDIR, which is a fresh empty directory for
// the run (where Listener and the managers put their sockets). /dev/shm is not compared
// here: mp's own segments are unnamed memfds, named blocks are SharedMemory's alone, and
// under a parallel ctest other tests' blocks come and go there; the suite-wide check
// (tests/resources.cmake) covers it.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <type_traits>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "helpers/support.hpp"

namespace mp_test {

/// UBSan's vptr check opens a pipe to test whether memory is readable, and with no
/// descriptor free reports every polymorphic call it has not cached as a bad object (GCC's
/// asan-ubsan preset defines only __SANITIZE_ADDRESS__, hence that test).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitizerNeedsDescriptors = true;
#else
inline constexpr bool kSanitizerNeedsDescriptors = false;
#endif
inline constexpr const char* kSanitizerSkipReason =
    "UBSan's vptr check needs a free descriptor, and this test leaves none";


inline std::set<std::string> dir_entries(const std::string& dir) {
  std::set<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.insert(e->d_name);
    closedir(d);
  }
  return out;
}

struct ExhaustionResult {
  int failures = -1;    // constructions that threw before one succeeded
  bool succeeded = false;
  std::string problem;  // the first leak found, or what went wrong; empty if none
};

/// Runs `construct` under rising descriptor limits in a forked process; see the file
/// comment. At most `max_steps` limits. `construct` may return what it built (a
/// std::unique_ptr): that is then never destroyed, the process exits with it alive. Use it
/// for objects whose children inherit the lowered limit and so could not shut down
/// promptly; such children must end with their parent (daemons do: parent-death signal).
template <class F>
ExhaustionResult construct_out_of_descriptors(F construct, int max_steps = 64) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return {-1, false, "pipe2 failed"};
  const pid_t child = ::fork();
  if (child < 0) return {-1, false, "fork failed"};
  if (child == 0) {
    ::close(pipe_fds[0]);
    const char* outer = std::getenv("TMPDIR");
    std::string tmp = std::string(outer && *outer ? outer : "/tmp") + "/mp-exhaustion-XXXXXX";
    if (!::mkdtemp(tmp.data())) ::_exit(3);
    ::setenv("TMPDIR", tmp.c_str(), 1);
    auto report = [&](int failures, bool ok, const std::string& problem) {
      std::error_code ignored;
      std::filesystem::remove_all(tmp, ignored);
      std::string msg = std::to_string(failures) + " " + (ok ? "1" : "0") + " " + problem.substr(0, 3000);
      (void)!::write(pipe_fds[1], msg.data(), msg.size());
      ::_exit(0);
    };
    rlimit original{};
    ::getrlimit(RLIMIT_NOFILE, &original);
    const int fds_before = open_fd_count();
    const int lowest_free = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
    if (lowest_free < 0) report(-1, false, "no descriptor free to begin with");
    ::close(lowest_free);
    int failures = 0;
    for (int k = 0; k < max_steps; ++k) {
      rlimit lowered{static_cast<rlim_t>(lowest_free + k), original.rlim_max};
      if (::setrlimit(RLIMIT_NOFILE, &lowered) != 0) report(failures, false, "setrlimit failed");
      bool ok = false;
      std::shared_ptr<void> kept;
      std::exception_ptr error;
      try {
        if constexpr (std::is_void_v<decltype(construct())>)
          construct();
        else
          kept = std::shared_ptr<void>(construct());
        ok = true;
      } catch (...) {
        error = std::current_exception();  // looked at only below: UBSan's checks need a pipe
      }
      ::setrlimit(RLIMIT_NOFILE, &original);
      std::string what;
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
          what = "not a std::exception";
        }
      }
      if (ok) report(failures, true, "");
      ++failures;
      const std::string at = " after failure " + std::to_string(failures) + " (" + what + ")";
      if (int n = child_processes(); n != 0) report(failures, false, std::to_string(n) + " child process(es) left" + at);
      if (int n = open_fd_count(); n != fds_before)
        report(failures, false, std::to_string(n - fds_before) + " descriptor(s) leaked" + at);
      if (auto left = dir_entries(tmp); !left.empty())
        report(failures, false, "'" + *left.begin() + "' left in TMPDIR" + at);
    }
    report(failures, false, "never succeeded within " + std::to_string(max_steps) + " descriptors");
  }
  ::close(pipe_fds[1]);
  // One read: the report is one write below PIPE_BUF, so it arrives whole. Reading to EOF
  // instead would wait for any leaked worker that inherited the pipe.
  std::string msg;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buf, sizeof buf)) < 0 && errno == EINTR) {
  }
  if (n > 0) msg.assign(buf, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ExhaustionResult r;
  std::istringstream in(msg);
  int ok = 0;
  if (!(in >> r.failures >> ok)) return {-1, false, "the test process died: status " + std::to_string(status)};
  r.succeeded = ok == 1;
  std::getline(in, r.problem);
  if (!r.problem.empty() && r.problem[0] == ' ') r.problem.erase(0, 1);
  return r;
}

}  // namespace mp_test
