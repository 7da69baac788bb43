// CPython's manager protocol, client side: dispatch, proxies, and the python::Queue
// referent. Exceptions map to Python classes through src/common/exception_table.cpp.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/exception_table.hpp"
#include "managers/proxy_state.hpp"
#include "managers/python.hpp"
#include "managers/wire.hpp"
#include "os/process.hpp"
#include "mp/managers_python.hpp"

namespace mp {

void BaseManager::require_protocol(managers::Protocol p, std::string_view what, const std::string& name) const {
  if (options_.protocol == p) return;
  if (p == managers::Protocol::python)
    throw ValueError("BaseManager." + std::string(what) + "('" + name +
                     "'): a managers::python type needs a manager speaking CPython's protocol: construct it with "
                     "{.protocol = mp::managers::Protocol::python}");
  throw ValueError("BaseManager." + std::string(what) + "('" + name +
                   "'): this manager speaks CPython's protocol (Protocol::python): use the types of "
                   "<mp/managers_python.hpp> (python::Queue, python::QueueProxy<T>, python::Proxy)");
}

namespace internal::manager {
namespace {
using pickle::Value;

std::string describe_args(const std::vector<Value>& args) {
  if (args.empty()) return {};
  if (args.size() == 1 && args[0].is_str()) return args[0].as_str();
  return Value::tuple(args).repr(2000);
}

}  // namespace

namespace {
/// A connection to a CPython-protocol server: plain send and receive, frames of at most
/// kMaxFrame bytes.
class PythonLink final : public Link {
 public:
  explicit PythonLink(Connection c) : c_(std::move(c)) {}
  std::string roundtrip(std::string_view frame) override {
    c_.send_bytes(frame);
    return c_.recv_bytes(kMaxFrame);
  }

 private:
  Connection c_;
};
}  // namespace

std::unique_ptr<Link> python_open(const std::string& address, const std::string& authkey) {
  connection::ClientOptions o;
  if (!authkey.empty()) o.authkey = authkey;
  o.max_message_size = kMaxFrame;
  return std::make_unique<PythonLink>(connection::Client(connection::Address(address), o));
}

void raise_python_exception(const Value& exc, std::string_view method) {
  std::string where = std::string(method) + ": ";
  if (!exc.is_object() || exc.as_object().args.size() > 64)
    throw RemoteError("#ERROR", where + "the manager sent an error that is not an exception: " + exc.repr(2000));
  const pickle::Object& o = exc.as_object();
  std::string message = describe_args(o.args);
  std::string text = where + "Python raised " + o.type.dotted() + (message.empty() ? "" : ": " + message);
  exceptions::raise_python(o.type.module, o.type.qualname, o.type.dotted(), text);
}

Value python_dispatch(Link& c, const Value& id, std::string_view method, std::vector<Value> args, pickle::Dict kwds) {
  Value reply = pickle::loads(c.roundtrip(pickle::dumps(
      Value::tuple({id, Value(std::string(method)), Value::tuple(std::move(args)), Value::dict(std::move(kwds))}))));
  if (!reply.is_tuple() || reply.as_tuple().size() != 2 || !reply.as_tuple()[0].is_str())
    throw CodecError("manager (python protocol): the reply to '" + std::string(method) +
                     "' is not a (kind, result) tuple: " + reply.repr(200));
  const std::string& kind = reply.as_tuple()[0].as_str();
  const Value& result = reply.as_tuple()[1];
  if (kind == "#RETURN") return result;
  if (kind == "#ERROR") raise_python_exception(result, method);
  std::string text = result.is_str() ? result.as_str() : result.repr(2000);
  if (kind == "#TRACEBACK")
    throw RemoteError("Traceback", std::string(method) + ": the manager server failed:\n" + text);
  if (kind == "#UNSERIALIZABLE")
    throw RemoteError("Unserializable message", std::string(method) + ": the result could not be pickled:\n" + text);
  if (kind == "#PROXY")
    throw ValueError(std::string(method) +
                     ": the server returned a proxy ('#PROXY', a method listed in method_to_typeid); mp's python "
                     "protocol client does not build proxies from proxies");
  throw ValueError(std::string(method) + ": unrecognized message type '" + kind + "' from the manager");
}

Value python_server_call(const std::string& address, const std::string& authkey, std::string_view method,
                         std::vector<Value> args) {
  auto c = python_open(address, authkey);
  return python_dispatch(*c, Value(), method, std::move(args));
}

const ProxyProtocol& python_proxy_protocol() noexcept {
  static const ProxyProtocol protocol{
      // CPython's BaseProxy._connect: a channel is a connection that sent accept_connection.
      .open =
          [](const ProxyState& s) {
            auto fresh = python_open(s.token.address, s.authkey);
            std::string name = "mp-" + std::to_string(kernel_pid()) + "|" + std::to_string(kernel_tid());
            (void)python_dispatch(*fresh, Value(), "accept_connection", {Value(name)});
            return fresh;
          },
      // The parent's reference is the parent's: a forked child increfs on a server call.
      .take_reference =
          [](const ProxyState& s) -> std::unique_ptr<Link> {
            (void)python_server_call(s.token.address, s.authkey, "incref", {Value(s.token.id)});
            return nullptr;
          },
      // CPython's BaseProxy._decref. A server that is already gone has nothing to release.
      .give_back =
          [](const ProxyState& s) noexcept {
            try {
              (void)python_server_call(s.token.address, s.authkey, "decref", {Value(s.token.id)});
            } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor; the server may have shut down
            }
          },
  };
  return protocol;
}

Value to_python_exception(const std::exception& e) {
  exceptions::PythonException p = exceptions::to_python(e);
  return pickle::exception(std::move(p.name), std::move(p.message), std::move(p.module));
}

}  // namespace internal::manager

namespace managers::python {
namespace mm = internal::manager;

// ------------------------------------------------------------------------------ Call

std::vector<Value> Call::bind(std::initializer_list<std::pair<std::string_view, std::optional<Value>>> params) const {
  std::string fn = std::string(method) + "()";
  if (args.size() > params.size())
    throw pickle::TypeError(fn + " takes at most " + std::to_string(params.size()) + " arguments (" +
                            std::to_string(args.size()) + " given)");
  std::vector<std::optional<Value>> out(params.size());
  for (std::size_t i = 0; i < args.size(); ++i) out[i] = args[i];
  for (const auto& [k, v] : kwds) {
    if (!k.is_str()) throw pickle::TypeError(fn + ": keywords must be strings");
    std::size_t i = 0;
    for (const auto& p : params) {
      if (p.first == k.as_str()) break;
      ++i;
    }
    if (i == params.size()) throw pickle::TypeError(fn + " got an unexpected keyword argument '" + k.as_str() + "'");
    if (out[i]) throw pickle::TypeError(fn + " got multiple values for argument '" + k.as_str() + "'");
    out[i] = v;
  }
  std::vector<Value> bound;
  bound.reserve(params.size());
  std::size_t i = 0;
  for (const auto& p : params) {
    if (!out[i] && !p.second)
      throw pickle::TypeError(fn + " missing required argument: '" + std::string(p.first) + "'");
    bound.push_back(out[i] ? std::move(*out[i]) : *p.second);
    ++i;
  }
  return bound;
}

// -------------------------------------------------------------------------- Referent

std::string Referent::repr() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "<mp C++ referent at %p>", static_cast<const void*>(this));
  return buf;
}

Value Referent::getvalue() const {
  throw ValueError("this C++ referent cannot be copied to the client (override Referent::getvalue to allow it)");
}

// ----------------------------------------------------------------------------- Queue

namespace {
/// Python's truth value of a Value (`if block:`).
bool truthy(const Value& v) {
  switch (v.kind()) {
    case pickle::Kind::none: return false;
    case pickle::Kind::boolean: return v.as_bool();
    case pickle::Kind::integer: return v.as_int() != 0;
    case pickle::Kind::floating: return v.as_float() != 0.0;
    case pickle::Kind::str: return !v.as_str().empty();
    case pickle::Kind::bytes: return !v.as_bytes().empty();
    case pickle::Kind::tuple:
    case pickle::Kind::list: return !v.as_sequence().empty();
    case pickle::Kind::dict: return !v.as_dict().empty();
    case pickle::Kind::set:
    case pickle::Kind::frozenset: return !v.as_set().empty();
    default: return true;
  }
}

/// queue.Queue's timeout argument: None waits forever; a negative number is ValueError.
managed::Timeout timeout_of(const Value& t) {
  if (t.is_none()) return -1;
  if (!t.is_int() && !t.is_float() && !t.is_bool())
    throw pickle::TypeError("'timeout' must be a number or None, not " + t.type_name());
  double s = t.as_float();
  if (std::isnan(s)) throw ValueError("'timeout' must be a non-negative number");
  if (s < 0) throw ValueError("'timeout' must be a non-negative number");
  if (s >= 9.2e9) return -1;  // beyond int64 nanoseconds: as good as forever
  return static_cast<managed::Timeout>(s * 1e9);
}
}  // namespace

std::vector<std::string> Queue::exposed() const {
  return {"empty", "full", "get", "get_nowait", "join", "put", "put_nowait", "qsize", "task_done"};
}

Value Queue::call(const Call& c) {
  const std::string_view m = c.method;
  if (m == "put") {
    auto a = c.bind({{"item", std::nullopt}, {"block", Value(true)}, {"timeout", Value()}});
    bool block = truthy(a[1]);
    q_.put(std::move(a[0]), block, block ? timeout_of(a[2]) : 0);
    return {};
  }
  if (m == "get") {
    auto a = c.bind({{"block", Value(true)}, {"timeout", Value()}});
    bool block = truthy(a[0]);
    return q_.get(block, block ? timeout_of(a[1]) : 0);
  }
  if (m == "put_nowait") {
    auto a = c.bind({{"item", std::nullopt}});
    q_.put(std::move(a[0]), false, 0);
    return {};
  }
  if (m == "get_nowait") {
    (void)c.bind({});
    return q_.get(false, 0);
  }
  if (m == "qsize") {
    (void)c.bind({});
    return Value(q_.qsize());
  }
  if (m == "empty") {
    (void)c.bind({});
    return Value(q_.qsize() == 0);
  }
  if (m == "full") {
    (void)c.bind({});
    return Value(q_.maxsize() > 0 && q_.qsize() >= q_.maxsize());
  }
  if (m == "task_done") {
    (void)c.bind({});
    q_.task_done();
    return {};
  }
  if (m == "join") {
    (void)c.bind({});
    q_.join(-1);
    return {};
  }
  throw AttributeError("'Queue' object has no attribute '" + std::string(m) + "'");
}

std::string Queue::repr() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "<mp python::Queue object at %p (queue.Queue)>", static_cast<const void*>(this));
  return buf;
}

// ----------------------------------------------------------------------------- Proxy


Proxy::Proxy(const BaseManager& manager, const std::string& typeid_name) {
  if (manager.protocol() != Protocol::python)
    throw ValueError("python::Proxy('" + typeid_name +
                     "'): the manager speaks mp's native protocol; construct it with "
                     "{.protocol = mp::managers::Protocol::python} to talk to a CPython-protocol server");
  Value r = mm::python_server_call(manager.address(), manager.authkey(), "create", {Value(typeid_name)});
  if (!r.is_tuple() || r.as_tuple().size() != 2 || !r.as_tuple()[0].is_str() ||
      (!r.as_tuple()[1].is_tuple() && !r.as_tuple()[1].is_list()))
    throw CodecError("manager (python protocol): create('" + typeid_name +
                     "') did not return (ident, exposed): " + r.repr(200));
  std::vector<std::string> exposed;
  for (const Value& m : r.as_tuple()[1].as_sequence())
    if (m.is_str()) exposed.push_back(m.as_str());
  state_ = std::make_shared<mm::ProxyState>(mm::python_proxy_protocol(),
                                            Token{typeid_name, manager.address(), r.as_tuple()[0].as_str()},
                                            manager.authkey(), std::move(exposed));
}

const Token& Proxy::token() const {
  if (!state_) throw ValueError("python::Proxy: this proxy refers to no object (default-constructed)");
  return state_->token;
}

const std::vector<std::string>& Proxy::exposed() const {
  if (!state_) throw ValueError("python::Proxy: this proxy refers to no object (default-constructed)");
  return state_->exposed;
}

Value Proxy::callmethod(std::string_view method, std::vector<Value> args, pickle::Dict kwds) const {
  if (!state_) throw ValueError("python::Proxy: this proxy refers to no object (default-constructed)");
  return mm::python_dispatch(state_->link(), Value(state_->token.id), method, std::move(args), std::move(kwds));
}

}  // namespace managers::python
}  // namespace mp
