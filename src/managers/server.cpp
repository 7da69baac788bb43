// Manager server core (native protocol): server calls, reference counts per session, dispatch.
#include "mp/codec.hpp"
#include "managers/server.hpp"
#include "mp/managers.hpp"
#include "mp/process.hpp"

namespace mp::internal::manager {
namespace {

std::mutex& global_mu() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, Factory>& global_types() {
  static std::map<std::string, Factory> types;
  return types;
}

}  // namespace

void register_global_type(const std::string& name, Factory f) {
  std::lock_guard g(global_mu());
  global_types().emplace(name, std::move(f));
}

Factory find_global_type(const std::string& name) {
  std::lock_guard g(global_mu());
  auto it = global_types().find(name);
  return it == global_types().end() ? Factory{} : it->second;
}

ServerCore::ServerCore(std::map<std::string, Factory> callables) : callables_(std::move(callables)) {}

void ServerCore::release(Session& s) noexcept { objects_.release(s); }

std::size_t ServerCore::number_of_objects() const { return objects_.size(); }

bool ServerCore::shutdown_requested() const noexcept {
  std::lock_guard g(mu_);
  return shutdown_;
}

Reply ServerCore::dispatch_server(Session& s, const Request& req) {
  const std::string& m = req.method;
  if (m == "create") {
    auto [typeid_name, ctor_args] = codec::decode<std::pair<std::string, std::string>>(req.args);
    Factory f;
    if (auto it = callables_.find(typeid_name); it != callables_.end()) f = it->second;
    if (!f) f = find_global_type(typeid_name);
    if (!f)
      throw ValueError("manager: unknown typeid '" + typeid_name +
                       "': register it on the server (BaseManager::register_) or use a proxy type this server's "
                       "program also uses");
    std::shared_ptr<Object> obj = f(ctor_args);
    if (!obj) throw ValueError("manager: the callable registered as '" + typeid_name + "' returned nothing");
    std::string ident = objects_.add_numbered(obj, &s);
    return Reply::value(codec::encode(std::pair<std::string, std::string>(ident, obj->type_name())));
  }
  if (m == "incref") {
    auto ident = codec::decode<std::string>(req.args);
    if (!objects_.incref(ident, &s)) throw KeyError("manager: incref of unknown object '" + ident + "'");
    return Reply::value({});
  }
  if (m == "decref") {
    // An object already gone (its other holders' sessions ended) needs no decref.
    auto ident = codec::decode<std::string>(req.args);
    if (objects_.decref(ident, &s) == ObjectRegistry<Object>::Decref::not_held)
      throw KeyError("manager: decref of '" + ident + "', which this connection holds no reference to");
    return Reply::value({});
  }
  if (m == "dummy") return Reply::value({});
  if (m == "number_of_objects") return Reply::value(codec::encode(std::uint64_t{number_of_objects()}));
  // Not in CPython: how many references the connections hold. A connection's references go
  // only when the server has read it to its end, so tests use it to know that every
  // request a killed client sent has been handled.
  if (m == "number_of_references") return Reply::value(codec::encode(objects_.references()));
  if (m == "shutdown") {
    bool first;
    {
      std::lock_guard g(mu_);
      first = !shutdown_;
      shutdown_ = true;
    }
    if (first && on_shutdown) on_shutdown();
    return Reply::value({});
  }
  throw AttributeError("manager: the server has no method '" + m + "'");
}

Reply ServerCore::handle(Session& s, const Request& req) noexcept {
  try {
    try {
      if (req.ident.empty()) return dispatch_server(s, req);
      std::shared_ptr<Object> obj = objects_.find(req.ident);
      if (!obj)
        throw KeyError("manager: no object with id '" + req.ident + "' (it was released, or the id is forged)");
      return Reply::value(obj->call(req.method, req.args));
    } catch (const std::exception& e) {
      return Reply::error(error_type_name(e), e.what());
    } catch (const SystemExit&) {
      return Reply{ReplyKind::traceback, {}, "the method called mp::exit() inside the manager server"};
    } catch (...) {
      return Reply{ReplyKind::traceback, {}, "the method threw a non-std::exception"};
    }
  } catch (...) {  // building the reply itself ran out of memory
    return Reply{ReplyKind::traceback, {}, {}};
  }
}

std::string ServerCore::handle_frame(Session& s, std::string_view frame, const WireCodec& wire) noexcept {
  Request req;
  try {
    req = wire.decode_request(frame);
  } catch (...) {
    return {};
  }
  Reply rep = handle(s, req);
  try {
    return wire.encode(rep);
  } catch (...) {
    return {};
  }
}

}  // namespace mp::internal::manager
