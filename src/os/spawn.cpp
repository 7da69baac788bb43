// posix_spawn, pipes and child reaping for mp::subprocess. See mp/internal/spawn.hpp.
#include "mp/internal/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace mp::internal {

namespace {

/// RAII for the posix_spawn attribute and file-action objects.
struct SpawnSetup {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  bool fa_ok = false, attr_ok = false;
  ~SpawnSetup() {
    if (fa_ok) posix_spawn_file_actions_destroy(&fa);
    if (attr_ok) posix_spawnattr_destroy(&attr);
  }
};

int redirect(posix_spawn_file_actions_t* fa, const ChildFd& c, int target) noexcept {
  switch (c.kind) {
    case ChildFd::Kind::inherit: return 0;
    case ChildFd::Kind::fd: return posix_spawn_file_actions_adddup2(fa, c.fd, target);
    case ChildFd::Kind::devnull:
      return posix_spawn_file_actions_addopen(fa, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0);
    case ChildFd::Kind::same_as_stdout: return posix_spawn_file_actions_adddup2(fa, 1, target);
  }
  return EINVAL;
}

}  // namespace

int spawn(const SpawnRequest& req, pid_t* pid) noexcept {
  SpawnSetup s;
  if (int e = posix_spawn_file_actions_init(&s.fa)) return e;
  s.fa_ok = true;
  if (int e = posix_spawnattr_init(&s.attr)) return e;
  s.attr_ok = true;

  // Python's restore_signals: an ignored SIGPIPE/SIGXFSZ would otherwise survive exec.
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGXFSZ);
  short flags = POSIX_SPAWN_SETSIGDEF;
  if (req.new_session) flags |= POSIX_SPAWN_SETSID;
  if (int e = posix_spawnattr_setsigdefault(&s.attr, &def)) return e;
  if (int e = posix_spawnattr_setflags(&s.attr, flags)) return e;

  // Order matters: the sources of dup2 are >= 3 (make_pipe/dup_high), so 0/1/2 can be
  // filled in any order; stderr=STDOUT must come after stdout is in place.
  if (int e = redirect(&s.fa, req.in, 0)) return e;
  if (int e = redirect(&s.fa, req.out, 1)) return e;
  if (int e = redirect(&s.fa, req.err, 2)) return e;
  for (std::size_t i = 0; i < req.n_pass_fds; ++i)  // dup2(fd, fd) clears FD_CLOEXEC (glibc >= 2.29)
    if (int e = posix_spawn_file_actions_adddup2(&s.fa, req.pass_fds[i], req.pass_fds[i])) return e;
  if (req.close_fds) {
    // Descriptors opened without O_CLOEXEC elsewhere in the program must not leak into the
    // child: close everything >= 3 except pass_fds (close_range() in the child).
    int low = 3;
    for (std::size_t i = 0; i < req.n_pass_fds; ++i) {
      for (int fd = low; fd < req.pass_fds[i]; ++fd)
        if (int e = posix_spawn_file_actions_addclose(&s.fa, fd)) return e;
      low = req.pass_fds[i] + 1;
    }
    if (int e = posix_spawn_file_actions_addclosefrom_np(&s.fa, low)) return e;
  }
  if (req.cwd)
    if (int e = posix_spawn_file_actions_addchdir_np(&s.fa, req.cwd)) return e;

  char* const* envp = req.envp ? req.envp : environ;
  bool use_path = req.search_path && !std::strchr(req.path, '/');
  return use_path ? posix_spawnp(pid, req.path, &s.fa, &s.attr, req.argv, envp)
                  : posix_spawn(pid, req.path, &s.fa, &s.attr, req.argv, envp);
}

int set_nonblocking(int fd, bool on) noexcept {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return errno;
  int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (want != fl && ::fcntl(fd, F_SETFL, want) < 0) return errno;
  return 0;
}

void grow_pipe(int fd, std::size_t bytes) noexcept {
  int cur = ::fcntl(fd, F_GETPIPE_SZ);
  if (cur >= 0 && static_cast<std::size_t>(cur) < bytes) ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(bytes));
}

int find_on_path(const char* name, const char* path, char* out, std::size_t out_size) noexcept {
  if (!path || !*path) path = "/bin:/usr/bin";
  std::size_t nlen = std::strlen(name);
  int result = ENOENT;
  for (const char* p = path;; ++p) {
    const char* end = std::strchr(p, ':');
    std::size_t dlen = end ? static_cast<std::size_t>(end - p) : std::strlen(p);
    if (dlen == 0) {  // an empty entry means the current directory, as in execvp
      if (nlen + 1 <= out_size) std::memcpy(out, name, nlen + 1);
    } else if (dlen + 1 + nlen + 1 <= out_size) {
      std::memcpy(out, p, dlen);
      out[dlen] = '/';
      std::memcpy(out + dlen + 1, name, nlen + 1);
    } else {
      if (!end) break;
      p = end;
      continue;
    }
    if (::access(out, X_OK) == 0) return 0;
    if (errno == EACCES) result = EACCES;  // exists but not executable: keep looking, like execvp
    if (!end) break;
    p = end;
  }
  return result;
}

int try_reap(pid_t pid, int* status) noexcept {
  for (;;) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int wait_child(pid_t pid, UniqueFd& pidfd, Deadline deadline, int* status) noexcept {
  if (!deadline) {
    for (;;) {
      if (::waitpid(pid, status, 0) == pid) return 1;
      if (errno != EINTR) return -errno;
    }
  }
  for (;;) {
    if (int r = try_reap(pid, status)) return r;
    auto left = *deadline - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    if (!pidfd) pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (pidfd) {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      pollfd p{pidfd.get(), POLLIN, 0};
      ::ppoll(&p, 1, &ts, nullptr);  // readable once the child has exited; EINTR just loops
    } else {
      // No pidfd (kernel < 5.3 or out of fds): fall back to short naps.
      std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(2)));
    }
  }
}

SigpipeGuard::SigpipeGuard() noexcept {
  sigset_t pipe_set, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  if (::sigpending(&pending) == 0) was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_);
}

SigpipeGuard::~SigpipeGuard() {
  if (epipe_ && !was_pending_ && !sigismember(&old_, SIGPIPE)) {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    timespec zero{0, 0};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

// ------------------------------------------------------------------------------ the reaper

namespace {

/// Children whose Popen was destroyed while they ran. A detached thread, alive only while
/// this list is non-empty, waits on their pidfds and reaps each as it exits. Leaked on
/// purpose (the thread may outlive static destruction).
struct Reaper {
  std::mutex mu;
  std::vector<pid_t> pids;
  bool running = false;
  UniqueFd wake;  // eventfd: "the list changed"
};

Reaper& reaper() {
  static Reaper* r = [] {
    auto* p = new Reaper;
    ::pthread_atfork([] { reaper().mu.lock(); }, [] { reaper().mu.unlock(); },
                     [] {
                       // The orphans are our parent's children, and the thread did not survive fork().
                       Reaper& rr = reaper();
                       rr.pids.clear();
                       rr.running = false;
                       rr.wake.reset();
                       rr.mu.unlock();
                     });
    return p;
  }();
  return *r;
}

void reaper_loop() noexcept {
  Reaper& r = reaper();
  std::vector<std::pair<pid_t, UniqueFd>> watched;
  std::vector<pollfd> pfds;
  for (;;) {
    int wake_fd;
    {
      std::lock_guard g(r.mu);
      // Pick up new orphans; drop the ones reaped.
      for (pid_t p : r.pids)
        if (std::none_of(watched.begin(), watched.end(), [p](auto& w) { return w.first == p; }))
          watched.emplace_back(p, UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, p, 0))));
      std::erase_if(watched, [&](auto& w) {
        int st;
        bool gone = try_reap(w.first, &st) != 0;
        if (gone) std::erase(r.pids, w.first);
        return gone;
      });
      if (r.pids.empty()) {
        r.running = false;
        r.wake.reset();
        return;
      }
      wake_fd = r.wake.get();
      uint64_t drain;
      while (::read(wake_fd, &drain, sizeof drain) > 0) {
      }
    }
    pfds.clear();
    pfds.push_back({wake_fd, POLLIN, 0});
    bool all_pidfds = true;
    for (auto& w : watched) {
      if (w.second) pfds.push_back({w.second.get(), POLLIN, 0});
      else all_pidfds = false;
    }
    ::poll(pfds.data(), pfds.size(), all_pidfds ? -1 : 20);
  }
}

}  // namespace

void adopt_orphan(pid_t pid) noexcept {
  Reaper& r = reaper();
  std::lock_guard g(r.mu);
  try {
    r.pids.push_back(pid);
    if (r.running) {
      uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(r.wake.get(), &one, sizeof one);
      return;
    }
    r.wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!r.wake) {
      r.pids.pop_back();
      return;  // out of fds: the child stays a zombie until this process exits
    }
    std::thread(reaper_loop).detach();
    r.running = true;
  } catch (...) {
    // Out of memory or threads: same as above, the child is reaped when we exit.
    if (!r.pids.empty() && r.pids.back() == pid) r.pids.pop_back();
    r.wake.reset();
  }
}

}  // namespace mp::internal
