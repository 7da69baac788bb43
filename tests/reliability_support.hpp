// Helpers for the reliability tests (reliability_*_test.cpp, security_test.cpp): memory
// shared across fork, waiting on processes that are not our children, and printing the
// figures each test reports.
#pragma once

#include <dirent.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mp/internal/fd.hpp"

namespace mp_rel {

/// The seed of every random kill point: a failure reproduces with the same sequence.
inline constexpr unsigned long long kSeed = 20261123;
/// The safety net for waits on real events. Never reached when the code works.
inline constexpr auto kSafety = std::chrono::seconds(60);

/// n default-constructed T in an anonymous MAP_SHARED mapping: forked children write the
/// same memory. T must be usable across processes (atomics, plain data).
template <class T>
class SharedArray {
 public:
  explicit SharedArray(std::size_t n) : n_(n) {
    void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    p_ = static_cast<T*>(p);
    for (std::size_t i = 0; i < n_; ++i) new (p_ + i) T();
  }
  SharedArray(const SharedArray&) = delete;
  SharedArray& operator=(const SharedArray&) = delete;
  ~SharedArray() { ::munmap(p_, bytes()); }
  T& operator[](std::size_t i) const noexcept { return p_[i]; }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  /// Re-initialises every element (between iterations, no child running).
  void reset() {
    for (std::size_t i = 0; i < n_; ++i) {
      p_[i].~T();
      new (p_ + i) T();
    }
  }

 private:
  std::size_t bytes() const noexcept { return (n_ * sizeof(T) + 4095) / 4096 * 4096; }
  T* p_ = nullptr;
  std::size_t n_;
};

/// Waits (spinning, yielding the CPU) until `done()` holds; false if the safety net passed.
template <class F>
bool spin_until(F done) {
  auto deadline = std::chrono::steady_clock::now() + kSafety;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

/// A pidfd for `pid` (-1 if it is already gone). Opened while the process is known to
/// exist (its parent has not reaped it), so it can never refer to a recycled pid.
inline mp::internal::UniqueFd pidfd(pid_t pid) {
  return mp::internal::UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

/// Waits until the process behind `fd` has ended (a pidfd becomes readable then), at most
/// the safety net. True when it ended.
inline bool wait_exited(const mp::internal::UniqueFd& fd) {
  if (!fd) return true;
  pollfd p{fd.get(), POLLIN, 0};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(kSafety).count();
  return ::poll(&p, 1, static_cast<int>(ms)) == 1;
}

/// Parent pid of `pid` from /proc, or 0 if it does not exist.
inline pid_t parent_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  char state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

/// Every process whose parent is this process (zombies included).
inline std::vector<pid_t> children_of_self() {
  std::vector<pid_t> out;
  pid_t me = ::getpid();
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      pid_t pid = std::stoi(e->d_name);
      if (parent_of(pid) == me) out.push_back(pid);
    }
    ::closedir(d);
  }
  return out;
}

/// Makes this process the reaper of its orphaned descendants while in scope, so a test
/// can wait for (and reap) every process a killed child left behind.
class Subreaper {
 public:
  Subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
  Subreaper(const Subreaper&) = delete;
  Subreaper& operator=(const Subreaper&) = delete;
  ~Subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

/// Prints one figure line to the test output ("[ figure ] ...").
template <class... A>
void figure(const char* fmt, A... a) {
  std::printf("[ figure   ] ");
  std::printf(fmt, a...);
  std::printf("\n");
  std::fflush(stdout);
}

inline bool under_tsan() {
#if defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return true;
#endif
#endif
  return false;
}

/// True in the ASan and TSan builds, whose forks and exits cost several times the release build's.
inline bool under_sanitizer() {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
  return true;
#endif
#endif
  return false;
}

/// Milliseconds between two steady_clock points (for printed figures, never asserted).
inline double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace mp_rel
