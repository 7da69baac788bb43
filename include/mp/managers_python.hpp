// mp/managers_python.hpp — managers that speak CPython's multiprocessing.managers protocol.
//
// Mirrors: the wire side of multiprocessing.managers.BaseManager / Server / BaseProxy /
// AutoProxy (CPython 3.8–3.13): a C++ program can use the queues a Python BaseManager
// serves, and a Python program can connect() to a manager served by C++.
//
//   // C++ worker of a Python master (the seeds' task_master.py):
//   mp::BaseManager m("127.0.0.1:5000", "Willard", {.protocol = mp::managers::Protocol::python});
//   m.connect();
//   auto task = m.get<mp::managers::python::QueueProxy<int>>("get_task_queue");
//   int n = task.get(1s);                              // Python's queue.Empty -> mp::Empty
//
//   // C++ master that Python workers (task_worker.py) connect() to:
//   mp::BaseManager m("127.0.0.1:5000", "Willard", {.protocol = mp::managers::Protocol::python});
//   m.register_<mp::managers::python::Queue>("get_task_queue", [] { static auto q = std::make_shared<mp::managers::python::Queue>(); return q; });
//   m.start();                                         // or m.get_server().serve_forever()
//
// The protocol (see docs/interop.md): every message is one pickled tuple in one frame of
// mp::Connection, on a connection authenticated by CPython's HMAC handshake. Requests are
// (ident, methodname, args, kwds); replies are ('#RETURN', value), ('#ERROR', exception),
// ('#TRACEBACK', str) or ('#UNSERIALIZABLE', str). Server calls (create, incref, decref,
// dummy, get_methods, number_of_objects, debug_info, shutdown) use one connection each;
// accept_connection turns a connection into a proxy's per-thread method channel.
//
// Values: arguments and results are mp::pickle::Values (None, bool, int64, float, str,
// bytes, tuple, list, dict, set, object descriptions); typed proxies convert with
// mp::pickle::Convert (std types, structs with serialize()). An exception raised by the
// Python referent comes back as the mp exception of the same name (queue.Empty ->
// mp::Empty, queue.Full -> mp::Full, ValueError, KeyError, IndexError, AttributeError,
// TimeoutError, EOFError, RuntimeError, BrokenBarrierError), anything else as
// mp::RemoteError naming the Python type. The other way, an mp exception thrown by a C++
// referent reaches Python as the matching Python exception (mp::Empty -> queue.Empty...).
//
// Reference counting is CPython's: a server-wide count per object, raised by create and
// incref and lowered by decref. A proxy holds one reference for its process, taken when
// it is created (get) and given back (decref on a fresh connection) when its last copy in
// that process is destroyed. A copy inherited by fork takes its own reference on its first
// call in the child (keep the parent's copy alive until then). As in CPython, a client
// that dies without its decref leaks its reference (the object lives until shutdown).
//
// Threads: proxies are thread-safe; each thread of each process calls the referent over
// its own connection (CPython's per-thread connections), so a blocking get() blocks only
// its caller. A C++ server serves each connection on its own thread.
//
// Differences from Python: only referents derived from python::Referent can be served
// (python::Queue is provided); '#PROXY' replies (method_to_typeid, a Python manager's
// list-of-proxies) are refused with mp::ValueError; proxies cannot be pickled to other
// processes. The server speaks pickle protocol 4 (Python 3.8–3.13's default) and reads 0–5.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mp/errors.hpp"
#include "mp/managers.hpp"
#include "mp/pickle.hpp"

namespace mp::managers::python {

using pickle::Value;

/// Positional and keyword arguments of a call, as Python passes them.
struct Call {
  std::string_view method;
  const std::vector<Value>& args;
  const pickle::Dict& kwds;

  /// Binds the arguments to parameter names the way Python does for
  /// `def method(p0=d0, p1=d1, ...)`: positional first, then keywords; a missing parameter
  /// takes its default. Throws mp::pickle::TypeError (Python's TypeError) for too many
  /// positional arguments, an unknown or repeated keyword, or a missing required one
  /// (a default of std::nullopt means required).
  [[nodiscard]] std::vector<Value> bind(std::initializer_list<std::pair<std::string_view, std::optional<Value>>> params) const;
};

/// A C++ object served to Python clients (what a registered callable returns). Subclass it
/// to serve your own type: list the method names Python may call in exposed() and run them
/// in call(). call() runs on the thread serving the calling connection, concurrently with
/// other clients' calls: synchronize the referent yourself.
class Referent {
 public:
  virtual ~Referent() = default;
  /// The method names a proxy may call (the `exposed` tuple Python's AutoProxy is built from).
  [[nodiscard]] virtual std::vector<std::string> exposed() const = 0;
  /// Runs one exposed method. Throw an mp exception to raise the matching Python exception
  /// in the caller (mp::Empty -> queue.Empty, mp::ValueError -> ValueError, ...).
  virtual Value call(const Call& c) = 0;
  /// str(referent) / repr(referent), for the proxy's __str__ / __repr__ fallbacks.
  [[nodiscard]] virtual std::string repr() const;
  /// A copy of the referent's value (the proxy's _getvalue()); the default refuses
  /// (mp::ValueError), as Python cannot pickle a queue.Queue either.
  [[nodiscard]] virtual Value getvalue() const;
};

/// Python's queue.Queue of pickle Values: put(item, block=True, timeout=None),
/// get(block=True, timeout=None), put_nowait, get_nowait, qsize, empty, full, task_done,
/// join, with Python's semantics (timeouts in seconds; a negative timeout is ValueError,
/// as in Python; a timed-out get raises queue.Empty, a full put queue.Full).
class Queue final : public Referent {
 public:
  /// maxsize <= 0: unbounded.
  explicit Queue(std::int64_t maxsize = 0) : q_(maxsize) {}
  [[nodiscard]] std::vector<std::string> exposed() const override;
  Value call(const Call& c) override;
  [[nodiscard]] std::string repr() const override;

  /// The queue itself, for C++ code in the server process.
  [[nodiscard]] managed::Queue<Value>& queue() noexcept { return q_; }

 private:
  managed::Queue<Value> q_;
};

/// A proxy for an object in a CPython-protocol manager (Python's BaseProxy / AutoProxy):
/// callmethod() calls any exposed method with pickle Values. Copies share one reference.
/// Thread-safe. A default-constructed proxy refers to nothing (calls raise mp::ValueError).
class Proxy {
 public:
  Proxy() = default;
  /// Asks the manager's server for the object registered as `typeid_name` (Python's
  /// generated `manager.<typeid>()` method) and holds the reference create returned.
  /// BaseManager::get<P>(name) calls this. Throws mp::ValueError if the manager does not
  /// speak Protocol::python, mp::RemoteError for a name the server does not know,
  /// mp::AuthenticationError / mp::OSError when it cannot connect.
  Proxy(const BaseManager& manager, const std::string& typeid_name);

  /// typeid, server address ("host:port" or a path), and the object's id there.
  [[nodiscard]] const Token& token() const;
  /// The methods the server exposes for this object.
  [[nodiscard]] const std::vector<std::string>& exposed() const;
  [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }

  /// Calls `method(*args, **kwds)` on the referent (Python's _callmethod) and returns its
  /// result. Raises the mapped exception on '#ERROR' (see the top of this file),
  /// mp::RemoteError on '#TRACEBACK' / '#UNSERIALIZABLE', mp::EOFError / mp::OSError when
  /// the server is gone. A method that is not exposed raises on the server side
  /// (mp::RemoteError carrying Python's AttributeError traceback).
  Value callmethod(std::string_view method, std::vector<Value> args = {}, pickle::Dict kwds = {}) const;
  /// A copy of the referent (Python's _getvalue(), the '#GETVALUE' call).
  [[nodiscard]] Value getvalue() const { return callmethod("#GETVALUE"); }
  /// str() of the referent, computed by the server.
  [[nodiscard]] std::string str() const { return callmethod("__str__").as_str(); }

 private:
  std::shared_ptr<internal::manager::ProxyState> state_;  // the same state type as BaseProxy's
};

/// Typed proxy for a served queue.Queue (Python's or python::Queue): items convert to and
/// from T with mp::pickle::Convert (T = mp::pickle::Value takes anything).
template <class T = Value>
class QueueProxy : public Proxy {
 public:
  QueueProxy() = default;
  explicit QueueProxy(Proxy p) : Proxy(std::move(p)) {}
  QueueProxy(const BaseManager& manager, const std::string& typeid_name) : Proxy(manager, typeid_name) {}

  /// put(item): blocks while a bounded queue is full.
  void put(const T& item) const { callmethod("put", {Value(item)}); }
  /// put(item, True, timeout): mp::Full if no room frees up in time (negative = zero).
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) const {
    callmethod("put", {Value(item), Value(true), Value(seconds(timeout))});
  }
  /// put_nowait(item): mp::Full when full.
  void put_nowait(const T& item) const { callmethod("put_nowait", {Value(item)}); }
  /// get(): blocks until an item arrives. mp::pickle::TypeError if it is not a T.
  T get() const { return callmethod("get").template as<T>(); }
  /// get(True, timeout): mp::Empty when nothing arrives in time (negative = zero).
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) const {
    return callmethod("get", {Value(true), Value(seconds(timeout))}).template as<T>();
  }
  /// get_nowait(): mp::Empty when empty.
  T get_nowait() const { return callmethod("get_nowait").template as<T>(); }
  [[nodiscard]] std::size_t qsize() const { return static_cast<std::size_t>(callmethod("qsize").as_int()); }
  [[nodiscard]] bool empty() const { return callmethod("empty").as_bool(); }
  [[nodiscard]] bool full() const { return callmethod("full").as_bool(); }
  /// mp::ValueError when called more often than items were put.
  void task_done() const { callmethod("task_done"); }
  /// Blocks until every item put has been task_done()'d.
  void join() const { callmethod("join"); }

 private:
  template <class Rep, class Period>
  static double seconds(std::chrono::duration<Rep, Period> d) {
    double s = std::chrono::duration<double>(d).count();
    return s < 0 ? 0.0 : s;
  }
};

}  // namespace mp::managers::python
