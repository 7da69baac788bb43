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
// Namespace is a typed attribute bag (get<T>("x")); dict is ordered by key (std::map),
// not by insertion. A call blocked in the server (Queue.get) is not interrupted when its
// client dies: it completes, and its result is discarded (Python behaves the same).
// A Lock held by a client that dies stays held, as in Python.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "mp/internal/manager_server.hpp"
#include "mp/internal/manager_wire.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"

namespace mp {

// ------------------------------------------------------------------------ method tables

/// The methods a referent type exposes, by name. Built once per type from
/// Exposed<R>::methods(); its entries decode the arguments, call, and encode the result.
template <class R>
class MethodTable {
 public:
  using Fn = std::function<std::string(R&, std::string_view)>;

  /// Exposes `fn(referent, args...)` as `name`. Arguments and result must be Transferable.
  template <class Ret, class... A>
  MethodTable& def(std::string name, Ret (*fn)(R&, A...)) {
    methods_[std::move(name)] = [fn](R& r, std::string_view args) -> std::string {
      auto tup = decode_args<std::decay_t<A>...>(args);
      if constexpr (std::is_void_v<Ret>) {
        std::apply([&](auto&... a) { fn(r, std::move(a)...); }, tup);
        return {};
      } else {
        return codec::encode(std::apply([&](auto&... a) -> Ret { return fn(r, std::move(a)...); }, tup));
      }
    };
    return *this;
  }

  [[nodiscard]] std::string invoke(R& r, std::string_view method, std::string_view args) const {
    auto it = methods_.find(std::string(method));
    if (it == methods_.end())
      throw AttributeError("'" + std::string(method) + "' is not a method exposed by the referent");
    return it->second(r, args);
  }

  /// Encodes call arguments the way def() decodes them.
  template <class... A>
  static std::string encode_args(const A&... a) {
    if constexpr (sizeof...(A) == 0) return {};
    else return codec::encode(std::tuple<A...>(a...));
  }
  template <class... A>
  static std::tuple<A...> decode_args(std::string_view args) {
    if constexpr (sizeof...(A) == 0) {
      if (!args.empty()) throw CodecError("the method takes no arguments, but " + std::to_string(args.size()) + " bytes came");
      return {};
    } else {
      return codec::decode<std::tuple<A...>>(args);
    }
  }

 private:
  std::unordered_map<std::string, Fn> methods_;
};

/// Customisation point: how a referent type R is served. Specialise it for your own types
/// (BaseManager::register_) with
///   static std::string name();                 // its typeid, the same in every program
///   static void methods(MethodTable<R>& t);    // t.def("get", +[](R& r) { ... })...
///   static constexpr bool serialized = true;   // calls run under a per-object mutex
/// `serialized = false` for referents that synchronise themselves and may block (queues,
/// locks): their methods then run concurrently, one per client thread.
template <class R>
struct Exposed;

namespace internal::manager {

/// A stable spelling of T for typeids: the ABI's type name (identical in every program
/// built by the same compiler, unlike function addresses).
template <class T>
std::string type_key() {
  return typeid(T).name();
}

template <class R>
const MethodTable<R>& method_table() {
  static const MethodTable<R> table = [] {
    MethodTable<R> t;
    Exposed<R>::methods(t);
    return t;
  }();
  return table;
}

template <class R>
class Served final : public Object {
 public:
  explicit Served(std::shared_ptr<R> r) : ref_(std::move(r)), name_(Exposed<R>::name()) {}
  const std::string& type_name() const noexcept override { return name_; }
  std::string call(std::string_view method, std::string_view args) override {
    if constexpr (Exposed<R>::serialized) {
      std::lock_guard g(mu_);
      return method_table<R>().invoke(*ref_, method, args);
    } else {
      return method_table<R>().invoke(*ref_, method, args);
    }
  }

 private:
  std::shared_ptr<R> ref_;
  std::string name_;
  std::mutex mu_;
};

/// Constructor arguments of a referent made by the Manager (m.dict<K,V>(init)...): R is
/// built from the decoded tuple.
template <class R, class... A>
Factory constructing_factory() {
  return [](std::string_view args) -> std::shared_ptr<Object> {
    auto tup = MethodTable<R>::template decode_args<A...>(args);
    auto r = std::apply([](auto&... a) { return std::make_shared<R>(std::move(a)...); }, tup);
    return std::make_shared<Served<R>>(std::move(r));
  };
}

/// Registers `R constructed from A...` in this program's global type table at static
/// initialisation, so a server forked from (or built from the same sources as) any program
/// that names the type can create it. ODR-use `registered` to instantiate.
template <class R, class... A>
struct AutoRegister {
  static std::string key() { return Exposed<R>::name() + "(" + (std::string{} + ... + (type_key<A>() + ",")) + ")"; }
  static inline const bool registered = (register_global_type(key(), constructing_factory<R, A...>()), true);
};

struct ProxyState;

}  // namespace internal::manager

// ------------------------------------------------------------------------------- Token

/// What identifies a managed object (Python's Token): its typeid, the server's address
/// and the object's id there. Transferable.
struct Token {
  std::string typeid_name;
  std::string address;
  std::string id;
  template <class A>
  void serialize(A& ar) {
    ar(typeid_name, address, id);
  }
  bool operator==(const Token&) const = default;
};

/// Records the authkey for connections to `address` made by this process (and the
/// children it forks later). Manager and BaseManager do it for their own address.
void set_authkey(const std::string& address, std::string authkey);

// --------------------------------------------------------------------------- BaseProxy

/// A reference to a managed object (Python's BaseProxy). Copies share one reference and
/// one set of connections; copies in a forked child take their own. Transferable (encodes
/// as its Token). A default-constructed proxy refers to nothing (calls raise ValueError).
class BaseProxy {
 public:
  BaseProxy() = default;
  [[nodiscard]] const Token& token() const;
  [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }

  /// Calls `method` on the referent (Python's _callmethod) and decodes its result as Ret.
  template <class Ret = void, class... A>
  Ret call(std::string_view method, const A&... args) const {
    std::string body = call_raw(method, MethodTable<int>::encode_args(args...));
    if constexpr (!std::is_void_v<Ret>) return codec::decode<Ret>(body);
  }
  /// The raw form: codec-encoded argument tuple in, codec-encoded result out.
  std::string call_raw(std::string_view method, std::string args) const;

  /// Asks the server at `address` to create an object of `typeid_key` from the
  /// codec-encoded constructor arguments `args` (Python's BaseManager._create), and
  /// returns the proxy holding its first reference. Throws mp::ValueError for a typeid the
  /// server does not know, mp::AuthenticationError / mp::OSError when it cannot connect.
  static BaseProxy create(const std::string& address, const std::string& typeid_key, std::string args);

  template <class A>
  void save(A& ar) const {
    ar(token());
  }
  template <class A>
  void load(A& ar) {
    Token t;
    ar(t);
    attach(t);
  }

 protected:
  explicit BaseProxy(std::shared_ptr<internal::manager::ProxyState> s) noexcept : state_(std::move(s)) {}
  /// Takes a new reference to the object `t` names (connects and increfs).
  void attach(const Token& t);
  /// Throws mp::ValueError unless the token's typeid is `expected`.
  void check_typeid(const std::string& expected) const;

 private:
  friend class BaseManager;
  std::shared_ptr<internal::manager::ProxyState> state_;
};

/// A typed proxy for any exposed referent R: call<Ret>("method", args...).
template <class R>
class Proxy : public BaseProxy {
 public:
  using referent_type = R;
  Proxy() = default;
  explicit Proxy(BaseProxy p) : BaseProxy(std::move(p)) { check_typeid(Exposed<R>::name()); }
  template <class A>
  void load(A& ar) {
    BaseProxy::load(ar);
    check_typeid(Exposed<R>::name());
  }
  template <class A>
  void save(A& ar) const {
    BaseProxy::save(ar);
  }
};

// -------------------------------------------------------------- referents (server side)

namespace managed {

using Timeout = std::int64_t;  ///< nanoseconds; < 0 waits forever (wire form of a timeout)

template <class Rep, class Period>
Timeout to_wire(std::chrono::duration<Rep, Period> d) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return ns < 0 ? 0 : ns;
}
inline internal::Deadline from_wire(Timeout t) {
  if (t < 0) return std::nullopt;
  return internal::deadline_after(std::chrono::nanoseconds(t));
}

/// Python-style index: negative counts from the end. Throws IndexError when out of range.
inline std::size_t wrap_index(std::int64_t i, std::size_t size, const char* what) {
  std::int64_t n = static_cast<std::int64_t>(size);
  if (i < 0) i += n;
  if (i < 0 || i >= n) throw IndexError(std::string(what) + " index out of range");
  return static_cast<std::size_t>(i);
}

template <class K, class V>
struct Dict {
  std::map<K, V> d;
  Dict() = default;
  explicit Dict(std::map<K, V> init) : d(std::move(init)) {}
};

template <class T>
struct List {
  std::vector<T> v;
  List() = default;
  explicit List(std::vector<T> init) : v(std::move(init)) {}
};

/// Attribute bag: name -> (type key, encoded value).
struct Namespace {
  std::map<std::string, std::pair<std::string, std::string>> attrs;
};

template <class T>
struct ValueBox {
  T value{};
  ValueBox() = default;
  explicit ValueBox(T v) : value(std::move(v)) {}
};

/// A thread-safe FIFO with Python queue.Queue semantics (the referent of m.Queue<T>()).
template <class T>
class Queue {
 public:
  explicit Queue(std::int64_t maxsize = 0) : maxsize_(maxsize) {}
  void put(T item, bool block, Timeout timeout) {
    std::unique_lock g(mu_);
    auto room = [&] { return maxsize_ <= 0 || static_cast<std::int64_t>(items_.size()) < maxsize_; };
    if (!block) {
      if (!room()) throw Full("Queue.put: the queue is full");
    } else if (!wait(g, not_full_, from_wire(timeout), room)) {
      throw Full("Queue.put: no room became free before the timeout");
    }
    items_.push_back(std::move(item));
    ++unfinished_;
    not_empty_.notify_one();
  }
  T get(bool block, Timeout timeout) {
    std::unique_lock g(mu_);
    auto any = [&] { return !items_.empty(); };
    if (!block) {
      if (!any()) throw Empty("Queue.get: the queue is empty");
    } else if (!wait(g, not_empty_, from_wire(timeout), any)) {
      throw Empty("Queue.get: nothing arrived before the timeout");
    }
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }
  std::int64_t qsize() {
    std::lock_guard g(mu_);
    return static_cast<std::int64_t>(items_.size());
  }
  std::int64_t maxsize() const noexcept { return maxsize_; }
  void task_done() {
    std::lock_guard g(mu_);
    if (unfinished_ == 0) throw ValueError("JoinableQueue.task_done() called more times than items were put");
    if (--unfinished_ == 0) all_done_.notify_all();
  }
  bool join(Timeout timeout) {
    std::unique_lock g(mu_);
    return wait(g, all_done_, from_wire(timeout), [&] { return unfinished_ == 0; });
  }

 private:
  template <class P>
  static bool wait(std::unique_lock<std::mutex>& g, std::condition_variable& cv, internal::Deadline d, P pred) {
    if (!d) {
      cv.wait(g, pred);
      return true;
    }
    return cv.wait_until(g, *d, pred);
  }
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_, all_done_;
  std::deque<T> items_;
  std::int64_t maxsize_;
  std::uint64_t unfinished_ = 0;
};

template <class T>
struct JoinableQueue : Queue<T> {
  using Queue<T>::Queue;
};

}  // namespace managed

template <class K, class V>
struct Exposed<managed::Dict<K, V>> {
  using R = managed::Dict<K, V>;
  static constexpr bool serialized = true;
  static std::string name() { return "dict<" + internal::manager::type_key<K>() + "," + internal::manager::type_key<V>() + ">"; }
  static V& at(R& r, const K& k) {
    auto it = r.d.find(k);
    if (it == r.d.end()) throw KeyError("dict: no such key");
    return it->second;
  }
  static void methods(MethodTable<R>& t) {
    t.def("__getitem__", +[](R& r, K k) -> V { return at(r, k); })
        .def("__setitem__", +[](R& r, K k, V v) { r.d.insert_or_assign(std::move(k), std::move(v)); })
        .def("__delitem__", +[](R& r, K k) {
          if (r.d.erase(k) == 0) throw KeyError("dict: no such key");
        })
        .def("__contains__", +[](R& r, K k) -> bool { return r.d.count(k) != 0; })
        .def("__len__", +[](R& r) -> std::uint64_t { return r.d.size(); })
        .def("get", +[](R& r, K k, V dflt) -> V {
          auto it = r.d.find(k);
          return it == r.d.end() ? dflt : it->second;
        })
        .def("setdefault", +[](R& r, K k, V dflt) -> V { return r.d.try_emplace(std::move(k), std::move(dflt)).first->second; })
        .def("pop", +[](R& r, K k) -> V {
          V v = std::move(at(r, k));
          r.d.erase(k);
          return v;
        })
        .def("keys", +[](R& r) -> std::vector<K> {
          std::vector<K> out;
          for (auto& kv : r.d) out.push_back(kv.first);
          return out;
        })
        .def("values", +[](R& r) -> std::vector<V> {
          std::vector<V> out;
          for (auto& kv : r.d) out.push_back(kv.second);
          return out;
        })
        .def("update", +[](R& r, std::map<K, V> m) {
          for (auto& [k, v] : m) r.d.insert_or_assign(k, std::move(v));
        })
        .def("clear", +[](R& r) { r.d.clear(); })
        .def("copy", +[](R& r) -> std::map<K, V> { return r.d; });
  }
};

template <class T>
struct Exposed<managed::List<T>> {
  using R = managed::List<T>;
  static constexpr bool serialized = true;
  static std::string name() { return "list<" + internal::manager::type_key<T>() + ">"; }
  static void methods(MethodTable<R>& t) {
    using managed::wrap_index;
    t.def("__getitem__", +[](R& r, std::int64_t i) -> T { return r.v[wrap_index(i, r.v.size(), "list")]; })
        .def("__setitem__", +[](R& r, std::int64_t i, T x) { r.v[wrap_index(i, r.v.size(), "list assignment")] = std::move(x); })
        .def("__delitem__", +[](R& r, std::int64_t i) {
          r.v.erase(r.v.begin() + static_cast<std::ptrdiff_t>(wrap_index(i, r.v.size(), "list assignment")));
        })
        .def("__len__", +[](R& r) -> std::uint64_t { return r.v.size(); })
        .def("__iadd__", +[](R& r, std::int64_t i, T delta) -> T {
          T& x = r.v[wrap_index(i, r.v.size(), "list")];
          x = x + delta;
          return x;
        })
        .def("append", +[](R& r, T x) { r.v.push_back(std::move(x)); })
        .def("extend", +[](R& r, std::vector<T> xs) { r.v.insert(r.v.end(), xs.begin(), xs.end()); })
        .def("insert", +[](R& r, std::int64_t i, T x) {
          std::int64_t n = static_cast<std::int64_t>(r.v.size());
          if (i < 0) i = std::max<std::int64_t>(0, i + n);
          r.v.insert(r.v.begin() + std::min(i, n), std::move(x));
        })
        .def("pop", +[](R& r, std::int64_t i) -> T {
          if (r.v.empty()) throw IndexError("pop from empty list");
          auto at = wrap_index(i, r.v.size(), "pop");
          T x = std::move(r.v[at]);
          r.v.erase(r.v.begin() + static_cast<std::ptrdiff_t>(at));
          return x;
        })
        .def("index", +[](R& r, T x) -> std::int64_t {
          for (std::size_t i = 0; i < r.v.size(); ++i)
            if (r.v[i] == x) return static_cast<std::int64_t>(i);
          throw ValueError("list.index(x): x not in list");
        })
        .def("count", +[](R& r, T x) -> std::int64_t { return std::count(r.v.begin(), r.v.end(), x); })
        .def("remove", +[](R& r, T x) {
          auto it = std::find(r.v.begin(), r.v.end(), x);
          if (it == r.v.end()) throw ValueError("list.remove(x): x not in list");
          r.v.erase(it);
        })
        .def("clear", +[](R& r) { r.v.clear(); })
        .def("copy", +[](R& r) -> std::vector<T> { return r.v; });
  }
};

template <>
struct Exposed<managed::Namespace> {
  using R = managed::Namespace;
  static constexpr bool serialized = true;
  static std::string name() { return "Namespace"; }
  static void methods(MethodTable<R>& t) {
    t.def("__getattr__", +[](R& r, std::string n, std::string type) -> std::string {
       auto it = r.attrs.find(n);
       if (it == r.attrs.end()) throw AttributeError("'Namespace' object has no attribute '" + n + "'");
       if (it->second.first != type)
         throw ValueError("Namespace attribute '" + n + "' holds a value of type " + it->second.first +
                          ", not of the requested type " + type);
       return it->second.second;
     })
        .def("__setattr__", +[](R& r, std::string n, std::string type, std::string bytes) {
          r.attrs.insert_or_assign(std::move(n), std::pair(std::move(type), std::move(bytes)));
        })
        .def("__delattr__", +[](R& r, std::string n) {
          if (r.attrs.erase(n) == 0) throw AttributeError("'Namespace' object has no attribute '" + n + "'");
        })
        .def("__contains__", +[](R& r, std::string n) -> bool { return r.attrs.count(n) != 0; })
        .def("__dir__", +[](R& r) -> std::vector<std::string> {
          std::vector<std::string> out;
          for (auto& kv : r.attrs) out.push_back(kv.first);
          return out;
        });
  }
};

template <class T>
struct Exposed<managed::ValueBox<T>> {
  using R = managed::ValueBox<T>;
  static constexpr bool serialized = true;
  static std::string name() { return "Value<" + internal::manager::type_key<T>() + ">"; }
  static void methods(MethodTable<R>& t) {
    t.def("get", +[](R& r) -> T { return r.value; }).def("set", +[](R& r, T v) { r.value = std::move(v); });
  }
};

template <class T>
struct Exposed<managed::Queue<T>> {
  using R = managed::Queue<T>;
  static constexpr bool serialized = false;
  static std::string name() { return "Queue<" + internal::manager::type_key<T>() + ">"; }
  template <class Q>
  static void common(MethodTable<Q>& t) {
    t.def("put", +[](Q& q, T item, bool block, managed::Timeout timeout) { q.put(std::move(item), block, timeout); })
        .def("get", +[](Q& q, bool block, managed::Timeout timeout) -> T { return q.get(block, timeout); })
        .def("qsize", +[](Q& q) -> std::int64_t { return q.qsize(); })
        .def("maxsize", +[](Q& q) -> std::int64_t { return q.maxsize(); });
  }
  static void methods(MethodTable<R>& t) { common(t); }
};

template <class T>
struct Exposed<managed::JoinableQueue<T>> {
  using R = managed::JoinableQueue<T>;
  static constexpr bool serialized = false;
  static std::string name() { return "JoinableQueue<" + internal::manager::type_key<T>() + ">"; }
  static void methods(MethodTable<R>& t) {
    Exposed<managed::Queue<T>>::common(t);
    t.def("task_done", +[](R& q) { q.task_done(); })
        .def("join", +[](R& q, managed::Timeout timeout) -> bool { return q.join(timeout); });
  }
};

namespace internal::manager {
/// Lock-like referents: acquire(block, timeout) / release.
template <class L>
void def_lock_methods(MethodTable<L>& t) {
  t.def("acquire", +[](L& l, bool block, managed::Timeout timeout) -> bool {
     if (!block) return l.acquire(std::chrono::nanoseconds(0));
     auto d = managed::from_wire(timeout);
     return d ? l.acquire_until(*d) : l.acquire();
   }).def("release", +[](L& l) { l.release(); });
}
}  // namespace internal::manager

template <>
struct Exposed<Lock> {
  static constexpr bool serialized = false;
  static std::string name() { return "Lock"; }
  static void methods(MethodTable<Lock>& t) {
    internal::manager::def_lock_methods(t);
    t.def("locked", +[](Lock& l) -> bool { return l.locked(); });
  }
};
template <>
struct Exposed<RLock> {
  static constexpr bool serialized = false;
  static std::string name() { return "RLock"; }
  static void methods(MethodTable<RLock>& t) { internal::manager::def_lock_methods(t); }
};
template <>
struct Exposed<Semaphore> {
  static constexpr bool serialized = false;
  static std::string name() { return "Semaphore"; }
  static void methods(MethodTable<Semaphore>& t) {
    t.def("acquire", +[](Semaphore& s, bool block, managed::Timeout timeout) -> bool {
       if (!block) return s.acquire(std::chrono::nanoseconds(0));
       auto d = managed::from_wire(timeout);
       return d ? s.acquire_until(*d) : s.acquire();
     }).def("release", +[](Semaphore& s, int n) { s.release(n); });
  }
};
template <>
struct Exposed<Event> {
  static constexpr bool serialized = false;
  static std::string name() { return "Event"; }
  static void methods(MethodTable<Event>& t) {
    t.def("set", +[](Event& e) { e.set(); })
        .def("clear", +[](Event& e) { e.clear(); })
        .def("is_set", +[](Event& e) -> bool { return e.is_set(); })
        .def("wait", +[](Event& e, managed::Timeout timeout) -> bool {
          auto d = managed::from_wire(timeout);
          return d ? e.wait_until(*d) : e.wait();
        });
  }
};
template <>
struct Exposed<Condition> {
  static constexpr bool serialized = false;
  static std::string name() { return "Condition"; }
  static void methods(MethodTable<Condition>& t) {
    internal::manager::def_lock_methods(t);
    t.def("wait", +[](Condition& c, managed::Timeout timeout) -> bool {
       auto d = managed::from_wire(timeout);
       return d ? c.wait_until(*d) : c.wait();
     })
        .def("notify", +[](Condition& c, int n) { c.notify(n); })
        .def("notify_all", +[](Condition& c) { c.notify_all(); });
  }
};
template <>
struct Exposed<Barrier> {
  static constexpr bool serialized = false;
  static std::string name() { return "Barrier"; }
  static void methods(MethodTable<Barrier>& t) {
    t.def("wait", +[](Barrier& b, managed::Timeout timeout) -> int {
       return timeout < 0 ? b.wait() : b.wait(std::chrono::nanoseconds(timeout));
     })
        .def("abort", +[](Barrier& b) { b.abort(); })
        .def("reset", +[](Barrier& b) { b.reset(); })
        .def("parties", +[](Barrier& b) -> int { return b.parties(); })
        .def("n_waiting", +[](Barrier& b) -> int { return b.n_waiting(); })
        .def("broken", +[](Barrier& b) -> bool { return b.broken(); });
  }
};

// ------------------------------------------------------------------------ typed proxies

namespace internal::manager {
/// `proxy[i]` of a list or dict: reads and writes go to the server.
template <class P, class Key, class T>
class ItemRef {
 public:
  ItemRef(const P& p, Key k) : p_(p), k_(std::move(k)) {}
  operator T() const { return p_.getitem(k_); }  // NOLINT: reads like Python's l[0]
  T get() const { return p_.getitem(k_); }
  ItemRef& operator=(const T& v) {
    p_.setitem(k_, v);
    return *this;
  }
  ItemRef& operator=(const ItemRef& o) { return *this = o.get(); }
  /// Read-modify-write in two calls, exactly like Python's `l[0] -= 1`: not atomic, guard
  /// it with a Lock when several processes update the same item.
  ItemRef& operator+=(const T& d) { return *this = static_cast<T>(get() + d); }
  ItemRef& operator-=(const T& d) { return *this = static_cast<T>(get() - d); }

 private:
  const P& p_;
  Key k_;
};

inline managed::Timeout forever() { return -1; }
}  // namespace internal::manager

/// Proxy of m.dict<K,V>() (Python's DictProxy).
template <class K, class V>
class DictProxy : public Proxy<managed::Dict<K, V>> {
 public:
  using Proxy<managed::Dict<K, V>>::Proxy;
  /// Throws mp::KeyError when absent.
  V getitem(const K& k) const { return this->template call<V>("__getitem__", k); }
  void setitem(const K& k, const V& v) const { this->call("__setitem__", k, v); }
  /// Throws mp::KeyError when absent.
  void delitem(const K& k) const { this->call("__delitem__", k); }
  internal::manager::ItemRef<DictProxy, K, V> operator[](const K& k) const { return {*this, k}; }
  [[nodiscard]] bool contains(const K& k) const { return this->template call<bool>("__contains__", k); }
  [[nodiscard]] std::size_t size() const { return this->template call<std::uint64_t>("__len__"); }
  [[nodiscard]] std::size_t len() const { return size(); }
  V get(const K& k, const V& dflt = V{}) const { return this->template call<V>("get", k, dflt); }
  V setdefault(const K& k, const V& dflt = V{}) const { return this->template call<V>("setdefault", k, dflt); }
  /// Removes and returns; throws mp::KeyError when absent.
  V pop(const K& k) const { return this->template call<V>("pop", k); }
  std::vector<K> keys() const { return this->template call<std::vector<K>>("keys"); }
  std::vector<V> values() const { return this->template call<std::vector<V>>("values"); }
  void update(const std::map<K, V>& m) const { this->call("update", m); }
  void clear() const { this->call("clear"); }
  /// A snapshot of the whole mapping (Python's copy() / _getvalue()).
  std::map<K, V> copy() const { return this->template call<std::map<K, V>>("copy"); }
};

/// Proxy of m.list<T>() (Python's ListProxy). Indices may be negative, as in Python.
template <class T>
class ListProxy : public Proxy<managed::List<T>> {
 public:
  using Proxy<managed::List<T>>::Proxy;
  /// Throws mp::IndexError when out of range.
  T getitem(std::int64_t i) const { return this->template call<T>("__getitem__", i); }
  void setitem(std::int64_t i, const T& v) const { this->call("__setitem__", i, v); }
  void delitem(std::int64_t i) const { this->call("__delitem__", i); }
  internal::manager::ItemRef<ListProxy, std::int64_t, T> operator[](std::int64_t i) const { return {*this, i}; }
  /// Adds `delta` to item i in one server call (atomic with respect to other proxy calls).
  T add(std::int64_t i, const T& delta) const { return this->template call<T>("__iadd__", i, delta); }
  [[nodiscard]] std::size_t size() const { return this->template call<std::uint64_t>("__len__"); }
  [[nodiscard]] std::size_t len() const { return size(); }
  void append(const T& v) const { this->call("append", v); }
  void extend(const std::vector<T>& vs) const { this->call("extend", vs); }
  void insert(std::int64_t i, const T& v) const { this->call("insert", i, v); }
  T pop(std::int64_t i = -1) const { return this->template call<T>("pop", i); }
  /// Throws mp::ValueError when absent.
  std::int64_t index(const T& v) const { return this->template call<std::int64_t>("index", v); }
  std::int64_t count(const T& v) const { return this->template call<std::int64_t>("count", v); }
  void remove(const T& v) const { this->call("remove", v); }
  void clear() const { this->call("clear"); }
  std::vector<T> copy() const { return this->template call<std::vector<T>>("copy"); }
};

/// Proxy of m.Array<T>(): a fixed-size list.
template <class T>
class ArrayProxy : public Proxy<managed::List<T>> {
 public:
  using Proxy<managed::List<T>>::Proxy;
  T getitem(std::int64_t i) const { return this->template call<T>("__getitem__", i); }
  void setitem(std::int64_t i, const T& v) const { this->call("__setitem__", i, v); }
  internal::manager::ItemRef<ArrayProxy, std::int64_t, T> operator[](std::int64_t i) const { return {*this, i}; }
  [[nodiscard]] std::size_t size() const { return this->template call<std::uint64_t>("__len__"); }
  std::vector<T> copy() const { return this->template call<std::vector<T>>("copy"); }
};

/// Proxy of m.Namespace(): a bag of named, typed attributes.
class NamespaceProxy : public Proxy<managed::Namespace> {
 public:
  using Proxy<managed::Namespace>::Proxy;
  template <class T>
  void set(const std::string& name, const T& v) const {
    call("__setattr__", name, internal::manager::type_key<T>(), codec::encode(v));
  }
  /// Throws mp::AttributeError when absent, mp::ValueError when it holds another type.
  template <class T>
  T get(const std::string& name) const {
    return codec::decode<T>(call<std::string>("__getattr__", name, internal::manager::type_key<T>()));
  }
  [[nodiscard]] bool has(const std::string& name) const { return call<bool>("__contains__", name); }
  void del(const std::string& name) const { call("__delattr__", name); }
  [[nodiscard]] std::vector<std::string> names() const { return call<std::vector<std::string>>("__dir__"); }
};

/// Proxy of m.Value<T>() (Python's ValueProxy).
template <class T>
class ValueProxy : public Proxy<managed::ValueBox<T>> {
 public:
  using Proxy<managed::ValueBox<T>>::Proxy;
  T get() const { return this->template call<T>("get"); }
  void set(const T& v) const { this->call("set", v); }
  T value() const { return get(); }
  void value(const T& v) const { set(v); }
};

namespace internal::manager {
template <class Q, class T>
class QueueProxyBase : public Proxy<Q> {
 public:
  using Proxy<Q>::Proxy;
  void put(const T& v) const { this->call("put", v, true, forever()); }
  /// Throws mp::Full when no room frees up within `timeout`.
  template <class Rep, class Period>
  void put(const T& v, std::chrono::duration<Rep, Period> timeout) const {
    this->call("put", v, true, managed::to_wire(timeout));
  }
  void put_nowait(const T& v) const { this->call("put", v, false, managed::Timeout{0}); }
  T get() const { return this->template call<T>("get", true, forever()); }
  /// Throws mp::Empty when nothing arrives within `timeout` (<= 0: one try).
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) const {
    return this->template call<T>("get", true, managed::to_wire(timeout));
  }
  T get_nowait() const { return this->template call<T>("get", false, managed::Timeout{0}); }
  [[nodiscard]] std::size_t qsize() const { return static_cast<std::size_t>(this->template call<std::int64_t>("qsize")); }
  [[nodiscard]] bool empty() const { return qsize() == 0; }
  [[nodiscard]] bool full() const {
    auto m = this->template call<std::int64_t>("maxsize");
    return m > 0 && static_cast<std::int64_t>(qsize()) >= m;
  }
};

template <class Self>
class LockProxyBase : public Proxy<Self> {
 public:
  using Proxy<Self>::Proxy;
  bool acquire() const { return this->template call<bool>("acquire", true, forever()); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) const {
    return this->template call<bool>("acquire", true, managed::to_wire(timeout));
  }
  bool try_acquire() const { return this->template call<bool>("acquire", false, managed::Timeout{0}); }
  void release() const { this->call("release"); }
  // BasicLockable / Lockable, for std::scoped_lock.
  void lock() const { acquire(); }
  bool try_lock() const { return try_acquire(); }
  void unlock() const { release(); }
};
}  // namespace internal::manager

/// Proxy of m.Queue<T>() (Python's queue.Queue proxy).
template <class T>
class QueueProxy : public internal::manager::QueueProxyBase<managed::Queue<T>, T> {
 public:
  using internal::manager::QueueProxyBase<managed::Queue<T>, T>::QueueProxyBase;
};

/// Proxy of m.JoinableQueue<T>().
template <class T>
class JoinableQueueProxy : public internal::manager::QueueProxyBase<managed::JoinableQueue<T>, T> {
 public:
  using internal::manager::QueueProxyBase<managed::JoinableQueue<T>, T>::QueueProxyBase;
  /// Throws mp::ValueError when called more often than items were put.
  void task_done() const { this->call("task_done"); }
  /// Blocks until every item put has been task_done()'d.
  void join() const { this->template call<bool>("join", internal::manager::forever()); }
};

/// Proxy of m.Lock() (Python's AcquirerProxy). Any client may release it.
class LockProxy : public internal::manager::LockProxyBase<Lock> {
 public:
  using LockProxyBase::LockProxyBase;
  [[nodiscard]] bool locked() const { return call<bool>("locked"); }
};
/// Proxy of m.RLock(): owned by the client *thread* that acquired it.
class RLockProxy : public internal::manager::LockProxyBase<RLock> {
 public:
  using LockProxyBase::LockProxyBase;
};
/// Proxy of m.Semaphore(n).
class SemaphoreProxy : public internal::manager::LockProxyBase<Semaphore> {
 public:
  using LockProxyBase::LockProxyBase;
  void release(int n = 1) const { call("release", n); }
  void unlock() const { release(); }
};
/// Proxy of m.Event() (Python's EventProxy).
class EventProxy : public Proxy<Event> {
 public:
  using Proxy<Event>::Proxy;
  void set() const { call("set"); }
  void clear() const { call("clear"); }
  [[nodiscard]] bool is_set() const { return call<bool>("is_set"); }
  bool wait() const { return call<bool>("wait", internal::manager::forever()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return call<bool>("wait", managed::to_wire(timeout));
  }
};
/// Proxy of m.Condition() (Python's ConditionProxy): its own RLock, owned per client thread.
class ConditionProxy : public internal::manager::LockProxyBase<Condition> {
 public:
  using LockProxyBase::LockProxyBase;
  bool wait() const { return call<bool>("wait", internal::manager::forever()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return call<bool>("wait", managed::to_wire(timeout));
  }
  /// Waits until pred() holds (checked here, in the client, after each wake-up).
  template <class Pred>
  void wait_for(Pred pred) const {
    while (!pred()) wait();
  }
  void notify(int n = 1) const { call("notify", n); }
  void notify_all() const { call("notify_all"); }
};
/// Proxy of m.Barrier(n) (Python's BarrierProxy).
class BarrierProxy : public Proxy<Barrier> {
 public:
  using Proxy<Barrier>::Proxy;
  int wait() const { return call<int>("wait", internal::manager::forever()); }
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) const {
    return call<int>("wait", managed::to_wire(timeout));
  }
  void abort() const { call("abort"); }
  void reset() const { call("reset"); }
  [[nodiscard]] int parties() const { return call<int>("parties"); }
  [[nodiscard]] int n_waiting() const { return call<int>("n_waiting"); }
  [[nodiscard]] bool broken() const { return call<bool>("broken"); }
};

namespace internal::manager {
/// Creates a referent of P's type on the server at `address`, constructed from `args`
/// (which also selects the constructor: the typeid key names their types).
template <class P, class... A>
P create_proxy(const std::string& address, const A&... args) {
  using R = typename P::referent_type;
  (void)AutoRegister<R, A...>::registered;
  return P(BaseProxy::create(address, AutoRegister<R, A...>::key(), MethodTable<R>::encode_args(args...)));
}
}  // namespace internal::manager

// ------------------------------------------------------------------------ managers

namespace internal::manager {
class SocketServer;
struct Running;
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
  template <class R>
  BaseManager& register_(std::string name, std::function<std::shared_ptr<R>()> callable) {
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
