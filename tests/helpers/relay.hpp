// A byte relay for tests: listens on a fresh Unix socket and forwards every connection to
// a server ("host:port" with a numeric IPv4 host, or a Unix path), byte for byte, so a
// client talks to the server through it unaware. One chosen connection can be held: the
// relay accepts it (the client's connect() returns) but does not reach the server until
// release(), so that client waits inside its handshake for as long as the test wants —
// a deterministic "thread stuck inside a call" without sleeps.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mp_test {

class Relay {
 public:
  /// Forwards to `upstream`; holds the `held`-th accepted connection (1-based; 0: none).
  Relay(std::string upstream, int held) : upstream_(std::move(upstream)), held_(held) {
    char tmpl[] = "/tmp/mp-relay-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/r";
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0) std::abort();
    if (::pipe2(stop_, O_CLOEXEC) != 0) std::abort();
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  ~Relay() {
    release();
    ::close(stop_[1]);  // every loop sees the pipe's end of file
    acceptor_.join();
    for (auto& t : pumps_) t.join();
    ::close(stop_[0]);
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  [[nodiscard]] const std::string& address() const { return path_; }
  /// Blocks until the held connection has been accepted (its client's connect() returned).
  void wait_held() {
    std::unique_lock g(mu_);
    cv_.wait(g, [&] { return arrived_; });
  }
  /// Lets the held connection through to the server.
  void release() {
    std::lock_guard g(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  int connect_upstream() const {
    auto colon = upstream_.rfind(':');
    if (upstream_.front() != '/' && colon != std::string::npos) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(upstream_.substr(colon + 1))));
      ::inet_pton(AF_INET, upstream_.substr(0, colon).c_str(), &a.sin_addr);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
      return fd;
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, upstream_.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
    return fd;
  }

  void accept_loop() {
    for (int n = 1;; ++n) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || p[1].revents != 0) return;
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      const bool held = n == held_;
      if (held) {
        std::lock_guard g(mu_);
        arrived_ = true;
        cv_.notify_all();
      }
      pumps_.emplace_back([this, client, held] {
        if (held) {
          std::unique_lock g(mu_);
          cv_.wait(g, [&] { return released_; });
        }
        pump(client, connect_upstream());
      });
    }
  }

  void pump(int a, int b) const {
    char buf[65536];
    for (;;) {
      pollfd p[3] = {{a, POLLIN, 0}, {b, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 3, -1) < 0 || p[2].revents != 0) break;
      int from = (p[0].revents != 0) ? a : b, to = from == a ? b : a;
      ssize_t n = ::read(from, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(to, buf + off, static_cast<std::size_t>(n - off));
        if (w <= 0) goto done;
        off += w;
      }
    }
  done:
    ::close(a);
    ::close(b);
  }

  std::string upstream_;
  int held_;
  std::string dir_, path_;
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  std::mutex mu_;
  std::condition_variable cv_;
  bool arrived_ = false, released_ = false;
  std::thread acceptor_;
  std::vector<std::thread> pumps_;
};

}  // namespace mp_test
