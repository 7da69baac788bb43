// mp::pickle::dumps: the Encoder, which writes a Value as the opcodes CPython's pickler
// writes for the same Python value (memo for shared nodes, one frame at protocol 4+).
#include "mp/pickle.hpp"

#include <algorithm>
#include <bit>
#include <unordered_map>

#include "pickle/opcodes.hpp"
#include "pickle/utf8.hpp"
#include "pickle/value_access.hpp"

namespace mp::pickle {

using namespace internal;

namespace {

constexpr std::size_t kBatch = 1000;  // CPython's _BATCHSIZE for APPENDS/SETITEMS/ADDITEMS
constexpr std::uint32_t kMaxDumpDepth = 1000;

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

}  // namespace mp::pickle
