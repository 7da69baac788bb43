// Seed 002, 十二 (2): the process-pool socket server. Pool(4) serves 6 clients: four are
// talked to at once, the other two wait for a free worker, and the printed worker pids
// take at most 4 distinct values — several clients share the 4 processes.
//
//   echo_server_pool                    demo: port chosen by the system, starts its own 6
//                                       clients (as processes), serves them, exits 0
//   echo_server_pool PORT N             serves N connections on 127.0.0.1:PORT (0 = any
//                                       free port) and exits; clients come from outside
//
// The first line printed is always "listening on 127.0.0.1:<port>" (tests read it).
// Protocol, the seed's: the worker sends back whatever bytes arrive (each recv(1024)), in
// upper case, no newline needed, until the client closes its end (the seed's
// `if not msg: break`).
//
// How the accepted socket reaches the worker. In Python, `p.apply_async(talk, args=(conn,))`
// pickles the socket: multiprocessing.reduction duplicates the descriptor and registers it
// with a "resource sharer" — a listener in the parent; the worker unpickling it connects to
// that listener, names the descriptor it wants, and receives it by SCM_RIGHTS. A task
// argument here is bytes (mp::codec) and cannot carry a descriptor, and we do not know in
// advance which worker will run which task, so this program does the same thing explicitly:
//   1. main accepts a TCP connection, keeps the socket under a ticket number, and submits
//      apply_async(talk, ticket, handoff_path);
//   2. whichever worker runs that task connects to the handoff mp::connection::Listener (a
//      Unix socket in a private 0700 temporary directory, so only this user can connect),
//      sends its ticket and receives exactly that socket with Connection::recv_fd();
//   3. main, waiting on both the TCP listener and the handoff listener with mp::wait(),
//      answers with send_fd() and closes its own copy: from then on only the worker holds
//      the connection, and the client sees end of stream as soon as the worker is done.
// Nothing is guessed: a ticket names one socket, and the worker that runs the task is the
// one that fetches it, whichever worker it is and however long the task waited in the queue.
// Limit (an example, not a production server): a worker killed between taking a task and
// fetching its socket fails that task with mp::WorkerLost, but main keeps waiting for the
// handoff, so it would not stop by itself; the client's connection stays open meanwhile.
#include <mp/connection.hpp>
#include <mp/pool.hpp>
#include <mp/process.hpp>

#include "echo_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

using echo::die;
using echo::say;
using echo::Socket;

// ---- the server ------------------------------------------------------------------------

/// What a task reports back to the main process.
struct Served {
  int pid;
  int messages;
};

/// The seed's talk(conn), run by a pool worker: fetch the socket for `ticket`, then send
/// back every recv(1024) in upper case until the client closes.
Served talk(int ticket, std::string handoff_path) {
  Socket conn;
  {
    mp::Connection h = mp::connection::Client(mp::connection::Address::unix_socket(handoff_path));
    h.send(ticket);
    conn = Socket(h.recv_fd().release());
  }
  const int pid = static_cast<int>(::getpid());
  say("worker pid %d serves connection %d\n", pid, ticket);  // the seed's print('进程pid: ...')
  std::string msg;
  int n = 0;
  while (conn.recv_some(msg)) {
    std::transform(msg.begin(), msg.end(), msg.begin(), [](unsigned char c) { return std::toupper(c); });
    if (!conn.send_all(msg)) break;
    ++n;
  }
  return {pid, n};
}

/// A demo client (runs as its own process), written the seed's way: send a message without
/// a newline, wait for the answer; three times, each checked against the upper-cased text.
void client(std::uint16_t port, int id) {
  Socket s = Socket::connect_local(port);
  std::string reply;
  for (int i = 0; i < 3; ++i) {
    std::string msg = "hello " + std::to_string(id) + "." + std::to_string(i);
    std::string want = "HELLO " + std::to_string(id) + "." + std::to_string(i);
    if (!s.send_all(msg) || !s.recv_exactly(reply, want.size()) || reply != want) {
      say("client %d: bad echo for '%s': '%s'\n", id, msg.c_str(), reply.c_str());
      std::exit(1);
    }
  }
  say("client %d: 3 upper-case echoes ok\n", id);
}  // closing the socket ends the worker's loop

}  // namespace

int main(int argc, char** argv) {
  bool demo = argc < 3;
  auto port = static_cast<std::uint16_t>(demo ? 0 : std::atoi(argv[1]));
  int connections = demo ? 6 : std::atoi(argv[2]);
  if (connections <= 0) {
    say("usage: echo_server_pool [PORT N]   (no arguments: demo with 6 clients)\n");
    return 2;
  }

  Socket server = Socket::listen_local(port);
  say("listening on 127.0.0.1:%u\n", static_cast<unsigned>(server.port()));

  // Demo clients are forked before the pool starts its threads.
  std::vector<std::unique_ptr<mp::Process>> clients;
  if (demo) {
    for (int i = 1; i <= connections; ++i) {
      clients.push_back(std::make_unique<mp::Process>(client, server.port(), i));
      clients.back()->start();
    }
  }

  mp::connection::Listener handoff;  // Unix socket in a private temporary directory
  const std::string handoff_path = handoff.address().path();
  mp::Pool p(4);

  std::map<int, Socket> waiting;  // accepted, not yet fetched by a worker
  std::vector<mp::AsyncResult<Served>> results;
  int accepted = 0, handed = 0;
  while (handed < connections) {
    std::vector<mp::Waitable> watch{handoff.fileno()};
    if (accepted < connections) watch.emplace_back(server.fd());
    for (const mp::Waitable& w : mp::wait(watch)) {
      if (w.fd() == server.fd()) {
        int ticket = ++accepted;
        waiting.emplace(ticket, server.accept());
        say("accepted connection %d\n", ticket);
        results.push_back(p.apply_async(talk, ticket, handoff_path));
      } else {
        try {
          mp::Connection h = handoff.accept();
          int ticket = h.recv<int>();
          auto it = waiting.find(ticket);
          if (it == waiting.end()) {  // cannot happen with our own workers; never trust it anyway
            say("handoff: unknown ticket %d\n", ticket);
            continue;
          }
          h.send_fd(it->second.fd());
          waiting.erase(it);  // closes our copy: the worker owns the connection now
          ++handed;
        } catch (const mp::Error& e) {  // a worker that died mid-handoff must not stop the server
          say("handoff failed: %s\n", e.what());
        }
      }
    }
  }
  server.close();
  p.close();
  p.join();

  std::set<int> pids;
  int failures = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    try {
      Served s = results[i].get();
      pids.insert(s.pid);
      say("connection %zu: %d messages echoed by worker pid %d\n", i + 1, s.messages, s.pid);
    } catch (const std::exception& e) {
      say("connection %zu failed: %s\n", i + 1, e.what());
      ++failures;
    }
  }
  for (auto& c : clients) {
    c->join();
    failures += c->exitcode() != 0;
  }
  say("served %d connections with %zu distinct worker pids (pool of 4), %d failures\n", connections, pids.size(),
      failures);
  return failures == 0 ? 0 : 1;
}
