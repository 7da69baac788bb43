// CPython's manager protocol, server side: the object registry and the connection handler.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <set>
#include <thread>

#include "common/exception_table.hpp"
#include "managers/python.hpp"
#include "managers/registry.hpp"
#include "managers/socket.hpp"
#include "managers/wire.hpp"

namespace mp::internal::manager {
namespace {
using pickle::Value;

Value reply(const char* kind, Value result) { return Value::tuple({Value(kind), std::move(result)}); }

/// What CPython sends as format_exc(): a traceback-like text ending in "Type: message".
Value traceback(const std::exception& e) {
  std::string type = exceptions::traceback_name(e);
  return reply("#TRACEBACK", Value("Traceback (mp C++ manager server):\n" + type + ": " + e.what() + "\n"));
}

std::string hex_ident(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lx", static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(p)));
  return buf;
}

/// A request tuple (ident, methodname, args, kwds), checked.
struct PythonRequest {
  Value ident;
  std::string method;
  std::vector<Value> args;
  pickle::Dict kwds;
};

PythonRequest parse_request(std::string_view frame) {
  Value v = pickle::loads(frame);
  if (!v.is_tuple() || v.as_tuple().size() != 4)
    throw ValueError("the request is not an (ident, methodname, args, kwds) tuple: " + v.repr(200));
  const auto& t = v.as_tuple();
  if (!t[1].is_str()) throw ValueError("the request's methodname is not a str: " + t[1].repr(200));
  if (!t[2].is_tuple() && !t[2].is_list()) throw ValueError("the request's args are not a tuple: " + t[2].repr(200));
  if (!t[3].is_dict()) throw ValueError("the request's kwds are not a dict: " + t[3].repr(200));
  return PythonRequest{t[0], t[1].as_str(), t[2].as_sequence(), t[3].as_dict()};
}

}  // namespace

/// A served object of the CPython protocol: the referent and the method names it exposes.
struct PythonObject {
  std::shared_ptr<managers::python::Referent> obj;
  std::shared_ptr<const std::vector<std::string>> exposed;
};

struct PythonCore::Impl {
  std::map<std::string, PythonFactory> callables;
  ObjectRegistry<PythonObject> objects;  // CPython's policy: a server-wide count, no sessions

  std::shared_ptr<PythonObject> lookup(const std::string& ident) const {
    auto e = objects.find(ident);
    if (!e) throw KeyError("'" + ident + "' (no object with this id: released, or never made)");
    return e;
  }

  Value create(const PythonRequest& r) {
    if (r.args.empty() || !r.args[0].is_str()) throw pickle::TypeError("create() needs the typeid (a str) first");
    const std::string& typeid_name = r.args[0].as_str();
    auto it = callables.find(typeid_name);
    if (it == callables.end())
      throw KeyError("'" + typeid_name + "': no callable is registered under this typeid on the C++ server");
    if (r.args.size() > 1 || !r.kwds.empty())
      throw pickle::TypeError("the C++ callable registered as '" + typeid_name + "' takes no arguments");
    std::shared_ptr<managers::python::Referent> obj = it->second();
    if (!obj) throw ValueError("the callable registered as '" + typeid_name + "' returned no object");
    auto exposed = std::make_shared<const std::vector<std::string>>(obj->exposed());
    std::string ident = hex_ident(obj.get());
    objects.add(ident, std::make_shared<PythonObject>(PythonObject{std::move(obj), exposed}), nullptr);
    std::vector<Value> names(exposed->begin(), exposed->end());
    return Value::tuple({Value(ident), Value::tuple(std::move(names))});
  }

  static std::string ident_arg(const PythonRequest& r) {
    if (r.args.size() != 1 || !r.args[0].is_str()) throw pickle::TypeError(r.method + "() takes one ident (a str)");
    return r.args[0].as_str();
  }

  void incref(const std::string& ident) {
    if (!objects.incref(ident, nullptr)) throw KeyError("'" + ident + "'");
  }

  void decref(const std::string& ident) {
    if (objects.decref(ident, nullptr) != ObjectRegistry<PythonObject>::Decref::done) throw KeyError("'" + ident + "'");
  }

  /// The server's public functions except accept_connection and shutdown.
  Value server_function(const PythonRequest& r) {
    const std::string& m = r.method;
    if (m == "dummy") return {};
    if (m == "create") return create(r);
    if (m == "incref") {
      incref(ident_arg(r));
      return {};
    }
    if (m == "decref") {
      decref(ident_arg(r));
      return {};
    }
    if (m == "get_methods") {
      // get_methods(token): a Token pickles as an object whose state is (typeid, address, id).
      if (r.args.size() != 1) throw pickle::TypeError("get_methods() takes one token");
      const Value& t = r.args[0];
      const Value& state = t.is_object() ? t.as_object().state : t;
      if ((!state.is_tuple() && !state.is_list()) || state.as_sequence().size() != 3 || !state.as_sequence()[2].is_str())
        throw pickle::TypeError("get_methods() needs a Token, got " + t.repr(200));
      auto e = lookup(state.as_sequence()[2].as_str());
      return Value::tuple(std::vector<Value>(e->exposed->begin(), e->exposed->end()));
    }
    if (m == "number_of_objects") return Value(objects.size());
    if (m == "debug_info") {
      std::string out;
      objects.for_each([&](const std::string& ident, const PythonObject& e, std::uint64_t refs) {
        if (!out.empty()) out += "\n";
        out += "  " + ident + ":       refcount=" + std::to_string(refs) + "\n    " + e.obj->repr().substr(0, 75);
      });
      return Value(out);
    }
    throw RuntimeError("'" + m + "' unrecognized (not one of the server's public functions)");
  }

  /// One request of CPython's Server.serve_client loop.
  Value method_call(std::string_view frame) const {
    PythonRequest r = parse_request(frame);
    if (!r.ident.is_str()) throw KeyError(r.ident.repr(200));
    std::shared_ptr<PythonObject> e = lookup(r.ident.as_str());
    bool is_exposed = false;
    for (const auto& name : *e->exposed) is_exposed = is_exposed || name == r.method;
    if (!is_exposed) {
      if (r.method == "__str__" || r.method == "__repr__") return reply("#RETURN", Value(e->obj->repr()));
      if (r.method == "#GETVALUE") return reply("#RETURN", e->obj->getvalue());
      throw AttributeError("method '" + r.method + "' of the C++ referent is not exposed");
    }
    try {
      return reply("#RETURN", e->obj->call(managers::python::Call{r.method, r.args, r.kwds}));
    } catch (const std::exception& ex) {
      return reply("#ERROR", to_python_exception(ex));
    }
  }
};

namespace {
/// Pickles a reply; one that cannot be pickled becomes '#UNSERIALIZABLE', and "" (close the
/// connection) when even that fails.
std::string pickled(const Value& msg) noexcept {
  try {
    try {
      return pickle::dumps(msg);
    } catch (const std::exception& ex) {
      return pickle::dumps(reply("#UNSERIALIZABLE", Value(std::string(ex.what()))));
    }
  } catch (...) {
    return {};
  }
}
}  // namespace

PythonCore::PythonCore(std::map<std::string, PythonFactory> callables) : impl_(std::make_unique<Impl>()) {
  impl_->callables = std::move(callables);
}
PythonCore::~PythonCore() = default;

std::string PythonCore::handle_server_request(std::string_view frame, Next& next) noexcept {
  next = Next::close;
  Value msg;
  try {
    try {
      PythonRequest r = parse_request(frame);
      if (r.method == "accept_connection") {
        next = Next::serve_client;
        msg = reply("#RETURN", Value());
      } else if (r.method == "shutdown") {
        next = Next::shutdown;
        msg = reply("#RETURN", Value());
      } else {
        msg = reply("#RETURN", impl_->server_function(r));
      }
    } catch (const std::exception& e) {
      msg = traceback(e);
    }
  } catch (...) {  // building the traceback ran out of memory
    return {};
  }
  return pickled(msg);
}

std::string PythonCore::handle_method_call(std::string_view frame) noexcept {
  Value msg;
  try {
    try {
      msg = impl_->method_call(frame);
    } catch (const std::exception& e) {
      msg = traceback(e);
    }
  } catch (...) {
    return {};
  }
  return pickled(msg);
}

std::size_t PythonCore::number_of_objects() const { return impl_->objects.size(); }

std::unique_ptr<SocketServer> make_python_server(std::map<std::string, PythonFactory> callables,
                                                const std::string& address, std::string authkey,
                                                std::chrono::milliseconds handshake_timeout) {
  auto registry = std::make_shared<PythonCore>(std::move(callables));
  auto stop = std::make_shared<std::function<void()>>();
  // One server call — or, after accept_connection, method calls until end of file or
  // stop(): CPython's handle_request + serve_client.
  auto handler = [registry, stop](Connection& c) {
    std::string frame;
    c.recv_bytes(frame, kMaxFrame);
    PythonCore::Next next;
    std::string out = registry->handle_server_request(frame, next);
    if (!out.empty()) c.send_bytes(out);
    if (next == PythonCore::Next::shutdown) (*stop)();
    while (next == PythonCore::Next::serve_client && !out.empty()) {
      c.recv_bytes(frame, kMaxFrame);  // EOFError / OSError end the loop
      out = registry->handle_method_call(frame);
      if (!out.empty()) c.send_bytes(out);
    }
  };
  auto srv = std::make_unique<SocketServer>(address, std::move(authkey), handshake_timeout, std::move(handler));
  *stop = srv->stopper();  // before serve_forever: no connection thread runs yet
  return srv;
}

}  // namespace mp::internal::manager
