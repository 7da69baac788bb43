// Pipes, sockets and descriptor passing. See src/os/socket.hpp.
#include "os/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

namespace mp::internal {

namespace {

// Milliseconds left until `deadline` for poll(2), rounded up so we never wake early and
// spin; -1 for no deadline.
int poll_timeout_ms(Deadline deadline) noexcept {
  if (!deadline) return -1;
  auto now = Clock::now();
  if (*deadline <= now) return 0;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count();
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

int wait_for(int fd, short events, Deadline deadline) noexcept {
  pollfd p{fd, events, 0};
  int r = poll_until(&p, 1, deadline);
  if (r < 0) return r;
  if (r == 0) return -ETIMEDOUT;
  if (p.revents & POLLNVAL) return -EBADF;
  return 1;
}

}  // namespace

FdKind fd_kind(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return FdKind::other;
  int domain = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return FdKind::other;
  if (domain == AF_UNIX) return FdKind::unix_socket;
  if (domain == AF_INET || domain == AF_INET6) return FdKind::inet_socket;
  return FdKind::other;
}

int make_socketpair(UniqueFd& a, UniqueFd& b) noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return -errno;
  a.reset(fds[0]);
  b.reset(fds[1]);
  return 0;
}

void ignore_sigpipe_if_default() noexcept {
  static std::atomic<bool> done{false};
  if (done.load(std::memory_order_acquire)) return;
  struct sigaction old {};
  if (::sigaction(SIGPIPE, nullptr, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGPIPE, &ign, nullptr);
  }
  done.store(true, std::memory_order_release);
}

int poll_until(pollfd* fds, std::size_t n, Deadline deadline) noexcept {
  for (;;) {
    int r = ::poll(fds, n, poll_timeout_ms(deadline));
    if (r >= 0) {
      // poll's millisecond rounding can return 0 a hair early: only report a timeout
      // once the deadline has really passed.
      if (r == 0 && deadline && Clock::now() < *deadline) continue;
      return r;
    }
    if (errno != EINTR) return -errno;
  }
}

int wait_readable(int fd, Deadline deadline) noexcept { return wait_for(fd, POLLIN, deadline); }

ssize_t read_some_slow(int fd, void* buf, std::size_t n, Deadline deadline) noexcept {
  if (deadline) {
    int w = wait_for(fd, POLLIN, deadline);
    if (w < 0) return w;
  }
  for (;;) {
    ssize_t r = ::read(fd, buf, n);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return -errno;
    int w = wait_for(fd, POLLIN, deadline);  // a non-blocking descriptor given by the user
    if (w < 0) return w;
  }
}

ssize_t read_nowait(int fd, void* buf, std::size_t n) noexcept {
  iovec iov{buf, n};
  for (;;) {
    ssize_t r = ::preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

ssize_t readv_some(int fd, const iovec* iov, int iovcnt, Deadline deadline) noexcept {
  if (deadline) {
    int w = wait_for(fd, POLLIN, deadline);
    if (w < 0) return w;
  }
  for (;;) {
    ssize_t r = ::readv(fd, iov, iovcnt);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return -errno;
    int w = wait_for(fd, POLLIN, deadline);
    if (w < 0) return w;
  }
}

ssize_t recv_some(int fd, const iovec* iov, int iovcnt, Deadline deadline, ReceivedFds& got) noexcept {
  if (deadline) {
    int w = wait_for(fd, POLLIN, deadline);
    if (w < 0) return w;
  }
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * ReceivedFds::kMax)];
  for (;;) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(iovcnt);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return -errno;
      int w = wait_for(fd, POLLIN, deadline);
      if (w < 0) return w;
      continue;
    }
    got.count = 0;
    got.truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      auto k = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < k; ++i) {
        int one;
        std::memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof one);
        if (got.count < ReceivedFds::kMax) got.fds[got.count++] = one;
        else ::close(one);
      }
    }
    return r;
  }
}

int write_all_slow(int fd, iovec* iov, int iovcnt, bool socket, Deadline deadline) noexcept {
  while (iovcnt > 0) {
    ssize_t r;
    if (socket) {
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(iovcnt);
      r = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    } else {
      r = iovcnt == 1 ? ::write(fd, iov[0].iov_base, iov[0].iov_len) : ::writev(fd, iov, std::min(iovcnt, IOV_MAX));
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return -errno;
      int w = wait_for(fd, POLLOUT, deadline);
      if (w < 0) return w;
      continue;
    }
    auto done = static_cast<std::size_t>(r);
    while (iovcnt > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + done;
      iov->iov_len -= done;
    }
  }
  return 0;
}

int send_fds(int sock, const int* fds, int n) noexcept {
  if (n <= 0 || n > ReceivedFds::kMax) return -EINVAL;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * ReceivedFds::kMax)];
  std::memset(control, 0, sizeof control);
  char marker = static_cast<char>(n % 256);
  iovec iov{&marker, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<std::size_t>(n));
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<std::size_t>(n));
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * static_cast<std::size_t>(n));
  for (;;) {
    ssize_t r = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (r == 1) return 0;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) {
      int w = wait_for(sock, POLLOUT, std::nullopt);
      if (w < 0) return w;
      continue;
    }
    return r < 0 ? -errno : -EIO;
  }
}

int unix_address(const char* path, std::size_t len, SockAddr& out) noexcept {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  bool abstract = len > 0 && path[0] == '\0';
  // A filesystem path needs its terminating NUL inside sun_path; an abstract name does not.
  if (len == 0 || len + (abstract ? 0 : 1) > sizeof un.sun_path) return -ENAMETOOLONG;
  std::memcpy(un.sun_path, path, len);
  out = SockAddr{};
  std::memcpy(&out.storage, &un, sizeof un);
  out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (abstract ? 0 : 1));
  return 0;
}

int resolve_tcp(const char* host, std::uint16_t port, bool passive, ResolvedAddrs& out) noexcept {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  char service[8];
  std::snprintf(service, sizeof service, "%u", static_cast<unsigned>(port));
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host, service, &hints, &res);
  if (rc != 0) return rc;
  out.count = 0;
  for (addrinfo* a = res; a && out.count < static_cast<int>(out.addrs.size()); a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    SockAddr& s = out.addrs[static_cast<std::size_t>(out.count++)];
    std::memcpy(&s.storage, a->ai_addr, a->ai_addrlen);
    s.len = a->ai_addrlen;
  }
  ::freeaddrinfo(res);
  return out.count > 0 ? 0 : EAI_NONAME;
}

const char* resolve_error(int code) noexcept { return ::gai_strerror(code); }

void numeric_host_port(const SockAddr& a, char* host, std::size_t host_len, std::uint16_t& port) noexcept {
  char service[16];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&a.storage), a.len, host, static_cast<socklen_t>(host_len),
                    service, sizeof service, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    if (host_len) host[0] = '\0';
    port = 0;
    return;
  }
  port = static_cast<std::uint16_t>(std::atoi(service));
}

int listen_on(const SockAddr& addr, int backlog, unsigned unix_mode, UniqueFd& out) noexcept {
  UniqueFd s(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return -errno;
  bool is_unix = addr.family() == AF_UNIX;
  if (!is_unix) {
    int one = 1;
    if (::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return -errno;
  }
  if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.len) != 0) return -errno;
  const auto* un = reinterpret_cast<const sockaddr_un*>(&addr.storage);
  if (is_unix && un->sun_path[0] != '\0') {
    // Until listen() nobody can connect, so tightening the mode here leaves no window
    // in which the umask's wider permissions could be used.
    if (::chmod(un->sun_path, unix_mode) != 0) {
      int err = errno;
      ::unlink(un->sun_path);
      return -err;
    }
  }
  if (::listen(s.get(), backlog) != 0) {
    int err = errno;
    if (is_unix && un->sun_path[0] != '\0') ::unlink(un->sun_path);
    return -err;
  }
  out = std::move(s);
  return 0;
}

int connect_to(const SockAddr& addr, Deadline deadline, UniqueFd& out) noexcept {
  UniqueFd s(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s) return -errno;
  // Non-blocking connect + poll so the deadline bounds it. A Unix socket whose listener's
  // backlog is full answers EAGAIN instead of waiting: retry until the deadline.
  for (;;) {
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.len) == 0) break;
    int err = errno;
    if (err == EINPROGRESS || err == EINTR) {
      int w = wait_for(s.get(), POLLOUT, deadline);
      if (w < 0) return w;
      int so_error = 0;
      socklen_t len = sizeof so_error;
      if (::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) return -errno;
      if (so_error != 0) return -so_error;
      break;
    }
    if (err == EAGAIN && addr.family() == AF_UNIX) {
      if (deadline && Clock::now() >= *deadline) return -ETIMEDOUT;
      ::usleep(1000);  // the listener is overloaded; nothing to poll on for "backlog has room"
      continue;
    }
    return -err;
  }
  int flags = ::fcntl(s.get(), F_GETFL);
  if (flags < 0 || ::fcntl(s.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) return -errno;
  if (addr.family() != AF_UNIX) {
    int one = 1;
    ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  out = std::move(s);
  return 0;
}

int accept_on(int listen_fd, Deadline deadline, UniqueFd& out, SockAddr* peer) noexcept {
  for (;;) {
    if (deadline) {
      int w = wait_for(listen_fd, POLLIN, deadline);
      if (w < 0) return w;
    }
    SockAddr tmp;
    tmp.len = sizeof tmp.storage;
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&tmp.storage), &tmp.len, SOCK_CLOEXEC);
    if (fd < 0) {
      // ECONNABORTED: the client gave up while queued; EAGAIN: someone else took it.
      if (errno == EINTR || errno == ECONNABORTED || (errno == EAGAIN && deadline)) continue;
      if (errno == EAGAIN) {
        int w = wait_for(listen_fd, POLLIN, std::nullopt);
        if (w < 0) return w;
        continue;
      }
      return -errno;
    }
    out.reset(fd);
    if (tmp.family() != AF_UNIX) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (peer) *peer = tmp;
    return 0;
  }
}

int make_temp_dir(char* templ) noexcept { return ::mkdtemp(templ) ? 0 : -errno; }

void remove_socket_file(const char* path, const char* dir) noexcept {
  if (path && path[0]) ::unlink(path);
  if (dir && dir[0]) ::rmdir(dir);
}

int local_address(int fd, SockAddr& out) noexcept {
  out = SockAddr{};
  out.len = sizeof out.storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&out.storage), &out.len) != 0) return -errno;
  return 0;
}

}  // namespace mp::internal
