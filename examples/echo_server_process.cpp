// Seed 002, 十二 (1): the multi-process socket server — one Process per accepted
// connection, so several clients are served at the same time.
//
//   echo_server_process                 demo: port chosen by the system, starts its own 6
//                                       clients (as processes), serves them, exits 0
//   echo_server_process PORT N          serves N connections on 127.0.0.1:PORT (0 = any
//                                       free port) and exits; clients come from outside
//
// The first line printed is always "listening on 127.0.0.1:<port>" (tests read it).
// Protocol, the seed's: the handler echoes whatever bytes arrive (each recv(1024) is sent
// back as is; no newline needed) until a recv returns exactly "over" — also "over\n" or
// "over\r\n", as typed into nc or telnet — or the client closes; then it closes the
// connection. Like the seed's client, a client sends one message and waits for its echo
// before sending the next, so each recv is one message.
//
// How the socket reaches the child: mp::Process forks, so the child inherits the accepted
// descriptor (as Python's fork start method does). The parent closes its copy right after
// start(), so the connection ends exactly when the child is done with it.
#include <mp/process.hpp>

#include "echo_socket.hpp"

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

using echo::die;
using echo::say;
using echo::Socket;

// ---- the server ------------------------------------------------------------------------

/// The seed's `msg.decode('utf-8') == 'over'`, also accepting the line end a terminal adds.
bool is_over(const std::string& msg) { return msg == "over" || msg == "over\n" || msg == "over\r\n"; }

/// The seed's fun(conn): runs in the child process.
void fun(Socket& conn, int id) {
  std::string msg;
  int n = 0;
  while (conn.recv_some(msg)) {
    if (is_over(msg)) break;
    std::string shown = msg.substr(0, msg.find_last_not_of("\r\n") + 1);  // the seed's print(msg)
    say("[pid %d] connection %d: %s\n", static_cast<int>(::getpid()), id, shown.c_str());
    if (!conn.send_all(msg)) break;
    ++n;
  }
  conn.close();
  say("[pid %d] connection %d closed after %d messages\n", static_cast<int>(::getpid()), id, n);
}

/// A demo client (runs as its own process), written the seed's way: send a message without
/// a newline, wait for its echo; three times, then "over".
void client(std::uint16_t port, int id) {
  Socket s = Socket::connect_local(port);
  std::string reply;
  for (int i = 0; i < 3; ++i) {
    std::string msg = "hello " + std::to_string(id) + "." + std::to_string(i);
    if (!s.send_all(msg) || !s.recv_exactly(reply, msg.size()) || reply != msg) {
      say("client %d: bad echo for '%s': '%s'\n", id, msg.c_str(), reply.c_str());
      std::exit(1);
    }
  }
  s.send_all("over");
  if (s.recv_some(reply)) {  // the server closes after "over": end of stream, no reply
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
