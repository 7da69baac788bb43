// mp/pickle.hpp — Python's pickle format for data, so C++ and CPython processes can talk.
//
// Mirrors: Python's `pickle.dumps` / `pickle.loads` (protocols 2–5), restricted to *data*.
// mp::pickle::Value is a Python value: None, bool, int (64-bit), float, str, bytes, tuple,
// list, dict, set, frozenset, a reference to a global (a class or function named by module
// and qualified name) and a generic *object description* (the class plus the arguments and
// state that REDUCE / NEWOBJ / NEWOBJ_EX / BUILD would pass to it). That is what
// multiprocessing's connections and managers exchange: tuples of strings and numbers,
// exceptions such as ValueError('boom'), manager Tokens.
//
//   mp::pickle::Value v = mp::pickle::Value::tuple({"#RETURN", 42});
//   std::string bytes = mp::pickle::dumps(v);            // what Python's pickle.dumps(('#RETURN', 42)) gives
//   auto [kind, result] = mp::pickle::loads(bytes).as<std::pair<std::string, int>>();
//
// Guarantees of loads():
//   - It never executes anything. GLOBAL/STACK_GLOBAL + REDUCE/NEWOBJ only *describe* an object
//     (mp::pickle::Object); no code is looked up or run. A fixed list of pure data constructors
//     CPython uses at protocols 2–3 is folded into plain values (_codecs.encode(s, 'latin1') ->
//     bytes, builtins.bytes() -> b'', builtins.set/frozenset(list) -> set/frozenset,
//     builtins.getattr(global, 'name') -> the global's dotted qualname).
//   - It never allocates without bound: every length field is checked against the bytes left
//     before anything is allocated, nesting is limited (LoadOptions::max_depth), the memo has
//     at most one entry per PUT opcode read (and at most LoadOptions::max_memo), and values
//     fetched from the memo are shared, not copied, so "billion laughs" input stays small.
//   - It takes polynomial time: comparing set elements and dict keys (Python's ==) remembers
//     each pair of nodes it met, so one comparison is O(size^2) of the input (fuzzed too).
//   - It never crashes: unknown opcodes, truncated or malformed input, ints beyond 64 bits,
//     unhashable dict keys and self-referencing structures raise mp::pickle::UnpicklingError
//     naming the opcode and the byte offset. (This is fuzzed: tests/fuzz/pickle_fuzz.cpp.)
//
// Values have value semantics with cheap copies: containers, strings and objects are shared
// between copies and copied on the first write through a non-const accessor (copy-on-write).
// Sharing is preserved by dumps() (a node referenced twice is written once and fetched from
// the memo), which is how Python's pickle preserves object identity. A Value is not
// internally synchronized: like a std::vector, share it between threads only for reading.
//
// Conversions: std integer/floating types, bool, std::string(_view), Bytes, std::vector,
// std::map/unordered_map, std::set/unordered_set, std::optional, std::pair/tuple, std::variant
// and any struct with a cereal-style `serialize(Archive&)` (mapped to a tuple of its fields)
// convert implicitly to Value and back with `value.as<T>()`; specialize mp::pickle::Convert<T>
// for another mapping (e.g. to a dict). See docs/pickle.md for the exact type mapping.
//
// One header, though it holds the value model, dumps/loads and the conversions: they are one
// Python concept, and they cannot be included apart. Value's inline templates need the node
// types complete, the nodes hold Dict, Set and Object, and every Convert<T> must be visible
// wherever Value(T) or as<T>() is instantiated. Its template-free parts are public API, not
// internal: the implementation lives in src/pickle/.
#pragma once

#include <atomic>
#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "mp/errors.hpp"

namespace mp::pickle {

/// Base of the errors raised by mp::pickle (an mp::CodecError: the data could not cross).
class PickleError : public CodecError {
 public:
  using CodecError::CodecError;
};

/// dumps() cannot express a Value as a pickle (e.g. a str that is not valid UTF-8, nesting
/// deeper than the limit, a protocol that cannot carry it). Python's pickle.PicklingError.
class PicklingError : public PickleError {
 public:
  using PickleError::PickleError;
};

/// loads() rejected its input. The message names the opcode and offset; `offset()` is the
/// byte offset of the opcode that failed (or the input size when the input ended early).
class UnpicklingError : public PickleError {
 public:
  UnpicklingError(const std::string& what, std::size_t offset) : PickleError(what), offset_(offset) {}
  [[nodiscard]] std::size_t offset() const noexcept { return offset_; }

 private:
  std::size_t offset_;
};

/// Python's builtins, declared once in mp/errors.hpp; the names stay here for existing code.
/// TypeError: a Value is not of the kind asked for, or does not fit the C++ type asked for,
/// or is unhashable where a key is needed (an mp::CodecError, not a PickleError).
using TypeError = mp::TypeError;
/// KeyError: Dict::at() did not find the key (an mp::LookupError, not a PickleError).
using KeyError = mp::KeyError;

class Value;
class Dict;
class Set;
struct Global;
struct Object;

/// Python's None.
struct None {
  friend constexpr bool operator==(None, None) noexcept { return true; }
};

/// Python's bytes (raw bytes, as opposed to str which is UTF-8 text).
struct Bytes {
  std::string data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};

/// The Python type of a Value.
enum class Kind : std::uint8_t {
  none, boolean, integer, floating, str, bytes, tuple, list, dict, set, frozenset, global, object
};

namespace internal {
struct StrNode;
struct BytesNode;
struct TupleNode;
struct ListNode;
struct DictNode;
struct SetNode;
struct FrozenSetNode;
struct GlobalNode;
struct ObjectNode;
class Decoder;
}  // namespace internal

/// How a C++ type T maps to a Value and back. Specialize it for your own types:
///
///   template <> struct mp::pickle::Convert<Point> {
///     static Value to_value(const Point& p) { return Value::dict({{"x", p.x}, {"y", p.y}}); }
///     static Point from_value(const Value& v) { return {v.as_dict().at("x").as<int>(), v.as_dict().at("y").as<int>()}; }
///   };
///
/// Either function may be omitted for one-way conversions. Structs with a cereal-style
/// `serialize` map to a tuple of their fields without any specialization (see below).
template <class T>
struct Convert;

/// T can be turned into a Value (Convert<T>::to_value exists).
template <class T>
concept ToValue = requires(const T& t) {
  { Convert<T>::to_value(t) } -> std::same_as<Value>;
};

/// A Value can be turned into a T (Convert<T>::from_value exists).
template <class T>
concept FromValue = requires(const Value& v) {
  { Convert<T>::from_value(v) } -> std::same_as<T>;
};

/// Python's str / bytes / etc. as used by Value's constructors; everything else goes through Convert.
template <class T>
concept BuiltinScalar = std::is_same_v<T, bool> || std::is_arithmetic_v<T> || std::is_same_v<T, std::string> ||
                        std::is_same_v<T, std::string_view> || std::is_same_v<T, const char*> ||
                        std::is_same_v<T, char*> || std::is_same_v<T, None> || std::is_same_v<T, std::nullptr_t> ||
                        std::is_same_v<T, Bytes>;

/// A Python value (see the top of this file). Default-constructed: None.
class Value {
 public:
  Value() noexcept = default;
  Value(None) noexcept {}
  Value(std::nullptr_t) noexcept {}
  Value(bool b) noexcept : v_(b) {}
  /// Any integer type. Throws TypeError for an unsigned value above INT64_MAX.
  template <class I>
    requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
  Value(I i) : v_(to_int64(i)) {}
  Value(double d) noexcept : v_(d) {}
  Value(float f) noexcept : v_(static_cast<double>(f)) {}
  /// A str. The text must be UTF-8 (checked by dumps(); CPython would reject it otherwise).
  Value(std::string s);
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(Bytes b);
  /// Anything with a Convert<T>::to_value (std containers, optional, user structs...).
  template <class T>
    requires(!std::is_same_v<std::remove_cvref_t<T>, Value> && !BuiltinScalar<std::remove_cvref_t<T>> &&
             !std::is_array_v<std::remove_cvref_t<T>> && ToValue<std::remove_cvref_t<T>>)
  Value(const T& t) : Value(Convert<std::remove_cvref_t<T>>::to_value(t)) {}

  /// tuple(items)
  static Value tuple(std::vector<Value> items);
  /// list(items)
  static Value list(std::vector<Value> items);
  /// dict(items); later duplicates of a key replace the value, like Python's dict literal.
  static Value dict(Dict d);
  static Value dict(std::initializer_list<std::pair<Value, Value>> items);
  /// set(items) / frozenset(items). Throws TypeError for an unhashable element.
  static Value set(Set s);
  static Value set(std::initializer_list<Value> items);
  static Value frozenset(Set s);
  static Value frozenset(std::initializer_list<Value> items);
  /// A reference to a module-level name, e.g. global("builtins", "ValueError").
  static Value global(std::string module, std::string qualname);
  /// An object description; see Object.
  static Value object(Object o);

  [[nodiscard]] Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
  /// Python's type name: "NoneType", "int", "str", ..., "global", or "module.qualname" for an object.
  [[nodiscard]] std::string type_name() const;
  [[nodiscard]] bool is_none() const noexcept { return kind() == Kind::none; }
  [[nodiscard]] bool is_bool() const noexcept { return kind() == Kind::boolean; }
  [[nodiscard]] bool is_int() const noexcept { return kind() == Kind::integer; }
  [[nodiscard]] bool is_float() const noexcept { return kind() == Kind::floating; }
  [[nodiscard]] bool is_str() const noexcept { return kind() == Kind::str; }
  [[nodiscard]] bool is_bytes() const noexcept { return kind() == Kind::bytes; }
  [[nodiscard]] bool is_tuple() const noexcept { return kind() == Kind::tuple; }
  [[nodiscard]] bool is_list() const noexcept { return kind() == Kind::list; }
  [[nodiscard]] bool is_dict() const noexcept { return kind() == Kind::dict; }
  /// set or frozenset
  [[nodiscard]] bool is_set() const noexcept { return kind() == Kind::set || kind() == Kind::frozenset; }
  [[nodiscard]] bool is_global() const noexcept { return kind() == Kind::global; }
  [[nodiscard]] bool is_object() const noexcept { return kind() == Kind::object; }

  // Typed access. Each throws TypeError naming the actual type when the kind differs.
  // The non-const container accessors copy a shared node first (copy-on-write), so writes
  // through them never affect other copies of this Value.
  [[nodiscard]] bool as_bool() const;
  [[nodiscard]] std::int64_t as_int() const;
  /// A float, or an int converted to double (as Python does in float arithmetic).
  [[nodiscard]] double as_float() const;
  [[nodiscard]] const std::string& as_str() const;
  [[nodiscard]] const std::string& as_bytes() const;
  [[nodiscard]] const std::vector<Value>& as_tuple() const;
  [[nodiscard]] const std::vector<Value>& as_list() const;
  [[nodiscard]] std::vector<Value>& as_list();
  /// The items of a tuple or a list.
  [[nodiscard]] const std::vector<Value>& as_sequence() const;
  [[nodiscard]] const Dict& as_dict() const;
  [[nodiscard]] Dict& as_dict();
  /// A set or a frozenset. The mutable overload refuses a frozenset.
  [[nodiscard]] const Set& as_set() const;
  [[nodiscard]] Set& as_set();
  [[nodiscard]] const Global& as_global() const;
  [[nodiscard]] const Object& as_object() const;
  [[nodiscard]] Object& as_object();

  /// Converts to T with Convert<T>::from_value; throws TypeError when the value does not fit.
  template <class T>
    requires FromValue<T>
  [[nodiscard]] T as() const { return Convert<T>::from_value(*this); }

  /// Python's `is`: the same shared node (a value fetched twice from a pickle's memo, or
  /// copies of one Value). None is None; bools, ints and floats compare by value.
  [[nodiscard]] bool is(const Value& other) const noexcept;

  /// Python's id(): the address of the shared node (equal for values that are `is` each
  /// other), or 0 for None, bool, int and float, which have no identity here.
  [[nodiscard]] std::uintptr_t id() const noexcept;

  /// Python's ==: 1 == 1.0 == True, dicts and sets compare regardless of order, a tuple never
  /// equals a list, NaN never equals itself. Objects and globals compare field by field.
  friend bool operator==(const Value& a, const Value& b);

  /// Python-like repr, for messages and debugging, cut off with "..." after `max_chars`
  /// (a value whose memo-shared parts repeat could otherwise print astronomically long).
  [[nodiscard]] std::string repr(std::size_t max_chars = 1 << 16) const;

 private:
  friend class internal::Decoder;
  friend class Dict;
  friend class Set;
  friend struct ValueAccess;

  template <class I>
  static std::int64_t to_int64(I i) {
    if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t)) {
      if (i > static_cast<I>(std::numeric_limits<std::int64_t>::max())) throw_uint_overflow(static_cast<std::uint64_t>(i));
    }
    return static_cast<std::int64_t>(i);
  }
  [[noreturn]] static void throw_uint_overflow(std::uint64_t i);

  using Storage = std::variant<None, bool, std::int64_t, double, std::shared_ptr<const internal::StrNode>,
                               std::shared_ptr<const internal::BytesNode>, std::shared_ptr<internal::TupleNode>,
                               std::shared_ptr<internal::ListNode>, std::shared_ptr<internal::DictNode>,
                               std::shared_ptr<internal::SetNode>, std::shared_ptr<internal::FrozenSetNode>,
                               std::shared_ptr<const internal::GlobalNode>, std::shared_ptr<internal::ObjectNode>>;
  Storage v_;
};

/// Python's hash() for hashable values, consistent with ==: equal values hash equally
/// (hash(1) == hash(1.0) == hash(True)). Seeded per process, so not stable across processes.
/// Each NaN hashes differently (NaN != NaN; CPython hashes NaN by identity), so NaN keys
/// cannot pile up in one hash bucket.
/// Throws TypeError for list, dict, set and anything containing one.
[[nodiscard]] std::size_t hash(const Value& v);

/// Python's dict: keys in insertion order, any hashable Value as key, keys compared with
/// Python's == (so 1, 1.0 and True are the same key, and the first one inserted is kept).
class Dict {
 public:
  using Item = std::pair<Value, Value>;
  using const_iterator = std::vector<Item>::const_iterator;

  Dict() = default;
  Dict(std::initializer_list<Item> items);

  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
  [[nodiscard]] const_iterator begin() const noexcept { return items_.begin(); }
  [[nodiscard]] const_iterator end() const noexcept { return items_.end(); }
  /// The items in insertion order.
  [[nodiscard]] const std::vector<Item>& items() const noexcept { return items_; }

  /// The value for `key`, or nullptr. Throws TypeError for an unhashable key.
  [[nodiscard]] const Value* find(const Value& key) const;
  [[nodiscard]] Value* find(const Value& key);
  [[nodiscard]] bool contains(const Value& key) const { return find(key) != nullptr; }
  /// The value for `key`; throws KeyError if absent.
  [[nodiscard]] const Value& at(const Value& key) const;
  /// The value for `key`, inserting None first if absent (like Python's setdefault(key)).
  Value& operator[](const Value& key);
  /// d[key] = value. Returns true when the key was new. Throws TypeError for an unhashable key.
  bool insert_or_assign(Value key, Value value);
  /// del d[key]; returns whether the key was present. O(n): it shifts the later items.
  bool erase(const Value& key);

  /// Python's == (order-insensitive).
  friend bool operator==(const Dict& a, const Dict& b);

 private:
  std::ptrdiff_t index_of(const Value& key, std::size_t h) const;
  void reindex();
  std::vector<Item> items_;
  std::unordered_multimap<std::size_t, std::size_t> index_;  // hash -> position in items_
};

/// Python's set / frozenset contents: unique hashable elements in insertion order.
class Set {
 public:
  using const_iterator = std::vector<Value>::const_iterator;

  Set() = default;
  Set(std::initializer_list<Value> items);

  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
  [[nodiscard]] const_iterator begin() const noexcept { return items_.begin(); }
  [[nodiscard]] const_iterator end() const noexcept { return items_.end(); }
  [[nodiscard]] const std::vector<Value>& items() const noexcept { return items_; }

  /// Throws TypeError for an unhashable element.
  [[nodiscard]] bool contains(const Value& v) const;
  /// s.add(v); returns true when v was new. Throws TypeError for an unhashable element.
  bool add(Value v);
  /// s.discard(v); returns whether v was present. O(n).
  bool erase(const Value& v);

  friend bool operator==(const Set& a, const Set& b);

 private:
  std::ptrdiff_t index_of(const Value& v, std::size_t h) const;
  void reindex();
  std::vector<Value> items_;
  std::unordered_multimap<std::size_t, std::size_t> index_;
};

/// A module-level name: a class, function or other global, e.g. {"builtins", "ValueError"}.
/// `qualname` may be dotted ("Outer.Inner") at protocol 4+.
struct Global {
  std::string module;
  std::string qualname;
  /// "module.qualname"
  [[nodiscard]] std::string dotted() const { return module + "." + qualname; }
  friend bool operator==(const Global&, const Global&) = default;
};

/// What a pickle says about an instance of a class, without creating it. Python rebuilds
/// such an object as
///   obj = type(*args)                          (via == reduce: REDUCE; type may be any callable)
///   obj = type.__new__(type, *args, **kwargs)  (via == newobj: NEWOBJ / NEWOBJ_EX)
///   obj.extend(listitems); obj[k] = v for dictitems; obj.__setstate__(state) if state is not None
/// e.g. ValueError('boom') is {builtins.ValueError, reduce, args ('boom',)}, an OrderedDict
/// is {collections.OrderedDict, reduce, args (), dictitems {...}}, a manager Token is
/// {multiprocessing.managers.Token, newobj, args (), state (typeid, address, id)}.
struct Object {
  enum class Via : std::uint8_t { reduce, newobj };
  Global type;
  Via via = Via::reduce;
  std::vector<Value> args;
  Dict kwargs;                    // only with via == newobj (NEWOBJ_EX)
  Value state;                    // None: no BUILD
  std::vector<Value> listitems;   // APPEND(S) applied to the object
  Dict dictitems;                 // SETITEM(S) applied to the object

  friend bool operator==(const Object& a, const Object& b);
};

/// An exception object as Python pickles it: `type_name(message)` from builtins (or `module`).
/// exception("ValueError", "boom") pickles exactly like Python's ValueError('boom').
[[nodiscard]] Value exception(std::string type_name, std::string message, std::string module = "builtins");

/// Options for loads(), each with its default.
struct LoadOptions {
  /// Maximum nesting of containers/objects (a flat list is depth 1). Deeper input raises
  /// UnpicklingError. Python's own limit when pickling is about the same (recursion limit).
  std::uint32_t max_depth = 1000;
  /// Maximum number of memo entries (each costs one PUT opcode of input anyway).
  std::size_t max_memo = std::size_t{1} << 24;
  /// Accept bytes after the STOP opcode (Python ignores them); by default they are an error.
  bool allow_trailing_data = false;
};

/// The protocol Python 3.8–3.13 uses by default and multiprocessing sends.
inline constexpr int default_protocol = 4;
inline constexpr int highest_protocol = 5;

/// pickle.dumps(value, protocol). protocol must be 2..5 (throws mp::ValueError otherwise).
/// Throws PicklingError for a str that is not valid UTF-8 (surrogates allowed, as Python's
/// 'surrogatepass'), nesting deeper than 1000, or a >4 GiB str/bytes at protocol < 4.
/// Python's pickle.loads() accepts every output and returns the equivalent Python object.
[[nodiscard]] std::string dumps(const Value& value, int protocol = default_protocol);

/// pickle.loads(data): decodes one pickle of any protocol 0–5 into a Value (see the
/// guarantees at the top of this file). Throws UnpicklingError for malformed input,
/// unsupported opcodes (PERSID/BINPERSID, EXT1/2/4, INST/OBJ, STRING, NEXT_BUFFER,
/// READONLY_BUFFER), ints outside int64, and bytes after STOP unless allowed.
[[nodiscard]] Value loads(std::string_view data, const LoadOptions& options = {});

// ----------------------------------------------------------------------------------------
// Internal node types (exposed only because Value's inline templates need them complete).
namespace internal {
/// hash() of an immutable node, computed once so hashing a memo-shared value is linear.
/// 0 means not computed yet. Atomic because const Values may be read from several threads.
struct HashCache {
  mutable std::atomic<std::size_t> h{0};
  HashCache() = default;
  HashCache(const HashCache&) noexcept {}
  HashCache& operator=(const HashCache&) noexcept {
    h.store(0, std::memory_order_relaxed);
    return *this;
  }
};
struct StrNode { std::string s; HashCache hash{}; };
struct BytesNode { std::string s; HashCache hash{}; };
struct TupleNode { std::vector<Value> items; std::uint32_t depth = 1; HashCache hash{}; };
struct ListNode { std::vector<Value> items; std::uint32_t depth = 1; bool frozen = false; };
struct DictNode { Dict d; std::uint32_t depth = 1; bool frozen = false; };
struct SetNode { Set s; std::uint32_t depth = 1; bool frozen = false; };
struct FrozenSetNode { Set s; std::uint32_t depth = 1; HashCache hash{}; };
struct GlobalNode { Global g; HashCache hash{}; };
struct ObjectNode { Object o; std::uint32_t depth = 1; bool frozen = false; HashCache hash{}; };
}  // namespace internal

// ----------------------------------------------------------------------------------------
// Conversions for standard types.

/// Raised by the conversions below; `expected` is a human description ("int", "tuple of 2").
[[noreturn]] void throw_type_error(std::string_view expected, const Value& got);

template <>
struct Convert<Value> {
  static Value to_value(const Value& v) { return v; }
  static Value from_value(const Value& v) { return v; }
};

template <>
struct Convert<bool> {
  static Value to_value(bool b) { return Value(b); }
  static bool from_value(const Value& v) { return v.as_bool(); }
};

/// Integers: range-checked both ways (Python bools are ints, so True converts to 1).
template <class I>
  requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
struct Convert<I> {
  static Value to_value(I i) { return Value(i); }
  static I from_value(const Value& v) {
    std::int64_t x = v.is_bool() ? static_cast<std::int64_t>(v.as_bool()) : v.as_int();
    if (!std::in_range<I>(x)) throw_type_error("an int in the range of the C++ type", v);
    return static_cast<I>(x);
  }
};

template <class F>
  requires std::is_floating_point_v<F>
struct Convert<F> {
  static Value to_value(F f) { return Value(static_cast<double>(f)); }
  static F from_value(const Value& v) { return static_cast<F>(v.as_float()); }
};

template <>
struct Convert<std::string> {
  static Value to_value(const std::string& s) { return Value(s); }
  static std::string from_value(const Value& v) { return v.as_str(); }
};

template <>
struct Convert<const char*> {
  static Value to_value(const char* s) { return Value(s); }
};

template <>
struct Convert<Bytes> {
  static Value to_value(const Bytes& b) { return Value(b); }
  static Bytes from_value(const Value& v) { return Bytes{v.as_bytes()}; }
};

template <>
struct Convert<None> {
  static Value to_value(None) { return Value(); }
  static None from_value(const Value& v) {
    if (!v.is_none()) throw_type_error("None", v);
    return {};
  }
};

template <>
struct Convert<std::monostate> {
  static Value to_value(std::monostate) { return Value(); }
  static std::monostate from_value(const Value& v) {
    if (!v.is_none()) throw_type_error("None", v);
    return {};
  }
};

template <>
struct Convert<Dict> {
  static Value to_value(const Dict& d) { return Value::dict(d); }
  static Dict from_value(const Value& v) { return v.as_dict(); }
};

template <>
struct Convert<Global> {
  static Value to_value(const Global& g) { return Value::global(g.module, g.qualname); }
  static Global from_value(const Value& v) { return v.as_global(); }
};

template <>
struct Convert<Object> {
  static Value to_value(const Object& o) { return Value::object(o); }
  static Object from_value(const Value& v) { return v.as_object(); }
};

/// std::optional<T>: None <-> nullopt.
template <class T>
struct Convert<std::optional<T>> {
  static Value to_value(const std::optional<T>& o)
    requires ToValue<T>
  { return o ? Convert<T>::to_value(*o) : Value(); }
  static std::optional<T> from_value(const Value& v)
    requires FromValue<T>
  { return v.is_none() ? std::nullopt : std::optional<T>(Convert<T>::from_value(v)); }
};

/// std::vector<T> -> list; from a list or a tuple.
template <class T, class A>
struct Convert<std::vector<T, A>> {
  static Value to_value(const std::vector<T, A>& xs)
    requires ToValue<T>
  {
    std::vector<Value> out;
    out.reserve(xs.size());
    for (const auto& x : xs) out.push_back(Convert<T>::to_value(x));
    return Value::list(std::move(out));
  }
  static std::vector<T, A> from_value(const Value& v)
    requires FromValue<T>
  {
    if (!v.is_list() && !v.is_tuple()) throw_type_error("list or tuple", v);
    std::vector<T, A> out;
    out.reserve(v.as_sequence().size());
    for (const auto& x : v.as_sequence()) out.push_back(Convert<T>::from_value(x));
    return out;
  }
};

namespace internal {
template <class M>
Value map_to_value(const M& m) {
  Dict d;
  for (const auto& [k, x] : m)
    d.insert_or_assign(Convert<typename M::key_type>::to_value(k), Convert<typename M::mapped_type>::to_value(x));
  return Value::dict(std::move(d));
}
template <class M>
M map_from_value(const Value& v) {
  M out;
  for (const auto& [k, x] : v.as_dict())
    out.emplace(Convert<typename M::key_type>::from_value(k), Convert<typename M::mapped_type>::from_value(x));
  return out;
}
template <class S>
Value set_to_value(const S& s) {
  Set out;
  for (const auto& x : s) out.add(Convert<typename S::value_type>::to_value(x));
  return Value::set(std::move(out));
}
template <class S>
S set_from_value(const Value& v) {
  S out;
  for (const auto& x : v.as_set()) out.insert(Convert<typename S::value_type>::from_value(x));
  return out;
}
}  // namespace internal

/// std::map / std::unordered_map -> dict (a std::map gives sorted insertion order).
template <class K, class V, class C, class A>
struct Convert<std::map<K, V, C, A>> {
  static Value to_value(const std::map<K, V, C, A>& m)
    requires(ToValue<K> && ToValue<V>)
  { return internal::map_to_value(m); }
  static std::map<K, V, C, A> from_value(const Value& v)
    requires(FromValue<K> && FromValue<V>)
  { return internal::map_from_value<std::map<K, V, C, A>>(v); }
};
template <class K, class V, class H, class E, class A>
struct Convert<std::unordered_map<K, V, H, E, A>> {
  static Value to_value(const std::unordered_map<K, V, H, E, A>& m)
    requires(ToValue<K> && ToValue<V>)
  { return internal::map_to_value(m); }
  static std::unordered_map<K, V, H, E, A> from_value(const Value& v)
    requires(FromValue<K> && FromValue<V>)
  { return internal::map_from_value<std::unordered_map<K, V, H, E, A>>(v); }
};

/// std::set / std::unordered_set -> set; from a set or frozenset.
template <class T, class C, class A>
struct Convert<std::set<T, C, A>> {
  static Value to_value(const std::set<T, C, A>& s)
    requires ToValue<T>
  { return internal::set_to_value(s); }
  static std::set<T, C, A> from_value(const Value& v)
    requires FromValue<T>
  { return internal::set_from_value<std::set<T, C, A>>(v); }
};
template <class T, class H, class E, class A>
struct Convert<std::unordered_set<T, H, E, A>> {
  static Value to_value(const std::unordered_set<T, H, E, A>& s)
    requires ToValue<T>
  { return internal::set_to_value(s); }
  static std::unordered_set<T, H, E, A> from_value(const Value& v)
    requires FromValue<T>
  { return internal::set_from_value<std::unordered_set<T, H, E, A>>(v); }
};

/// std::tuple / std::pair -> tuple; from a tuple or list of exactly that length.
template <class... Ts>
struct Convert<std::tuple<Ts...>> {
  static Value to_value(const std::tuple<Ts...>& t)
    requires(ToValue<Ts> && ...)
  {
    return std::apply([](const Ts&... xs) { return Value::tuple({Convert<Ts>::to_value(xs)...}); }, t);
  }
  static std::tuple<Ts...> from_value(const Value& v)
    requires(FromValue<Ts> && ...)
  {
    if ((!v.is_tuple() && !v.is_list()) || v.as_sequence().size() != sizeof...(Ts))
      throw_type_error("tuple of " + std::to_string(sizeof...(Ts)), v);
    const auto& items = v.as_sequence();
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::tuple<Ts...>(Convert<Ts>::from_value(items[I])...);
    }(std::index_sequence_for<Ts...>{});
  }
};
template <class A, class B>
struct Convert<std::pair<A, B>> {
  static Value to_value(const std::pair<A, B>& p)
    requires(ToValue<A> && ToValue<B>)
  { return Value::tuple({Convert<A>::to_value(p.first), Convert<B>::to_value(p.second)}); }
  static std::pair<A, B> from_value(const Value& v)
    requires(FromValue<A> && FromValue<B>)
  {
    auto [a, b] = Convert<std::tuple<A, B>>::from_value(v);
    return {std::move(a), std::move(b)};
  }
};

/// std::variant<Ts...>: to the active alternative; from the first alternative that accepts the value.
template <class... Ts>
struct Convert<std::variant<Ts...>> {
  static Value to_value(const std::variant<Ts...>& v)
    requires(ToValue<Ts> && ...)
  {
    return std::visit([](const auto& x) { return Convert<std::remove_cvref_t<decltype(x)>>::to_value(x); }, v);
  }
  static std::variant<Ts...> from_value(const Value& v)
    requires(FromValue<Ts> && ...)
  {
    std::optional<std::variant<Ts...>> out;
    auto attempt = [&]<class T>() {
      if (out) return;
      try {
        out.emplace(std::in_place_type<T>, Convert<T>::from_value(v));
      } catch (const TypeError&) {
      }
    };
    (attempt.template operator()<Ts>(), ...);
    if (!out) throw_type_error("one of the variant's alternatives", v);
    return std::move(*out);
  }
};

namespace internal {
/// Collects the fields a cereal-style serialize() names into a tuple.
struct FieldWriter {
  std::vector<Value> fields;
  template <class... Fs>
  void operator()(const Fs&... fs) { (fields.push_back(Convert<Fs>::to_value(fs)), ...); }
};
/// Assigns a tuple's items to the fields a cereal-style serialize() names, in order.
struct FieldReader {
  const std::vector<Value>& items;
  std::size_t next = 0;
  template <class... Fs>
  void operator()(Fs&... fs) {
    ((fs = next < items.size() ? Convert<Fs>::from_value(items[next]) : Fs{}, ++next), ...);
  }
};
template <class T>
concept MemberSerialize = requires(T& t, FieldWriter& w, FieldReader& r) {
  t.serialize(w);
  t.serialize(r);
};
}  // namespace internal

/// A struct with `template <class Archive> void serialize(Archive& ar) { ar(a, b, c); }`
/// (the same function mp::codec uses) maps to the tuple (a, b, c); converting back needs a
/// tuple or list of exactly that many items and a default constructor.
template <class T>
  requires(std::is_class_v<T> && std::is_default_constructible_v<T> && internal::MemberSerialize<T>)
struct Convert<T> {
  static Value to_value(const T& t) {
    internal::FieldWriter w;
    const_cast<T&>(t).serialize(w);  // serialize() is non-const by cereal convention; the writer only reads
    return Value::tuple(std::move(w.fields));
  }
  static T from_value(const Value& v) {
    if (!v.is_tuple() && !v.is_list()) throw_type_error("tuple of the struct's fields", v);
    T t{};
    internal::FieldReader r{v.as_sequence()};
    t.serialize(r);
    if (r.next != v.as_sequence().size())
      throw_type_error("tuple of " + std::to_string(r.next) + " fields", v);
    return t;
  }
};

}  // namespace mp::pickle

/// Lets Values be keys of std::unordered_map / std::unordered_set (Python's hash; throws
/// mp::pickle::TypeError for unhashable values).
template <>
struct std::hash<mp::pickle::Value> {
  std::size_t operator()(const mp::pickle::Value& v) const { return mp::pickle::hash(v); }
};
