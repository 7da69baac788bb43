// mp/internal/managers/exposed.hpp — how mp's own referents are served: each method's
// descriptor (name and signature, mp::Method) and the function that runs it.
//
// Part of <mp/managers.hpp> (include that). Each Exposed<R> below declares its methods
// once, as constexpr descriptors; methods() binds each to its function (MethodTable::def
// refuses a function of another signature) and the typed proxies (proxies.hpp) call them
// through the same descriptors (BaseProxy::call refuses arguments that do not convert), so
// server and client cannot disagree on a name or a type.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mp/internal/managers/method.hpp"
#include "mp/internal/managers/referents.hpp"
#include "mp/internal/managers/served.hpp"
#include "mp/synchronize.hpp"

namespace mp {

template <class K, class V>
struct Exposed<managed::Dict<K, V>> {
  using R = managed::Dict<K, V>;
  static constexpr bool serialized = true;
  static std::string name() { return "dict<" + internal::manager::type_key<K>() + "," + internal::manager::type_key<V>() + ">"; }

  static constexpr Method<"__getitem__", V(K)> getitem{};
  static constexpr Method<"__setitem__", void(K, V)> setitem{};
  static constexpr Method<"__delitem__", void(K)> delitem{};
  static constexpr Method<"__contains__", bool(K)> contains{};
  static constexpr Method<"__len__", std::uint64_t()> len{};
  static constexpr Method<"get", V(K, V)> get{};
  static constexpr Method<"setdefault", V(K, V)> setdefault{};
  static constexpr Method<"pop", V(K)> pop{};
  static constexpr Method<"keys", std::vector<K>()> keys{};
  static constexpr Method<"values", std::vector<V>()> values{};
  static constexpr Method<"update", void(std::map<K, V>)> update{};
  static constexpr Method<"clear", void()> clear{};
  static constexpr Method<"copy", std::map<K, V>()> copy{};
  /// d | other: a new mapping, other's values winning.
  static constexpr Method<"__or__", std::map<K, V>(std::map<K, V>)> or_{};

  static V& at(R& r, const K& k) {
    auto it = r.d.find(k);
    if (it == r.d.end()) throw KeyError("dict: no such key");
    return it->second;
  }
  static void methods(MethodTable<R>& t) {
    t.def(getitem, +[](R& r, K k) -> V { return at(r, k); })
        .def(setitem, +[](R& r, K k, V v) { r.d.insert_or_assign(std::move(k), std::move(v)); })
        .def(delitem, +[](R& r, K k) {
          if (r.d.erase(k) == 0) throw KeyError("dict: no such key");
        })
        .def(contains, +[](R& r, K k) -> bool { return r.d.count(k) != 0; })
        .def(len, +[](R& r) -> std::uint64_t { return r.d.size(); })
        .def(get, +[](R& r, K k, V dflt) -> V {
          auto it = r.d.find(k);
          return it == r.d.end() ? dflt : it->second;
        })
        .def(setdefault, +[](R& r, K k, V dflt) -> V { return r.d.try_emplace(std::move(k), std::move(dflt)).first->second; })
        .def(pop, +[](R& r, K k) -> V {
          V v = std::move(at(r, k));
          r.d.erase(k);
          return v;
        })
        .def(keys, +[](R& r) -> std::vector<K> {
          std::vector<K> out;
          for (auto& kv : r.d) out.push_back(kv.first);
          return out;
        })
        .def(values, +[](R& r) -> std::vector<V> {
          std::vector<V> out;
          for (auto& kv : r.d) out.push_back(kv.second);
          return out;
        })
        .def(update, +[](R& r, std::map<K, V> m) {
          for (auto& [k, v] : m) r.d.insert_or_assign(k, std::move(v));
        })
        .def(clear, +[](R& r) { r.d.clear(); })
        .def(copy, +[](R& r) -> std::map<K, V> { return r.d; })
        .def(or_, +[](R& r, std::map<K, V> m) -> std::map<K, V> {
          for (auto& kv : r.d) m.try_emplace(kv.first, kv.second);  // other's values win
          return m;
        });
  }
};

template <class T>
struct Exposed<managed::List<T>> {
  using R = managed::List<T>;
  static constexpr bool serialized = true;
  static std::string name() { return "list<" + internal::manager::type_key<T>() + ">"; }

  static constexpr Method<"__getitem__", T(std::int64_t)> getitem{};
  static constexpr Method<"__setitem__", void(std::int64_t, T)> setitem{};
  static constexpr Method<"__delitem__", void(std::int64_t)> delitem{};
  static constexpr Method<"__len__", std::uint64_t()> len{};
  /// Adds `delta` to item i in one call: returns the new value.
  static constexpr Method<"__iadd__", T(std::int64_t, T)> iadd{};
  static constexpr Method<"append", void(T)> append{};
  static constexpr Method<"extend", void(std::vector<T>)> extend{};
  static constexpr Method<"insert", void(std::int64_t, T)> insert{};
  static constexpr Method<"pop", T(std::int64_t)> pop{};
  static constexpr Method<"index", std::int64_t(T)> index{};
  static constexpr Method<"count", std::int64_t(T)> count{};
  static constexpr Method<"remove", void(T)> remove{};
  static constexpr Method<"clear", void()> clear{};
  static constexpr Method<"copy", std::vector<T>()> copy{};
  /// l[start:stop:step] (bounds clamped as Python's slice.indices()).
  static constexpr Method<"__getitem__[slice]", std::vector<T>(std::int64_t, std::int64_t, std::int64_t)> getslice{};
  /// l[start:stop:step] = values; an extended slice (step != 1) needs as many values as it selects.
  static constexpr Method<"__setitem__[slice]", void(std::int64_t, std::int64_t, std::int64_t, std::vector<T>)> setslice{};
  static constexpr Method<"__delitem__[slice]", void(std::int64_t, std::int64_t, std::int64_t)> delslice{};
  /// l *= n, in place (n <= 0 empties the list).
  static constexpr Method<"__imul__", void(std::int64_t)> imul{};
  /// l * n: a new list.
  static constexpr Method<"__mul__", std::vector<T>(std::int64_t)> mul{};
  /// l + other: a new list.
  static constexpr Method<"__add__", std::vector<T>(std::vector<T>)> add{};

  static std::vector<T> repeated(const std::vector<T>& v, std::int64_t n) {
    std::vector<T> out;
    if (n <= 0 || v.empty()) return out;
    out.reserve(v.size() * static_cast<std::size_t>(n));
    for (std::int64_t k = 0; k < n; ++k) out.insert(out.end(), v.begin(), v.end());
    return out;
  }
  static void def_slices(MethodTable<R>& t) {
    t.def(getslice, +[](R& r, std::int64_t start, std::int64_t stop, std::int64_t step) -> std::vector<T> {
       auto b = managed::slice_bounds(start, stop, step, r.v.size());
       std::vector<T> out;
       out.reserve(static_cast<std::size_t>(b.count));
       for (std::int64_t k = 0, i = b.start; k < b.count; ++k, i += b.step) out.push_back(r.v[static_cast<std::size_t>(i)]);
       return out;
     })
        .def(setslice, +[](R& r, std::int64_t start, std::int64_t stop, std::int64_t step, std::vector<T> xs) {
          auto b = managed::slice_bounds(start, stop, step, r.v.size());
          if (b.step == 1) {  // any length: the selected run is replaced
            auto first = r.v.begin() + b.start;
            r.v.erase(first, r.v.begin() + std::max(b.start, b.stop));
            r.v.insert(r.v.begin() + b.start, std::make_move_iterator(xs.begin()), std::make_move_iterator(xs.end()));
            return;
          }
          if (static_cast<std::int64_t>(xs.size()) != b.count)
            throw ValueError("attempt to assign sequence of size " + std::to_string(xs.size()) +
                             " to extended slice of size " + std::to_string(b.count));
          for (std::int64_t k = 0, i = b.start; k < b.count; ++k, i += b.step)
            r.v[static_cast<std::size_t>(i)] = std::move(xs[static_cast<std::size_t>(k)]);
        })
        .def(delslice, +[](R& r, std::int64_t start, std::int64_t stop, std::int64_t step) {
          auto b = managed::slice_bounds(start, stop, step, r.v.size());
          if (b.count == 0) return;
          std::vector<bool> gone(r.v.size(), false);
          for (std::int64_t k = 0, i = b.start; k < b.count; ++k, i += b.step) gone[static_cast<std::size_t>(i)] = true;
          std::size_t w = 0;
          for (std::size_t i = 0; i < r.v.size(); ++i)
            if (!gone[i]) r.v[w++] = std::move(r.v[i]);
          r.v.erase(r.v.begin() + static_cast<std::ptrdiff_t>(w), r.v.end());
        })
        .def(imul, +[](R& r, std::int64_t n) { r.v = repeated(r.v, n); })
        .def(mul, +[](R& r, std::int64_t n) -> std::vector<T> { return repeated(r.v, n); })
        .def(add, +[](R& r, std::vector<T> xs) -> std::vector<T> {
          std::vector<T> out = r.v;
          out.insert(out.end(), std::make_move_iterator(xs.begin()), std::make_move_iterator(xs.end()));
          return out;
        });
  }

  static void methods(MethodTable<R>& t) {
    using managed::wrap_index;
    def_slices(t);
    t.def(getitem, +[](R& r, std::int64_t i) -> T { return r.v[wrap_index(i, r.v.size(), "list")]; })
        .def(setitem, +[](R& r, std::int64_t i, T x) { r.v[wrap_index(i, r.v.size(), "list assignment")] = std::move(x); })
        .def(delitem, +[](R& r, std::int64_t i) {
          r.v.erase(r.v.begin() + static_cast<std::ptrdiff_t>(wrap_index(i, r.v.size(), "list assignment")));
        })
        .def(len, +[](R& r) -> std::uint64_t { return r.v.size(); })
        .def(append, +[](R& r, T x) { r.v.push_back(std::move(x)); })
        .def(extend, +[](R& r, std::vector<T> xs) { r.v.insert(r.v.end(), xs.begin(), xs.end()); })
        .def(insert, +[](R& r, std::int64_t i, T x) {
          std::int64_t n = static_cast<std::int64_t>(r.v.size());
          if (i < 0) i = std::max<std::int64_t>(0, i + n);
          r.v.insert(r.v.begin() + std::min(i, n), std::move(x));
        })
        .def(pop, +[](R& r, std::int64_t i) -> T {
          if (r.v.empty()) throw IndexError("pop from empty list");
          auto at = wrap_index(i, r.v.size(), "pop");
          T x = std::move(r.v[at]);
          r.v.erase(r.v.begin() + static_cast<std::ptrdiff_t>(at));
          return x;
        })
        .def(index, +[](R& r, T x) -> std::int64_t {
          for (std::size_t i = 0; i < r.v.size(); ++i)
            if (r.v[i] == x) return static_cast<std::int64_t>(i);
          throw ValueError("list.index(x): x not in list");
        })
        .def(count, +[](R& r, T x) -> std::int64_t { return std::count(r.v.begin(), r.v.end(), x); })
        .def(remove, +[](R& r, T x) {
          auto it = std::find(r.v.begin(), r.v.end(), x);
          if (it == r.v.end()) throw ValueError("list.remove(x): x not in list");
          r.v.erase(it);
        })
        .def(clear, +[](R& r) { r.v.clear(); })
        .def(copy, +[](R& r) -> std::vector<T> { return r.v; });
    if constexpr (requires(T& x, T d) { x = x + d; })  // numbers, strings; not a list of proxies
      t.def(iadd, +[](R& r, std::int64_t i, T delta) -> T {
        T& x = r.v[wrap_index(i, r.v.size(), "list")];
        x = x + delta;
        return x;
      });
  }
};

template <class T>
struct Exposed<managed::Set<T>> {
  using R = managed::Set<T>;
  static constexpr bool serialized = true;
  static std::string name() { return "set<" + internal::manager::type_key<T>() + ">"; }

  static constexpr Method<"add", void(T)> add{};
  static constexpr Method<"discard", void(T)> discard{};
  static constexpr Method<"remove", void(T)> remove{};
  static constexpr Method<"__contains__", bool(T)> contains{};
  static constexpr Method<"__len__", std::uint64_t()> len{};
  static constexpr Method<"clear", void()> clear{};
  static constexpr Method<"pop", T()> pop{};
  static constexpr Method<"update", void(std::set<T>)> update{};
  static constexpr Method<"copy", std::set<T>()> copy{};
  static constexpr Method<"__or__", std::set<T>(std::set<T>)> or_{};
  static constexpr Method<"__and__", std::set<T>(std::set<T>)> and_{};
  static constexpr Method<"__sub__", std::set<T>(std::set<T>)> sub{};

  static void methods(MethodTable<R>& t) {
    t.def(add, +[](R& r, T x) { r.s.insert(std::move(x)); })
        .def(discard, +[](R& r, T x) { r.s.erase(x); })
        .def(remove, +[](R& r, T x) {
          if (r.s.erase(x) == 0) throw KeyError("set.remove(x): x not in set");
        })
        .def(contains, +[](R& r, T x) -> bool { return r.s.count(x) != 0; })
        .def(len, +[](R& r) -> std::uint64_t { return r.s.size(); })
        .def(clear, +[](R& r) { r.s.clear(); })
        .def(pop, +[](R& r) -> T {
          if (r.s.empty()) throw KeyError("pop from an empty set");
          return std::move(r.s.extract(r.s.begin()).value());
        })
        .def(update, +[](R& r, std::set<T> xs) { r.s.merge(xs); })
        .def(copy, +[](R& r) -> std::set<T> { return r.s; })
        .def(or_, +[](R& r, std::set<T> xs) -> std::set<T> {
          xs.insert(r.s.begin(), r.s.end());
          return xs;
        })
        .def(and_, +[](R& r, std::set<T> xs) -> std::set<T> {
          std::set<T> out;
          std::set_intersection(r.s.begin(), r.s.end(), xs.begin(), xs.end(), std::inserter(out, out.end()));
          return out;
        })
        .def(sub, +[](R& r, std::set<T> xs) -> std::set<T> {
          std::set<T> out;
          std::set_difference(r.s.begin(), r.s.end(), xs.begin(), xs.end(), std::inserter(out, out.end()));
          return out;
        });
  }
};

template <>
struct Exposed<managed::Namespace> {
  using R = managed::Namespace;
  static constexpr bool serialized = true;
  static std::string name() { return "Namespace"; }

  /// (attribute, type key) -> the codec encoding of the value.
  static constexpr Method<"__getattr__", std::string(std::string, std::string)> getattr{};
  /// (attribute, type key, codec encoding of the value).
  static constexpr Method<"__setattr__", void(std::string, std::string, std::string)> setattr{};
  static constexpr Method<"__delattr__", void(std::string)> delattr{};
  static constexpr Method<"__contains__", bool(std::string)> contains{};
  static constexpr Method<"__dir__", std::vector<std::string>()> dir{};

  static void methods(MethodTable<R>& t) {
    t.def(getattr, +[](R& r, std::string n, std::string type) -> std::string {
       auto it = r.attrs.find(n);
       if (it == r.attrs.end()) throw AttributeError("'Namespace' object has no attribute '" + n + "'");
       if (it->second.first != type)
         throw ValueError("Namespace attribute '" + n + "' holds a value of type " + it->second.first +
                          ", not of the requested type " + type);
       return it->second.second;
     })
        .def(setattr, +[](R& r, std::string n, std::string type, std::string bytes) {
          r.attrs.insert_or_assign(std::move(n), std::pair(std::move(type), std::move(bytes)));
        })
        .def(delattr, +[](R& r, std::string n) {
          if (r.attrs.erase(n) == 0) throw AttributeError("'Namespace' object has no attribute '" + n + "'");
        })
        .def(contains, +[](R& r, std::string n) -> bool { return r.attrs.count(n) != 0; })
        .def(dir, +[](R& r) -> std::vector<std::string> {
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

  static constexpr Method<"get", T()> get{};
  static constexpr Method<"set", void(T)> set{};

  static void methods(MethodTable<R>& t) {
    t.def(get, +[](R& r) -> T { return r.value; }).def(set, +[](R& r, T v) { r.value = std::move(v); });
  }
};

namespace internal::manager {
/// The methods managed::Queue<T> and managed::JoinableQueue<T> share.
template <class T>
struct QueueMethods {
  static constexpr bool serialized = false;
  static constexpr Method<"put", void(T, bool, managed::Timeout)> put{};
  static constexpr Method<"get", T(bool, managed::Timeout)> get{};
  static constexpr Method<"qsize", std::int64_t()> qsize{};
  static constexpr Method<"maxsize", std::int64_t()> maxsize{};

  template <class Q>
  static void def_queue_methods(MethodTable<Q>& t) {
    t.def(put, +[](Q& q, T item, bool block, managed::Timeout timeout) { q.put(std::move(item), block, timeout); })
        .def(get, +[](Q& q, bool block, managed::Timeout timeout) -> T { return q.get(block, timeout); })
        .def(qsize, +[](Q& q) -> std::int64_t { return q.qsize(); })
        .def(maxsize, +[](Q& q) -> std::int64_t { return q.maxsize(); });
  }
};

/// Lock-like referents: acquire(block, timeout) / release().
struct LockMethods {
  static constexpr bool serialized = false;
  static constexpr Method<"acquire", bool(bool, managed::Timeout)> acquire{};
  static constexpr Method<"release", void()> release{};

  template <class L>
  static bool acquire_with(L& l, bool block, managed::Timeout timeout) {
    if (!block) return l.acquire(std::chrono::nanoseconds(0));
    auto d = managed::from_wire(timeout);
    return d ? l.acquire_until(*d) : l.acquire();
  }
  template <class L>
  static void def_lock_methods(MethodTable<L>& t) {
    t.def(acquire, +[](L& l, bool block, managed::Timeout timeout) -> bool { return acquire_with(l, block, timeout); })
        .def(release, +[](L& l) { l.release(); });
  }
};
}  // namespace internal::manager

template <class T>
struct Exposed<managed::Queue<T>> : internal::manager::QueueMethods<T> {
  using R = managed::Queue<T>;
  static std::string name() { return "Queue<" + internal::manager::type_key<T>() + ">"; }
  static void methods(MethodTable<R>& t) { Exposed::def_queue_methods(t); }
};

template <class T>
struct Exposed<managed::JoinableQueue<T>> : internal::manager::QueueMethods<T> {
  using R = managed::JoinableQueue<T>;
  static std::string name() { return "JoinableQueue<" + internal::manager::type_key<T>() + ">"; }

  static constexpr Method<"task_done", void()> task_done{};
  static constexpr Method<"join", bool(managed::Timeout)> join{};

  static void methods(MethodTable<R>& t) {
    Exposed::def_queue_methods(t);
    t.def(task_done, +[](R& q) { q.task_done(); })
        .def(join, +[](R& q, managed::Timeout timeout) -> bool { return q.join(timeout); });
  }
};

template <>
struct Exposed<Lock> : internal::manager::LockMethods {
  static std::string name() { return "Lock"; }
  static constexpr Method<"locked", bool()> locked{};
  static void methods(MethodTable<Lock>& t) {
    def_lock_methods(t);
    t.def(locked, +[](Lock& l) -> bool { return l.locked(); });
  }
};
template <>
struct Exposed<RLock> : internal::manager::LockMethods {
  static std::string name() { return "RLock"; }
  static void methods(MethodTable<RLock>& t) { def_lock_methods(t); }
};
template <>
struct Exposed<Semaphore> {
  static constexpr bool serialized = false;
  static std::string name() { return "Semaphore"; }
  static constexpr Method<"acquire", bool(bool, managed::Timeout)> acquire{};
  static constexpr Method<"release", void(int)> release{};
  static void methods(MethodTable<Semaphore>& t) {
    t.def(acquire, +[](Semaphore& s, bool block, managed::Timeout timeout) -> bool {
       return internal::manager::LockMethods::acquire_with(s, block, timeout);
     }).def(release, +[](Semaphore& s, int n) { s.release(n); });
  }
};
template <>
struct Exposed<Event> {
  static constexpr bool serialized = false;
  static std::string name() { return "Event"; }
  static constexpr Method<"set", void()> set{};
  static constexpr Method<"clear", void()> clear{};
  static constexpr Method<"is_set", bool()> is_set{};
  static constexpr Method<"wait", bool(managed::Timeout)> wait{};
  static void methods(MethodTable<Event>& t) {
    t.def(set, +[](Event& e) { e.set(); })
        .def(clear, +[](Event& e) { e.clear(); })
        .def(is_set, +[](Event& e) -> bool { return e.is_set(); })
        .def(wait, +[](Event& e, managed::Timeout timeout) -> bool {
          auto d = managed::from_wire(timeout);
          return d ? e.wait_until(*d) : e.wait();
        });
  }
};
template <>
struct Exposed<Condition> : internal::manager::LockMethods {
  static std::string name() { return "Condition"; }
  static constexpr Method<"wait", bool(managed::Timeout)> wait{};
  static constexpr Method<"notify", void(int)> notify{};
  static constexpr Method<"notify_all", void()> notify_all{};
  static void methods(MethodTable<Condition>& t) {
    def_lock_methods(t);
    t.def(wait, +[](Condition& c, managed::Timeout timeout) -> bool {
       auto d = managed::from_wire(timeout);
       return d ? c.wait_until(*d) : c.wait();
     })
        .def(notify, +[](Condition& c, int n) { c.notify(n); })
        .def(notify_all, +[](Condition& c) { c.notify_all(); });
  }
};
template <>
struct Exposed<Barrier> {
  static constexpr bool serialized = false;
  static std::string name() { return "Barrier"; }
  static constexpr Method<"wait", int(managed::Timeout)> wait{};
  static constexpr Method<"abort", void()> abort{};
  static constexpr Method<"reset", void()> reset{};
  static constexpr Method<"parties", int()> parties{};
  static constexpr Method<"n_waiting", int()> n_waiting{};
  static constexpr Method<"broken", bool()> broken{};
  static void methods(MethodTable<Barrier>& t) {
    t.def(wait, +[](Barrier& b, managed::Timeout timeout) -> int {
       return timeout < 0 ? b.wait() : b.wait(std::chrono::nanoseconds(timeout));
     })
        .def(abort, +[](Barrier& b) { b.abort(); })
        .def(reset, +[](Barrier& b) { b.reset(); })
        .def(parties, +[](Barrier& b) -> int { return b.parties(); })
        .def(n_waiting, +[](Barrier& b) -> int { return b.n_waiting(); })
        .def(broken, +[](Barrier& b) -> bool { return b.broken(); });
  }
};

}  // namespace mp
