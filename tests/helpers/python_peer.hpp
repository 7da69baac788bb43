// A python3 child (`python3 -u <args...>`) whose stdout and stderr the test reads line by
// line: the real CPython peer of the interop tests.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace mp_test {

class PythonPeer {
 public:
  explicit PythonPeer(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    out_ = fds[0];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    std::vector<std::string> argv_s{"python3", "-u"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) throw std::runtime_error("cannot start python3");
  }
  PythonPeer(const PythonPeer&) = delete;
  PythonPeer& operator=(const PythonPeer&) = delete;
  ~PythonPeer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }
  /// The next line printed (without '\n'); "" at end of output.
  std::string line() {
    std::string s;
    char c;
    for (;;) {
      ssize_t n = ::read(out_, &c, 1);
      if (n != 1) {
        eof_ = true;
        break;
      }
      if (c == '\n') break;
      s += c;
    }
    all_ += s + "\n";
    return s;
  }
  /// Reads lines until one starts with `prefix`; returns the rest of it ("" at end of output).
  std::string wait_for(const std::string& prefix) {
    while (!eof_) {
      std::string s = line();
      if (s.starts_with(prefix)) return s.substr(prefix.size());
    }
    return {};
  }
  /// Waits for the end: its exit code (-signal); all() then holds everything it printed.
  int finish() {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out_, buf, sizeof buf)) > 0) all_.append(buf, static_cast<std::size_t>(n));
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  }
  [[nodiscard]] const std::string& all() const { return all_; }

 private:
  bool eof_ = false;
  pid_t pid_ = -1;
  int out_ = -1;
  std::string all_;
};

}  // namespace mp_test
