// src/managers/server.hpp — the native protocol's server: server calls and method
// dispatch over the object registry, independent of how requests arrive (sockets, or
// in-process for tests).
//
// A server holds *objects*: referents (a std::map behind a dict, a queue...) wrapped with
// the method table of their type. A type is known by its *typeid*, a string both sides
// derive from the same template (mp::Exposed<R>::name()), never by a function address:
// a master and a worker built as different programs still agree on what "Queue<i>" and
// its method "get" mean.
//
// Reference counting: every reference belongs to a Session (one client connection);
// the registry (managers/registry.hpp, shared with the CPython protocol's server) drops
// all of a session's references when it ends.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "managers/registry.hpp"
#include "managers/wire.hpp"
#include "mp/managers.hpp"

namespace mp::internal::manager {

/// The factory register_global_type() recorded for `name`, or an empty one.
[[nodiscard]] Factory find_global_type(const std::string& name);

/// The native protocol's dispatcher over the shared registry. Thread-safe: one thread per
/// connection calls handle().
class ServerCore {
 public:
  /// `callables`: BaseManager.register(name, callable) entries, tried before the global
  /// type table when a create names them.
  explicit ServerCore(std::map<std::string, Factory> callables = {});
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  /// Runs one request for `session`. Never throws: failures become error replies.
  [[nodiscard]] Reply handle(Session& session, const Request& req) noexcept;
  /// Decodes, runs and encodes. A frame that does not decode returns nullopt-like empty
  /// string: the caller must close that connection (its stream can no longer be trusted).
  [[nodiscard]] std::string handle_frame(Session& session, std::string_view frame, const WireCodec& wire) noexcept;
  /// Drops every reference `session` holds (the connection ended).
  void release(Session& session) noexcept;

  [[nodiscard]] std::size_t number_of_objects() const;
  /// True once a client asked for shutdown.
  [[nodiscard]] bool shutdown_requested() const noexcept;
  /// Called (once, from the requesting connection's thread) when shutdown is requested.
  std::function<void()> on_shutdown;

 private:
  Reply dispatch_server(Session& s, const Request& req);

  std::map<std::string, Factory> callables_;
  ObjectRegistry<Object> objects_;
  mutable std::mutex mu_;  // guards shutdown_
  bool shutdown_ = false;
};

}  // namespace mp::internal::manager
