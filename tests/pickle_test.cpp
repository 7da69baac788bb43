// Tests for mp::pickle: round trips against CPython's own pickle module (python3 runs as a
// subprocess over files in a temp directory), exact decoding of what CPython emits for the
// multiprocessing types, and rejection of malformed or hostile input.
#include "mp/pickle.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "helpers/support.hpp"
#include "pickle/value_access.hpp"

namespace pk = mp::pickle;
using pk::Value;
namespace fs = std::filesystem;

namespace {

// ---- strict structural comparison (kinds must match: True is not 1) ----

bool same(const Value& a, const Value& b);

bool same_items(const std::vector<Value>& a, const std::vector<Value>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

bool same_dict(const pk::Dict& a, const pk::Dict& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same(a.items()[i].first, b.items()[i].first) || !same(a.items()[i].second, b.items()[i].second)) return false;
  return true;
}

bool same(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case pk::Kind::floating: {
      double x = a.as_float(), y = b.as_float();
      return (std::isnan(x) && std::isnan(y)) || std::bit_cast<std::uint64_t>(x) == std::bit_cast<std::uint64_t>(y);
    }
    case pk::Kind::tuple:
    case pk::Kind::list: return same_items(a.as_sequence(), b.as_sequence());
    case pk::Kind::dict: return same_dict(a.as_dict(), b.as_dict());
    case pk::Kind::set:
    case pk::Kind::frozenset: {
      // Python may iterate a set in another order; match each element to some strict equal.
      if (a.as_set().size() != b.as_set().size()) return false;
      for (const auto& x : a.as_set()) {
        bool found = false;
        for (const auto& y : b.as_set()) found = found || same(x, y);
        if (!found) return false;
      }
      return true;
    }
    case pk::Kind::object: {
      const auto &x = a.as_object(), &y = b.as_object();
      return x.type == y.type && x.via == y.via && same_items(x.args, y.args) && same_dict(x.kwargs, y.kwargs) &&
             same(x.state, y.state) && same_items(x.listitems, y.listitems) && same_dict(x.dictitems, y.dictitems);
    }
    default: return a == b;
  }
}

// ---- CPython as a subprocess ----

constexpr const char* kPythonHelper = R"PY(
import collections, pickle, sys, os, math
from multiprocessing.managers import Token

def strict(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(strict(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(strict(a[k], b[k]) for k in a)
    if isinstance(a, BaseException):
        return a.args == b.args
    if isinstance(a, Token):
        return (a.typeid, a.address, a.id) == (b.typeid, b.address, b.id)
    return a == b

mode, d = sys.argv[1], sys.argv[2]
n = int(open(os.path.join(d, 'count')).read())
env = {'collections': collections, 'Token': Token}
failures = 0
for i in range(n):
    p = os.path.join(d, str(i))
    proto = int(open(p + '.proto').read())
    try:
        if mode == 'check':          # C++ pickle -> Python object == expected expression; re-dump
            obj = pickle.loads(open(p + '.pkl', 'rb').read())
            if os.path.exists(p + '.expr'):
                exp = eval(open(p + '.expr').read(), env)
                if not strict(obj, exp):
                    failures += 1
                    print('FAIL %d: got %r expected %r' % (i, obj, exp))
            out = pickle.dumps(obj, proto)
        else:                        # 'dump': Python expression -> pickle
            out = pickle.dumps(eval(open(p + '.expr').read(), env), proto)
        open(p + '.out', 'wb').write(out)
    except Exception as e:
        failures += 1
        print('FAIL %d: %s: %s' % (i, type(e).__name__, e))
print('python failures:', failures)
)PY";

struct Case {
  std::string pickle;  // input for 'check'
  std::string expr;    // Python expression (expected value for 'check', source for 'dump')
  int protocol = 4;
};

/// Runs the Python helper over `cases`; returns the re-dumped (or dumped) pickles.
std::vector<std::string> run_python(const std::string& mode, const std::vector<Case>& cases) {
  char tmpl[] = "/tmp/mp-pickle-test-XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  if (!dir) throw std::runtime_error("mkdtemp failed");
  auto write = [&](const std::string& name, const std::string& data) {
    std::ofstream(fs::path(dir) / name, std::ios::binary) << data;
  };
  write("helper.py", kPythonHelper);
  write("count", std::to_string(cases.size()));
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto base = std::to_string(i);
    write(base + ".proto", std::to_string(cases[i].protocol));
    if (!cases[i].pickle.empty()) write(base + ".pkl", cases[i].pickle);
    if (!cases[i].expr.empty()) write(base + ".expr", cases[i].expr);
  }
  auto r = mp_test::run("python3 " + std::string(dir) + "/helper.py " + mode + " " + dir);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("python failures: 0"), std::string::npos) << r.out;
  std::vector<std::string> outs;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::ifstream f(fs::path(dir) / (std::to_string(i) + ".out"), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    outs.push_back(ss.str());
  }
  fs::remove_all(dir);
  return outs;
}

/// What CPython's pickle.dumps(eval(expr), protocol) produces.
std::string python_dumps(const std::string& expr, int protocol) {
  return run_python("dump", {{"", expr, protocol}}).at(0);
}

Value token(std::string typeid_, std::string host, int port, std::string id) {
  pk::Object o;
  o.type = {"multiprocessing.managers", "Token"};
  o.via = pk::Object::Via::newobj;
  o.state = Value::tuple({std::move(typeid_), Value::tuple({std::move(host), port}), std::move(id)});
  return Value::object(std::move(o));
}

Value ordered_dict(pk::Dict items) {
  pk::Object o;
  o.type = {"collections", "OrderedDict"};
  o.dictitems = std::move(items);
  return Value::object(std::move(o));
}

// ---- random values ----

class Generator {
 public:
  explicit Generator(std::uint32_t seed) : rng_(seed) {}

  Value value(int depth) {
    int pick = static_cast<int>(rng_() % (depth > 3 ? 8 : 15));
    if (pick < 8 || depth > 5 || budget_ <= 0) return scalar();
    if (!made_.empty() && rng_() % 6 == 0) return made_[rng_() % made_.size()];  // shared node -> memo
    Value v = container(pick, depth);
    if (made_.size() < 64) made_.push_back(v);
    return v;
  }

  Value hashable(int depth) {
    switch (rng_() % 6) {
      case 0: return integer();
      case 1: return Value(text());
      case 2: return Value(pk::Bytes{text()});
      case 3: return depth > 2 ? Value(text()) : Value::tuple({hashable(depth + 1), hashable(depth + 1)});
      case 4: return depth > 2 ? Value(2.5) : Value::frozenset({hashable(depth + 1), integer()});
      default: return Value::global("builtins", "len");
    }
  }

 private:
  Value scalar() {
    --budget_;
    switch (rng_() % 8) {
      case 0: return Value();
      case 1: return Value(rng_() % 2 == 0);
      case 2:
      case 3: return integer();
      case 4: return floating();
      case 5:
      case 6: return Value(text());
      default: {
        std::string b;
        for (auto n = rng_() % 300; n > 0; --n) b += static_cast<char>(rng_());
        return Value(pk::Bytes{b});
      }
    }
  }

  Value integer() {
    static const std::int64_t edges[] = {0, 1, -1, 255, 256, 65535, 65536, 0x7fffffff, -0x80000000LL,
                                         0x80000000LL, -0x80000001LL, INT64_MAX, INT64_MIN, 1LL << 40};
    if (rng_() % 3 == 0) return Value(edges[rng_() % std::size(edges)]);
    std::int64_t x = static_cast<std::int64_t>((static_cast<std::uint64_t>(rng_()) << 32) | rng_());
    return Value(x >> (rng_() % 64));
  }

  Value floating() {
    static const double edges[] = {0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, std::numeric_limits<double>::infinity(),
                                   -std::numeric_limits<double>::infinity(), std::nan("")};
    if (rng_() % 2) return Value(edges[rng_() % std::size(edges)]);
    std::uint64_t bits = (static_cast<std::uint64_t>(rng_()) << 32) | rng_();
    double d = std::bit_cast<double>(bits);
    return Value(std::isnan(d) ? 0.125 : d);
  }

  std::string text() {
    static const char* pieces[] = {"a", "Z", " ", "'", "\"", "\\", "\n", "\x01", "é", "ü", "漢", "\xf0\x9f\x98\x80",
                                   "\xed\xa0\x80" /* lone surrogate U+D800, as Python's surrogatepass */, ".", "("};
    std::string s;
    auto n = rng_() % 4 == 0 ? rng_() % 300 : rng_() % 12;
    for (; n > 0; --n) s += pieces[rng_() % std::size(pieces)];
    return s;
  }

  Value container(int pick, int depth) {
    auto n = rng_() % 5 == 0 ? rng_() % 1200 : rng_() % 5;  // sometimes past the 1000-item batch
    switch (pick) {
      case 8: {
        std::vector<Value> xs;
        for (auto i = n % 7; i > 0; --i) xs.push_back(value(depth + 1));
        return Value::tuple(std::move(xs));
      }
      case 9:
      case 10: {
        std::vector<Value> xs;
        for (; n > 0; --n) xs.push_back(value(depth + 1));
        return Value::list(std::move(xs));
      }
      case 11: {
        pk::Dict d;
        for (; n > 0; --n) d.insert_or_assign(hashable(0), value(depth + 1));
        return Value::dict(std::move(d));
      }
      case 12: {
        pk::Set s;
        for (; n > 0; --n) s.add(hashable(0));
        return rng_() % 2 ? Value::set(std::move(s)) : Value::frozenset(std::move(s));
      }
      case 13: return pk::exception(rng_() % 2 ? "ValueError" : "KeyError", text());
      default: {
        if (rng_() % 2) return token(text(), "127.0.0.1", static_cast<int>(rng_() % 65536), text());
        pk::Dict d;
        for (auto i = n % 5; i > 0; --i) d.insert_or_assign(Value(text()), value(depth + 1));
        return ordered_dict(std::move(d));
      }
    }
  }

  std::mt19937 rng_;
  std::vector<Value> made_;
  int budget_ = 4000;  // scalars per generated value: keeps nested 1200-item containers bounded
};

Value sample() {
  pk::Dict d;
  d.insert_or_assign("name", "tea");
  d.insert_or_assign(7, Value::list({1, 2.5, Value(), true, false}));
  d.insert_or_assign(Value::tuple({1, "x"}), pk::Bytes{std::string("\x00\xff", 2)});
  return Value::tuple({Value::dict(std::move(d)), Value::set({1, 2, 3}), Value::frozenset({"a"}),
                       pk::exception("ValueError", "boom"), -123456789012345LL, "h\xc3\xa9llo"});
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const pk::UnpicklingError& e) {
    return e.what();
  }
  return "(no UnpicklingError)";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Round trips through CPython

TEST(PickleDifferential, CppDumpsLoadInPythonAsTheExpectedObjects) {
  struct Expect {
    Value v;
    std::string py;
  };
  std::vector<Expect> expects = {
      {Value(), "None"},
      {true, "True"},
      {false, "False"},
      {0, "0"},
      {255, "255"},
      {-1, "-1"},
      {65536, "65536"},
      {INT64_MAX, "2**63-1"},
      {INT64_MIN, "-2**63"},
      {0x80000000LL, "2**31"},
      {-0x80000001LL, "-2**31-1"},
      {1.5, "1.5"},
      {-0.0, "-0.0"},
      {std::numeric_limits<double>::infinity(), "float('inf')"},
      {"", "''"},
      {"h\xc3\xa9llo \xf0\x9f\x98\x80", "'h\\xe9llo \\U0001f600'"},
      {"\xed\xa0\x80", "'\\ud800'"},
      {pk::Bytes{}, "b''"},
      {pk::Bytes{std::string("\x00\xff\x80z", 4)}, "b'\\x00\\xff\\x80z'"},
      {pk::Bytes{std::string(300, 'q')}, "b'q' * 300"},
      {std::string(70000, 'x'), "'x' * 70000"},
      {Value::tuple({}), "()"},
      {Value::tuple({1}), "(1,)"},
      {Value::tuple({1, 2, 3, 4}), "(1, 2, 3, 4)"},
      {Value::list({}), "[]"},
      {Value::list({1, "a", Value::list({2})}), "[1, 'a', [2]]"},
      {std::vector<int>(2500, 7), "[7] * 2500"},
      {Value::dict({{"a", 1}, {2, "b"}}), "{'a': 1, 2: 'b'}"},
      {Value::set({}), "set()"},
      {Value::set({1, "x", Value::tuple({1, 2})}), "{1, 'x', (1, 2)}"},
      {Value::frozenset({1, 2}), "frozenset({1, 2})"},
      {Value::global("builtins", "len"), "len"},
      {Value::global("collections", "OrderedDict"), "collections.OrderedDict"},
      {pk::exception("ValueError", "boom"), "ValueError('boom')"},
      {pk::exception("RuntimeError", "x"), "RuntimeError('x')"},
      {ordered_dict({{"b", 1}, {"a", 2}}), "collections.OrderedDict([('b', 1), ('a', 2)])"},
      {token("Queue", "127.0.0.1", 50000, "7f3a"), "Token('Queue', ('127.0.0.1', 50000), '7f3a')"},
      {sample(),
       "({'name': 'tea', 7: [1, 2.5, None, True, False], (1, 'x'): b'\\x00\\xff'}, {1, 2, 3}, frozenset({'a'}), "
       "ValueError('boom'), -123456789012345, 'h\\xe9llo')"},
  };
  std::vector<Case> cases;
  for (int proto = 2; proto <= 5; ++proto)
    for (const auto& e : expects) cases.push_back({pk::dumps(e.v, proto), e.py, proto});
  auto outs = run_python("check", cases);
  ASSERT_EQ(outs.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Value& v = expects[i % expects.size()].v;
    Value back = pk::loads(outs[i]);
    EXPECT_TRUE(same(back, v)) << "protocol " << cases[i].protocol << ": " << v.repr() << " came back as "
                               << back.repr();
  }
}

TEST(PickleDifferential, KeywordConstructionLoadsInPythonAtEveryProtocol) {
  // NEWOBJ_EX at protocol 4+, copyreg.__newobj_ex__ before: int.__new__(int, '10', base=16) == 16.
  pk::Object o;
  o.type = {"builtins", "int"};
  o.via = pk::Object::Via::newobj;
  o.args = {"10"};
  o.kwargs.insert_or_assign("base", 16);
  std::vector<Case> cases;
  for (int proto = 2; proto <= 5; ++proto) cases.push_back({pk::dumps(Value::object(o), proto), "16", proto});
  auto outs = run_python("check", cases);
  for (const auto& out : outs) EXPECT_TRUE(same(pk::loads(out), Value(16)));
  EXPECT_TRUE(same(pk::loads(cases[2].pickle), Value::object(o)));  // and our own decoder reads it back
}

TEST(PickleDifferential, RandomValuesRoundTripThroughPythonAtEveryProtocol) {
  std::vector<Value> values;
  std::vector<Case> cases;
  for (std::uint32_t seed = 1; seed <= 60; ++seed) {
    Generator g(seed);
    Value v = g.value(0);
    int proto = 2 + static_cast<int>(seed % 4);
    std::string bytes = pk::dumps(v, proto);
    // Our own decoder first: loads(dumps(v)) is v, kinds and all.
    ASSERT_TRUE(same(pk::loads(bytes), v)) << "seed " << seed << ": " << v.repr().substr(0, 400);
    values.push_back(v);
    cases.push_back({bytes, "", proto});
  }
  auto outs = run_python("check", cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    Value back = pk::loads(outs[i]);
    EXPECT_TRUE(same(back, values[i])) << "seed " << i + 1 << " protocol " << cases[i].protocol << ": "
                                       << values[i].repr().substr(0, 400) << "\ncame back as "
                                       << back.repr().substr(0, 400);
  }
}

TEST(PickleDifferential, PythonPicklesOfEveryProtocolDecode) {
  const std::string expr = "{'a': [1, -2, 2.5, None, True, False, 'x\\xe9\\u6f22', b'\\x00\\xff', (1,), ()], "
                           "'big': 2**62, 'neg': -2**40, 's': {1, 2}, 'f': frozenset({'z'}), 'e': {}, 'l': []}";
  Value expected = Value::dict({
      {"a", Value::list({1, -2, 2.5, Value(), true, false, "x\xc3\xa9\xe6\xbc\xa2",
                         pk::Bytes{std::string("\x00\xff", 2)}, Value::tuple({1}), Value::tuple({})})},
      {"big", 1LL << 62},
      {"neg", -(1LL << 40)},
      {"s", Value::set({1, 2})},
      {"f", Value::frozenset({"z"})},
      {"e", Value::dict({})},
      {"l", Value::list({})},
  });
  std::vector<Case> cases;
  for (int proto = 0; proto <= 5; ++proto) cases.push_back({"", expr, proto});
  auto outs = run_python("dump", cases);
  for (int proto = 0; proto <= 5; ++proto)
    EXPECT_TRUE(same(pk::loads(outs[static_cast<std::size_t>(proto)]), expected))
        << "protocol " << proto << ": " << pk::loads(outs[static_cast<std::size_t>(proto)]).repr();
}

TEST(PickleDifferential, PythonObjectsDecodeToObjectDescriptions) {
  std::vector<Case> cases = {
      {"", "ValueError('boom')", 2},
      {"", "ValueError('boom')", 4},
      {"", "collections.OrderedDict([('b', 1), ('a', [2])])", 2},
      {"", "collections.OrderedDict([('b', 1), ('a', [2])])", 5},
      {"", "Token('Queue', ('127.0.0.1', 50000), '7f3a')", 4},
      {"", "bytearray(b'xy')", 2},
      {"", "bytearray(b'xy')", 4},
      {"", "bytearray(b'xy')", 5},
      {"", "KeyError('k')", 3},
      {"", "collections.OrderedDict", 4},
  };
  auto outs = run_python("dump", cases);
  Value boom = pk::exception("ValueError", "boom");
  EXPECT_TRUE(same(pk::loads(outs[0]), boom)) << pk::loads(outs[0]).repr();  // 'exceptions' -> builtins
  EXPECT_TRUE(same(pk::loads(outs[1]), boom));
  Value od = ordered_dict({{"b", 1}, {"a", Value::list({2})}});
  EXPECT_TRUE(same(pk::loads(outs[2]), od)) << pk::loads(outs[2]).repr();
  EXPECT_TRUE(same(pk::loads(outs[3]), od));

  Value tok = pk::loads(outs[4]);
  ASSERT_TRUE(tok.is_object());
  EXPECT_EQ(tok.type_name(), "multiprocessing.managers.Token");
  EXPECT_EQ(tok.as_object().via, pk::Object::Via::newobj);
  auto [typeid_, address, id] =
      tok.as_object().state.as<std::tuple<std::string, std::pair<std::string, int>, std::string>>();
  EXPECT_EQ(typeid_, "Queue");
  EXPECT_EQ(address, std::make_pair(std::string("127.0.0.1"), 50000));
  EXPECT_EQ(id, "7f3a");

  pk::Object ba;
  ba.type = {"builtins", "bytearray"};
  ba.args = {pk::Bytes{"xy"}};
  for (int i : {5, 6, 7}) EXPECT_TRUE(same(pk::loads(outs[static_cast<std::size_t>(i)]), Value::object(ba))) << i;
  EXPECT_TRUE(same(pk::loads(outs[8]), pk::exception("KeyError", "k")));
  EXPECT_TRUE(same(pk::loads(outs[9]), Value::global("collections", "OrderedDict")));
}

TEST(PickleDifferential, NestedNamesDecodeAsDottedGlobalsAtEveryProtocol) {
  // CPython writes a nested name as getattr(Outer, 'name') (protocol < 4) or as a dotted
  // STACK_GLOBAL; both become one Global, which dumps() writes back in a form CPython loads.
  std::vector<Case> cases;
  for (int proto = 2; proto <= 5; ++proto) cases.push_back({"", "collections.OrderedDict.fromkeys", proto});
  auto outs = run_python("dump", cases);
  Value expected = Value::global("collections", "OrderedDict.fromkeys");
  std::vector<Case> back;
  for (std::size_t i = 0; i < outs.size(); ++i) {
    EXPECT_TRUE(same(pk::loads(outs[i]), expected)) << pk::loads(outs[i]).repr();
    back.push_back({pk::dumps(expected, cases[i].protocol), "collections.OrderedDict.fromkeys", cases[i].protocol});
  }
  run_python("check", back);
}

TEST(PickleDifferential, MemoSharingFromPythonIsPreservedAsSharedNodes) {
  auto out = python_dumps("(lambda x, s: [x, x, s, s])([1, 2], 'shared')", 4);
  Value v = pk::loads(out);
  const auto& items = v.as_list();
  ASSERT_EQ(items.size(), 4u);
  EXPECT_TRUE(items[0].is(items[1]));
  EXPECT_TRUE(items[2].is(items[3]));
  // Writing through one copy does not affect the other (copy-on-write).
  Value a = items[0];
  a.as_list().push_back(3);
  EXPECT_EQ(items[0].as_list().size(), 2u);
  EXPECT_EQ(a.as_list().size(), 3u);
  // And C++ sharing reaches Python as identity.
  Value x = Value::list({1});
  auto check = run_python("check", {{pk::dumps(Value::list({x, x})), "", 4}});
  Value back = pk::loads(check[0]);
  EXPECT_TRUE(back.as_list()[0].is(back.as_list()[1]));
}

TEST(PickleDifferential, PythonBigIntsAreRejectedClearly) {
  std::vector<Case> cases = {{"", "2**63", 4}, {"", "-2**63-1", 2}, {"", "[1, 10**30]", 5}, {"", "2**63", 0}};
  auto outs = run_python("dump", cases);
  for (const auto& o : outs) {
    auto msg = error_of([&] { (void)pk::loads(o); });
    EXPECT_NE(msg.find("64 bits"), std::string::npos) << msg;
  }
  std::vector<Case> ok = {{"", "2**63-1", 4}, {"", "-2**63", 2}, {"", "2**63-1", 0}};
  auto edges = run_python("dump", ok);
  EXPECT_EQ(pk::loads(edges[0]).as_int(), INT64_MAX);
  EXPECT_EQ(pk::loads(edges[1]).as_int(), INT64_MIN);
  EXPECT_EQ(pk::loads(edges[2]).as_int(), INT64_MAX);
}

TEST(PickleDifferential, RecursivePythonStructureIsRefused) {
  for (const char* expr : {"(lambda l: (l.append(l), l)[1])([])", "(lambda d: (d.update(me=d), d)[1])({})"}) {
    auto msg = error_of([&] { (void)pk::loads(python_dumps(expr, 4)); });
    EXPECT_NE(msg.find("self-referencing"), std::string::npos) << msg;
  }
}

// ---------------------------------------------------------------------------------------
// Hostile and malformed input

TEST(PickleLoads, EveryTruncationRaisesUnpicklingError) {
  for (int proto = 2; proto <= 5; ++proto) {
    std::string full = pk::dumps(sample(), proto);
    for (std::size_t n = 0; n < full.size(); ++n)
      EXPECT_THROW((void)pk::loads(std::string_view(full).substr(0, n)), pk::UnpicklingError) << proto << " " << n;
  }
}

TEST(PickleLoads, MutatedInputOnlyEverRaisesPickleErrors) {
  std::mt19937 rng(12345);
  std::vector<std::string> seeds;
  for (int proto = 2; proto <= 5; ++proto) seeds.push_back(pk::dumps(sample(), proto));
  int decoded = 0, rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[static_cast<std::size_t>(i) % seeds.size()];
    for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) {
      std::size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[at] = static_cast<char>(rng()); break;
        case 1: s.erase(at, 1 + rng() % 8); break;
        default: s.insert(at, 1, static_cast<char>(rng())); break;
      }
      if (s.empty()) s = "x";
    }
    try {
      (void)pk::loads(s);
      ++decoded;
    } catch (const pk::PickleError&) {
      ++rejected;
    }
  }
  std::printf("mutated pickles: %d decoded, %d rejected with mp::pickle errors\n", decoded, rejected);
  EXPECT_GT(rejected, 0);
}

TEST(PickleLoads, UnknownOpcodeIsNamedWithItsOffset) {
  auto msg = error_of([] { (void)pk::loads(std::string("\x80\x04\xff.", 4)); });
  EXPECT_NE(msg.find("0xff"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown opcode"), std::string::npos) << msg;
  EXPECT_NE(msg.find("offset 2"), std::string::npos) << msg;
  try {
    (void)pk::loads(std::string("\x80\x04\xff.", 4));
  } catch (const pk::UnpicklingError& e) {
    EXPECT_EQ(e.offset(), 2u);
  }
}

TEST(PickleLoads, AbsurdLengthsFailBeforeAllocating) {
  auto le = [](std::uint64_t x, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += static_cast<char>(x >> (8 * i));
    return s;
  };
  std::vector<std::string> inputs = {
      "\x8d" + le(1ULL << 62, 8) + "abc.",      // BINUNICODE8
      "\x8e" + le(~0ULL, 8) + ".",               // BINBYTES8
      "\x96" + le(1ULL << 40, 8) + ".",          // BYTEARRAY8
      "X" + le(0xffffffffULL, 4) + "x.",         // BINUNICODE
      "B" + le(0xfffffff0ULL, 4) + ".",          // BINBYTES
      "\x8b" + le(0x7fffffffULL, 4) + "\x01.",   // LONG4
      "T" + le(0x80000000ULL, 4) + ".",          // BINSTRING, negative length
      "\x80\x04\x95" + le(1ULL << 50, 8) + "N.",  // FRAME
  };
  for (const auto& in : inputs) {
    auto msg = error_of([&] { (void)pk::loads(in); });
    EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("negative") != std::string::npos ||
                msg.find("frame") != std::string::npos)
        << msg;
  }
}

TEST(PickleLoads, DeepNestingIsLimited) {
  std::string deep = "\x80\x04";
  for (int i = 0; i < 100000; ++i) deep += ']';
  for (int i = 0; i < 99999; ++i) deep += 'a';
  deep += '.';
  auto msg = error_of([&] { (void)pk::loads(deep); });
  EXPECT_NE(msg.find("max_depth"), std::string::npos) << msg;

  std::string ok = "\x80\x04";
  for (int i = 0; i < 50; ++i) ok += ']';
  for (int i = 0; i < 49; ++i) ok += 'a';
  ok += '.';
  EXPECT_NO_THROW((void)pk::loads(ok));
  EXPECT_THROW((void)pk::loads(ok, {.max_depth = 10}), pk::UnpicklingError);

  std::string tuples = "\x80\x04N";
  for (int i = 0; i < 5000; ++i) tuples += '\x85';  // TUPLE1, nested 5000 deep
  tuples += '.';
  EXPECT_THROW((void)pk::loads(tuples), pk::UnpicklingError);
}

TEST(PickleLoads, MemoBombStaysSmallBecauseFetchesShare) {
  // l0 = []; l(i+1) = [l(i), l(i)]: 2**60 leaves if copied, 61 nodes when shared.
  std::string p = "\x80\x04]\x94" "0";  // memo[0] = [], popped
  for (int i = 0; i < 60; ++i) {
    p += "]\x94(h";                        // memo[i+1] = [memo[i], memo[i]], popped
    p += static_cast<char>(i);
    p += 'h';
    p += static_cast<char>(i);
    p += "e0";
  }
  p += "h<.";                               // BINGET 60
  Value v = pk::loads(p);
  int depth = 0;
  for (const Value* x = &v; !x->as_list().empty(); x = &x->as_list()[0]) ++depth;
  EXPECT_EQ(depth, 60);
  EXPECT_LT(pk::dumps(v).size(), 2000u);  // dumps preserves the sharing too

  // The same shape of tuples as a dict key: hashing must not walk 2**60 leaves either.
  std::string t = "\x80\x04)\x94" "0";
  for (int i = 0; i < 60; ++i) {
    t += 'h';
    t += static_cast<char>(i);
    t += 'h';
    t += static_cast<char>(i);
    t += "\x86\x94" "0";  // TUPLE2, MEMOIZE, POP
  }
  t += "}h<K\x01s.";  // {t60: 1}
  Value d = pk::loads(t);
  EXPECT_EQ(d.as_dict().size(), 1u);
}

TEST(PickleValue, EqualityAndHashOfSharedStructuresAreLinear) {
  Value a = Value::tuple({}), b = Value::tuple({});
  for (int i = 0; i < 80; ++i) {
    a = Value::tuple({a, a});
    b = Value::tuple({b, b});
  }
  EXPECT_FALSE(a.is(b));
  EXPECT_TRUE(a == b);
  EXPECT_EQ(pk::hash(a), pk::hash(b));
  EXPECT_LE(a.repr(100).size(), 103u);
  Value la = Value::list({a, a}), lb = Value::list({b, b});
  EXPECT_TRUE(Value::dict({{"k", la}}) == Value::dict({{"k", lb}}));
}

// Regression (issue 19): two equal, distinct chains alternating tuple and frozenset,
// A(k) = (frozenset{A(k-1)}, frozenset{B(k-1)}) and B(k) = (frozenset{B(k-1)}, frozenset{A(k-1)}),
// put in one set. Each frozenset comparison looked its element up with a fresh memory of the
// pairs already compared, so A(k) == B(k) took 2**k steps (5 s at depth 26 from 807 bytes).
// Now one comparison remembers every pair it met: a step count, no timing.
TEST(PickleLoads, EqualChainsOfTuplesAndFrozensetsCompareInPolynomialSteps) {
  constexpr int kDepth = 300;  // nesting 601, under max_depth 1000
  std::string p = "\x80\x04";
  auto get = [&](std::uint32_t idx) {
    p += 'j';  // LONG_BINGET
    for (int i = 0; i < 4; ++i) p += static_cast<char>((idx >> (8 * i)) & 0xff);
  };
  auto frozenset_of = [&](std::uint32_t idx) {
    p += '(';
    get(idx);
    p += '\x91';  // FROZENSET
  };
  p += "K\x01\x85\x94" "0" "K\x01\x85\x94" "0";  // memo[0] = A(0) = (1,), memo[1] = B(0) = (1,); POP
  for (std::uint32_t k = 1; k <= kDepth; ++k) {
    const std::uint32_t a = 2 * (k - 1), b = a + 1;
    frozenset_of(a);
    frozenset_of(b);
    p += "\x86\x94" "0";  // A(k): TUPLE2, MEMOIZE, POP
    frozenset_of(b);
    frozenset_of(a);
    p += "\x86\x94" "0";  // B(k)
  }
  p += '\x8f';  // EMPTY_SET
  p += '(';
  get(2 * kDepth);
  get(2 * kDepth + 1);
  p += "\x90.";  // ADDITEMS, STOP: {A(300), B(300)}
  pk::equality_stats() = {};
  Value v = pk::loads(p);
  EXPECT_EQ(v.as_set().size(), 1u);  // A and B are equal: the set keeps one
  const std::uint64_t size = p.size();
  EXPECT_LE(pk::equality_stats().largest, 4 * (size + 16) * (size + 16)) << "bytes: " << size;
  EXPECT_GT(pk::equality_stats().largest, std::uint64_t{kDepth});  // it did compare the chains
}

TEST(PickleLoads, EachNanIsItsOwnKeyLikeCPython) {
  // Every BINFLOAT nan is a distinct object in CPython, hence a distinct dict key. 20000 of
  // them must not share one hash bucket (that would make decoding quadratic).
  std::string p = "\x80\x04}(";
  for (int i = 0; i < 20000; ++i) p += std::string("G\x7f\xf8\x00\x00\x00\x00\x00\x00N", 10);
  p += "u.";
  EXPECT_EQ(pk::loads(p).as_dict().size(), 20000u);
  auto py = python_dumps("{float('nan'): 1, float('nan'): 2}", 4);
  EXPECT_EQ(pk::loads(py).as_dict().size(), 2u);
}

TEST(PickleLoads, StructuralErrorsAreUnpicklingErrors) {
  struct Bad {
    std::string data;
    std::string says;
  };
  std::vector<Bad> bad = {
      {"", "empty input"},
      {"N", "ends without STOP"},
      {"\x80\x04N.x", "trailing data"},
      {"\x80\x04NN.", "2 values on the stack"},
      {"\x80\x04.", "empty stack"},
      {"\x80\x04(N.", "unclosed MARK"},
      {"\x80\x04" "a.", "stack underflow"},
      {"\x80\x04(a.", "stack underflow"},
      {"\x80\x04h\x05.", "memo key 5 not found"},
      {"\x80\x04}]K\x01s.", "unhashable"},
      {"\x80\x04K\x01K\x02R.", "not a global"},
      {"\x80\x04" "cbuiltins\nlen\nK\x01R.", "must be a tuple"},
      {"\x80\x06N.", "unsupported pickle protocol 6"},
      {"\x80\x04K\x01" "b.", "BUILD"},
      {"\x80\x04" "(I1\nP1\n.", "persistent IDs"},
      {"\x80\x04\x82\x01.", "extension registry"},
      {"\x80\x04S'x'\n.", "Python 2 str"},
      {"\x80\x04\x97.", "out-of-band"},
      {"\x80\x04\x8c\x02\xc3\x28.", "invalid UTF-8"},
      {"\x80\x04I12x\n.", "malformed INT"},
      {"\x80\x04" "c\nx\n.", "empty module"},
      {"\x80\x04}(K\x01u.", "odd number"},
  };
  for (const auto& b : bad) {
    auto msg = error_of([&] { (void)pk::loads(b.data); });
    EXPECT_NE(msg.find(b.says), std::string::npos) << "input " << Value(pk::Bytes{b.data}).repr() << ": " << msg;
  }
  EXPECT_TRUE(pk::loads("\x80\x04N.x", {.allow_trailing_data = true}).is_none());
}

TEST(PickleLoads, ProtocolZeroBasicsDecode) {
  EXPECT_EQ(pk::loads("I42\n.").as_int(), 42);
  EXPECT_EQ(pk::loads("I01\n.").as_bool(), true);
  EXPECT_EQ(pk::loads("L-5L\n.").as_int(), -5);
  EXPECT_EQ(pk::loads("F2.5\n.").as_float(), 2.5);
  EXPECT_EQ(pk::loads("V\\u00e9t\\U0001f600\n.").as_str(), "\xc3\xa9t\xf0\x9f\x98\x80");
  EXPECT_EQ(pk::loads("(lp0\nI1\naI2\na.").as<std::vector<int>>(), (std::vector<int>{1, 2}));
  EXPECT_EQ(pk::loads("U\x03" "abc.").as_str(), "abc");  // Python 2 str, ASCII
}

// ---------------------------------------------------------------------------------------
// dumps()

TEST(PickleDumps, RejectsWhatPythonCouldNotLoad) {
  EXPECT_THROW((void)pk::dumps(Value("\xff\xfe")), pk::PicklingError);
  EXPECT_THROW((void)pk::dumps(Value(1), 1), mp::ValueError);
  EXPECT_THROW((void)pk::dumps(Value(1), 6), mp::ValueError);
  Value deep = Value::list({});
  for (int i = 0; i < 1100; ++i) deep = Value::list({deep});
  EXPECT_THROW((void)pk::dumps(deep), pk::PicklingError);
}

TEST(PickleDumps, FramesAndProtocolHeaderMatchCPython) {
  EXPECT_EQ(pk::dumps(Value(1), 4), std::string("\x80\x04K\x01.", 5));  // under 4 bytes: no frame
  EXPECT_EQ(pk::dumps(Value(1000), 4), std::string("\x80\x04\x95\x04\x00\x00\x00\x00\x00\x00\x00M\xe8\x03.", 15));
  EXPECT_EQ(pk::dumps(Value(1), 2), std::string("\x80\x02K\x01.", 5));
  // Identical bytes to CPython for scalars (containers differ: CPython memoizes every one).
  std::vector<Value> scalars = {1, -70000, 1LL << 40, -(1LL << 40), INT64_MIN, 2.5, true, Value()};
  std::vector<Case> cases;
  for (int proto = 2; proto <= 5; ++proto)
    for (const char* py : {"1", "-70000", "2**40", "-2**40", "-2**63", "2.5", "True", "None"}) cases.push_back({"", py, proto});
  auto outs = run_python("dump", cases);
  for (std::size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(pk::dumps(scalars[i % scalars.size()], cases[i].protocol), outs[i]) << cases[i].expr;
}

// ---------------------------------------------------------------------------------------
// Value and conversions

namespace {
struct Order {
  std::string item;
  int qty = 0;
  std::optional<double> price;
  template <class A>
  void serialize(A& ar) {
    ar(item, qty, price);
  }
};
}  // namespace

TEST(PickleValue, StdTypesConvertBothWays) {
  std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}};
  Value v = m;
  EXPECT_TRUE(v.is_dict());
  EXPECT_EQ(v.as<decltype(m)>(), m);
  EXPECT_EQ((Value(std::unordered_map<int, std::string>{{1, "x"}}).as<std::unordered_map<int, std::string>>()),
            (std::unordered_map<int, std::string>{{1, "x"}}));
  EXPECT_EQ(Value(std::optional<int>()).is_none(), true);
  EXPECT_EQ(Value(std::optional<int>(3)).as<std::optional<int>>(), 3);
  EXPECT_EQ(Value(std::set<int>{3, 1}).as<std::set<int>>(), (std::set<int>{1, 3}));
  auto t = std::make_tuple(1, std::string("x"), 2.5);
  EXPECT_EQ(Value(t).as<decltype(t)>(), t);
  using V = std::variant<int, std::string>;
  EXPECT_EQ(Value("s").as<V>(), V(std::string("s")));
  EXPECT_EQ(Value(5).as<V>(), V(5));
  EXPECT_EQ(Value(true).as<int>(), 1);
  std::unordered_map<Value, Value> by_value{{Value::tuple({1, "a"}), "x"}};
  EXPECT_EQ(Value(by_value).as_dict().at(Value::tuple({1, "a"})), Value("x"));
  EXPECT_TRUE(same(Value(std::vector<const char*>{"a", "b"}), Value::list({"a", "b"})));
  EXPECT_EQ(Value(3).as<double>(), 3.0);
}

TEST(PickleValue, StructsWithSerializeMapToTuples) {
  Order o{"tea", 2, 1.25};
  Value v = o;
  EXPECT_TRUE(same(v, Value::tuple({"tea", 2, 1.25})));
  Order back = pk::loads(pk::dumps(v)).as<Order>();
  EXPECT_EQ(back.item, "tea");
  EXPECT_EQ(back.qty, 2);
  EXPECT_EQ(back.price, 1.25);
  EXPECT_THROW((void)Value::tuple({"tea", 2}).as<Order>(), pk::TypeError);
  // Python sees the same tuple.
  run_python("check", {{pk::dumps(Value(o)), "('tea', 2, 1.25)", 4}});
}

TEST(PickleValue, WrongKindsAndRangesRaiseTypeError) {
  try {
    (void)Value(5).as_str();
    ADD_FAILURE();
  } catch (const pk::TypeError& e) {
    EXPECT_NE(std::string(e.what()).find("expected str, got int"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)Value(300).as<std::uint8_t>(), pk::TypeError);
  EXPECT_THROW((void)Value(-1).as<unsigned>(), pk::TypeError);
  EXPECT_THROW(Value(std::numeric_limits<std::uint64_t>::max()), pk::TypeError);
  EXPECT_THROW((void)Value::set({Value::list({})}), pk::TypeError);
  EXPECT_THROW((void)Value::frozenset({1}).as_set().contains(Value::dict({})), pk::TypeError);
  Value fs = Value::frozenset({1});
  EXPECT_THROW((void)fs.as_set(), pk::TypeError);  // non-const: a frozenset cannot be modified
}

TEST(PickleValue, EqualityAndHashingFollowPython) {
  EXPECT_EQ(Value(1), Value(1.0));
  EXPECT_EQ(Value(true), Value(1));
  EXPECT_EQ(pk::hash(Value(1)), pk::hash(Value(1.0)));
  EXPECT_EQ(pk::hash(Value(true)), pk::hash(Value(1)));
  EXPECT_NE(Value::tuple({1}), Value::list({1}));
  EXPECT_EQ(Value::set({1, 2}), Value::frozenset({2, 1}));
  EXPECT_EQ(Value::dict({{"a", 1}, {"b", 2}}), Value::dict({{"b", 2}, {"a", 1}}));
  EXPECT_NE(Value(std::nan("")), Value(std::nan("")));
  EXPECT_NE(Value("a"), Value(pk::Bytes{"a"}));
  pk::Dict d;
  d.insert_or_assign(1, "int");
  EXPECT_FALSE(d.insert_or_assign(true, "bool"));  // same key: the first key object stays
  EXPECT_TRUE(d.at(1.0) == Value("bool"));
  EXPECT_TRUE(d.items()[0].first.is_int());
  EXPECT_TRUE(d.erase(1));
  EXPECT_THROW((void)d.at(1), pk::KeyError);
}

TEST(PickleValue, CopiesShareUntilWritten) {
  Value a = Value::list({1, 2});
  Value b = a;
  EXPECT_TRUE(a.is(b));
  b.as_list().push_back(3);
  EXPECT_FALSE(a.is(b));
  EXPECT_EQ(a.as_list().size(), 2u);
  Value d = Value::dict({{"k", 1}});
  Value e = d;
  e.as_dict()["k"] = 2;
  EXPECT_EQ(d.as_dict().at("k"), Value(1));
  EXPECT_EQ(e.as_dict().at("k"), Value(2));
}

TEST(PickleValue, ReprLooksLikePython) {
  EXPECT_EQ(sample().repr(),
            "({'name': 'tea', 7: [1, 2.5, None, True, False], (1, 'x'): b'\\x00\\xff'}, {1, 2, 3}, "
            "frozenset({'a'}), builtins.ValueError('boom'), -123456789012345, 'h\xc3\xa9llo')");
  EXPECT_EQ(token("Q", "h", 1, "id").repr(), "multiprocessing.managers.Token().__setstate__(('Q', ('h', 1), 'id'))");
}

TEST(PickleCorpus, EveryCommittedPythonSeedDecodes) {
  // tests/fuzz/corpus/pickle holds CPython's output (protocols 0-5) for the multiprocessing
  // message shapes; the decoder must accept all of it, or the fuzzer starts from rejections.
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(MP_SOURCE_DIR) / "tests/fuzz/corpus/pickle")) {
    if (e.path().filename().string().rfind("py", 0) != 0) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_NO_THROW((void)pk::loads(data)) << e.path();
    ++n;
  }
  EXPECT_GE(n, 60);
}
