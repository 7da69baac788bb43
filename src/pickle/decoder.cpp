// mp::pickle::loads: the Decoder.
//
// The decoder is a stack machine like CPython's, except that it only builds descriptions:
// nothing named in the pickle is ever looked up or called. It is one class, so one file of
// about 600 lines: the opcode switch reads best beside the checks each opcode relies on.
#include "mp/pickle.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <unordered_map>

#include "pickle/opcodes.hpp"
#include "pickle/utf8.hpp"
#include "pickle/value_access.hpp"

namespace mp::pickle {

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
