// src/managers/client.hpp — how a proxy reaches its server.
//
// A Link is one authenticated connection to a manager server that carries request frames
// and returns reply frames, one at a time (one Link per client thread). Links are made by
// a Connector chosen by the address: the socket connector (mp::connection::Client with
// the manager's authkey) for paths and host:port, and an in-process connector for
// "inproc:<name>" addresses that tests and the fuzzer use to drive a ServerCore without
// sockets (no fork support: a forked child would talk to its own copy of the core).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "managers/server.hpp"

namespace mp::internal::manager {

class Link {
 public:
  virtual ~Link() = default;
  /// Sends one request frame and returns the reply frame. Throws mp::EOFError /
  /// mp::OSError when the connection breaks.
  virtual std::string roundtrip(std::string_view frame) = 0;
};

/// Opens a Link to `address`, authenticating with the authkey recorded for it.
[[nodiscard]] std::unique_ptr<Link> connect(const std::string& address);

/// The socket connector: mp::connection::Client to `address` ("host:port" or a Unix
/// path), authenticating with `authkey` unless it is empty.
[[nodiscard]] std::unique_ptr<Link> connect_socket(const std::string& address, const std::string& authkey);

/// Makes `core` reachable as "inproc:<name>" from this process until unserve_inproc().
void serve_inproc(const std::string& name, ServerCore& core);
void unserve_inproc(const std::string& name);

/// One request over a Link: encodes, sends, decodes; raises the reply's error if any.
std::string roundtrip(Link& link, const Request& req);

}  // namespace mp::internal::manager
