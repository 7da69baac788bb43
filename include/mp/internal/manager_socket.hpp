// mp/internal/manager_socket.hpp — a ServerCore reachable over a Unix or TCP socket.
//
// SocketServer listens at an address (mp::connection::Listener, no authentication in
// accept()) and serves each accepted connection on its own thread: that thread first runs
// CPython's mutual HMAC handshake with a deadline (so a silent or hostile client stalls
// only its own thread, never accept, and only until the deadline; without an authkey the
// first request must come by then), then the frame loop (recv frame -> ServerCore ->
// send reply). When the connection ends — end of file, a broken socket, a malformed frame
// — the session's references are released.
//
// Lifetime: connection threads are detached and share ownership of the core, so a thread
// stuck inside a blocking referent call (Queue.get) when the server stops neither hangs
// stop() nor touches freed memory. stop() shuts down the reading side of every
// connection: replies in flight are still sent, idle connections end. serve_forever() returns once stop() is called or a client requests shutdown.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "mp/connection.hpp"
#include "mp/internal/manager_server.hpp"

namespace mp::internal::manager {

class SocketServer {
 public:
  /// Binds `address` ("" = a fresh Unix socket in a private 0700 temporary directory).
  /// Throws mp::OSError when the address cannot be bound.
  SocketServer(std::shared_ptr<ServerCore> core, const std::string& address, std::string authkey,
               std::chrono::milliseconds handshake_timeout = std::chrono::seconds(30));
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;
  /// Stops and closes the listener (removing its socket file).
  ~SocketServer();

  /// The address clients connect to (the chosen port for TCP port 0).
  [[nodiscard]] std::string address() const;
  /// Accepts and serves until stop() or a shutdown request.
  void serve_forever();
  /// Also stop when `fd` becomes readable or reaches end of file (the owner's control
  /// connection). Call before serve_forever().
  void watch(int fd) noexcept { watch_fd_ = fd; }
  /// Wakes serve_forever and shuts down every open connection. Thread-safe, idempotent.
  void stop() noexcept;

  /// After stop(): waits until every connection thread has ended (replies in flight are
  /// sent) or `deadline` passes — a thread blocked inside a referent call (Queue.get)
  /// may never end. Returns true when all ended.
  bool wait_idle(Deadline deadline);

  struct Shared;  // state shared with the connection threads

 private:
  std::shared_ptr<Shared> shared_;
  connection::Listener listener_;
  int watch_fd_ = -1;
};

}  // namespace mp::internal::manager
