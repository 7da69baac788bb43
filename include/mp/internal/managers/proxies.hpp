// mp/internal/managers/proxies.hpp — the typed proxies SyncManager returns (DictProxy,
// ListProxy, QueueProxy, LockProxy...).
//
// Part of <mp/managers.hpp> (include that). Every method is one remote call through the
// descriptor its referent's Exposed<R> declares (exposed.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mp/internal/managers/exposed.hpp"
#include "mp/internal/managers/proxy.hpp"

namespace mp {

/// An omitted slice bound (Python's None in l[:3]): see ListProxy::slice.
using managed::slice_none;

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
  using E = Exposed<managed::Dict<K, V>>;  // the descriptors of the methods called below
 public:
  using Proxy<managed::Dict<K, V>>::Proxy;
  /// Throws mp::KeyError when absent.
  V getitem(const K& k) const { return this->call(E::getitem, k); }
  void setitem(const K& k, const V& v) const { this->call(E::setitem, k, v); }
  /// Throws mp::KeyError when absent.
  void delitem(const K& k) const { this->call(E::delitem, k); }
  internal::manager::ItemRef<DictProxy, K, V> operator[](const K& k) const { return {*this, k}; }
  [[nodiscard]] bool contains(const K& k) const { return this->call(E::contains, k); }
  [[nodiscard]] std::size_t size() const { return this->call(E::len); }
  [[nodiscard]] std::size_t len() const { return size(); }
  V get(const K& k, const V& dflt = V{}) const { return this->call(E::get, k, dflt); }
  V setdefault(const K& k, const V& dflt = V{}) const { return this->call(E::setdefault, k, dflt); }
  /// Removes and returns; throws mp::KeyError when absent.
  V pop(const K& k) const { return this->call(E::pop, k); }
  std::vector<K> keys() const { return this->call(E::keys); }
  std::vector<V> values() const { return this->call(E::values); }
  void update(const std::map<K, V>& m) const { this->call(E::update, m); }
  void clear() const { this->call(E::clear); }
  /// A snapshot of the whole mapping (Python's copy() / _getvalue()).
  std::map<K, V> copy() const { return this->call(E::copy); }
  /// Python's `d | other`: a new std::map (not a proxy), other's values winning; one call.
  std::map<K, V> operator|(const std::map<K, V>& other) const { return this->call(E::or_, other); }
  /// Python's `d |= other`: update() on the server.
  const DictProxy& operator|=(const std::map<K, V>& other) const {
    update(other);
    return *this;
  }
  /// Python's `d.fromkeys(keys, value)`: dict.fromkeys is a classmethod, so on a proxy it
  /// returns a new plain mapping and leaves the managed dict alone. Here it is a local
  /// computation (no server call); the result is a std::map, not a proxy.
  static std::map<K, V> fromkeys(const std::vector<K>& keys, const V& value = V{}) {
    std::map<K, V> out;
    for (const auto& k : keys) out.insert_or_assign(k, value);
    return out;
  }
};
/// Python's `other | d`: a new std::map, the proxy's values winning.
template <class K, class V>
std::map<K, V> operator|(std::map<K, V> other, const DictProxy<K, V>& d) {
  for (auto& kv : d.copy()) other.insert_or_assign(kv.first, std::move(kv.second));
  return other;
}

namespace internal::manager {
/// What ListProxy and ArrayProxy share (both are proxies of a managed::List<T>).
template <class Self, class T>
class SequenceProxyBase : public Proxy<managed::List<T>> {
 protected:
  using E = Exposed<managed::List<T>>;  // the descriptors of the methods called below

 public:
  using Proxy<managed::List<T>>::Proxy;
  /// Throws mp::IndexError when out of range.
  T getitem(std::int64_t i) const { return this->call(E::getitem, i); }
  void setitem(std::int64_t i, const T& v) const { this->call(E::setitem, i, v); }
  ItemRef<Self, std::int64_t, T> operator[](std::int64_t i) const { return {static_cast<const Self&>(*this), i}; }
  [[nodiscard]] std::size_t size() const { return this->call(E::len); }
  std::vector<T> copy() const { return this->call(E::copy); }
};
}  // namespace internal::manager

/// Proxy of m.list<T>() (Python's ListProxy). Indices may be negative, as in Python.
template <class T>
class ListProxy : public internal::manager::SequenceProxyBase<ListProxy<T>, T> {
  using Base = internal::manager::SequenceProxyBase<ListProxy<T>, T>;
  using E = typename Base::E;

 public:
  using Base::Base;
  void delitem(std::int64_t i) const { this->call(E::delitem, i); }
  /// Adds `delta` to item i in one server call (atomic with respect to other proxy calls).
  T add(std::int64_t i, const T& delta) const { return this->call(E::iadd, i, delta); }
  [[nodiscard]] std::size_t len() const { return this->size(); }
  void append(const T& v) const { this->call(E::append, v); }
  void extend(const std::vector<T>& vs) const { this->call(E::extend, vs); }
  void insert(std::int64_t i, const T& v) const { this->call(E::insert, i, v); }
  T pop(std::int64_t i = -1) const { return this->call(E::pop, i); }
  /// Throws mp::ValueError when absent.
  std::int64_t index(const T& v) const { return this->call(E::index, v); }
  std::int64_t count(const T& v) const { return this->call(E::count, v); }
  void remove(const T& v) const { this->call(E::remove, v); }
  void clear() const { this->call(E::clear); }

  // Slices. Bounds behave as Python's: negative ones count from the end, out-of-range ones
  // are clamped, and mp::slice_none is an omitted bound: Python's l[2:] is
  // l.slice(2, mp::slice_none), l[::-1] is l.slice(mp::slice_none, mp::slice_none, -1).
  // A step of 0 throws mp::ValueError.
  /// Python's `l[start:stop:step]`: a std::vector (a copy), in one call.
  std::vector<T> slice(std::int64_t start, std::int64_t stop, std::int64_t step = 1) const {
    return this->call(E::getslice, start, stop, step);
  }
  /// Python's `l[start:stop:step] = values`. With step 1 the run is replaced by any number of
  /// values; an extended slice (step != 1) throws mp::ValueError unless sizes match.
  void set_slice(std::int64_t start, std::int64_t stop, const std::vector<T>& values) const {
    this->call(E::setslice, start, stop, std::int64_t{1}, values);
  }
  void set_slice(std::int64_t start, std::int64_t stop, std::int64_t step, const std::vector<T>& values) const {
    this->call(E::setslice, start, stop, step, values);
  }
  /// Python's `del l[start:stop:step]`.
  void del_slice(std::int64_t start, std::int64_t stop, std::int64_t step = 1) const {
    this->call(E::delslice, start, stop, step);
  }
  /// Python's `l *= n`: repeats the list in place on the server (n <= 0 empties it).
  const ListProxy& operator*=(std::int64_t n) const {
    this->call(E::imul, n);
    return *this;
  }
  /// Python's `l += values`: extend().
  const ListProxy& operator+=(const std::vector<T>& values) const {
    extend(values);
    return *this;
  }
  /// Python's `l * n`: a new std::vector, not a proxy.
  std::vector<T> operator*(std::int64_t n) const { return this->call(E::mul, n); }
  /// Python's `l + other`: a new std::vector, not a proxy.
  std::vector<T> operator+(const std::vector<T>& other) const { return this->call(E::add, other); }
};

/// Proxy of m.set<T>() (Python 3.14's SetProxy). Ordered by value (std::set), so pop()
/// removes the smallest item where Python's removes an arbitrary one. The operators return
/// plain std::set values (snapshots), as Python's return sets, not proxies.
template <class T>
class SetProxy : public Proxy<managed::Set<T>> {
  using E = Exposed<managed::Set<T>>;  // the descriptors of the methods called below
 public:
  using Proxy<managed::Set<T>>::Proxy;
  void add(const T& v) const { this->call(E::add, v); }
  /// Removes v if present.
  void discard(const T& v) const { this->call(E::discard, v); }
  /// Throws mp::KeyError when absent.
  void remove(const T& v) const { this->call(E::remove, v); }
  [[nodiscard]] bool contains(const T& v) const { return this->call(E::contains, v); }
  [[nodiscard]] std::size_t size() const { return this->call(E::len); }
  [[nodiscard]] std::size_t len() const { return size(); }
  void clear() const { this->call(E::clear); }
  /// Removes and returns the smallest item; throws mp::KeyError when empty.
  T pop() const { return this->call(E::pop); }
  void update(const std::set<T>& vs) const { this->call(E::update, vs); }
  std::set<T> copy() const { return this->call(E::copy); }
  /// Python's `s | other`, `s & other`, `s - other`: new sets, one call each.
  std::set<T> operator|(const std::set<T>& o) const { return this->call(E::or_, o); }
  std::set<T> operator&(const std::set<T>& o) const { return this->call(E::and_, o); }
  std::set<T> operator-(const std::set<T>& o) const { return this->call(E::sub, o); }
  /// Python's `s |= other`: update() on the server.
  const SetProxy& operator|=(const std::set<T>& o) const {
    update(o);
    return *this;
  }
};

/// Proxy of m.Array<T>(): a fixed-size list (getitem, setitem, [i], size, copy).
template <class T>
class ArrayProxy : public internal::manager::SequenceProxyBase<ArrayProxy<T>, T> {
 public:
  using internal::manager::SequenceProxyBase<ArrayProxy<T>, T>::SequenceProxyBase;
};

/// Proxy of m.Namespace(): a bag of named, typed attributes.
class NamespaceProxy : public Proxy<managed::Namespace> {
  using E = Exposed<managed::Namespace>;  // the descriptors of the methods called below
 public:
  using Proxy<managed::Namespace>::Proxy;
  template <class T>
  void set(const std::string& name, const T& v) const {
    call(E::setattr, name, internal::manager::type_key<T>(), codec::encode(v));
  }
  /// Throws mp::AttributeError when absent, mp::ValueError when it holds another type.
  template <class T>
  T get(const std::string& name) const {
    return codec::decode<T>(call(E::getattr, name, internal::manager::type_key<T>()));
  }
  [[nodiscard]] bool has(const std::string& name) const { return call(E::contains, name); }
  void del(const std::string& name) const { call(E::delattr, name); }
  [[nodiscard]] std::vector<std::string> names() const { return call(E::dir); }
};

/// Proxy of m.Value<T>() (Python's ValueProxy).
template <class T>
class ValueProxy : public Proxy<managed::ValueBox<T>> {
  using E = Exposed<managed::ValueBox<T>>;  // the descriptors of the methods called below
 public:
  using Proxy<managed::ValueBox<T>>::Proxy;
  T get() const { return this->call(E::get); }
  void set(const T& v) const { this->call(E::set, v); }
  T value() const { return get(); }
  void value(const T& v) const { set(v); }
};

namespace internal::manager {
template <class Q, class T>
class QueueProxyBase : public Proxy<Q> {
  using E = Exposed<Q>;  // the descriptors of the methods called below
 public:
  using Proxy<Q>::Proxy;
  void put(const T& v) const { this->call(E::put, v, true, forever()); }
  /// Throws mp::Full when no room frees up within `timeout`.
  template <class Rep, class Period>
  void put(const T& v, std::chrono::duration<Rep, Period> timeout) const {
    this->call(E::put, v, true, managed::to_wire(timeout));
  }
  void put_nowait(const T& v) const { this->call(E::put, v, false, managed::Timeout{0}); }
  T get() const { return this->call(E::get, true, forever()); }
  /// Throws mp::Empty when nothing arrives within `timeout` (<= 0: one try).
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) const {
    return this->call(E::get, true, managed::to_wire(timeout));
  }
  T get_nowait() const { return this->call(E::get, false, managed::Timeout{0}); }
  [[nodiscard]] std::size_t qsize() const { return static_cast<std::size_t>(this->call(E::qsize)); }
  [[nodiscard]] bool empty() const { return qsize() == 0; }
  [[nodiscard]] bool full() const {
    auto m = this->call(E::maxsize);
    return m > 0 && static_cast<std::int64_t>(qsize()) >= m;
  }
};

template <class Self>
class LockProxyBase : public Proxy<Self> {
  using E = Exposed<Self>;  // the descriptors of the methods called below
 public:
  using Proxy<Self>::Proxy;
  bool acquire() const { return this->call(E::acquire, true, forever()); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) const {
    return this->call(E::acquire, true, managed::to_wire(timeout));
  }
  bool try_acquire() const { return this->call(E::acquire, false, managed::Timeout{0}); }
  void release() const { this->call(E::release); }
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
  using E = Exposed<managed::JoinableQueue<T>>;  // the descriptors of the methods called below
 public:
  using internal::manager::QueueProxyBase<managed::JoinableQueue<T>, T>::QueueProxyBase;
  /// Throws mp::ValueError when called more often than items were put.
  void task_done() const { this->call(E::task_done); }
  /// Blocks until every item put has been task_done()'d.
  void join() const { this->call(E::join, internal::manager::forever()); }
};

/// Proxy of m.Lock() (Python's AcquirerProxy). Any client may release it.
class LockProxy : public internal::manager::LockProxyBase<Lock> {
  using E = Exposed<Lock>;  // the descriptors of the methods called below
 public:
  using LockProxyBase::LockProxyBase;
  [[nodiscard]] bool locked() const { return call(E::locked); }
};
/// Proxy of m.RLock(): owned by the client *thread* that acquired it.
class RLockProxy : public internal::manager::LockProxyBase<RLock> {
 public:
  using LockProxyBase::LockProxyBase;
};
/// Proxy of m.Semaphore(n).
class SemaphoreProxy : public internal::manager::LockProxyBase<Semaphore> {
  using E = Exposed<Semaphore>;  // the descriptors of the methods called below
 public:
  using LockProxyBase::LockProxyBase;
  void release(int n = 1) const { call(E::release, n); }
  void unlock() const { release(); }
};
/// Proxy of m.Event() (Python's EventProxy).
class EventProxy : public Proxy<Event> {
  using E = Exposed<Event>;  // the descriptors of the methods called below
 public:
  using Proxy<Event>::Proxy;
  void set() const { call(E::set); }
  void clear() const { call(E::clear); }
  [[nodiscard]] bool is_set() const { return call(E::is_set); }
  bool wait() const { return call(E::wait, internal::manager::forever()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return call(E::wait, managed::to_wire(timeout));
  }
};
/// Proxy of m.Condition() (Python's ConditionProxy): its own RLock, owned per client thread.
class ConditionProxy : public internal::manager::LockProxyBase<Condition> {
  using E = Exposed<Condition>;  // the descriptors of the methods called below
 public:
  using LockProxyBase::LockProxyBase;
  bool wait() const { return call(E::wait, internal::manager::forever()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return call(E::wait, managed::to_wire(timeout));
  }
  /// Waits until pred() holds (checked here, in the client, after each wake-up).
  template <class Pred>
  void wait_for(Pred pred) const {
    while (!pred()) wait();
  }
  void notify(int n = 1) const { call(E::notify, n); }
  void notify_all() const { call(E::notify_all); }
};
/// Proxy of m.Barrier(n) (Python's BarrierProxy).
class BarrierProxy : public Proxy<Barrier> {
  using E = Exposed<Barrier>;  // the descriptors of the methods called below
 public:
  using Proxy<Barrier>::Proxy;
  int wait() const { return call(E::wait, internal::manager::forever()); }
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) const {
    return call(E::wait, managed::to_wire(timeout));
  }
  void abort() const { call(E::abort); }
  void reset() const { call(E::reset); }
  [[nodiscard]] int parties() const { return call(E::parties); }
  [[nodiscard]] int n_waiting() const { return call(E::n_waiting); }
  [[nodiscard]] bool broken() const { return call(E::broken); }
};

}  // namespace mp
