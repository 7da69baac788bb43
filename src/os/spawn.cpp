// Spawning (clone + exec), pipes and child reaping for mp::subprocess. See src/os/spawn.hpp.
#include "os/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace mp::internal {

namespace {

// spawn() is clone(CLONE_VM | CLONE_VFORK) + execve, written out rather than glibc's
// posix_spawn for one reason: cost. glibc's child (2.36) sets the disposition of *every*
// signal (rt_sigaction to read it, and again to write it: ~122 system calls per spawn),
// and each call maps and unmaps a fresh child stack. Here the child reads only the
// signals that will be unblocked at exec and writes only those that have a handler — the
// handlers are the only danger, since the child shares our memory until it execs — like
// CPython's _posixsubprocess. The rest is posix_spawn's contract: the parent is suspended
// until the exec (CLONE_VFORK), exec errors come back as a value (the child stores its
// errno in our memory before exiting), no allocation and no libc state in the child:
// only raw system calls, on a stack of its own, mapped once per spawning thread.

/// The kernel's struct sigaction (rt_sigaction is called directly, not through glibc).
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  std::uint64_t mask;
};

/// Everything the child reads, prepared by the parent.
struct ChildArgs {
  const SpawnRequest* req;
  const char* const* candidates;  // program paths to try in order, null-terminated
  char* const* envp;
  std::uint64_t unblocked;      // bit sig-1: not blocked in the parent, so unblocked at exec
  std::uint64_t parent_mask;    // the kernel sigset to restore before exec
  std::atomic<int> err{0};      // written by a failing child before it exits
};

/// The child, between clone and exec. No sanitizer instrumentation (it runs on a foreign
/// stack with the parent's thread state), no libc call but syscall() (whose errno lands
/// in the suspended parent thread's errno, which nobody reads).
__attribute__((no_sanitize("address", "thread", "undefined"))) int child_main(void* arg) noexcept {
  auto* a = static_cast<ChildArgs*>(arg);
  const SpawnRequest& req = *a->req;
  long r = 0;
  int err = 0;
  // A handler of ours must never run here (it would run on our memory): every signal
  // that exec will unblock and that has a handler goes back to SIG_DFL. Blocked ones
  // stay blocked until exec, which resets their handlers itself. Python's restore_signals:
  // SIGPIPE and SIGXFSZ to SIG_DFL even when ignored.
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    bool restore = sig == SIGPIPE || sig == SIGXFSZ;
    if (!restore) {
      if (!(a->unblocked >> (sig - 1) & 1)) continue;
      KernelSigaction cur{};
      if (::syscall(SYS_rt_sigaction, sig, nullptr, &cur, sizeof cur.mask) != 0) continue;
      if (cur.handler == SIG_DFL || cur.handler == SIG_IGN) continue;
    }
    KernelSigaction dfl{};
    dfl.handler = SIG_DFL;
    ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof dfl.mask);
  }
  if (req.new_session && ::syscall(SYS_setsid) < 0) goto fail;
  // 0, 1, 2 in order: the sources are >= 3 (make_pipe/dup_high), so no target clobbers a
  // source; stderr = STDOUT comes after stdout is in place.
  for (int target = 0; target < 3; ++target) {
    const ChildFd& c = target == 0 ? req.in : target == 1 ? req.out : req.err;
    switch (c.kind) {
      case ChildFd::Kind::inherit: break;
      case ChildFd::Kind::fd:
        if (::syscall(SYS_dup3, c.fd, target, 0) < 0) goto fail;
        break;
      case ChildFd::Kind::same_as_stdout:
        if (::syscall(SYS_dup3, 1, target, 0) < 0) goto fail;
        break;
      case ChildFd::Kind::devnull:
        r = ::syscall(SYS_openat, AT_FDCWD, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0);
        if (r < 0) goto fail;
        if (r != target) {
          if (::syscall(SYS_dup3, static_cast<int>(r), target, 0) < 0) goto fail;
          ::syscall(SYS_close, static_cast<int>(r));
        }
        break;
    }
  }
  for (std::size_t i = 0; i < req.n_pass_fds; ++i)  // kept open across exec
    if (::syscall(SYS_fcntl, req.pass_fds[i], F_SETFD, 0) < 0) goto fail;
  if (req.close_fds) {
    // Descriptors opened without O_CLOEXEC elsewhere in the program must not leak into
    // the child: close everything >= 3 except pass_fds.
    unsigned low = 3;
    for (std::size_t i = 0; i <= req.n_pass_fds; ++i) {
      unsigned high = i < req.n_pass_fds ? static_cast<unsigned>(req.pass_fds[i]) - 1 : ~0U;
      if (low <= high && ::syscall(SYS_close_range, low, high, 0) < 0) {
        if (errno != ENOSYS) goto fail;
        // Kernel < 5.9: one close() per possible descriptor up to the limit.
        struct rlimit64_ { std::uint64_t cur, max; } lim{};
        ::syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, nullptr, &lim);
        std::uint64_t top = std::min<std::uint64_t>(high, lim.cur ? lim.cur - 1 : 1023);
        for (std::uint64_t fd = low; fd <= top; ++fd) ::syscall(SYS_close, static_cast<int>(fd));
      }
      if (i < req.n_pass_fds) low = static_cast<unsigned>(req.pass_fds[i]) + 1;
    }
  }
  if (req.cwd && ::syscall(SYS_chdir, req.cwd) < 0) goto fail;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &a->parent_mask, nullptr, sizeof a->parent_mask);
  {
    // execvp's search: go on past missing entries (and remember a program found but not
    // executable); any other failure is the answer.
    bool eacces = false;
    for (const char* const* c = a->candidates; *c; ++c) {
      ::syscall(SYS_execve, *c, req.argv, a->envp);
      err = errno;
      if (err == EACCES) eacces = true;
      else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV && err != ETIMEDOUT) break;
    }
    if (eacces && err != EACCES && (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT))
      err = EACCES;
    a->err.store(err ? err : ENOEXEC, std::memory_order_relaxed);
    ::syscall(SYS_exit_group, 127);
  }
fail:
  a->err.store(errno ? errno : EINVAL, std::memory_order_relaxed);
  ::syscall(SYS_exit_group, 127);
  return 127;
}

/// The child's stack: one per spawning thread, reused (the child only runs until exec,
/// and the spawning thread is suspended meanwhile, so one at a time per thread).
struct ChildStack {
  static constexpr std::size_t kSize = 64 * 1024;
  void* base = nullptr;
  ~ChildStack() {
    if (base) ::munmap(base, kSize);
  }
  void* top() noexcept {
    if (!base) {
      void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (p == MAP_FAILED) return nullptr;
      base = p;
    }
    return static_cast<char*>(base) + kSize;
  }
};

/// The programs execve will try: `path` itself, or each PATH entry joined with it
/// (execvp's rules: an empty entry is the current directory).
int build_candidates(const SpawnRequest& req, std::string& store, std::vector<const char*>& out) noexcept {
  try {
    if (!req.search_path || std::strchr(req.path, '/') || !*req.path) {
      out.push_back(req.path);
      out.push_back(nullptr);
      return 0;
    }
    const char* path = std::getenv("PATH");
    if (!path) path = "/bin:/usr/bin";
    std::string_view name(req.path);
    std::vector<std::size_t> offsets;
    for (std::string_view rest(path);;) {
      auto colon = rest.find(':');
      std::string_view dir = rest.substr(0, colon);
      offsets.push_back(store.size());
      if (!dir.empty()) store.append(dir).push_back('/');
      store.append(name).push_back('\0');
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    for (std::size_t off : offsets) out.push_back(store.data() + off);
    out.push_back(nullptr);
    return 0;
  } catch (...) {
    return ENOMEM;
  }
}

/// clone + execve (see the comment at the top of this namespace).
[[maybe_unused]] int spawn_clone(const SpawnRequest& req, pid_t* pid) noexcept {
  static thread_local ChildStack stack;
  std::string store;
  std::vector<const char*> candidates;
  if (int e = build_candidates(req, store, candidates)) return e;
  void* top = stack.top();
  if (!top) return ENOMEM;

  ChildArgs a;
  a.req = &req;
  a.candidates = candidates.data();
  a.envp = req.envp ? req.envp : environ;
  // Block every signal (glibc's internal ones too, hence the system call) so that none is
  // handled in the child before it has reset the handlers; the parent's mask comes back
  // right after clone returns.
  std::uint64_t all = ~std::uint64_t{0}, old = 0;
  if (::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof old) != 0) return errno;
  a.parent_mask = old;
  a.unblocked = ~old;
  pid_t p = ::clone(child_main, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  int clone_err = errno;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
  if (p < 0) return clone_err;
  // CLONE_VFORK: we run again only once the child has exec'd or exited.
  if (int e = a.err.load(std::memory_order_relaxed)) {
    while (::waitpid(p, nullptr, 0) < 0 && errno == EINTR) {
    }
    return e;
  }
  *pid = p;
  return 0;
}

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

/// posix_spawn(p) doing the same job (see spawn() for when it is used).
[[maybe_unused]] int spawn_posix(const SpawnRequest& req, pid_t* pid) noexcept {
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

/// spawn_clone, or spawn_posix under ThreadSanitizer.
int spawn_positive(const SpawnRequest& req, pid_t* pid) noexcept {
  // ThreadSanitizer intercepts clone() as if it were fork(): in a CLONE_VM child that
  // "after fork" bookkeeping rewrites state shared with the parent, which then reports
  // false races (its mutexes forgotten). Under TSan the job goes to glibc's posix_spawn,
  // whose internal clone it does not see; every other build uses spawn_clone.
#if defined(__SANITIZE_THREAD__)
  return spawn_posix(req, pid);
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return spawn_posix(req, pid);
#else
  return spawn_clone(req, pid);
#endif
#else
  return spawn_clone(req, pid);
#endif
}

}  // namespace

int spawn(const SpawnRequest& req, pid_t* pid) noexcept {
  // The helpers above speak posix_spawn's language (a positive error number, which is
  // also what the vfork child stores); the layer's -errno is applied here, once.
  return -spawn_positive(req, pid);
}

int set_nonblocking(int fd, bool on) noexcept {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (want != fl && ::fcntl(fd, F_SETFL, want) < 0) return -errno;
  return 0;
}

void grow_pipe(int fd, std::size_t bytes) noexcept {
  int cur = ::fcntl(fd, F_GETPIPE_SZ);
  if (cur >= 0 && static_cast<std::size_t>(cur) < bytes) ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(bytes));
}

std::size_t pipe_available(int fd) noexcept {
  int n = 0;
  return ::ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? static_cast<std::size_t>(n) : 0;
}

void prefault_writable(void* p, std::size_t n) noexcept {
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14; older headers lack the name
#endif
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
  auto end = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}

int find_on_path(const char* name, const char* path, char* out, std::size_t out_size) noexcept {
  if (!path || !*path) path = "/bin:/usr/bin";
  std::size_t nlen = std::strlen(name);
  int result = -ENOENT;
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
    if (errno == EACCES) result = -EACCES;  // exists but not executable: keep looking, like execvp
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
