// Value::repr: Python's repr() of a Value, bounded in length, for error messages and debugging.
#include "mp/pickle.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace mp::pickle {

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

}  // namespace mp::pickle
