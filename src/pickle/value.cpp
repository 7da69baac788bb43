// mp::pickle::Value: its constructors and accessors, Python's == over values and containers,
// and the per-process seeded hash that Dict and Set index by.
#include "mp/pickle.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <unordered_map>

#include "pickle/value_access.hpp"

namespace mp::pickle {

using namespace internal;

namespace {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::floating: return "float";
    case Kind::str: return "str";
    case Kind::bytes: return "bytes";
    case Kind::tuple: return "tuple";
    case Kind::list: return "list";
    case Kind::dict: return "dict";
    case Kind::set: return "set";
    case Kind::frozenset: return "frozenset";
    case Kind::global: return "global";
    case Kind::object: return "object";
  }
  return "?";
}

[[noreturn]] void wrong_kind(const char* expected, const Value& v) {
  throw TypeError(std::string("mp::pickle: expected ") + expected + ", got " + v.type_name() + " " + v.repr(200));
}

}  // namespace

Value::Value(std::string s) : v_(std::shared_ptr<const StrNode>(std::make_shared<StrNode>(StrNode{std::move(s)}))) {}
Value::Value(Bytes b)
    : v_(std::shared_ptr<const BytesNode>(std::make_shared<BytesNode>(BytesNode{std::move(b.data)}))) {}

void Value::throw_uint_overflow(std::uint64_t i) {
  throw TypeError("mp::pickle: " + std::to_string(i) +
                  " does not fit in a 64-bit signed int; mp::pickle carries ints in [-2**63, 2**63)");
}

Value Value::tuple(std::vector<Value> items) {
  return ValueAccess::make(std::make_shared<TupleNode>(TupleNode{std::move(items)}));
}
Value Value::list(std::vector<Value> items) {
  return ValueAccess::make(std::make_shared<ListNode>(ListNode{std::move(items)}));
}
Value Value::dict(Dict d) { return ValueAccess::make(std::make_shared<DictNode>(DictNode{std::move(d)})); }
Value Value::dict(std::initializer_list<std::pair<Value, Value>> items) { return dict(Dict(items)); }
Value Value::set(Set s) { return ValueAccess::make(std::make_shared<SetNode>(SetNode{std::move(s)})); }
Value Value::set(std::initializer_list<Value> items) { return set(Set(items)); }
Value Value::frozenset(Set s) {
  return ValueAccess::make(std::make_shared<FrozenSetNode>(FrozenSetNode{std::move(s)}));
}
Value Value::frozenset(std::initializer_list<Value> items) { return frozenset(Set(items)); }
Value Value::global(std::string module, std::string qualname) {
  return ValueAccess::make(
      std::shared_ptr<const GlobalNode>(std::make_shared<GlobalNode>(GlobalNode{{std::move(module), std::move(qualname)}})));
}
Value Value::object(Object o) { return ValueAccess::make(std::make_shared<ObjectNode>(ObjectNode{std::move(o)})); }

std::string Value::type_name() const {
  if (kind() == Kind::object) return as_object().type.dotted();
  return kind_name(kind());
}

bool Value::as_bool() const {
  if (auto* b = std::get_if<bool>(&v_)) return *b;
  wrong_kind("bool", *this);
}
std::int64_t Value::as_int() const {
  if (auto* i = std::get_if<std::int64_t>(&v_)) return *i;
  wrong_kind("int", *this);
}
double Value::as_float() const {
  if (auto* d = std::get_if<double>(&v_)) return *d;
  if (auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
  if (auto* b = std::get_if<bool>(&v_)) return *b ? 1.0 : 0.0;
  wrong_kind("float", *this);
}
const std::string& Value::as_str() const {
  if (kind() != Kind::str) wrong_kind("str", *this);
  return node_of<const StrNode>(*this).s;
}
const std::string& Value::as_bytes() const {
  if (kind() != Kind::bytes) wrong_kind("bytes", *this);
  return node_of<const BytesNode>(*this).s;
}
const std::vector<Value>& Value::as_tuple() const {
  if (kind() != Kind::tuple) wrong_kind("tuple", *this);
  return node_of<TupleNode>(*this).items;
}
const std::vector<Value>& Value::as_list() const {
  if (kind() != Kind::list) wrong_kind("list", *this);
  return node_of<ListNode>(*this).items;
}
std::vector<Value>& Value::as_list() {
  if (kind() != Kind::list) wrong_kind("list", *this);
  return unique_node<ListNode>(*this).items;
}
const std::vector<Value>& Value::as_sequence() const {
  if (kind() == Kind::tuple) return node_of<TupleNode>(*this).items;
  if (kind() == Kind::list) return node_of<ListNode>(*this).items;
  wrong_kind("tuple or list", *this);
}
const Dict& Value::as_dict() const {
  if (kind() != Kind::dict) wrong_kind("dict", *this);
  return node_of<DictNode>(*this).d;
}
Dict& Value::as_dict() {
  if (kind() != Kind::dict) wrong_kind("dict", *this);
  return unique_node<DictNode>(*this).d;
}
const Set& Value::as_set() const {
  if (kind() == Kind::set) return node_of<SetNode>(*this).s;
  if (kind() == Kind::frozenset) return node_of<FrozenSetNode>(*this).s;
  wrong_kind("set or frozenset", *this);
}
Set& Value::as_set() {
  if (kind() != Kind::set) wrong_kind("set (a frozenset cannot be modified)", *this);
  return unique_node<SetNode>(*this).s;
}
const Global& Value::as_global() const {
  if (kind() != Kind::global) wrong_kind("global", *this);
  return node_of<const GlobalNode>(*this).g;
}
const Object& Value::as_object() const {
  if (kind() != Kind::object) wrong_kind("object", *this);
  return node_of<ObjectNode>(*this).o;
}
Object& Value::as_object() {
  if (kind() != Kind::object) wrong_kind("object", *this);
  auto& n = unique_node<ObjectNode>(*this);
  n.hash.h.store(0, std::memory_order_relaxed);  // the caller may change args
  return n.o;
}

bool Value::is(const Value& other) const noexcept {
  if (kind() != other.kind()) return false;
  switch (kind()) {
    case Kind::none: return true;
    case Kind::boolean: return std::get<bool>(v_) == std::get<bool>(other.v_);
    case Kind::integer: return std::get<std::int64_t>(v_) == std::get<std::int64_t>(other.v_);
    case Kind::floating: return std::bit_cast<std::uint64_t>(std::get<double>(v_)) ==
                                std::bit_cast<std::uint64_t>(std::get<double>(other.v_));
    default: return ValueAccess::node(*this) == ValueAccess::node(other);
  }
}

std::uintptr_t Value::id() const noexcept { return reinterpret_cast<std::uintptr_t>(ValueAccess::node(*this)); }

void throw_type_error(std::string_view expected, const Value& got) {
  throw TypeError("mp::pickle: expected " + std::string(expected) + ", got " + got.type_name() + " " + got.repr(200));
}

Value exception(std::string type_name, std::string message, std::string module) {
  Object o;
  o.type = {std::move(module), std::move(type_name)};
  o.args.emplace_back(std::move(message));
  return Value::object(std::move(o));
}

// ---- hashing (seeded per process so crafted collisions cannot be prepared offline) ----
// hash_seed() stays private to this file: a copy in another file would be a second seed,
// and Dict and Set would no longer find keys hashed elsewhere in the process.

namespace {

std::uint64_t hash_seed() {
  static const std::uint64_t seed = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  return seed;
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t hash_bytes(std::string_view s, std::uint64_t tag) {
  std::uint64_t h = mix(hash_seed() ^ tag ^ (s.size() * 0x9e3779b97f4a7c15ULL));
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = mix(h ^ w) + 0x9e3779b97f4a7c15ULL;
  }
  std::uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  return mix(h ^ w ^ (s.size() - i));
}

std::uint64_t hash_int(std::int64_t i) { return mix(static_cast<std::uint64_t>(i) ^ hash_seed()); }

/// A double's exact value as int64 when it has one.
std::optional<std::int64_t> exact_int(double d) {
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != std::trunc(d)) return std::nullopt;
  return static_cast<std::int64_t>(d);
}

/// Hash of an immutable node, through its cache.
template <class F>
std::size_t cached(const HashCache& cache, F compute) {
  std::size_t h = cache.h.load(std::memory_order_relaxed);
  if (h != 0) return h;
  h = compute();
  if (h == 0) h = 1;
  cache.h.store(h, std::memory_order_relaxed);
  return h;
}

}  // namespace

std::size_t hash(const Value& v) {
  switch (v.kind()) {
    case Kind::none: return mix(hash_seed() ^ 0x4e6f6e65ULL);
    case Kind::boolean: return hash_int(v.as_bool() ? 1 : 0);
    case Kind::integer: return hash_int(v.as_int());
    case Kind::floating: {
      double d = v.as_float();
      if (auto e = exact_int(d)) return hash_int(*e);
      if (std::isnan(d)) {
        static std::atomic<std::uint64_t> nans{0};
        return mix(hash_seed() ^ (0x4e614e0000000000ULL + nans.fetch_add(1, std::memory_order_relaxed)));
      }
      return mix(std::bit_cast<std::uint64_t>(d) ^ hash_seed() ^ 0xf10a7ULL);
    }
    case Kind::str: return cached(node_of<const StrNode>(v).hash, [&] { return hash_bytes(v.as_str(), 0x57); });
    case Kind::bytes: return cached(node_of<const BytesNode>(v).hash, [&] { return hash_bytes(v.as_bytes(), 0xB7); });
    case Kind::tuple:
      return cached(node_of<TupleNode>(v).hash, [&] {
        std::uint64_t h = mix(hash_seed() ^ 0x7e);
        for (const auto& x : v.as_tuple()) h = mix(h ^ hash(x)) + 0x9e3779b97f4a7c15ULL;
        return h;
      });
    case Kind::frozenset:
      return cached(node_of<FrozenSetNode>(v).hash, [&] {
        std::uint64_t h = 0;  // order-independent, like Python's frozenset hash
        for (const auto& x : v.as_set()) h += mix(hash(x));
        return mix(h ^ hash_seed() ^ 0xf5);
      });
    case Kind::global:
      return cached(node_of<const GlobalNode>(v).hash, [&] {
        const auto& g = v.as_global();
        return mix(hash_bytes(g.module, 0x61) ^ hash_bytes(g.qualname, 0x62));
      });
    case Kind::object: {
      // Objects are keys only in exotic pickles (enum members); hash what identifies them.
      return cached(node_of<ObjectNode>(v).hash, [&] {
        const auto& o = v.as_object();
        std::uint64_t h = mix(hash_bytes(o.type.module, 0x61) ^ hash_bytes(o.type.qualname, 0x62));
        for (const auto& x : o.args) h = mix(h ^ hash(x)) + 0x9e3779b97f4a7c15ULL;
        return h;
      });
    }
    case Kind::list:
    case Kind::dict:
    case Kind::set: break;
  }
  throw TypeError(std::string("mp::pickle: unhashable type: '") + kind_name(v.kind()) +
                  "' (only None, bool, int, float, str, bytes, tuples of those, frozenset, globals and objects "
                  "can be dict keys or set elements)");
}

// ---- equality (Python's ==: 1 == 1.0 == True, sets and dicts order-insensitive) ----

namespace {

bool is_number(Kind k) { return k == Kind::boolean || k == Kind::integer || k == Kind::floating; }

bool numbers_equal(const Value& a, const Value& b) {
  auto as_i = [](const Value& v) -> std::optional<std::int64_t> {
    if (v.is_bool()) return v.as_bool() ? 1 : 0;
    if (v.is_int()) return v.as_int();
    return std::nullopt;
  };
  auto ia = as_i(a), ib = as_i(b);
  if (ia && ib) return *ia == *ib;
  if (!ia && !ib) return a.as_float() == b.as_float();
  double d = ia ? b.as_float() : a.as_float();
  auto e = exact_int(d);
  return e && *e == (ia ? *ia : *ib);
}

/// Equality of two values whose memo-shared parts repeat: without remembering the outcome
/// for node pairs already compared, comparing (t, t) chains 60 deep takes 2**60 steps. One
/// context serves a whole top-level comparison, including the comparisons that set and dict
/// lookups make inside it (they reach operator== again and find the active context), so each
/// pair of container nodes is compared once: at most nodes(a) x nodes(b) comparisons that
/// descend, each looking at one node's children, which bounds one comparison by O(size^2) of
/// the pickle it came from. A decode compares a new set element or dict key only with the
/// stored ones of equal (seeded) hash, so it stays polynomial. pickle_test checks the bound
/// on the chain that was exponential, the fuzz target on every input.
struct EqContext {
  struct PairHash {
    std::size_t operator()(const std::pair<std::uintptr_t, std::uintptr_t>& p) const noexcept {
      return static_cast<std::size_t>(mix(p.first ^ (p.second * 0x9e3779b97f4a7c15ULL)));
    }
  };
  std::size_t work = 0;
  std::unordered_map<std::pair<std::uintptr_t, std::uintptr_t>, bool, PairHash> known;
};

thread_local EqContext* t_active = nullptr;  // the comparison this thread is inside, if any
thread_local EqualityStats t_stats;          // for the bound (value_access.hpp)

/// Runs f with the thread's active context, making one for a top-level comparison.
template <class F>
bool with_context(F f) {
  if (t_active) return f(*t_active);
  EqContext c;
  t_active = &c;
  const std::uint64_t before = t_stats.steps;
  struct Reset {
    std::uint64_t before;
    ~Reset() {
      t_active = nullptr;
      t_stats.largest = std::max(t_stats.largest, t_stats.steps - before);
    }
  } reset{before};
  return f(c);
}

bool equal(const Value& a, const Value& b, EqContext& c);

bool items_equal(const std::vector<Value>& a, const std::vector<Value>& b, EqContext& c) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!equal(a[i], b[i], c)) return false;
  return true;
}

bool dict_equal(const Dict& a, const Dict& b, EqContext& c) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    const Value* o = b.find(k);
    if (!o || !equal(v, *o, c)) return false;
  }
  return true;
}

bool object_equal(const Object& a, const Object& b, EqContext& c) {
  return a.type == b.type && a.via == b.via && items_equal(a.args, b.args, c) && dict_equal(a.kwargs, b.kwargs, c) &&
         equal(a.state, b.state, c) && items_equal(a.listitems, b.listitems, c) &&
         dict_equal(a.dictitems, b.dictitems, c);
}

bool sets_equal(const Set& a, const Set& b) {  // lookups in b compare through the active context
  if (a.size() != b.size()) return false;
  for (const auto& v : a)
    if (!b.contains(v)) return false;
  return true;
}

bool equal(const Value& a, const Value& b, EqContext& c) {
  ++t_stats.steps;
  Kind ka = a.kind(), kb = b.kind();
  if (is_number(ka) && is_number(kb)) return numbers_equal(a, b);
  if (ka != kb && !(a.is_set() && b.is_set())) return false;
  if (ka != Kind::none && ka == kb && a.is(b)) return true;
  switch (ka) {
    case Kind::none: return true;
    case Kind::str: return a.as_str() == b.as_str();
    case Kind::bytes: return a.as_bytes() == b.as_bytes();
    case Kind::global: return a.as_global() == b.as_global();
    default: break;
  }
  std::pair<std::uintptr_t, std::uintptr_t> key{a.id(), b.id()};
  bool remember = ++c.work > 64;
  if (remember)
    if (auto it = c.known.find(key); it != c.known.end()) return it->second;
  bool eq = false;
  switch (ka) {
    case Kind::set:
    case Kind::frozenset: eq = sets_equal(a.as_set(), b.as_set()); break;
    case Kind::tuple:
    case Kind::list: eq = items_equal(a.as_sequence(), b.as_sequence(), c); break;
    case Kind::dict: eq = dict_equal(a.as_dict(), b.as_dict(), c); break;
    case Kind::object: eq = object_equal(a.as_object(), b.as_object(), c); break;
    default: break;
  }
  if (remember) c.known.emplace(key, eq);
  return eq;
}

}  // namespace

bool operator==(const Value& a, const Value& b) {
  return with_context([&](EqContext& c) { return equal(a, b, c); });
}

bool operator==(const Object& a, const Object& b) {
  return with_context([&](EqContext& c) { return object_equal(a, b, c); });
}

bool operator==(const Dict& a, const Dict& b) {
  return with_context([&](EqContext& c) { return dict_equal(a, b, c); });
}

bool operator==(const Set& a, const Set& b) {
  return with_context([&](EqContext&) { return sets_equal(a, b); });
}

EqualityStats& equality_stats() noexcept { return t_stats; }

}  // namespace mp::pickle
