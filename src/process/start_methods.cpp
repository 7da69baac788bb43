// Start methods: fork (default, in process.cpp) and forkserver (here). See
// set_start_method() and the header comment of mp/process.hpp.
//
// The fork server is a fork() of this program made by set_start_method(forkserver), while
// the program is (supposedly) single-threaded. It never runs user code itself; it only
// forks. Protocol, all over AF_UNIX sockets:
//
//   owner --control (SOCK_STREAM)--> server:  RequestHeader + SCM_RIGHTS[status socket,
//                                             stdin?, stdout?, stderr?, ServerCall::fds...],
//                                             then the name, parent name and argument
//                                             payload bytes.
//   server --status (SOCK_SEQPACKET, one per child)--> owner:
//       1. int32 pid (or -errno if fork failed) + SCM_RIGHTS[pidfd of the child]
//       2. int32 wait status, once the server has reaped the child; then EOF.
//
// The owner keeps the status socket as the child's sentinel and the pidfd to send it
// signals (a pidfd works for a process that is not our child and never hits a recycled
// pid). The server dies with its owner: PR_SET_PDEATHSIG, a getppid() check right after
// fork, and EOF on the control socket (it then stops accepting, reports the children that
// remain and exits). It reaps every child it forks (SIGCHLD through a signalfd).
#include <dirent.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

#include "mp/internal/os.hpp"
#include "os/file.hpp"
#include "os/process.hpp"
#include "process/internal.hpp"

namespace mp {

namespace {

using internal::UniqueFd;
using namespace std::chrono_literals;

constexpr std::uint32_t kMagic = 0x6d706673;  // "mpfs"
constexpr std::uint32_t kDaemon = 1u << 0;
constexpr std::uint32_t kHasStdio0 = 1u << 1;  // kHasStdio0 << n: fd n follows
constexpr std::size_t kMaxName = 4096;
constexpr std::uint64_t kMaxPayload = std::uint64_t{1} << 32;
/// How long exit waits for a stopped server before killing it.
constexpr auto kServerExitWait = 10s;

struct RequestHeader {
  std::uint32_t magic;
  std::uint32_t flags;
  std::uint64_t trampoline;  // address of a function of this binary, valid in the server
  std::int32_t parent_pid;
  std::uint32_t name_len;
  std::uint32_t parent_name_len;
  std::uint32_t extra_fds;  // ServerCall::fds, after the stdio fds
  std::uint64_t payload_len;
};

struct Server {
  pid_t pid = 0;
  UniqueFd control;
  UniqueFd pidfd;
};

struct Globals {
  std::mutex mu;  // guards everything below and serialises requests on the control socket
  std::atomic<StartMethod> method{StartMethod::fork};
  bool method_set = false;
  std::optional<Server> server;
  std::vector<Server> retired;  // stopped while their children still ran; reaped later
};

Globals& globals() {
  static auto* g = new Globals;  // never destroyed: used by exit handlers
  return *g;
}

/// A pidfd for `pid`, or -1 when there is none (old kernel, out of descriptors).
int pidfd_open(pid_t pid) noexcept { return std::max(internal::open_pidfd(pid), -1); }

bool fd_is_open(int fd) noexcept { return internal::fd_flags(fd) >= 0; }

/// Sends all of `len` bytes; false on error (EPIPE when the peer is gone: no SIGPIPE).
bool send_all(int fd, const void* data, std::size_t len) noexcept {
  auto* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = internal::socket_send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (n == -EINTR) continue;
      return false;
    }
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads exactly `len` bytes; false on EOF or error.
bool read_all(int fd, void* data, std::size_t len) noexcept {
  auto* p = static_cast<char*>(data);
  while (len > 0) {
    ssize_t n = internal::read_from(fd, p, len);
    if (n == -EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

constexpr std::size_t kMaxRequestFds = 4 + internal::kMaxServerFds;  // status, stdio, ServerCall::fds

/// sendmsg() of `len` bytes with `fds` attached to the first byte.
bool send_with_fds(int sock, const void* data, std::size_t len, const int* fds, std::size_t nfds) noexcept {
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxRequestFds)]{};
  iovec iov{const_cast<void*>(data), len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (nfds > 0) {
    m.msg_control = cbuf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = internal::socket_sendmsg(sock, &m, MSG_NOSIGNAL);
  while (n == -EINTR);
  if (n < 0) return false;
  // A stream socket may take part of it; the fds went with the first byte.
  return static_cast<std::size_t>(n) == len ||
         send_all(sock, static_cast<const char*>(data) + n, len - static_cast<std::size_t>(n));
}

/// recvmsg() of up to `len` bytes, collecting up to kMaxRequestFds fds (close-on-exec).
/// Returns the byte count (0 on EOF, -1 on error).
ssize_t recv_with_fds(int sock, void* data, std::size_t len, std::vector<int>& fds) noexcept {
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxRequestFds)]{};
  iovec iov{data, len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = cbuf;
  m.msg_controllen = sizeof cbuf;
  ssize_t n;
  do n = internal::socket_recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  while (n == -EINTR);
  if (n < 0) return -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < k; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  return n;
}

// ------------------------------------------------------------------------- the server side

struct Request {
  RequestHeader h{};
  std::vector<int> fds;  // [status socket, the stdio fds named by flags..., extra fds...]
  std::string name, parent_name, payload;
};

/// 1: a request; 0: EOF (the owner is gone or stopped us); -1: broken stream.
int read_request(int control, Request& r) {
  ssize_t n = recv_with_fds(control, &r.h, sizeof r.h, r.fds);
  if (n == 0) return 0;
  if (n < 0) return -1;
  if (!read_all(control, reinterpret_cast<char*>(&r.h) + n, sizeof r.h - static_cast<std::size_t>(n))) return -1;
  std::size_t want_fds = 1;
  for (int i = 0; i < 3; ++i) want_fds += (r.h.flags & (kHasStdio0 << i)) != 0;
  want_fds += r.h.extra_fds;
  if (r.h.magic != kMagic || r.h.extra_fds > internal::kMaxServerFds || r.fds.size() != want_fds ||
      r.h.name_len > kMaxName || r.h.parent_name_len > kMaxName || r.h.payload_len > kMaxPayload)
    return -1;
  r.name.resize(r.h.name_len);
  r.parent_name.resize(r.h.parent_name_len);
  r.payload.resize(r.h.payload_len);
  if (!read_all(control, r.name.data(), r.name.size()) ||
      !read_all(control, r.parent_name.data(), r.parent_name.size()) ||
      !read_all(control, r.payload.data(), r.payload.size()))
    return -1;
  return 1;
}

/// Closes every fd the server inherited except stdio, `keep`, and memfd segments (they
/// back mp objects created before set_start_method(), which the children may use).
/// opendir/readdir stay here: libc's directory stream, not a system call of the OS layer.
void close_inherited_fds(int keep) noexcept {
  std::vector<int> to_close;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    int dir_fd = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      int fd = std::atoi(e->d_name);
      if (fd <= 2 || fd == keep || fd == dir_fd) continue;
      char link[64];
      std::string path = std::string("/proc/self/fd/") + e->d_name;
      ssize_t n = internal::read_link(path.c_str(), link, sizeof link - 1);
      if (n > 0 && std::string_view(link, static_cast<std::size_t>(n)).starts_with("/memfd:")) continue;
      to_close.push_back(fd);
    }
    ::closedir(d);
  }
  for (int fd : to_close) internal::close_fd(fd);
}

/// In a child the server forked: the descriptors its ServerCall sent (server_fds()).
std::vector<int> g_server_fds;

struct ServerChild {
  pid_t pid;
  int status_fd;
};

struct TrampolineCall {
  void (*trampoline)(std::string_view);
  const std::string* payload;
};

/// What inherit_in_served_children() registered: (save, load) pairs.
struct Carrier {
  void (*save)(std::string& out);
  void (*load)(std::string_view in);
};
std::mutex& carriers_mu() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::vector<Carrier>& carriers() {
  static auto* v = new std::vector<Carrier>;
  return *v;
}

/// The request's payload: [u32 count][count x (load address, field)] then the call's own.
std::string payload_with_inherited_state(const std::string& call_payload) {
  std::string out;
  std::lock_guard g(carriers_mu());
  internal::put_raw(out, static_cast<std::uint32_t>(carriers().size()));
  for (const Carrier& c : carriers()) {
    std::string state;
    c.save(state);
    internal::put_raw(out, c.load);
    internal::put_bytes(out, state);
  }
  out += call_payload;
  return out;
}

void run_trampoline(void* p) {
  auto* c = static_cast<TrampolineCall*>(p);
  internal::CallReader r(*c->payload, internal::kServerCallErrors);
  auto n = r.raw<std::uint32_t>();
  for (std::uint32_t i = 0; i < n; ++i) {
    auto load = r.raw<void (*)(std::string_view)>();
    load(r.field());
  }
  c->trampoline(r.rest());
}

struct ServerSignals {
  sigset_t mask;              // the owner's signal mask, restored in children
  struct sigaction sigint {};  // the owner's SIGINT disposition, restored in children
};

/// Forks the child a request asks for and tells the owner its pid and pidfd.
void spawn(Request& r, int control, int sfd, std::vector<ServerChild>& kids, const ServerSignals& sig) {
  int status_fd = r.fds[0];
  pid_t server = internal::self_pid();
  pid_t pid = internal::fork_process();
  if (pid == 0) {
    // The child keeps only its stdio; everything of the server's goes.
    if (control >= 0) internal::close_fd(control);
    internal::close_fd(sfd);
    for (auto& k : kids) internal::close_fd(k.status_fd);
    internal::close_fd(status_fd);
    std::size_t next = 1;
    for (int i = 0; i < 3; ++i) {
      if (!(r.h.flags & (kHasStdio0 << i))) continue;
      (void)internal::dup_onto(r.fds[next], i);  // dup2 clears close-on-exec on the copy
      internal::close_fd(r.fds[next]);
      ++next;
    }
    g_server_fds.assign(r.fds.begin() + static_cast<std::ptrdiff_t>(next), r.fds.end());
    (void)internal::set_signal_action(SIGINT, &sig.sigint, nullptr);
    (void)internal::set_signal_handler(SIGRTMAX, SIG_DFL);  // the server's own parent-death handler, if any
    (void)internal::set_signal_mask(SIG_SETMASK, &sig.mask, nullptr);
    internal::ChildIdentity id{r.name, (r.h.flags & kDaemon) != 0, r.h.parent_pid, r.parent_name, server, true};
    TrampolineCall call{reinterpret_cast<void (*)(std::string_view)>(r.h.trampoline), &r.payload};
    internal::child_main(run_trampoline, &call, id);
  }
  std::int32_t reply = pid;  // the child's pid, or -errno
  int pidfd = pid > 0 ? pidfd_open(pid) : -1;
  // If the owner is gone the send fails; the child is reaped like any other.
  (void)send_with_fds(status_fd, &reply, sizeof reply, &pidfd, pidfd >= 0 ? 1 : 0);
  if (pidfd >= 0) internal::close_fd(pidfd);
  for (std::size_t i = 1; i < r.fds.size(); ++i) internal::close_fd(r.fds[i]);
  if (pid > 0)
    kids.push_back({pid, status_fd});
  else
    internal::close_fd(status_fd);
}

/// Reaps every child that has ended and reports its wait status to its owner.
void reap_and_report(std::vector<ServerChild>& kids) {
  for (;;) {
    int st = 0;
    pid_t pid = internal::wait_pid(-1, &st, WNOHANG);
    if (pid == -EINTR) continue;
    if (pid <= 0) return;
    auto it = std::find_if(kids.begin(), kids.end(), [&](auto& k) { return k.pid == pid; });
    if (it == kids.end()) continue;
    std::int32_t status = st;
    (void)send_all(it->status_fd, &status, sizeof status);
    internal::close_fd(it->status_fd);
    kids.erase(it);
  }
}

[[noreturn]] void server_main(int control, pid_t owner, bool forked_by_main_thread) {
  internal::die_with_parent(owner, forked_by_main_thread);
  // Forget the owner's children and servers while their fd numbers are still theirs,
  // then drop every inherited fd, so that only the owner's copy keeps pipes open.
  internal::forget_parent_state();
  close_inherited_fds(control);

  ServerSignals sig;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  // Ctrl-C reaches the whole process group; the owner decides what happens to children.
  (void)internal::set_signal_action(SIGINT, &ignore, &sig.sigint);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  (void)internal::set_signal_mask(SIG_BLOCK, &chld, &sig.mask);
  int sfd = internal::open_signalfd(&chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) ::_exit(70);

  std::vector<ServerChild> kids;
  for (;;) {
    if (control < 0 && kids.empty()) ::_exit(0);
    pollfd fds[2] = {{sfd, POLLIN, 0}, {control, POLLIN, 0}};  // a negative fd is ignored
    if (int n = internal::poll_fds(fds, 2, -1); n < 0) {
      if (n == -EINTR) continue;
      ::_exit(71);
    }
    if (fds[0].revents) {
      signalfd_siginfo info;
      while (internal::read_from(sfd, &info, sizeof info) == sizeof info) {
      }
      reap_and_report(kids);
    }
    if (control >= 0 && fds[1].revents) {
      Request r;
      int got = read_request(control, r);
      if (got > 0) {
        spawn(r, control, sfd, kids, sig);
      } else {
        // EOF (owner exited or switched method) or a broken stream: stop accepting and
        // linger until every child has been reported.
        for (int fd : r.fds) internal::close_fd(fd);
        internal::close_fd(control);
        control = -1;
      }
    }
  }
}

// -------------------------------------------------------------------------- the owner side

Server start_server() {
  int sv[2];
  if (int e = internal::socket_pair(SOCK_STREAM | SOCK_CLOEXEC, sv); e < 0)
    throw OSError(-e, "set_start_method(forkserver): socketpair()");
  internal::warn_if_forking_with_threads("set_start_method(forkserver)");
  internal::flush_std_streams();
  pid_t owner = internal::self_pid();
  bool main_thread = internal::self_tid() == owner;
  pid_t pid = internal::fork_process();
  if (pid < 0) {
    int e = -pid;
    internal::close_fd(sv[0]);
    internal::close_fd(sv[1]);
    throw OSError(e, "set_start_method(forkserver): fork() of the server");
  }
  if (pid == 0) {
    internal::close_fd(sv[0]);
    server_main(sv[1], owner, main_thread);
  }
  internal::close_fd(sv[1]);
  internal::ensure_exit_handler();
  return Server{pid, UniqueFd(sv[0]), UniqueFd(pidfd_open(pid))};
}

bool server_exited(const Server& s) noexcept {
  if (!s.pidfd) return internal::process_has_exited(s.pid);
  pollfd p{s.pidfd.get(), POLLIN, 0};
  return internal::poll_fds(&p, 1, 0) == 1;
}

/// Waits for a stopped server (it exits once its children are reported), killing it if
/// it takes longer than kServerExitWait; then reaps it.
void wait_server(Server& s) noexcept {
  if (s.pidfd) {
    pollfd p{s.pidfd.get(), POLLIN, 0};
    auto deadline = internal::Clock::now() + kServerExitWait;
    for (;;) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - internal::Clock::now()).count();
      if (left <= 0) {
        (void)internal::kill_process(s.pid, SIGKILL);  // not reaped yet, so the pid is still the server's
        break;
      }
      if (internal::poll_fds(&p, 1, static_cast<int>(left)) == 1) break;
    }
  }
  while (internal::wait_pid(s.pid, nullptr, 0) == -EINTR) {
  }
}

/// Stops the current server (caller holds mu). It is waited for at once when none of its
/// children is still running, else retired and reaped later.
void stop_server_locked(Globals& g) {
  if (!g.server) return;
  Server s = std::move(*g.server);
  g.server.reset();
  s.control.reset();  // EOF: the server stops accepting
  if (internal::has_unfinished_server_children())
    g.retired.push_back(std::move(s));
  else
    wait_server(s);
}

}  // namespace

void set_start_method(StartMethod method, bool force) {
  auto& g = globals();
  std::lock_guard lock(g.mu);
  if (g.method_set && method != g.method.load() && !force)
    throw RuntimeError(
        "set_start_method: the start method has already been set; call it once, early in main(), or pass "
        "force=true to change it");
  if (method == StartMethod::forkserver) {
    if (g.server && server_exited(*g.server)) {
      g.retired.push_back(std::move(*g.server));
      g.server.reset();
    }
    if (!g.server) g.server = start_server();
  } else {
    stop_server_locked(g);
  }
  g.method = method;
  g.method_set = true;
}

StartMethod get_start_method() noexcept { return globals().method.load(); }

namespace internal {

void start_via_forkserver(const ServerCall& call, const ChildIdentity& id, ProcessState& st) {
  int sv[2];
  if (int e = internal::socket_pair(SOCK_SEQPACKET | SOCK_CLOEXEC, sv); e < 0)
    throw OSError(-e, "Process.start(): socketpair() for '" + id.name + "'");
  UniqueFd mine(sv[0]), theirs(sv[1]);

  RequestHeader h{};
  h.magic = kMagic;
  h.flags = id.daemon ? kDaemon : 0;
  h.trampoline = reinterpret_cast<std::uint64_t>(call.trampoline);
  h.parent_pid = id.parent_pid;
  h.name_len = static_cast<std::uint32_t>(std::min(id.name.size(), kMaxName));
  h.parent_name_len = static_cast<std::uint32_t>(std::min(id.parent_name.size(), kMaxName));
  const std::string payload = payload_with_inherited_state(call.payload);
  h.payload_len = payload.size();
  if (h.payload_len > kMaxPayload)
    throw ValueError("Process.start(): the arguments of '" + id.name + "' encode to more than 4 GiB");
  if (call.fds.size() > kMaxServerFds)
    throw ValueError("Process.start(): '" + id.name + "' asks the fork server to pass " +
                     std::to_string(call.fds.size()) + " descriptors; at most " + std::to_string(kMaxServerFds));
  int fds[kMaxRequestFds] = {theirs.get()};
  std::size_t nfds = 1;
  for (int i = 0; i < 3; ++i)
    if (fd_is_open(i)) {
      h.flags |= kHasStdio0 << i;
      fds[nfds++] = i;
    }
  for (int fd : call.fds) fds[nfds++] = fd;
  h.extra_fds = static_cast<std::uint32_t>(call.fds.size());
  {
    auto& g = globals();
    std::lock_guard lock(g.mu);
    if (!g.server)
      throw ProcessError("Process.start(): the fork server for '" + id.name +
                         "' is not running (it died or was stopped); call set_start_method(forkserver) to start one");
    int c = g.server->control.get();
    bool sent = send_with_fds(c, &h, sizeof h, fds, nfds) && send_all(c, id.name.data(), h.name_len) &&
                send_all(c, id.parent_name.data(), h.parent_name_len) &&
                send_all(c, payload.data(), payload.size());
    if (!sent) {
      int e = errno;
      g.retired.push_back(std::move(*g.server));  // reaped by reap_retired_servers()
      g.server.reset();
      throw ProcessError("Process.start(): cannot reach the fork server to start '" + id.name + "' (" +
                         std::strerror(e) + "): it has died; call set_start_method(forkserver) to start a new one");
    }
  }
  theirs.reset();  // now only the server holds that end: EOF tells us it died

  std::int32_t pid = 0;
  std::vector<int> got;
  ssize_t n = recv_with_fds(mine.get(), &pid, sizeof pid, got);
  UniqueFd pidfd(got.empty() ? -1 : got[0]);
  for (std::size_t i = 1; i < got.size(); ++i) internal::close_fd(got[i]);
  if (n != sizeof pid)
    throw ProcessError("Process.start(): the fork server closed the connection before starting '" + id.name +
                       "': it has died");
  if (pid < 0) throw OSError(-pid, "Process.start(): fork() in the fork server for '" + id.name + "'");
  st.pid = pid;
  st.pidfd = std::move(pidfd);
  st.status_fd = std::move(mine);
  st.via_server = true;
}

const std::vector<int>& server_fds() noexcept { return g_server_fds; }

void inherit_in_served_children(void (*save)(std::string& out), void (*load)(std::string_view in)) {
  std::lock_guard g(carriers_mu());
  carriers().push_back({save, load});
}

void forget_forkserver_after_fork() noexcept {
  auto& g = globals();
  new (&g.mu) std::mutex;  // another thread may have held it at fork time
  new (&carriers_mu()) std::mutex;
  g.server.reset();        // closes our copies of its fds; the server is not ours
  g.retired.clear();
  g.method = StartMethod::fork;
  g.method_set = false;
}

void stop_forkserver_at_exit() noexcept {
  auto& g = globals();
  std::lock_guard lock(g.mu);
  if (g.server) {
    Server s = std::move(*g.server);
    g.server.reset();
    s.control.reset();
    wait_server(s);
  }
  for (auto& s : g.retired) wait_server(s);
  g.retired.clear();
}

void reap_retired_servers() noexcept {
  auto& g = globals();
  std::lock_guard lock(g.mu);
  if (g.server && server_exited(*g.server)) {  // killed by someone: no zombie, and say so on start()
    g.retired.push_back(std::move(*g.server));
    g.server.reset();
  }
  std::erase_if(g.retired, [](Server& s) {
    pid_t r;
    do r = internal::wait_pid(s.pid, nullptr, WNOHANG);
    while (r == -EINTR);
    return r == s.pid || r == -ECHILD;
  });
}

}  // namespace internal
}  // namespace mp
