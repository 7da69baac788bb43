// mp/managers.hpp — objects that live in a server process and are used through proxies.
//
// Mirrors: multiprocessing.Manager() / SyncManager and multiprocessing.managers.BaseManager,
// BaseProxy, Token, Namespace.
//
//   mp::Manager m;                                  // forks the server process
//   auto l = m.list<int>({100});
//   auto lock = m.Lock();
//   mp::Process p([&] { std::scoped_lock g(lock); l[0] -= 1; });
//   p.start(); p.join();                           // l[0] == 99 in every process
//
// Model (as in Python): a *referent* (a std::map, a std::vector, a queue, a Lock...) lives
// in the manager's server process; clients hold *proxies*. Every proxy method is a remote
// call over a socket: the arguments are encoded with mp::codec, the server runs the method
// in the thread serving that connection, and the result (or the exception) comes back.
// An exception raised by the referent is re-raised in the caller with the server's
// message and the same type when mp has it (mp::KeyError, mp::IndexError, mp::Empty,
// mp::Full, mp::ValueError, mp::BrokenBarrierError...), else as mp::RemoteError.
// Each method is described once, name and signature (mp::Method<"get", T(K)>), and the
// server's table and the client's proxy both use that description, so they cannot
// disagree: a mismatch is a compile error (see Exposed in mp/internal/managers/served.hpp).
//
// Guarantees:
// - Proxies work in every process they reach: inherited by fork (mp::Process), or sent
//   through a Connection/Queue (a proxy encodes as its Token: typeid, address, id). A
//   receiving process that did not fork from the manager's owner must know the authkey:
//   construct a BaseManager for that address (or call set_authkey()) first.
// - Each thread of each process talks to the server on its own connection (Python's
//   per-thread connections), so an RLock or Condition acquired by one thread is owned by
//   it, and a blocking call (Queue.get, Event.wait) blocks only its caller.
// - Reference counting: the first connection a process opens for a proxy holds its
//   reference; when that connection closes — the last copy of the proxy in that process
//   was destroyed, the process exited or was killed, even mid-call — the server drops the
//   reference, and destroys the referent when no process holds one any more. A forked child
//   takes its own reference *before* it lets go of the parent's inherited connection, so a
//   proxy passed by fork can never be freed under the child. A proxy sent through a
//   Connection is only safe while the sender still holds its copy (as in Python).
// - Fork safety: fork whenever you like, even while other threads are inside calls on the
//   same proxy. A child never uses a lock or a connection it inherited: on its first call
//   it starts from fresh per-process state and opens its own connections.
// - Security: every connection authenticates (CPython's HMAC challenge/response, sha256,
//   constant-time comparison) before a single request byte is parsed, within
//   BaseManagerOptions::handshake_timeout (30 s) or is dropped. The request parser is bounded
//   and fuzzed; a malformed frame closes that connection only. TCP binds 127.0.0.1 unless
//   told otherwise; an empty authkey is refused off loopback; the key is never shown.
// - The server dies with its owner: mp::Manager's server is a daemon child (terminated
//   at exit, SIGKILLed by the kernel if the owner dies — PR_SET_PDEATHSIG) and also exits
//   when its owner's control connection reaches end of file.
//
// Differences from Python: referents are typed (dict<K,V>, list<T>, Queue<T>...); a
// Namespace is a typed attribute bag (get<T>("x")); dict and set are ordered by key
// (std::map, std::set), not by insertion. Slices are methods: l[2:10] is l.slice(2, 10),
// l[2:10] = v is l.set_slice(2, 10, v), an omitted bound is mp::slice_none; l + other,
// l * n, d | other and set operators return plain std containers, as Python returns plain
// lists, dicts and sets. A call blocked in the server (Queue.get) is not interrupted when its
// client dies: it completes, and its result is discarded (Python behaves the same).
// A Lock held by a client that dies stays held, as in Python.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mp/errors.hpp"
#include "mp/internal/call.hpp"

// The pieces, in dependency order (include/mp/internal/managers/): method descriptors and
// tables, served objects, the referents, how mp's referents are exposed, the proxy base,
// the typed proxies.
#include "mp/internal/managers/method.hpp"
#include "mp/internal/managers/served.hpp"
#include "mp/internal/managers/referents.hpp"
#include "mp/internal/managers/exposed.hpp"
#include "mp/internal/managers/proxy.hpp"
#include "mp/internal/managers/proxies.hpp"

namespace mp {

class BaseManager;
namespace internal::manager {
class SocketServer;
struct Running;
/// How a registration is made again in a server the fork server started: `make(m, name,
/// fn)` calls m.register_ with the same types; `fn` is the callable when it is a function
/// pointer. An empty recipe (make == nullptr): the callable carries state.
struct Recipe {
  void (*make)(BaseManager& m, const std::string& name, void (*fn)()) = nullptr;
  void (*fn)() = nullptr;
};
}  // namespace internal::manager
namespace managers {
/// The wire protocol a BaseManager speaks. native: mp's own (typed referents and proxies,
/// mp::codec). python: CPython's multiprocessing.managers protocol (pickled tuples), so the
/// server or the clients may be Python programs; referents and proxies then come from
/// <mp/managers_python.hpp> (python::Queue, python::QueueProxy<T>, python::Proxy).
enum class Protocol : std::uint8_t { native, python };
namespace python {
class Referent;
}  // namespace python
}  // namespace managers

/// BaseManager's third argument, as keyword arguments:
/// `mp::BaseManager m("127.0.0.1:5000", key, {.protocol = ..., .handshake_timeout = 5s})`.
struct BaseManagerOptions {
  /// What start()/get_server() serve and connect()/get() speak. Default: native.
  managers::Protocol protocol = managers::Protocol::native;
  /// A client must complete the authentication handshake — on a server without an authkey,
  /// send its first request — within this time; otherwise the server closes its connection.
  /// A client that connects and says nothing thus holds a server thread for this long at
  /// most, and never delays other clients. Default 30 s. Both protocols.
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(30);
};

/// The server half of a manager (Python's managers.Server), from BaseManager::get_server():
/// serve in this process instead of a forked one.
class Server {
 public:
  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  ~Server();
  /// Where clients connect ("host:port" or a Unix socket path; the real port for port 0).
  [[nodiscard]] std::string address() const;
  /// Accepts and serves clients (a thread per connection) until a client calls
  /// shutdown() (BaseManager::shutdown from a client that connect()ed) or stop().
  /// Unlike Python, returns instead of exiting the process.
  void serve_forever();
  /// Makes serve_forever return and shuts down open connections. Thread-safe.
  void stop() noexcept;

 private:
  friend class BaseManager;
  explicit Server(std::unique_ptr<internal::manager::SocketServer> s);
  std::unique_ptr<internal::manager::SocketServer> impl_;  // either protocol
};

/// A manager at an address (Python's multiprocessing.managers.BaseManager).
///
///   // server side (the master):
///   mp::BaseManager m("127.0.0.1:5000", "Willard");
///   m.register_<mp::managed::Queue<int>>("get_task_queue", [] { return task_queue; });
///   m.start();                                      // forks the server process
///   auto task = m.get<mp::QueueProxy<int>>("get_task_queue");
///   // client side (a worker, another program or host):
///   mp::BaseManager w("127.0.0.1:5000", "Willard");
///   w.connect();
///   auto task = w.get<mp::QueueProxy<int>>("get_task_queue");
///
/// Address: "host:port" (TCP; "" host = 127.0.0.1; every interface only with an explicit
/// "0.0.0.0:port"; port 0 = the system picks one, see address() after start()), a Unix
/// socket path, or "" (a fresh Unix socket in a private 0700 directory). Authkey: the
/// shared secret of the HMAC handshake; nullopt = 32 random bytes, inherited by forked
/// children (Python: current_process().authkey); "" = no authentication, which start() and
/// get_server() refuse (mp::ValueError) on an address other than loopback or a Unix socket.
/// The authkey never appears in an exception message or in a proxy's encoding.
///
/// Protocol: `{.protocol = mp::managers::Protocol::python}` makes start()/get_server()
/// serve, and connect()/get() speak, CPython's multiprocessing.managers protocol, so either
/// side may be a Python program (see <mp/managers_python.hpp> and docs/interop.md).
///
/// Lifetime: the server started by start() is a daemon child of the owner (the process
/// that called start()): it exits on shutdown(), when the owner's BaseManager is destroyed,
/// when the owner exits, and — even on SIGKILL — when the owner dies (PR_SET_PDEATHSIG, and
/// end of file on the control connection once the owner and the children it forked after
/// start() have all closed it). Copies of the object in forked children never stop it.
class BaseManager {
 public:
  explicit BaseManager(std::string address = {}, std::optional<std::string> authkey = std::nullopt,
                       BaseManagerOptions options = {});
  BaseManager(const BaseManager&) = delete;
  BaseManager& operator=(const BaseManager&) = delete;
  /// shutdown() in the owner process.
  virtual ~BaseManager();

  /// Server side (Python's register(typeid, callable)): a get<P>(name) by any client calls
  /// `callable` in the server process and serves the object it returns (return the same
  /// shared_ptr every time to share one object, as the seeds' task queue does). Register
  /// before start() / get_server().
  /// With Protocol::python, R derives from managers::python::Referent (python::Queue...).
  /// Throws mp::ValueError when R does not fit the manager's protocol.
  ///
  /// Under StartMethod::forkserver the server process is a copy of the fork server, not of
  /// this one: `callable` must then be a function or a captureless lambda (it is sent by
  /// code address and runs there; return a function-local static to share one object, as
  /// examples/distributed_master.cpp does). start() raises mp::ValueError naming a
  /// registration whose callable carries state.
  template <class R, class F>
    requires std::is_constructible_v<std::function<std::shared_ptr<R>()>, F>
  BaseManager& register_(std::string name, F callable) {
    using D = std::decay_t<F>;
    if constexpr (StatelessCallable<D>) {
      internal::manager::Recipe recipe{&reregister<R, D>, nullptr};
      if constexpr (std::is_pointer_v<D>) recipe.fn = reinterpret_cast<void (*)()>(callable);
      recipes_[name] = recipe;
    } else {
      recipes_[name] = internal::manager::Recipe{};
    }
    return register_callable<R>(std::move(name), std::function<std::shared_ptr<R>()>(std::move(callable)));
  }

 private:
  /// register_<R>(name, F) again, in a server started by the fork server.
  template <class R, class F>
  static void reregister(BaseManager& m, const std::string& name, void (*fn)()) {
    if constexpr (std::is_pointer_v<F>) {
      m.register_<R>(name, reinterpret_cast<F>(fn));
    } else {
      m.register_<R>(name, F{});
    }
  }
  template <class R>
  BaseManager& register_callable(std::string name, std::function<std::shared_ptr<R>()> callable) {
    if constexpr (std::is_base_of_v<managers::python::Referent, R>) {
      require_protocol(managers::Protocol::python, "register_", name);
      python_callables_[std::move(name)] = [callable]() -> std::shared_ptr<managers::python::Referent> {
        return callable();
      };
    } else {
      require_protocol(managers::Protocol::native, "register_", name);
      callables_[std::move(name)] = [callable](std::string_view args) -> std::shared_ptr<internal::manager::Object> {
        MethodTable<R>::template decode_args<>(args);
        std::shared_ptr<R> r = callable();
        if (!r) return nullptr;
        return std::make_shared<internal::manager::Served<R>>(std::move(r));
      };
    }
    return *this;
  }

 public:
  /// Client side (Python's register(typeid) + the generated method): asks the server for
  /// the object registered as `name` and returns a proxy P to it. Throws mp::ValueError if
  /// the server has no such name or serves another type under it.
  /// With Protocol::python, P is a managers::python proxy (python::QueueProxy<T>...).
  template <class P>
  P get(const std::string& name) const {
    if constexpr (std::is_constructible_v<P, const BaseManager&, const std::string&>) {
      return P(*this, name);
    } else {
      require_protocol(managers::Protocol::native, "get", name);
      return P(BaseProxy::create(address(), name, {}));
    }
  }

  /// Forks the server process and waits until it listens. Throws mp::ProcessError if
  /// already started, mp::OSError if the address cannot be bound, mp::ValueError for a
  /// non-loopback TCP address with an empty authkey.
  void start();
  /// Checks that a server listens at address() and accepts our authkey (Python's
  /// connect()). Throws mp::AuthenticationError for a wrong key, mp::OSError when nobody
  /// listens.
  void connect();
  /// A server for this manager's address and registrations, to run in this process.
  [[nodiscard]] Server get_server();
  /// Stops the server: the one start() forked (asks it, then joins it; kills it if it does
  /// not end within 10 s), or, after connect(), the remote one (Python allows this too).
  /// Idempotent; a no-op in forked children of the owner.
  void shutdown();

  [[nodiscard]] const std::string& address() const noexcept { return address_; }
  [[nodiscard]] const std::string& authkey() const noexcept { return authkey_; }
  [[nodiscard]] managers::Protocol protocol() const noexcept { return options_.protocol; }
  /// How many objects the server holds (Python's _number_of_objects(); for tests).
  [[nodiscard]] std::size_t number_of_objects() const;
  /// The server process started by start() (pid), or 0.
  [[nodiscard]] int server_pid() const noexcept;

 protected:
  std::string address_;
  std::string authkey_;
  std::map<std::string, internal::manager::Factory> callables_;
  std::unique_ptr<internal::manager::Running> running_;
  bool connected_ = false;
  BaseManagerOptions options_;
  std::map<std::string, std::function<std::shared_ptr<managers::python::Referent>()>> python_callables_;

 private:
  /// Throws mp::ValueError unless the manager speaks `p` (`what` and `name` for the message).
  void require_protocol(managers::Protocol p, std::string_view what, const std::string& name) const;
  /// Binds a server for this manager's protocol, address and callables (start, get_server).
  std::unique_ptr<internal::manager::SocketServer> make_server() const;
  /// The server process's main under StartMethod::forkserver (see start()).
  static void served_main(std::string_view payload);
  /// How each registration is made again in a server started by the fork server; an empty
  /// recipe: the callable carries state.
  std::map<std::string, internal::manager::Recipe> recipes_;
};

/// Python's SyncManager: a BaseManager whose server can make every standard type.
class SyncManager : public BaseManager {
 public:
  using BaseManager::BaseManager;
  template <class K, class V>
  DictProxy<K, V> dict(std::map<K, V> init = {}) const {
    return internal::manager::create_proxy<DictProxy<K, V>>(address(), init);
  }
  template <class T>
  ListProxy<T> list(std::vector<T> init = {}) const {
    return internal::manager::create_proxy<ListProxy<T>>(address(), init);
  }
  /// Python 3.14's SyncManager.set().
  template <class T>
  SetProxy<T> set(std::set<T> init = {}) const {
    return internal::manager::create_proxy<SetProxy<T>>(address(), init);
  }
  NamespaceProxy Namespace() const { return internal::manager::create_proxy<NamespaceProxy>(address()); }
  /// maxsize <= 0: unbounded.
  template <class T>
  QueueProxy<T> Queue(std::int64_t maxsize = 0) const {
    return internal::manager::create_proxy<QueueProxy<T>>(address(), maxsize);
  }
  template <class T>
  JoinableQueueProxy<T> JoinableQueue(std::int64_t maxsize = 0) const {
    return internal::manager::create_proxy<JoinableQueueProxy<T>>(address(), maxsize);
  }
  LockProxy Lock() const { return internal::manager::create_proxy<LockProxy>(address()); }
  RLockProxy RLock() const { return internal::manager::create_proxy<RLockProxy>(address()); }
  SemaphoreProxy Semaphore(int value = 1) const { return internal::manager::create_proxy<SemaphoreProxy>(address(), value); }
  EventProxy Event() const { return internal::manager::create_proxy<EventProxy>(address()); }
  ConditionProxy Condition() const { return internal::manager::create_proxy<ConditionProxy>(address()); }
  BarrierProxy Barrier(int parties) const { return internal::manager::create_proxy<BarrierProxy>(address(), parties); }
  template <class T>
  ValueProxy<T> Value(T initial = T{}) const {
    return internal::manager::create_proxy<ValueProxy<T>>(address(), initial);
  }
  template <class T>
  ArrayProxy<T> Array(std::vector<T> init) const {
    return internal::manager::create_proxy<ArrayProxy<T>>(address(), init);
  }
};

/// multiprocessing.Manager(): a started SyncManager on a private Unix socket with a random
/// authkey. Its proxies work in every process forked from the owner afterwards.
class Manager : public SyncManager {
 public:
  Manager() : SyncManager() { start(); }
};

}  // namespace mp
