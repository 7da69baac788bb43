// Small utilities for mp's tests: running programs and inspecting this process.
#pragma once

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mp_test {

struct RunResult {
  int exit_code;  // -signal if killed
  std::string out;  // stdout and stderr, interleaved
};

/// Runs a shell command, captures stdout+stderr. For driving example programs.
inline RunResult run(const std::string& cmd) {
  std::string full = cmd + " 2>&1";
  FILE* f = ::popen(full.c_str(), "r");
  if (!f) throw std::runtime_error("popen failed: " + cmd);
  RunResult r{0, {}};
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) r.out.append(buf.data(), n);
  int st = ::pclose(f);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  return r;
}

/// Path of a built example program.
inline std::string example(const std::string& name) {
  std::string path = MP_EXAMPLES_DIR;  // built up in place: GCC 12 misreports `string + "/" + name` (-Wstringop-overflow)
  path += '/';
  path += name;
  return path;
}

/// Number of occurrences of `needle` in `hay`.
inline int count(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + needle.size())) ++n;
  return n;
}

inline int open_fd_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n - 1;  // the DIR's own fd
}

/// Children of this process, running or not yet reaped (or, with `zombies_only`, only those
/// that have exited but were not reaped).
inline int child_processes(bool zombies_only = false) {
  int n = 0;
  pid_t me = ::getpid();
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
      std::string line;
      if (!std::getline(f, line)) continue;
      auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      char state;
      pid_t ppid;
      rest >> state >> ppid;
      if (ppid == me && (!zombies_only || state == 'Z')) ++n;
    }
    closedir(d);
  }
  return n;
}

/// Children of this process that have exited but were not reaped.
inline int zombie_children() {
  return child_processes(/*zombies_only=*/true);
}

/// The fields of /proc/<pid>/stat after the command name ("S 1234 ..."), or "".
inline std::string proc_stat_rest(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return {};
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() ? std::string() : line.substr(close + 2);
}

/// State letter of a process from /proc (R, S, Z...), or 0 if it does not exist.
inline char proc_state(pid_t pid) {
  std::string rest = proc_stat_rest(pid);
  return rest.empty() ? 0 : rest[0];
}

/// The parent pid of a process from /proc, or 0 if it does not exist.
inline pid_t parent_of(pid_t pid) {
  std::istringstream rest(proc_stat_rest(pid));
  char state = 0;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

/// A pipe whose read end workers block on (a task reading gate.fd()) until release()
/// writes one byte per waiter: holds children inside a task without sleeping.
struct Gate {
  int fds[2];
  Gate() {
    if (::pipe(fds) != 0) throw std::runtime_error("Gate: pipe() failed");
  }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fd() const { return fds[0]; }
  void release(int n = 1) {
    for (int i = 0; i < n; ++i)
      if (::write(fds[1], "x", 1) != 1) throw std::runtime_error("Gate: write() failed");
  }
};

}  // namespace mp_test
