// mp::pickle — Value, its containers, and the pickle encoder/decoder.
//
// The opcodes and their argument encodings are CPython's (Lib/pickle.py, Modules/_pickle.c,
// documented in Lib/pickletools.py). The decoder is a stack machine like CPython's, except
// that it only builds descriptions: nothing named in the pickle is ever looked up or called.
#include "mp/pickle.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <random>
#include <unordered_set>

namespace mp::pickle {

using namespace internal;

// ----------------------------------------------------------------------------------------
// Access to a Value's storage for the encoder and decoder.

struct ValueAccess {
  static Value::Storage& storage(Value& v) noexcept { return v.v_; }
  static const Value::Storage& storage(const Value& v) noexcept { return v.v_; }
  template <class Node>
  static Value make(std::shared_ptr<Node> n) {
    Value v;
    v.v_ = std::move(n);
    return v;
  }
  /// Identity of the shared node, or nullptr for scalars.
  static const void* node(const Value& v) noexcept {
    return std::visit(
        [](const auto& x) -> const void* {
          if constexpr (requires { x.get(); }) return x.get();
          else return nullptr;
        },
        v.v_);
  }
  static long use_count(const Value& v) noexcept {
    return std::visit(
        [](const auto& x) -> long {
          if constexpr (requires { x.use_count(); }) return x.use_count();
          else return 0;
        },
        v.v_);
  }
};

namespace {

template <class Node>
const Node& node_of(const Value& v) {
  return *std::get<std::shared_ptr<Node>>(ValueAccess::storage(v));
}

/// The node of `v`, copied first if any other Value shares it (copy-on-write).
template <class Node>
Node& unique_node(Value& v) {
  auto& p = std::get<std::shared_ptr<Node>>(ValueAccess::storage(v));
  if (p.use_count() != 1) p = std::make_shared<Node>(*p);
  return *p;
}

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

/// UTF-8 as CPython's 'surrogatepass' accepts it: well-formed sequences, shortest form,
/// code points up to U+10FFFF, surrogates (U+D800..DFFF) allowed. Returns the offset of the
/// first bad byte, or npos.
std::size_t bad_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    std::size_t len;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return i;
    if (n - i < len) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return i;
    i += len;
  }
  return std::string_view::npos;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// Code points of valid UTF-8 (as checked by bad_utf8).
template <class F>
void for_each_code_point(std::string_view s, F f) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    unsigned c = p[i];
    std::size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3F);
    f(cp);
    i += len;
  }
}

// ---- hashing (seeded per process so crafted collisions cannot be prepared offline) ----

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

/// Equality of two values whose memo-shared parts repeat: without remembering which node
/// pairs are already known equal, comparing (t, t) chains 60 deep takes 2**60 steps.
struct EqContext {
  struct PairHash {
    std::size_t operator()(const std::pair<std::uintptr_t, std::uintptr_t>& p) const noexcept {
      return static_cast<std::size_t>(mix(p.first ^ (p.second * 0x9e3779b97f4a7c15ULL)));
    }
  };
  std::size_t work = 0;
  std::unordered_set<std::pair<std::uintptr_t, std::uintptr_t>, PairHash> proven;
};

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

bool equal(const Value& a, const Value& b, EqContext& c) {
  Kind ka = a.kind(), kb = b.kind();
  if (is_number(ka) && is_number(kb)) return numbers_equal(a, b);
  if (ka != kb && !(a.is_set() && b.is_set())) return false;
  if (ka != Kind::none && ka == kb && a.is(b)) return true;
  switch (ka) {
    case Kind::none: return true;
    case Kind::str: return a.as_str() == b.as_str();
    case Kind::bytes: return a.as_bytes() == b.as_bytes();
    case Kind::global: return a.as_global() == b.as_global();
    case Kind::set:
    case Kind::frozenset: return a.as_set() == b.as_set();
    default: break;
  }
  std::pair<std::uintptr_t, std::uintptr_t> key{a.id(), b.id()};
  bool remember = ++c.work > 64;
  if (remember && c.proven.count(key)) return true;
  bool eq = false;
  switch (ka) {
    case Kind::tuple:
    case Kind::list: eq = items_equal(a.as_sequence(), b.as_sequence(), c); break;
    case Kind::dict: eq = dict_equal(a.as_dict(), b.as_dict(), c); break;
    case Kind::object: eq = object_equal(a.as_object(), b.as_object(), c); break;
    default: break;
  }
  if (eq && remember) c.proven.insert(key);
  return eq;
}

}  // namespace

// ----------------------------------------------------------------------------------------
// Value

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

bool operator==(const Value& a, const Value& b) {
  EqContext c;
  return equal(a, b, c);
}

bool operator==(const Object& a, const Object& b) {
  EqContext c;
  return object_equal(a, b, c);
}

namespace {
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

void throw_type_error(std::string_view expected, const Value& got) {
  throw TypeError("mp::pickle: expected " + std::string(expected) + ", got " + got.type_name() + " " + got.repr(200));
}

// ---- repr ----

namespace {

void repr_str(std::string& out, std::string_view s, bool bytes, std::size_t limit) {
  if (bytes) out += 'b';
  char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
  out += q;
  for (unsigned char c : s) {
    if (out.size() >= limit) return;
    if (c == static_cast<unsigned char>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80)) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  out += q;
}

void repr_float(std::string& out, double d) {
  if (std::isnan(d)) { out += "nan"; return; }
  if (std::isinf(d)) { out += d < 0 ? "-inf" : "inf"; return; }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  out += s;
}

void repr_into(std::string& out, const Value& v, int depth, std::size_t limit);

void repr_items(std::string& out, const std::vector<Value>& items, int depth, std::size_t limit) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (out.size() >= limit) return;
    if (i) out += ", ";
    repr_into(out, items[i], depth, limit);
  }
}

void repr_dict(std::string& out, const Dict& d, int depth, std::size_t limit) {
  out += '{';
  bool first = true;
  for (const auto& [k, x] : d) {
    if (out.size() >= limit) return;
    if (!first) out += ", ";
    first = false;
    repr_into(out, k, depth, limit);
    out += ": ";
    repr_into(out, x, depth, limit);
  }
  out += '}';
}

void repr_into(std::string& out, const Value& v, int depth, std::size_t limit) {
  if (out.size() >= limit) return;
  if (depth > 64) { out += "..."; return; }
  ++depth;
  switch (v.kind()) {
    case Kind::none: out += "None"; break;
    case Kind::boolean: out += v.as_bool() ? "True" : "False"; break;
    case Kind::integer: out += std::to_string(v.as_int()); break;
    case Kind::floating: repr_float(out, v.as_float()); break;
    case Kind::str: repr_str(out, v.as_str(), false, limit); break;
    case Kind::bytes: repr_str(out, v.as_bytes(), true, limit); break;
    case Kind::tuple:
      out += '(';
      repr_items(out, v.as_tuple(), depth, limit);
      if (v.as_tuple().size() == 1) out += ',';
      out += ')';
      break;
    case Kind::list:
      out += '[';
      repr_items(out, v.as_list(), depth, limit);
      out += ']';
      break;
    case Kind::dict: repr_dict(out, v.as_dict(), depth, limit); break;
    case Kind::set:
    case Kind::frozenset:
      if (v.as_set().empty()) {
        out += v.kind() == Kind::set ? "set()" : "frozenset()";
        break;
      }
      if (v.kind() == Kind::frozenset) out += "frozenset(";
      out += '{';
      repr_items(out, v.as_set().items(), depth, limit);
      out += '}';
      if (v.kind() == Kind::frozenset) out += ')';
      break;
    case Kind::global: out += "<global " + v.as_global().dotted() + ">"; break;
    case Kind::object: {
      const Object& o = v.as_object();
      out += o.type.dotted();
      out += '(';
      repr_items(out, o.args, depth, limit);
      bool sep = !o.args.empty();
      for (const auto& [k, x] : o.kwargs) {
        if (sep) out += ", ";
        sep = true;
        if (k.is_str()) out += k.as_str();
        else repr_into(out, k, depth, limit);
        out += '=';
        repr_into(out, x, depth, limit);
      }
      out += ')';
      if (!o.listitems.empty()) {
        out += ".extend([";
        repr_items(out, o.listitems, depth, limit);
        out += "])";
      }
      if (!o.dictitems.empty()) {
        out += ".update(";
        repr_dict(out, o.dictitems, depth, limit);
        out += ')';
      }
      if (!o.state.is_none()) {
        out += ".__setstate__(";
        repr_into(out, o.state, depth, limit);
        out += ')';
      }
      break;
    }
  }
}

}  // namespace

std::string Value::repr(std::size_t max_chars) const {
  std::string out;
  repr_into(out, *this, 0, max_chars);
  if (out.size() >= max_chars) {
    out.resize(max_chars);
    out += "...";
  }
  return out;
}

Value exception(std::string type_name, std::string message, std::string module) {
  Object o;
  o.type = {std::move(module), std::move(type_name)};
  o.args.emplace_back(std::move(message));
  return Value::object(std::move(o));
}

// ----------------------------------------------------------------------------------------
// Dict and Set

Dict::Dict(std::initializer_list<Item> items) {
  for (const auto& [k, v] : items) insert_or_assign(k, v);
}

std::ptrdiff_t Dict::index_of(const Value& key, std::size_t h) const {
  auto [lo, hi] = index_.equal_range(h);
  for (auto it = lo; it != hi; ++it)
    if (items_[it->second].first.is(key) || items_[it->second].first == key) return static_cast<std::ptrdiff_t>(it->second);
  return -1;
}

const Value* Dict::find(const Value& key) const {
  auto i = index_of(key, hash(key));
  return i < 0 ? nullptr : &items_[static_cast<std::size_t>(i)].second;
}
Value* Dict::find(const Value& key) {
  auto i = index_of(key, hash(key));
  return i < 0 ? nullptr : &items_[static_cast<std::size_t>(i)].second;
}

const Value& Dict::at(const Value& key) const {
  if (const Value* v = find(key)) return *v;
  throw KeyError("mp::pickle: key " + key.repr(200) + " not in dict");
}

Value& Dict::operator[](const Value& key) {
  std::size_t h = hash(key);
  auto i = index_of(key, h);
  if (i >= 0) return items_[static_cast<std::size_t>(i)].second;
  index_.emplace(h, items_.size());
  items_.emplace_back(key, Value());
  return items_.back().second;
}

bool Dict::insert_or_assign(Value key, Value value) {
  std::size_t h = hash(key);
  auto i = index_of(key, h);
  if (i >= 0) {
    items_[static_cast<std::size_t>(i)].second = std::move(value);
    return false;
  }
  index_.emplace(h, items_.size());
  items_.emplace_back(std::move(key), std::move(value));
  return true;
}

bool Dict::erase(const Value& key) {
  auto i = index_of(key, hash(key));
  if (i < 0) return false;
  items_.erase(items_.begin() + i);
  reindex();
  return true;
}

void Dict::reindex() {
  index_.clear();
  for (std::size_t i = 0; i < items_.size(); ++i) index_.emplace(hash(items_[i].first), i);
}

bool operator==(const Dict& a, const Dict& b) {
  EqContext c;
  return dict_equal(a, b, c);
}

Set::Set(std::initializer_list<Value> items) {
  for (const auto& v : items) add(v);
}

std::ptrdiff_t Set::index_of(const Value& v, std::size_t h) const {
  auto [lo, hi] = index_.equal_range(h);
  for (auto it = lo; it != hi; ++it)
    if (items_[it->second].is(v) || items_[it->second] == v) return static_cast<std::ptrdiff_t>(it->second);
  return -1;
}

bool Set::contains(const Value& v) const { return index_of(v, hash(v)) >= 0; }

bool Set::add(Value v) {
  std::size_t h = hash(v);
  if (index_of(v, h) >= 0) return false;
  index_.emplace(h, items_.size());
  items_.push_back(std::move(v));
  return true;
}

bool Set::erase(const Value& v) {
  auto i = index_of(v, hash(v));
  if (i < 0) return false;
  items_.erase(items_.begin() + i);
  reindex();
  return true;
}

void Set::reindex() {
  index_.clear();
  for (std::size_t i = 0; i < items_.size(); ++i) index_.emplace(hash(items_[i]), i);
}

bool operator==(const Set& a, const Set& b) {
  if (a.size() != b.size()) return false;
  for (const auto& v : a)
    if (!b.contains(v)) return false;
  return true;
}

// ----------------------------------------------------------------------------------------
// Opcodes (Lib/pickle.py)

namespace {

namespace op {
constexpr std::uint8_t MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', FLOAT = 'F', INT = 'I',
                       BININT = 'J', BININT1 = 'K', LONG = 'L', BININT2 = 'M', NONE = 'N', PERSID = 'P',
                       BINPERSID = 'Q', REDUCE = 'R', STRING = 'S', BINSTRING = 'T', SHORT_BINSTRING = 'U',
                       UNICODE = 'V', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', DICT = 'd',
                       EMPTY_DICT = '}', APPENDS = 'e', GET = 'g', BINGET = 'h', INST = 'i', LONG_BINGET = 'j',
                       LIST = 'l', EMPTY_LIST = ']', OBJ = 'o', PUT = 'p', BINPUT = 'q', LONG_BINPUT = 'r',
                       SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G',
                       PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85,
                       TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b,
                       BINBYTES = 'B', SHORT_BINBYTES = 'C', SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d,
                       BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90, FROZENSET = 0x91, NEWOBJ_EX = 0x92,
                       STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95, BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97,
                       READONLY_BUFFER = 0x98;
}  // namespace op

const char* opcode_name(std::uint8_t c) {
  switch (c) {
    case op::MARK: return "MARK";
    case op::STOP: return "STOP";
    case op::POP: return "POP";
    case op::POP_MARK: return "POP_MARK";
    case op::DUP: return "DUP";
    case op::FLOAT: return "FLOAT";
    case op::INT: return "INT";
    case op::BININT: return "BININT";
    case op::BININT1: return "BININT1";
    case op::LONG: return "LONG";
    case op::BININT2: return "BININT2";
    case op::NONE: return "NONE";
    case op::PERSID: return "PERSID";
    case op::BINPERSID: return "BINPERSID";
    case op::REDUCE: return "REDUCE";
    case op::STRING: return "STRING";
    case op::BINSTRING: return "BINSTRING";
    case op::SHORT_BINSTRING: return "SHORT_BINSTRING";
    case op::UNICODE: return "UNICODE";
    case op::BINUNICODE: return "BINUNICODE";
    case op::APPEND: return "APPEND";
    case op::BUILD: return "BUILD";
    case op::GLOBAL: return "GLOBAL";
    case op::DICT: return "DICT";
    case op::EMPTY_DICT: return "EMPTY_DICT";
    case op::APPENDS: return "APPENDS";
    case op::GET: return "GET";
    case op::BINGET: return "BINGET";
    case op::INST: return "INST";
    case op::LONG_BINGET: return "LONG_BINGET";
    case op::LIST: return "LIST";
    case op::EMPTY_LIST: return "EMPTY_LIST";
    case op::OBJ: return "OBJ";
    case op::PUT: return "PUT";
    case op::BINPUT: return "BINPUT";
    case op::LONG_BINPUT: return "LONG_BINPUT";
    case op::SETITEM: return "SETITEM";
    case op::TUPLE: return "TUPLE";
    case op::EMPTY_TUPLE: return "EMPTY_TUPLE";
    case op::SETITEMS: return "SETITEMS";
    case op::BINFLOAT: return "BINFLOAT";
    case op::PROTO: return "PROTO";
    case op::NEWOBJ: return "NEWOBJ";
    case op::EXT1: return "EXT1";
    case op::EXT2: return "EXT2";
    case op::EXT4: return "EXT4";
    case op::TUPLE1: return "TUPLE1";
    case op::TUPLE2: return "TUPLE2";
    case op::TUPLE3: return "TUPLE3";
    case op::NEWTRUE: return "NEWTRUE";
    case op::NEWFALSE: return "NEWFALSE";
    case op::LONG1: return "LONG1";
    case op::LONG4: return "LONG4";
    case op::BINBYTES: return "BINBYTES";
    case op::SHORT_BINBYTES: return "SHORT_BINBYTES";
    case op::SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case op::BINUNICODE8: return "BINUNICODE8";
    case op::BINBYTES8: return "BINBYTES8";
    case op::EMPTY_SET: return "EMPTY_SET";
    case op::ADDITEMS: return "ADDITEMS";
    case op::FROZENSET: return "FROZENSET";
    case op::NEWOBJ_EX: return "NEWOBJ_EX";
    case op::STACK_GLOBAL: return "STACK_GLOBAL";
    case op::MEMOIZE: return "MEMOIZE";
    case op::FRAME: return "FRAME";
    case op::BYTEARRAY8: return "BYTEARRAY8";
    case op::NEXT_BUFFER: return "NEXT_BUFFER";
    case op::READONLY_BUFFER: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

std::string describe_opcode(std::uint8_t c) {
  char buf[48];
  const char* name = opcode_name(c);
  if (c >= 0x20 && c < 0x7f)
    std::snprintf(buf, sizeof buf, "0x%02x '%c' %s", c, c, name ? name : "(unknown)");
  else
    std::snprintf(buf, sizeof buf, "0x%02x %s", c, name ? name : "(unknown)");
  return buf;
}

constexpr std::size_t kBatch = 1000;  // CPython's _BATCHSIZE for APPENDS/SETITEMS/ADDITEMS
constexpr std::uint32_t kMaxDumpDepth = 1000;

// ----------------------------------------------------------------------------------------
// Encoder

class Encoder {
 public:
  explicit Encoder(int protocol) : proto_(protocol) {}

  std::string run(const Value& v) {
    out_ += static_cast<char>(op::PROTO);
    out_ += static_cast<char>(proto_);
    std::size_t frame_at = out_.size();
    if (proto_ >= 4) out_.append(9, '\0');  // FRAME + 8-byte length, filled in below
    save(v, 0);
    out_ += static_cast<char>(op::STOP);
    if (proto_ >= 4) {
      // One frame holding the whole pickle: valid for every CPython unpickler, which only
      // requires a frame's bytes to be present. Like CPython, no frame for under 4 bytes.
      std::uint64_t n = out_.size() - frame_at - 9;
      if (n < 4) {
        out_.erase(frame_at, 9);
      } else {
        out_[frame_at] = static_cast<char>(op::FRAME);
        for (int i = 0; i < 8; ++i) out_[frame_at + 1 + static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
      }
    }
    return std::move(out_);
  }

 private:
  void byte(std::uint8_t c) { out_ += static_cast<char>(c); }
  void le(std::uint64_t x, int n) {
    for (int i = 0; i < n; ++i) out_ += static_cast<char>(x >> (8 * i));
  }

  /// Writes a memo fetch and returns true when `v`'s node was already written.
  bool fetched(const Value& v) {
    auto it = memo_.find(ValueAccess::node(v));
    if (it == memo_.end()) return false;
    if (it->second < 256) {
      byte(op::BINGET);
      byte(static_cast<std::uint8_t>(it->second));
    } else {
      byte(op::LONG_BINGET);
      le(it->second, 4);
    }
    return true;
  }

  /// Records `v`'s node in the memo when another reference to it may follow. Only shared
  /// nodes are memoized: an unshared node cannot occur twice in this value.
  void memoize(const Value& v) {
    if (ValueAccess::use_count(v) <= 1) return;
    auto idx = static_cast<std::uint32_t>(memo_.size());
    memo_.emplace(ValueAccess::node(v), idx);
    if (proto_ >= 4) {
      byte(op::MEMOIZE);
    } else if (idx < 256) {
      byte(op::BINPUT);
      byte(static_cast<std::uint8_t>(idx));
    } else {
      byte(op::LONG_BINPUT);
      le(idx, 4);
    }
  }

  void save_int(std::int64_t x) {
    if (x >= 0 && x <= 0xff) {
      byte(op::BININT1);
      byte(static_cast<std::uint8_t>(x));
    } else if (x >= 0 && x <= 0xffff) {
      byte(op::BININT2);
      le(static_cast<std::uint64_t>(x), 2);
    } else if (x >= -0x80000000LL && x <= 0x7fffffffLL) {
      byte(op::BININT);
      le(static_cast<std::uint64_t>(x), 4);
    } else {
      // Minimal two's complement, little-endian (pickle.encode_long).
      std::uint8_t b[8];
      for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(x) >> (8 * i));
      int n = 8;
      while (n > 1 && ((b[n - 1] == 0 && !(b[n - 2] & 0x80)) || (b[n - 1] == 0xff && (b[n - 2] & 0x80)))) --n;
      byte(op::LONG1);
      byte(static_cast<std::uint8_t>(n));
      out_.append(reinterpret_cast<const char*>(b), static_cast<std::size_t>(n));
    }
  }

  void save_unicode(std::string_view s) {
    if (auto bad = bad_utf8(s); bad != std::string_view::npos)
      throw PicklingError("mp::pickle: str is not valid UTF-8 (bad byte at offset " + std::to_string(bad) +
                          "); send binary data as mp::pickle::Bytes");
    if (proto_ >= 4 && s.size() < 256) {
      byte(op::SHORT_BINUNICODE);
      byte(static_cast<std::uint8_t>(s.size()));
    } else if (s.size() > 0xffffffffULL) {
      if (proto_ < 4) throw PicklingError("mp::pickle: a str over 4 GiB needs protocol 4 or higher");
      byte(op::BINUNICODE8);
      le(s.size(), 8);
    } else {
      byte(op::BINUNICODE);
      le(s.size(), 4);
    }
    out_.append(s);
  }

  void save_global(const Global& g) {
    for (const std::string* s : {&g.module, &g.qualname}) {
      if (s->empty() || s->find('\n') != std::string::npos || bad_utf8(*s) != std::string_view::npos)
        throw PicklingError("mp::pickle: invalid global name " + Value(*s).repr());
    }
    if (proto_ >= 4) {
      save_unicode(g.module);
      save_unicode(g.qualname);
      byte(op::STACK_GLOBAL);
      return;
    }
    if (auto dot = g.qualname.rfind('.'); dot != std::string::npos) {
      // GLOBAL cannot name Outer.Inner; CPython writes getattr(Outer, 'Inner') instead.
      save_global({"builtins", "getattr"});
      save_global({g.module, g.qualname.substr(0, dot)});
      save_unicode(std::string_view(g.qualname).substr(dot + 1));
      byte(op::TUPLE2);
      byte(op::REDUCE);
      return;
    }
    byte(op::GLOBAL);
    out_ += g.module;
    out_ += '\n';
    out_ += g.qualname;
    out_ += '\n';
  }

  void save_items(const std::vector<Value>& items, std::uint32_t depth) {
    for (const auto& x : items) save(x, depth);
  }

  /// Appends `items` to the list-like object on the stack top, in batches like CPython.
  void save_appends(const std::vector<Value>& items, std::uint32_t depth, std::uint8_t many, std::uint8_t one) {
    for (std::size_t i = 0; i < items.size(); i += kBatch) {
      std::size_t n = std::min(kBatch, items.size() - i);
      if (n == 1 && one) {
        save(items[i], depth);
        byte(one);
        continue;
      }
      byte(op::MARK);
      for (std::size_t k = i; k < i + n; ++k) save(items[k], depth);
      byte(many);
    }
  }

  void save_setitems(const Dict& d, std::uint32_t depth) {
    const auto& items = d.items();
    for (std::size_t i = 0; i < items.size(); i += kBatch) {
      std::size_t n = std::min(kBatch, items.size() - i);
      if (n > 1) byte(op::MARK);
      for (std::size_t k = i; k < i + n; ++k) {
        save(items[k].first, depth);
        save(items[k].second, depth);
      }
      byte(n > 1 ? op::SETITEMS : op::SETITEM);
    }
  }

  void save_tuple_of(const std::vector<Value>& items, std::uint32_t depth) {
    if (items.empty()) {
      byte(op::EMPTY_TUPLE);
      return;
    }
    if (items.size() <= 3) {
      save_items(items, depth);
      byte(static_cast<std::uint8_t>(op::TUPLE1 + items.size() - 1));
      return;
    }
    byte(op::MARK);
    save_items(items, depth);
    byte(op::TUPLE);
  }

  /// set/frozenset at protocol < 4: builtins.set([items]) like CPython's save_reduce.
  void save_set_by_reduce(const char* type, const Set& s, std::uint32_t depth) {
    save_global({"builtins", type});
    byte(op::EMPTY_LIST);
    save_appends(s.items(), depth, op::APPENDS, op::APPEND);
    byte(op::TUPLE1);
    byte(op::REDUCE);
  }

  /// `depth` counts enclosing containers and objects, as LoadOptions::max_depth does.
  void save(const Value& v, std::uint32_t depth) {
    switch (v.kind()) {
      case Kind::none: byte(op::NONE); return;
      case Kind::boolean: byte(v.as_bool() ? op::NEWTRUE : op::NEWFALSE); return;
      case Kind::integer: save_int(v.as_int()); return;
      case Kind::floating: {
        byte(op::BINFLOAT);
        auto bits = std::bit_cast<std::uint64_t>(v.as_float());
        for (int i = 7; i >= 0; --i) out_ += static_cast<char>(bits >> (8 * i));
        return;
      }
      default: break;
    }
    if (fetched(v)) return;
    if (v.kind() != Kind::str && v.kind() != Kind::bytes && v.kind() != Kind::global && ++depth > kMaxDumpDepth)
      throw PicklingError("mp::pickle: value nested deeper than " + std::to_string(kMaxDumpDepth) + " levels");
    switch (v.kind()) {
      case Kind::str: save_unicode(v.as_str()); break;
      case Kind::bytes: {
        const std::string& b = v.as_bytes();
        if (proto_ < 3) {
          // No bytes opcodes before protocol 3: CPython writes _codecs.encode(latin1 text, 'latin1').
          if (b.empty()) {
            save_global({"builtins", "bytes"});
            byte(op::EMPTY_TUPLE);
          } else {
            save_global({"_codecs", "encode"});
            std::string text;
            for (unsigned char c : b) append_utf8(text, c);
            save_unicode(text);
            save_unicode("latin1");
            byte(op::TUPLE2);
          }
          byte(op::REDUCE);
        } else if (b.size() < 256) {
          byte(op::SHORT_BINBYTES);
          byte(static_cast<std::uint8_t>(b.size()));
          out_ += b;
        } else if (b.size() > 0xffffffffULL) {
          if (proto_ < 4) throw PicklingError("mp::pickle: bytes over 4 GiB need protocol 4 or higher");
          byte(op::BINBYTES8);
          le(b.size(), 8);
          out_ += b;
        } else {
          byte(op::BINBYTES);
          le(b.size(), 4);
          out_ += b;
        }
        break;
      }
      case Kind::tuple: save_tuple_of(v.as_tuple(), depth); break;
      case Kind::list:
        byte(op::EMPTY_LIST);
        memoize(v);
        save_appends(v.as_list(), depth, op::APPENDS, op::APPEND);
        return;
      case Kind::dict:
        byte(op::EMPTY_DICT);
        memoize(v);
        save_setitems(v.as_dict(), depth);
        return;
      case Kind::set:
        if (proto_ < 4) {
          save_set_by_reduce("set", v.as_set(), depth);
          break;
        }
        byte(op::EMPTY_SET);
        memoize(v);
        save_appends(v.as_set().items(), depth, op::ADDITEMS, 0);
        return;
      case Kind::frozenset:
        if (proto_ < 4) {
          save_set_by_reduce("frozenset", v.as_set(), depth);
          break;
        }
        byte(op::MARK);
        save_items(v.as_set().items(), depth);
        byte(op::FROZENSET);
        break;
      case Kind::global: save_global(v.as_global()); break;
      case Kind::object: save_object(v.as_object(), depth); break;
      default: break;
    }
    memoize(v);
    if (v.kind() == Kind::object) save_object_tail(v.as_object(), depth);
  }

  void save_object(const Object& o, std::uint32_t depth) {
    if (o.via == Object::Via::reduce) {
      if (!o.kwargs.empty()) throw PicklingError("mp::pickle: keyword arguments need Object::Via::newobj");
      save_global(o.type);
      save_tuple_of(o.args, depth);
      byte(op::REDUCE);
    } else if (o.kwargs.empty()) {
      save_global(o.type);
      save_tuple_of(o.args, depth);
      byte(op::NEWOBJ);
    } else if (proto_ >= 4) {
      save_global(o.type);
      save_tuple_of(o.args, depth);
      byte(op::EMPTY_DICT);
      save_setitems(o.kwargs, depth);
      byte(op::NEWOBJ_EX);
    } else {
      save_global({"copyreg", "__newobj_ex__"});
      save_global(o.type);
      save_tuple_of(o.args, depth);
      byte(op::EMPTY_DICT);
      save_setitems(o.kwargs, depth);
      byte(op::TUPLE3);
      byte(op::REDUCE);
    }
  }

  /// What CPython's save_reduce writes after the object is memoized.
  void save_object_tail(const Object& o, std::uint32_t depth) {
    save_appends(o.listitems, depth, op::APPENDS, op::APPEND);
    save_setitems(o.dictitems, depth);
    if (!o.state.is_none()) {
      save(o.state, depth);
      byte(op::BUILD);
    }
  }

  int proto_;
  std::string out_;
  std::unordered_map<const void*, std::uint32_t> memo_;
};

}  // namespace

std::string dumps(const Value& value, int protocol) {
  if (protocol < 2 || protocol > highest_protocol)
    throw mp::ValueError("mp::pickle::dumps: protocol must be 2..5, got " + std::to_string(protocol));
  return Encoder(protocol).run(value);
}

// ----------------------------------------------------------------------------------------
// Decoder

namespace internal {

class Decoder {
 public:
  Decoder(std::string_view in, const LoadOptions& options) : in_(in), opt_(options) {}

  Value run() {
    if (in_.empty()) fail_at(0, "empty input: no pickle (Python: EOFError 'Ran out of input')");
    for (;;) {
      op_pos_ = pos_;
      op_ = u8();
      if (step()) break;
    }
    if (!marks_.empty()) fail("STOP with an unclosed MARK");
    if (stack_.size() != 1)
      fail(stack_.empty() ? std::string("STOP with an empty stack")
                          : std::to_string(stack_.size()) + " values on the stack at STOP (expected 1)");
    if (pos_ != in_.size() && !opt_.allow_trailing_data)
      fail_at(pos_, std::to_string(in_.size() - pos_) + " bytes of trailing data after STOP");
    return std::move(stack_.back());
  }

 private:
  // ---- errors ----
  [[noreturn]] void fail_at(std::size_t offset, const std::string& what) const {
    throw UnpicklingError("mp::pickle: " + what + " at offset " + std::to_string(offset), offset);
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw UnpicklingError("mp::pickle: " + what + " (opcode " + describe_opcode(op_) + " at offset " +
                              std::to_string(op_pos_) + ")",
                          op_pos_);
  }

  // ---- input ----
  std::size_t remaining() const { return in_.size() - pos_; }
  std::string_view take(std::uint64_t n) {
    if (n > remaining())
      fail("truncated input: needs " + std::to_string(n) + " bytes, only " + std::to_string(remaining()) + " left");
    auto s = in_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  std::uint64_t le(int n) {
    auto s = take(static_cast<std::uint64_t>(n));
    std::uint64_t x = 0;
    for (int i = n - 1; i >= 0; --i) x = (x << 8) | static_cast<unsigned char>(s[static_cast<std::size_t>(i)]);
    return x;
  }
  std::uint8_t u8() {
    if (remaining() < 1) {
      if (pos_ == op_pos_) fail_at(pos_, "truncated input: pickle ends without STOP");
      fail("truncated input: needs 1 byte, none left");
    }
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  std::int32_t i32() { return static_cast<std::int32_t>(static_cast<std::uint32_t>(le(4))); }
  /// A protocol-0 argument line, without its '\n'.
  std::string_view line() {
    auto nl = in_.find('\n', pos_);
    if (nl == std::string_view::npos) fail("truncated input: missing end of line");
    auto s = in_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return s;
  }
  std::string utf8(std::string_view s) {
    if (auto bad = bad_utf8(s); bad != std::string_view::npos) fail("invalid UTF-8 in str (byte " + std::to_string(bad) + ")");
    return std::string(s);
  }
  std::int64_t parse_int(std::string_view s, const char* what) {
    std::string_view digits = s;
    if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
    std::int64_t x = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), x);
    if (ec == std::errc::result_out_of_range) big_int();
    if (ec != std::errc() || p != digits.data() + digits.size() || digits.empty())
      fail(std::string("malformed ") + what + " argument " + Value(std::string(s.substr(0, 40))).repr());
    return x;
  }
  [[noreturn]] void big_int() {
    fail("int does not fit in 64 bits: mp::pickle carries Python ints in [-2**63, 2**63); "
         "send bigger numbers as str or bytes");
  }

  // ---- stack ----
  std::size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value v) { stack_.push_back(std::move(v)); }
  Value pop() {
    if (stack_.size() <= fence()) fail("stack underflow");
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Value& top() {
    if (stack_.size() <= fence()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Value> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(m)),
                             std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }

  // ---- nesting and sharing ----
  static std::uint32_t depth_of(const Value& v) {
    switch (v.kind()) {
      case Kind::tuple: return node_of<TupleNode>(v).depth;
      case Kind::list: return node_of<ListNode>(v).depth;
      case Kind::dict: return node_of<DictNode>(v).depth;
      case Kind::set: return node_of<SetNode>(v).depth;
      case Kind::frozenset: return node_of<FrozenSetNode>(v).depth;
      case Kind::object: return node_of<ObjectNode>(v).depth;
      default: return 0;
    }
  }
  std::uint32_t depth_over(const std::vector<Value>& items, std::uint32_t d = 1) {
    for (const auto& x : items) d = std::max(d, depth_of(x) + 1);
    if (d > opt_.max_depth) fail("nesting deeper than max_depth " + std::to_string(opt_.max_depth));
    return d;
  }
  void deepen(std::uint32_t& d, const Value& child) {
    d = std::max(d, depth_of(child) + 1);
    if (d > opt_.max_depth) fail("nesting deeper than max_depth " + std::to_string(opt_.max_depth));
  }

  // A mutable container fetched from the memo (GET / DUP) is "frozen": in a pickle of an
  // acyclic value every container is complete before it is referenced again, so a later
  // APPEND/SETITEM/ADDITEMS/BUILD on it can only come from a self-referencing structure
  // (or hostile input). Refusing those keeps every Value a finite tree of shared nodes.
  static void freeze(const Value& v) {
    auto& s = ValueAccess::storage(const_cast<Value&>(v));
    if (auto* l = std::get_if<std::shared_ptr<ListNode>>(&s)) (*l)->frozen = true;
    else if (auto* d = std::get_if<std::shared_ptr<DictNode>>(&s)) (*d)->frozen = true;
    else if (auto* st = std::get_if<std::shared_ptr<SetNode>>(&s)) (*st)->frozen = true;
    else if (auto* o = std::get_if<std::shared_ptr<ObjectNode>>(&s)) (*o)->frozen = true;
  }
  template <class Node>
  Node& target(Value& v) {
    auto& n = *std::get<std::shared_ptr<Node>>(ValueAccess::storage(v));
    if (n.frozen)
      fail("modifies a " + v.type_name() +
           " already fetched from the memo: self-referencing (recursive) structures are not supported");
    return n;
  }

  // ---- building values ----
  template <class Node, class... A>
  static Value make(A&&... a) {
    return ValueAccess::make(std::make_shared<Node>(Node{std::forward<A>(a)...}));
  }
  Value make_tuple(std::vector<Value> items) {
    auto d = depth_over(items);
    return make<TupleNode>(std::move(items), d);
  }
  Set make_set(std::vector<Value> items) {
    Set s;
    try {
      for (auto& x : items) s.add(std::move(x));
    } catch (const TypeError& e) {
      fail(e.what());
    }
    return s;
  }
  void set_item(Dict& d, Value k, Value v) {
    try {
      d.insert_or_assign(std::move(k), std::move(v));
    } catch (const TypeError& e) {
      fail(e.what());
    }
  }
  void memo_put(std::uint64_t idx) {
    if (memo_.size() >= opt_.max_memo && !memo_.count(idx))
      fail("memo exceeds max_memo " + std::to_string(opt_.max_memo) + " entries");
    memo_[idx] = top();
  }
  void memo_get(std::uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo key " + std::to_string(idx) + " not found");
    freeze(it->second);
    push(it->second);
  }

  Value make_global(std::string module, std::string name) {
    if (module.empty() || name.empty()) fail("empty module or name in global reference");
    if (proto_ < 3) py2_names(module, name);
    return Value::global(std::move(module), std::move(name));
  }
  /// The renames CPython's Unpickler applies to protocol 0-2 pickles (fix_imports), limited
  /// to the names that occur in data: builtins, exceptions, copyreg.
  static void py2_names(std::string& module, std::string& name) {
    if (module == "__builtin__") {
      module = "builtins";
      if (name == "xrange") name = "range";
      else if (name == "unicode" || name == "basestring") name = "str";
      else if (name == "long") name = "int";
      else if (name == "unichr") name = "chr";
      else if (name == "reduce") module = "functools";
      else if (name == "intern") module = "sys";
    } else if (module == "exceptions") {
      module = "builtins";
      if (name == "StandardError") name = "Exception";
      else if (name == "IOError" || name == "EnvironmentError" || name == "WindowsError") name = "OSError";
    } else if (module == "copy_reg") {
      module = "copyreg";
    } else if (module == "Queue") {
      module = "queue";
    }
  }

  Value latin1_bytes(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    bool ok = true;
    for_each_code_point(text, [&](std::uint32_t cp) {
      if (cp > 0xff) ok = false;
      out += static_cast<char>(cp);
    });
    if (!ok) fail("_codecs.encode(..., 'latin1') of text outside latin-1");
    return Value(Bytes{std::move(out)});
  }

  /// REDUCE: fold the pure data constructors CPython uses at protocol < 4, describe the rest.
  Value reduce(const Global& g, std::vector<Value> args) {
    if (g.module == "_codecs" && g.qualname == "encode" && args.size() == 2 && args[0].is_str() &&
        args[1].is_str() && (args[1].as_str() == "latin1" || args[1].as_str() == "latin-1"))
      return latin1_bytes(args[0].as_str());
    if (g.module == "builtins") {
      if (g.qualname == "bytes" && args.empty()) return Value(Bytes{});
      // How CPython names a nested class (Outer.Inner) at protocol < 4.
      if (g.qualname == "getattr" && args.size() == 2 && args[0].is_global() && args[1].is_str())
        return make_global(args[0].as_global().module, args[0].as_global().qualname + "." + args[1].as_str());
      bool set = g.qualname == "set", frozen = g.qualname == "frozenset";
      if ((set || frozen) && (args.empty() || (args.size() == 1 && (args[0].is_list() || args[0].is_tuple())))) {
        std::vector<Value> items = args.empty() ? std::vector<Value>{} : args[0].as_sequence();
        auto d = depth_over(items);
        Set s = make_set(std::move(items));
        return set ? make<SetNode>(std::move(s), d) : make<FrozenSetNode>(std::move(s), d);
      }
    }
    Object o;
    o.type = g;
    o.args = std::move(args);
    return make_object(std::move(o));
  }
  Value make_object(Object o) {
    auto d = depth_over(o.args);
    for (const auto& [k, v] : o.kwargs) deepen(d, v);
    return make<ObjectNode>(std::move(o), d);
  }
  const Global& callable(const Value& v) {
    if (!v.is_global()) fail("callable is a " + v.type_name() + ", not a global reference (only globals are supported)");
    return v.as_global();
  }
  std::vector<Value> args_tuple(const Value& v) {
    if (!v.is_tuple()) fail("arguments must be a tuple, got " + v.type_name());
    return v.as_tuple();
  }

  void append_to(Value& t, std::vector<Value> items) {
    if (t.kind() == Kind::list) {
      auto& n = target<ListNode>(t);
      for (auto& x : items) {
        deepen(n.depth, x);
        n.items.push_back(std::move(x));
      }
    } else if (t.kind() == Kind::object) {
      auto& n = target<ObjectNode>(t);
      for (auto& x : items) {
        deepen(n.depth, x);
        n.o.listitems.push_back(std::move(x));
      }
    } else {
      fail("appending to a " + t.type_name());
    }
  }
  void setitems_on(Value& t, std::vector<Value> kv) {
    if (kv.size() % 2) fail("odd number of items for SETITEMS/DICT");
    Dict* d;
    std::uint32_t* depth;
    if (t.kind() == Kind::dict) {
      auto& n = target<DictNode>(t);
      d = &n.d;
      depth = &n.depth;
    } else if (t.kind() == Kind::object) {
      auto& n = target<ObjectNode>(t);
      d = &n.o.dictitems;
      depth = &n.depth;
    } else {
      fail("setting items on a " + t.type_name());
    }
    for (std::size_t i = 0; i < kv.size(); i += 2) {
      deepen(*depth, kv[i]);
      deepen(*depth, kv[i + 1]);
      set_item(*d, std::move(kv[i]), std::move(kv[i + 1]));
    }
  }

  std::string py2_str(std::string_view s) {
    for (unsigned char c : s)
      if (c >= 0x80) fail("Python 2 str with non-ASCII bytes (CPython needs encoding='bytes' to load it)");
    return std::string(s);
  }
  /// Protocol 0 UNICODE: raw-unicode-escape (latin-1 bytes plus \uXXXX / \UXXXXXXXX).
  std::string raw_unicode_escape(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      auto c = static_cast<unsigned char>(s[i]);
      if (c == '\\' && i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
        std::size_t n = s[i + 1] == 'u' ? 4 : 8;
        if (i + 2 + n > s.size()) fail("truncated \\u escape in UNICODE");
        std::uint32_t cp = 0;
        auto [p, ec] = std::from_chars(s.data() + i + 2, s.data() + i + 2 + n, cp, 16);
        if (ec != std::errc() || p != s.data() + i + 2 + n || cp > 0x10FFFF) fail("bad \\u escape in UNICODE");
        append_utf8(out, cp);
        i += 1 + n;
      } else {
        append_utf8(out, c);
      }
    }
    return out;
  }

  /// Executes one opcode; returns true at STOP.
  bool step() {
    switch (op_) {
      case op::PROTO: {
        auto p = u8();
        if (p > highest_protocol) fail("unsupported pickle protocol " + std::to_string(p));
        proto_ = p;
        break;
      }
      case op::FRAME: {
        auto n = le(8);
        if (n > remaining()) fail("frame of " + std::to_string(n) + " bytes but only " + std::to_string(remaining()) + " left");
        break;
      }
      case op::STOP: return true;
      case op::NONE: push(Value()); break;
      case op::NEWTRUE: push(Value(true)); break;
      case op::NEWFALSE: push(Value(false)); break;
      case op::INT: {
        auto s = line();
        if (s == "00") push(Value(false));
        else if (s == "01") push(Value(true));
        else push(Value(parse_int(s, "INT")));
        break;
      }
      case op::LONG: {
        auto s = line();
        if (!s.empty() && s.back() == 'L') s.remove_suffix(1);
        push(Value(parse_int(s, "LONG")));
        break;
      }
      case op::BININT: push(Value(static_cast<std::int64_t>(i32()))); break;
      case op::BININT1: push(Value(static_cast<std::int64_t>(u8()))); break;
      case op::BININT2: push(Value(static_cast<std::int64_t>(le(2)))); break;
      case op::LONG1:
      case op::LONG4: {
        std::int64_t n = op_ == op::LONG1 ? u8() : i32();
        if (n < 0) fail("negative byte count");
        auto b = take(static_cast<std::uint64_t>(n));
        if (b.empty()) {
          push(Value(0));
          break;
        }
        // Little-endian two's complement; bytes beyond the 8th must only repeat the sign.
        bool neg = static_cast<unsigned char>(b.back()) & 0x80;
        std::size_t keep = std::min<std::size_t>(b.size(), 8);
        for (std::size_t i = keep; i < b.size(); ++i)
          if (static_cast<unsigned char>(b[i]) != (neg ? 0xff : 0x00)) big_int();
        std::uint64_t x = neg ? ~std::uint64_t{0} : 0;
        for (std::size_t i = 0; i < keep; ++i) {
          x &= ~(std::uint64_t{0xff} << (8 * i));
          x |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[i])) << (8 * i);
        }
        auto v = static_cast<std::int64_t>(x);
        if (b.size() >= 8 && ((v < 0) != neg)) big_int();
        push(Value(v));
        break;
      }
      case op::FLOAT: {
        auto s = line();
        double d = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
        if ((ec != std::errc() && ec != std::errc::result_out_of_range) || p != s.data() + s.size() || s.empty())
          fail("malformed FLOAT argument");
        push(Value(d));
        break;
      }
      case op::BINFLOAT: {
        auto s = take(8);
        std::uint64_t bits = 0;
        for (char c : s) bits = (bits << 8) | static_cast<unsigned char>(c);
        push(Value(std::bit_cast<double>(bits)));
        break;
      }
      case op::SHORT_BINUNICODE: push(Value(utf8(take(u8())))); break;
      case op::BINUNICODE: push(Value(utf8(take(le(4))))); break;
      case op::BINUNICODE8: push(Value(utf8(take(le(8))))); break;
      case op::UNICODE: push(Value(raw_unicode_escape(line()))); break;
      case op::SHORT_BINSTRING: push(Value(py2_str(take(u8())))); break;
      case op::BINSTRING: {
        auto n = i32();
        if (n < 0) fail("negative byte count");
        push(Value(py2_str(take(static_cast<std::uint64_t>(n)))));
        break;
      }
      case op::SHORT_BINBYTES: push(Value(Bytes{std::string(take(u8()))})); break;
      case op::BINBYTES: push(Value(Bytes{std::string(take(le(4)))})); break;
      case op::BINBYTES8: push(Value(Bytes{std::string(take(le(8)))})); break;
      case op::BYTEARRAY8: {
        // Same description as protocol 3-4's bytearray(b'...') REDUCE.
        Object o;
        o.type = {"builtins", "bytearray"};
        o.args.emplace_back(Bytes{std::string(take(le(8)))});
        push(make_object(std::move(o)));
        break;
      }
      case op::EMPTY_TUPLE: push(make_tuple({})); break;
      case op::TUPLE: push(make_tuple(pop_mark())); break;
      case op::TUPLE1:
      case op::TUPLE2:
      case op::TUPLE3: {
        std::size_t n = op_ - op::TUPLE1 + 1;
        if (stack_.size() < fence() + n) fail("stack underflow");
        std::vector<Value> items(std::make_move_iterator(stack_.end() - static_cast<std::ptrdiff_t>(n)),
                                 std::make_move_iterator(stack_.end()));
        stack_.resize(stack_.size() - n);
        push(make_tuple(std::move(items)));
        break;
      }
      case op::EMPTY_LIST: push(make<ListNode>()); break;
      case op::LIST: {
        auto items = pop_mark();
        auto d = depth_over(items);
        push(make<ListNode>(std::move(items), d));
        break;
      }
      case op::EMPTY_DICT: push(make<DictNode>()); break;
      case op::DICT: {
        auto kv = pop_mark();
        push(make<DictNode>());
        setitems_on(stack_.back(), std::move(kv));
        break;
      }
      case op::EMPTY_SET: push(make<SetNode>()); break;
      case op::FROZENSET: {
        auto items = pop_mark();
        auto d = depth_over(items);
        push(make<FrozenSetNode>(make_set(std::move(items)), d));
        break;
      }
      case op::APPEND: {
        Value v = pop();
        append_to(top(), {std::move(v)});
        break;
      }
      case op::APPENDS: {
        auto items = pop_mark();
        append_to(top(), std::move(items));
        break;
      }
      case op::SETITEM: {
        Value v = pop();
        Value k = pop();
        std::vector<Value> kv;
        kv.push_back(std::move(k));
        kv.push_back(std::move(v));
        setitems_on(top(), std::move(kv));
        break;
      }
      case op::SETITEMS: {
        auto kv = pop_mark();
        setitems_on(top(), std::move(kv));
        break;
      }
      case op::ADDITEMS: {
        auto items = pop_mark();
        Value& t = top();
        if (t.kind() != Kind::set) fail("adding items to a " + t.type_name());
        auto& n = target<SetNode>(t);
        for (auto& x : items) {
          deepen(n.depth, x);
          try {
            n.s.add(std::move(x));
          } catch (const TypeError& e) {
            fail(e.what());
          }
        }
        break;
      }
      case op::MARK: marks_.push_back(stack_.size()); break;
      case op::POP:
        if (stack_.size() > fence()) stack_.pop_back();
        else if (!marks_.empty()) marks_.pop_back();
        else fail("stack underflow");
        break;
      case op::POP_MARK: (void)pop_mark(); break;
      case op::DUP: {
        Value v = top();
        freeze(v);
        push(std::move(v));
        break;
      }
      case op::GET: {
        auto i = parse_int(line(), "GET");
        if (i < 0) fail("negative memo key");
        memo_get(static_cast<std::uint64_t>(i));
        break;
      }
      case op::BINGET: memo_get(u8()); break;
      case op::LONG_BINGET: memo_get(le(4)); break;
      case op::PUT: {
        auto i = parse_int(line(), "PUT");
        if (i < 0) fail("negative memo key");
        memo_put(static_cast<std::uint64_t>(i));
        break;
      }
      case op::BINPUT: memo_put(u8()); break;
      case op::LONG_BINPUT: memo_put(le(4)); break;
      case op::MEMOIZE: memo_put(memo_.size()); break;
      case op::GLOBAL: {
        auto module = utf8(line());
        auto name = utf8(line());
        push(make_global(std::move(module), std::move(name)));
        break;
      }
      case op::STACK_GLOBAL: {
        Value name = pop();
        Value module = pop();
        if (!module.is_str() || !name.is_str()) fail("module and name must be str");
        push(make_global(module.as_str(), name.as_str()));
        break;
      }
      case op::REDUCE: {
        Value args = pop();
        Value f = pop();
        const Global& g = callable(f);
        push(reduce(g, args_tuple(args)));
        break;
      }
      case op::NEWOBJ:
      case op::NEWOBJ_EX: {
        Value kwargs = op_ == op::NEWOBJ_EX ? pop() : Value();
        Value args = pop();
        Value cls = pop();
        Object o;
        o.type = callable(cls);
        o.via = Object::Via::newobj;
        o.args = args_tuple(args);
        if (op_ == op::NEWOBJ_EX) {
          if (!kwargs.is_dict()) fail("keyword arguments must be a dict, got " + kwargs.type_name());
          o.kwargs = kwargs.as_dict();
        }
        push(make_object(std::move(o)));
        break;
      }
      case op::BUILD: {
        Value state = pop();
        Value& t = top();
        if (t.kind() != Kind::object) fail("BUILD (__setstate__) on a " + t.type_name());
        auto& n = target<ObjectNode>(t);
        deepen(n.depth, state);
        n.o.state = std::move(state);
        break;
      }
      case op::PERSID:
      case op::BINPERSID: fail("persistent IDs are not supported");
      case op::EXT1:
      case op::EXT2:
      case op::EXT4: fail("the copyreg extension registry is not supported");
      case op::INST:
      case op::OBJ: fail("protocol 0/1 class instances are not supported");
      case op::STRING: fail("protocol 0 Python 2 str is not supported");
      case op::NEXT_BUFFER:
      case op::READONLY_BUFFER: fail("out-of-band buffers are not supported");
      default: fail("unknown opcode");
    }
    return false;
  }

  std::string_view in_;
  LoadOptions opt_;
  std::size_t pos_ = 0;
  std::size_t op_pos_ = 0;
  std::uint8_t op_ = 0;
  int proto_ = 0;
  std::vector<Value> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, Value> memo_;
};

}  // namespace internal

Value loads(std::string_view data, const LoadOptions& options) { return internal::Decoder(data, options).run(); }

}  // namespace mp::pickle
