// A byte relay for tests: listens on a fresh Unix socket and forwards every connection to
// a server ("host:port" with a numeric IPv4 host, or a Unix path), byte for byte, so a
// client talks to the server through it unaware. One chosen connection can be held: the
// relay accepts it (the client's connect() returns) but does not reach the server until
// release(), so that client waits inside its handshake for as long as the test wants —
// a deterministic "thread stuck inside a call" without sleeps.
//
// The relay runs in a process of its own, forked by the constructor (so construct it
// before the test starts threads or forks), with one thread: an event loop over the
// listening socket, the connections and a control socket to the test ('h' from the relay:
// the held connection arrived; 'r' to it: release; 'q' or end of file: stop). The test's
// process thus gets no thread from it — a process forked by the test while the relay
// works cannot inherit a lock (the allocator's, say) that a relay thread held.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mp/process.hpp"

namespace mp_test {

class Relay {
 public:
  /// Forwards to `upstream`; holds the `held`-th accepted connection (1-based; 0: none).
  Relay(std::string upstream, int held) {
    char tmpl[] = "/tmp/mp-relay-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    dir_ = tmpl;
    path_ = dir_ + "/r";
    int listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd, 64) != 0) std::abort();
    int ctl[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0) std::abort();
    proc_ = mp::Process([listen_fd, ctl, upstream = std::move(upstream), held] {
      ::close(ctl[0]);
      serve(listen_fd, ctl[1], upstream, held);
    });
    proc_.start();
    ::close(listen_fd);  // listening before the fork: clients may connect at once
    ::close(ctl[1]);
    ctl_ = ctl[0];
  }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  ~Relay() {
    (void)::send(ctl_, "q", 1, MSG_NOSIGNAL);
    ::close(ctl_);
    if (!proc_.join(std::chrono::seconds(60))) {
      ADD_FAILURE() << "the relay process did not stop";
      proc_.kill();
      proc_.join();
    }
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  [[nodiscard]] const std::string& address() const { return path_; }
  /// Blocks until the held connection has been accepted (its client's connect() returned).
  void wait_held() {
    char c = 0;
    if (::recv(ctl_, &c, 1, MSG_WAITALL) != 1 || c != 'h') {
      std::fprintf(stderr, "Relay::wait_held: the relay process ended before the held connection came\n");
      std::abort();  // the test cannot go on, and its thread is stuck in the call
    }
  }
  /// Lets the held connection through to the server.
  void release() {
    if (!released_ && ::send(ctl_, "r", 1, MSG_NOSIGNAL) != 1) std::abort();
    released_ = true;
  }

 private:
  // --- the relay process

  static int connect_upstream(const std::string& upstream) {
    auto colon = upstream.rfind(':');
    if (upstream.front() != '/' && colon != std::string::npos) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(upstream.substr(colon + 1))));
      ::inet_pton(AF_INET, upstream.substr(0, colon).c_str(), &a.sin_addr);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
      return fd;
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, upstream.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
    return fd;
  }

  /// Reads what `from` has and writes it all to `to`; false at end of file or on an error.
  /// (Blocking writes from one thread: fine for a test's small messages, which never fill
  /// a socket buffer.)
  static bool forward(int from, int to) {
    char buf[65536];
    ssize_t n = ::recv(from, buf, sizeof buf, 0);
    if (n <= 0) return false;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::send(to, buf + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += w;
    }
    return true;
  }

  static void serve(int listen_fd, int ctl, const std::string& upstream, int held) {
    struct Pair {
      int client, server;  // server: -1 while held
    };
    std::vector<Pair> pairs;
    for (int n = 1;;) {
      std::vector<pollfd> p{{ctl, POLLIN, 0}, {listen_fd, POLLIN, 0}};
      for (const Pair& c : pairs)
        if (c.server >= 0) {
          p.push_back({c.client, POLLIN, 0});
          p.push_back({c.server, POLLIN, 0});
        }
      if (::poll(p.data(), p.size(), -1) < 0) continue;  // EINTR
      if (p[0].revents != 0) {
        char c = 0;
        if (::recv(ctl, &c, 1, 0) != 1 || c == 'q') break;
        for (Pair& h : pairs)  // 'r': release
          if (h.server < 0) h.server = connect_upstream(upstream);
        continue;  // the fds polled no longer match `pairs`
      }
      if (p[1].revents != 0) {
        int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        if (n++ == held) {
          pairs.push_back({client, -1});
          if (::send(ctl, "h", 1, MSG_NOSIGNAL) != 1) break;
        } else {
          pairs.push_back({client, connect_upstream(upstream)});
        }
      }
      std::size_t i = 2;
      for (auto it = pairs.begin(); it != pairs.end();) {
        if (it->server < 0 || i >= p.size()) {  // held, or accepted just now
          ++it;
          continue;
        }
        bool open = (p[i].revents == 0 || forward(it->client, it->server)) &&
                    (p[i + 1].revents == 0 || forward(it->server, it->client));
        i += 2;
        if (open) {
          ++it;
        } else {
          ::close(it->client);
          ::close(it->server);
          it = pairs.erase(it);
        }
      }
    }
    for (const Pair& c : pairs) {
      ::close(c.client);
      if (c.server >= 0) ::close(c.server);
    }
  }

  std::string dir_, path_;
  int ctl_ = -1;
  bool released_ = false;
  mp::Process proc_;
};

}  // namespace mp_test
