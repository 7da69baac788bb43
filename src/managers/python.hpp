// src/managers/python.hpp — CPython's manager protocol: the client's dispatch and
// the server (make_python_server) behind BaseManager's Protocol::python.
//
// Client: every server call opens an authenticated connection, sends one pickled
// (None, methodname, args, kwds) and reads one (kind, result) — CPython's dispatch(). A
// proxy's state is the ProxyState both protocols share (managers/proxy_state.hpp) with
// python_proxy_protocol(): a per-thread channel is a connection that sent
// ('accept_connection', (name,)), references are given back by decref.
//
// Server: make_python_server() — the transport shared with the native protocol
// (managers/socket.hpp: one detached thread per connection, the mutual HMAC handshake with
// a deadline first) — handles one server call — or, after accept_connection,
// method calls until end of file. Objects live in the registry both protocols share
// (managers/registry.hpp) keyed by ident (the referent's address in hex, as CPython's
// '%x' % id(obj)) with its server-wide reference count; an object whose count reaches zero
// leaves the registry (the registered callable may still own it). stop() shuts down the reading side of every connection: replies in flight are
// sent, waiting connections end.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "managers/client.hpp"
#include "managers/wire.hpp"
#include "mp/connection.hpp"
#include "mp/internal/futex.hpp"
#include "mp/managers_python.hpp"
#include "mp/pickle.hpp"

namespace mp::internal::manager {

class SocketServer;
struct ProxyProtocol;

/// What a BaseManager::register_ entry of the CPython protocol makes.
using PythonFactory = std::function<std::shared_ptr<managers::python::Referent>()>;

/// An authenticated connection to a CPython-protocol manager at `address`, carrying
/// frames of at most kMaxFrame bytes either way.
[[nodiscard]] std::unique_ptr<Link> python_open(const std::string& address, const std::string& authkey);

/// Sends (id, method, args, kwds) and returns the '#RETURN' value; raises the mapped
/// exception for '#ERROR', mp::RemoteError for '#TRACEBACK'/'#UNSERIALIZABLE', and
/// mp::ValueError for '#PROXY' and unknown kinds. `what` prefixes error messages.
pickle::Value python_dispatch(Link& c, const pickle::Value& id, std::string_view method,
                       std::vector<pickle::Value> args = {}, pickle::Dict kwds = {});

/// One server call on a fresh connection (CPython's dispatch(Client(...), None, ...)).
pickle::Value python_server_call(const std::string& address, const std::string& authkey, std::string_view method,
                          std::vector<pickle::Value> args = {});

/// The pickled exception an mp (or std) exception stands for in Python
/// (mp::Empty -> _queue.Empty(msg), mp::ValueError -> ValueError(msg), ...).
[[nodiscard]] pickle::Value to_python_exception(const std::exception& e);
/// Throws the mp exception a pickled Python exception stands for (see managers_python.hpp).
[[noreturn]] void raise_python_exception(const pickle::Value& exc, std::string_view method);

/// The proxies' side of the protocol (channels by accept_connection, decref on release).
[[nodiscard]] const ProxyProtocol& python_proxy_protocol() noexcept;

/// The objects of a CPython-protocol server and the handling of one request frame
/// (separate from the sockets, so the fuzzer can drive it). Thread-safe.
class PythonCore {
 public:
  explicit PythonCore(std::map<std::string, PythonFactory> callables);
  PythonCore(const PythonCore&) = delete;
  PythonCore& operator=(const PythonCore&) = delete;
  ~PythonCore();

  /// What a connection does after answering its first request.
  enum class Next : std::uint8_t { close, serve_client, shutdown };
  /// The first request of a connection (a server call: create, incref, decref, dummy,
  /// get_methods, number_of_objects, debug_info, shutdown, accept_connection). Returns the
  /// pickled reply — failures are '#TRACEBACK' replies — or "" when not even that could be
  /// built (close the connection).
  [[nodiscard]] std::string handle_server_request(std::string_view frame, Next& next) noexcept;
  /// One (ident, methodname, args, kwds) call on an accept_connection channel; as above.
  [[nodiscard]] std::string handle_method_call(std::string_view frame) noexcept;
  [[nodiscard]] std::size_t number_of_objects() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The CPython protocol's server: the shared transport (managers/socket.hpp) whose
/// connections run one server call each — or, after accept_connection, method calls on the
/// registry until end of file; a client's shutdown call stops the server.
std::unique_ptr<SocketServer> make_python_server(std::map<std::string, PythonFactory> callables,
                                                const std::string& address, std::string authkey,
                                                std::chrono::milliseconds handshake_timeout);

}  // namespace mp::internal::manager
