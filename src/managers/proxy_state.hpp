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
// Fork safety, by construction: a forked child never takes a lock it inherited, and never
// talks over a connection it inherited. All that one process uses lives in a Local (its
// pid, its threads' channels, whether it holds a reference), and the state points to the
// current process's Local through one atomic pointer. A call first compares that Local's
// pid with internal::self_pid() (refreshed by a pthread_atfork child handler before the
// child runs anything, so no getpid() per call); in a forked child they differ, and the
// first thread to notice installs a fresh Local for the child with a compare-and-swap —
// before, and without, taking any lock. There is no mutex at all on the call path: a
// Local's channels are a push-only list (each thread adds only its own, published with a
// release CAS), so whatever other threads of the parent were doing when it forked (opening
// a channel, blocked inside a call, taking a reference), the child sees either a whole
// entry or none. Why not a mutex re-initialised by an atfork child handler: that needs a
// registry of every live proxy (with its own lock, itself inherited), and a map another
// thread was changing at fork time cannot be trusted whatever its lock says. (CPython gets
// the same effect by resetting ForkAwareThreadLock and ForkAwareLocal after fork.)
//
// The parent's reference and connections in a child: they stay the parent's. The child
// takes its own reference on its first call (native: incref on a new channel, which stays
// open and so holds it; CPython: an incref call) while its inherited copies of the
// parent's sockets still keep the object alive, and only then closes those copies (never
// using them: their frames would mix with the parent's). Closing a copy does not end the
// parent's session — the parent's own descriptor keeps it open — and the child never gives
// back the parent's reference. Calls by other child threads meanwhile open their own
// channels and go ahead: the object is alive either way. The parent's Local (now just
// memory) is kept until the state dies, since another child thread may still be reading
// its pid; a child that never calls closes the copies when its last proxy copy goes.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
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
      : token(std::move(t)),
        authkey(std::move(key)),
        exposed(std::move(methods)),
        protocol_(protocol),
        local_(new Local(/*holds_reference=*/true, nullptr)) {}
  ProxyState(const ProxyState&) = delete;
  ProxyState& operator=(const ProxyState&) = delete;
  ~ProxyState();

  const Token token;
  const std::string authkey;              ///< CPython protocol (the native one looks it up by address)
  const std::vector<std::string> exposed;  ///< CPython protocol: the methods the server exposes

  /// The calling thread's channel (opened on first use; rebinding first after a fork).
  Link& link();
  /// Makes `l` the calling thread's channel (the one that took this process's reference).
  /// Only right after construction, before the state is shared.
  void adopt(std::unique_ptr<Link> l);

 private:
  /// One thread's channel; a Local's list of them only grows (nodes are published whole).
  struct Channel {
    std::thread::id thread;
    std::unique_ptr<Link> link;
    Channel* next = nullptr;
  };
  /// What one process uses. See the comment at the top: never locked, since a child may
  /// inherit it in any state.
  struct Local {
    explicit Local(bool holds_reference, Local* parent)
        : reference(holds_reference ? kHeld : kNone), inherited(parent) {}
    const pid_t pid = self_pid();
    std::atomic<Channel*> channels{nullptr};
    static constexpr int kNone = 0, kTaking = 1, kHeld = 2;
    std::atomic<int> reference;          // this process's own reference to the object
    std::unique_ptr<Link> reference_link;  // the channel that took it, if not a thread's
    Local* const inherited;              // the parent's Local (owned: freed with the state)
  };

  /// This process's Local: a fresh one (swapped in lock-free) on the first call after fork.
  Local& local();
  /// In a forked child: takes this process's reference (once; others go ahead meanwhile)
  /// and then closes the inherited channels.
  void take_reference(Local& me);
  /// Pushes `l` as the calling thread's channel of `me`.
  static Link& push(Local& me, std::unique_ptr<Link> l);
  /// Closes (and frees) the channels of `l` and of every Local it inherited.
  static void close_channels(Local* l) noexcept;

  const ProxyProtocol& protocol_;
  std::atomic<Local*> local_;
};

/// mp's native protocol: channels from connect(address); the first channel holds the
/// process's reference (incref on it after fork).
[[nodiscard]] const ProxyProtocol& native_proxy_protocol() noexcept;

}  // namespace mp::internal::manager
