// Seed 002, 十二 (1): the multi-process socket server — one Process per accepted
// connection, so several clients are served at the same time.
//
//   echo_server_process                 demo: port chosen by the system, starts its own 6
//                                       clients (as processes), serves them, exits 0
//   echo_server_process PORT N          serves N connections on 127.0.0.1:PORT (0 = any
//                                       free port) and exits; clients come from outside
//
// The first line printed is always "listening on 127.0.0.1:<port>" (tests read it).
// Protocol: one message per line ('\n'-terminated; TCP is a byte stream, so the seed's
// recv(1024)-is-one-message assumption is replaced by explicit lines). The handler echoes
// each line back until the client sends "over" or closes, then closes the connection.
//
// How the socket reaches the child: mp::Process forks, so the child inherits the accepted
// descriptor (as Python's fork start method does). The parent closes its copy right after
// start(), so the connection ends exactly when the child is done with it.
#include <mp/process.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

// ---- a tiny line-socket helper (raw TCP, as in the seed) -----------------------------

/// printf straight to fd 1 with one write(): lines from concurrent processes never mix
/// and nothing sits in a stdio buffer that a fork would duplicate.
void say(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) (void)!::write(STDOUT_FILENO, buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

[[noreturn]] void die(const char* what) {
  say("error: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

class Socket {
 public:
  explicit Socket(int fd = -1) noexcept : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(buf_, o.buf_);
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
  /// Sends `line` + '\n'. False if the peer is gone.
  bool send_line(const std::string& line) const {
    std::string out = line + "\n";
    std::size_t at = 0;
    while (at < out.size()) {
      ssize_t n = ::send(fd_, out.data() + at, out.size() - at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }
  /// Next line without its '\n'; false at end of stream (or on error).
  bool recv_line(std::string& line) {
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      char chunk[1024];  // the seed's recv(1024)
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
};

// ---- the server ------------------------------------------------------------------------

/// The seed's fun(conn): runs in the child process.
void fun(Socket& conn, int id) {
  std::string msg;
  int n = 0;
  while (conn.recv_line(msg)) {
    if (msg == "over") break;
    say("[pid %d] connection %d: %s\n", static_cast<int>(::getpid()), id, msg.c_str());
    if (!conn.send_line(msg)) break;
    ++n;
  }
  conn.close();
  say("[pid %d] connection %d closed after %d messages\n", static_cast<int>(::getpid()), id, n);
}

/// A demo client (runs as its own process): three messages, checks each echo, says over.
void client(std::uint16_t port, int id) {
  Socket s = Socket::connect_local(port);
  std::string reply;
  for (int i = 0; i < 3; ++i) {
    std::string msg = "hello " + std::to_string(id) + "." + std::to_string(i);
    if (!s.send_line(msg) || !s.recv_line(reply) || reply != msg) {
      say("client %d: bad echo for '%s': '%s'\n", id, msg.c_str(), reply.c_str());
      std::exit(1);
    }
  }
  s.send_line("over");
  if (s.recv_line(reply)) {  // the server closes after "over": end of stream, no reply
    say("client %d: unexpected data after over\n", id);
    std::exit(1);
  }
  say("client %d: 3 echoes ok\n", id);
}

}  // namespace

int main(int argc, char** argv) {
  bool demo = argc < 3;
  auto port = static_cast<std::uint16_t>(demo ? 0 : std::atoi(argv[1]));
  int connections = demo ? 6 : std::atoi(argv[2]);
  if (connections <= 0) {
    say("usage: echo_server_process [PORT N]   (no arguments: demo with 6 clients)\n");
    return 2;
  }

  Socket server = Socket::listen_local(port);
  say("listening on 127.0.0.1:%u\n", static_cast<unsigned>(server.port()));

  std::vector<std::unique_ptr<mp::Process>> clients;
  if (demo) {
    for (int i = 1; i <= connections; ++i) {
      clients.push_back(std::make_unique<mp::Process>(client, server.port(), i));
      clients.back()->start();
    }
  }

  std::vector<std::unique_ptr<mp::Process>> handlers;
  for (int id = 1; id <= connections; ++id) {
    Socket conn = server.accept();
    say("accepted connection %d\n", id);
    // Captured by reference: the child runs on its own (forked) copy of `conn`.
    handlers.push_back(std::make_unique<mp::Process>([&conn, id] { fun(conn, id); }));
    handlers.back()->start();
    conn.close();  // the child has its own descriptor now
  }
  server.close();

  int failures = 0;
  for (auto& h : handlers) {
    h->join();
    failures += h->exitcode() != 0;
  }
  for (auto& c : clients) {
    c->join();
    failures += c->exitcode() != 0;
  }
  say("served %d connections, %d failures\n", connections, failures);
  return failures == 0 ? 0 : 1;
}
