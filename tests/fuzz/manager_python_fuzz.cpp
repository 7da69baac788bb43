// libFuzzer target: the request handling of the CPython-protocol manager server.
//
// Every input is handled (1) as the first request of a connection (a server call) and
// (2) as a method call on an accept_connection channel. Each answer must be "" (close the
// connection) or a pickled (kind, result) pair of one of CPython's four kinds; nothing may
// crash or throw. Inputs that unpickle to a request whose ident is 'Q' or 'E' are also run
// against the registry's real queue / echo object (the fuzzer cannot guess their idents),
// skipping the queue methods that may block (get, put, join).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "managers/python.hpp"
#include "mp/managers_python.hpp"

namespace mm = mp::internal::manager;
namespace py = mp::managers::python;
namespace pk = mp::pickle;

namespace {

class Echo final : public py::Referent {
 public:
  std::vector<std::string> exposed() const override { return {"echo"}; }
  pk::Value call(const py::Call& c) override {
    auto a = c.bind({{"a", std::nullopt}, {"b", pk::Value(1)}});
    return pk::Value::tuple({a[0], a[1]});
  }
};

void check_reply(const std::string& out) {
  if (out.empty()) return;
  pk::Value v = pk::loads(out);  // throws (and so crashes the fuzzer) if not a valid pickle
  if (!v.is_tuple() || v.as_tuple().size() != 2 || !v.as_tuple()[0].is_str()) std::abort();
  const std::string& kind = v.as_tuple()[0].as_str();
  if (kind != "#RETURN" && kind != "#ERROR" && kind != "#TRACEBACK" && kind != "#UNSERIALIZABLE") std::abort();
}

std::string create(mm::PythonCore& r, const char* typeid_name) {
  mm::PythonCore::Next next;
  std::string out = r.handle_server_request(
      pk::dumps(pk::Value::tuple({pk::Value(), "create", pk::Value::tuple({typeid_name}), pk::Value::dict({})})), next);
  return pk::loads(out).as_tuple()[1].as_tuple()[0].as_str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  static mm::PythonCore registry({{"q", [] {
                                   static auto q = std::make_shared<py::Queue>(4);
                                   return std::static_pointer_cast<py::Referent>(q);
                                 }},
                                {"e", [] {
                                   static auto e = std::make_shared<Echo>();
                                   return std::static_pointer_cast<py::Referent>(e);
                                 }}});
  static const std::string q_ident = create(registry, "q");
  static const std::string e_ident = create(registry, "e");

  mm::PythonCore::Next next;
  check_reply(registry.handle_server_request(in, next));
  check_reply(registry.handle_method_call(in));

  pk::Value req;
  try {
    req = pk::loads(in);
  } catch (const pk::PickleError&) {
    return 0;
  }
  if (!req.is_tuple() || req.as_tuple().size() != 4 || !req.as_tuple()[0].is_str()) return 0;
  std::vector<pk::Value> items = req.as_tuple();
  const std::string& alias = items[0].as_str();
  if (alias == "Q") {
    if (items[1].is_str() && (items[1].as_str() == "get" || items[1].as_str() == "put" || items[1].as_str() == "join"))
      return 0;
    items[0] = q_ident;
  } else if (alias == "E") {
    items[0] = e_ident;
  } else {
    return 0;
  }
  std::string frame;
  try {
    frame = pk::dumps(pk::Value::tuple(std::move(items)));
  } catch (const pk::PickleError&) {
    return 0;
  }
  check_reply(registry.handle_method_call(frame));
  return 0;
}
