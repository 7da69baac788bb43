// A tiny TCP socket helper shared by the echo server examples (raw sockets, as in the
// seeds' socket servers; mp itself only supplies the processes and fd passing).
// Like the seeds, it moves bytes, not lines: recv_some() is the seed's conn.recv(1024) and
// send_all() its conn.send(msg), so a client that sends "hello" without a newline gets
// "hello" back.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace echo {

/// printf straight to fd 1 with one write(): lines from concurrent processes never mix
/// and nothing sits in a stdio buffer that a fork would duplicate.
inline void say(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) (void)!::write(STDOUT_FILENO, buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

[[noreturn]] inline void die(const char* what) {
  say("error: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

class Socket {
 public:
  explicit Socket(int fd = -1) noexcept : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Socket() { close(); }
  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int fd() const noexcept { return fd_; }

  /// Listening socket on 127.0.0.1:port (0 = any free port), SO_REUSEADDR like the seed.
  static Socket listen_local(std::uint16_t port) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s.fd_ < 0) die("socket");
    int one = 1;
    ::setsockopt(s.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(s.fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind");
    if (::listen(s.fd_, 16) != 0) die("listen");
    return s;
  }
  static Socket connect_local(std::uint16_t port) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s.fd_ < 0) die("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(s.fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
    return s;
  }
  [[nodiscard]] std::uint16_t port() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) die("getsockname");
    return ntohs(a.sin_port);
  }
  Socket accept() const {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) return Socket(c);
      if (errno != EINTR) die("accept");
    }
  }
  /// Sends every byte of `data` (the seed's send()). False if the peer is gone.
  bool send_all(std::string_view data) const {
    std::size_t at = 0;
    while (at < data.size()) {
      ssize_t n = ::send(fd_, data.data() + at, data.size() - at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }
  /// The seed's recv(1024): whatever bytes have arrived (1 to 1024 of them), waiting for
  /// at least one; false at end of stream (the seed's `if not msg: break`) or on error.
  bool recv_some(std::string& data) const {
    char chunk[1024];
    for (;;) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.assign(chunk, static_cast<std::size_t>(n));
      return true;
    }
  }
  /// Receives until `data` holds `size` bytes (a reply may arrive in several pieces:
  /// TCP is a byte stream); false if the stream ends first.
  bool recv_exactly(std::string& data, std::size_t size) const {
    data.clear();
    std::string piece;
    while (data.size() < size) {
      if (!recv_some(piece)) return false;
      data += piece;
    }
    return true;
  }

 private:
  int fd_;
};

}  // namespace echo
