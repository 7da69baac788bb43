// src/managers/socket.hpp — the socket transport both manager servers share.
//
// SocketServer listens at an address (mp::connection::Listener, no authentication in
// accept()) and serves each accepted connection on its own detached thread: that thread
// first runs CPython's mutual HMAC handshake with a deadline (so a silent or hostile client
// stalls only its own thread, never accept, and only until the deadline; without an
// authkey the first request must come by then), then hands the connection to the
// protocol's Handler: the native protocol's frame loop (recv frame -> ServerCore -> send
// reply, make_native_server) or CPython's (managers/python.hpp's make_python_server).
//
// Lifetime: connection threads are detached and share ownership of what their handler
// captured, so a thread stuck inside a blocking referent call (Queue.get) when the server
// stops neither hangs stop() nor touches freed memory. stop() shuts down the reading side
// of every connection: replies in flight are still sent, idle connections end.
// serve_forever() returns once stop() is called (by anyone, or through stopper() by a
// client's shutdown request), and stops listening at once.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "mp/connection.hpp"
#include "managers/server.hpp"

namespace mp::internal::manager {

class SocketServer {
 public:
  /// Serves one authenticated connection, in that connection's own thread; returns when
  /// the connection is done. An exception ends that connection only.
  using Handler = std::function<void(Connection&)>;

  /// Binds `address` ("" = a fresh Unix socket in a private 0700 temporary directory).
  /// Throws mp::OSError when the address cannot be bound.
  SocketServer(const std::string& address, std::string authkey, std::chrono::milliseconds handshake_timeout,
               Handler handler);
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;
  /// Stops and closes the listener (removing its socket file).
  ~SocketServer();

  /// The address clients connect to (the chosen port for TCP port 0).
  [[nodiscard]] const std::string& address() const noexcept { return address_; }
  /// Accepts and serves until stop(), then closes the listener: a client still queued
  /// would otherwise wait for a handshake that never comes.
  void serve_forever();
  /// Also stop when `fd` becomes readable or reaches end of file (the owner's control
  /// connection). Call before serve_forever().
  void watch(int fd) noexcept { watch_fd_ = fd; }
  /// Wakes serve_forever and shuts down every open connection. Thread-safe, idempotent.
  void stop() noexcept;
  /// stop(), as a callable that outlives the server harmlessly (for a client's shutdown
  /// request, handled in a connection thread).
  [[nodiscard]] std::function<void()> stopper() const;

  /// After stop(): waits until every connection thread has ended (replies in flight are
  /// sent) or `deadline` passes — a thread blocked inside a referent call (Queue.get)
  /// may never end. Returns true when all ended.
  bool wait_idle(Deadline deadline);

  struct Shared;  // state shared with the connection threads

 private:
  /// Out of descriptors: frees the spare, accepts the waiting client and closes it, takes
  /// the spare back. False when there is no spare (then the listener pauses).
  bool refuse_one_client() noexcept;
  void reserve_spare() noexcept;

  std::shared_ptr<Shared> shared_;
  connection::Listener listener_;
  std::string address_;
  int watch_fd_ = -1;
  UniqueFd spare_;  // /dev/null, held to be given up when accept() meets EMFILE
};

/// The native protocol's server: each connection runs ServerCore's frame loop, and a
/// client's shutdown request stops the server.
std::unique_ptr<SocketServer> make_native_server(std::shared_ptr<ServerCore> core, const std::string& address,
                                                 std::string authkey, std::chrono::milliseconds handshake_timeout);

/// The body of the server process BaseManager::start() forks, for either protocol:
/// `make_server()` binds; reports "ok:<address>" (or "err:<what>") on `control`; removes
/// the socket file if the server dies with its `owner`; serves until shutdown (or until
/// `control` ends); lets replies in flight go out; then _exit()s.
[[noreturn]] void run_server(Connection& control, const std::function<std::unique_ptr<SocketServer>()>& make_server,
                             bool private_dir, pid_t owner);

}  // namespace mp::internal::manager
