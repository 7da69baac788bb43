// src/managers/proxy_state.hpp — what the copies of one proxy share in one process, for
// both protocols (mp::BaseProxy and mp::managers::python::Proxy).
//
// A ProxyState holds the object's Token, the reference this process holds to it, and one
// Link (connection) per client thread, made on the thread's first call, so a blocking call
// blocks only its caller and a lock acquired by a thread is owned by that thread's
// connection. What differs between the protocols is a ProxyProtocol: how a thread's
// channel is opened, how a forked child takes its own reference, and how the reference is
// given back (native: the server drops it when the connection that holds it closes;
// CPython: an explicit decref).
//
// After fork: the child inherits the state with the parent's connections (their frames
// would mix with the parent's) and the parent's reference. On its first call the child
// takes its own reference — while the inherited sockets still keep the object alive —
// and only then drops its copies of them. The owner pid is internal::self_pid(), refreshed
// by a pthread_atfork child handler before the child runs anything, so it is right after
// every fork() without a getpid() system call per proxy call.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "managers/client.hpp"
#include "mp/internal/os.hpp"
#include "mp/managers.hpp"

namespace mp::internal::manager {

struct ProxyState;

/// The protocol-specific steps of a ProxyState.
struct ProxyProtocol {
  /// A new channel for the calling thread.
  std::unique_ptr<Link> (*open)(const ProxyState& s);
  /// In a forked child, before the inherited channels go: takes this process's own
  /// reference. May return the channel that took it, to keep as the calling thread's.
  std::unique_ptr<Link> (*take_reference)(const ProxyState& s);
  /// When the last copy in the process holding the reference goes, after its channels
  /// closed: gives the reference back. nullptr: closing the channels gave it back.
  /// Must not throw.
  void (*give_back)(const ProxyState& s) noexcept;
};

struct ProxyState {
  ProxyState(const ProxyProtocol& protocol, Token t, std::string key = {}, std::vector<std::string> methods = {})
      : token(std::move(t)), authkey(std::move(key)), exposed(std::move(methods)), protocol_(protocol) {}
  ProxyState(const ProxyState&) = delete;
  ProxyState& operator=(const ProxyState&) = delete;
  ~ProxyState();

  const Token token;
  const std::string authkey;              ///< CPython protocol (the native one looks it up by address)
  const std::vector<std::string> exposed;  ///< CPython protocol: the methods the server exposes

  /// The calling thread's channel (opened on first use; rebinding first after a fork).
  Link& link();
  /// Makes `l` the calling thread's channel (the one that took this process's reference).
  void adopt(std::unique_ptr<Link> l);

 private:
  const ProxyProtocol& protocol_;
  pid_t owner_ = self_pid();  // the process holding this state's reference
  std::mutex mu_;
  std::unordered_map<std::thread::id, std::unique_ptr<Link>> links_;
};

/// mp's native protocol: channels from connect(address); the first channel holds the
/// process's reference (incref on it after fork).
[[nodiscard]] const ProxyProtocol& native_proxy_protocol() noexcept;

}  // namespace mp::internal::manager
