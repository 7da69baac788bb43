// Client side of managers: proxies' connections, references and remote calls.
#include <unistd.h>

#include <thread>

#include "managers/client.hpp"
#include "mp/internal/os.hpp"
#include "mp/managers.hpp"

namespace mp {
namespace internal::manager {
namespace {

std::mutex& registry_mu() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, std::string>& authkeys() {
  static std::map<std::string, std::string> keys;
  return keys;
}
std::map<std::string, ServerCore*>& inproc_servers() {
  static std::map<std::string, ServerCore*> servers;
  return servers;
}

constexpr std::string_view kInproc = "inproc:";

class InprocLink final : public Link {
 public:
  explicit InprocLink(ServerCore& core) : core_(core) {}
  ~InprocLink() override { core_.release(session_); }
  std::string roundtrip(std::string_view frame) override {
    std::string reply = core_.handle_frame(session_, frame, native_wire());
    if (reply.empty()) throw EOFError("manager: the server closed the connection (it rejected a malformed frame)");
    return reply;
  }

 private:
  ServerCore& core_;
  Session session_;
};

}  // namespace

void serve_inproc(const std::string& name, ServerCore& core) {
  std::lock_guard g(registry_mu());
  inproc_servers()[std::string(kInproc) + name] = &core;
}

void unserve_inproc(const std::string& name) {
  std::lock_guard g(registry_mu());
  inproc_servers().erase(std::string(kInproc) + name);
}

std::unique_ptr<Link> connect(const std::string& address) {
  if (address.starts_with(kInproc)) {
    std::lock_guard g(registry_mu());
    auto it = inproc_servers().find(address);
    if (it == inproc_servers().end())
      throw OSError(ECONNREFUSED, "manager: connect to " + address + " (no such in-process server)");
    return std::make_unique<InprocLink>(*it->second);
  }
  std::string key;
  {
    std::lock_guard g(registry_mu());
    if (auto it = authkeys().find(address); it != authkeys().end()) key = it->second;
  }
  return connect_socket(address, key);
}

std::string roundtrip(Link& link, const Request& req) {
  Reply rep = native_wire().decode_reply(link.roundtrip(native_wire().encode(req)));
  if (rep.kind != ReplyKind::value) raise_reply_error(rep);
  return std::move(rep.body);
}

/// The shared state behind copies of one proxy in one process.
struct ProxyState {
  Token token;
  pid_t pid = internal::self_pid();
  std::mutex mu;
  /// One connection per client thread. The first one made holds this process's reference
  /// to the object (the server drops it when that connection closes).
  std::unordered_map<std::thread::id, std::unique_ptr<Link>> links;

  Link& link() {
    std::lock_guard g(mu);
    if (pid != internal::self_pid()) rebind_after_fork();  // cached pid: no syscall per call
    auto& l = links[std::this_thread::get_id()];
    if (!l) l = connect(token.address);
    return *l;
  }

  /// In a forked child: the inherited connections are the parent's (their bytes would mix
  /// with its frames). Take our own reference first — the inherited sockets keep the
  /// object alive until then — and only then close our copies of them.
  void rebind_after_fork() {
    auto mine = connect(token.address);
    roundtrip(*mine, Request{{}, "incref", codec::encode(token.id)});
    links.clear();
    links[std::this_thread::get_id()] = std::move(mine);
    pid = internal::self_pid();
  }
};

}  // namespace internal::manager

void set_authkey(const std::string& address, std::string authkey) {
  std::lock_guard g(internal::manager::registry_mu());
  internal::manager::authkeys()[address] = std::move(authkey);
}

const Token& BaseProxy::token() const {
  if (!state_) throw ValueError("proxy: this proxy refers to no object (default-constructed or moved from)");
  return state_->token;
}

std::string BaseProxy::call_raw(std::string_view method, std::string args) const {
  if (!state_) throw ValueError("proxy: this proxy refers to no object (default-constructed or moved from)");
  auto& link = state_->link();
  return internal::manager::roundtrip(link, {state_->token.id, std::string(method), std::move(args)});
}

void BaseProxy::attach(const Token& t) {
  auto s = std::make_shared<internal::manager::ProxyState>();
  s->token = t;
  auto link = internal::manager::connect(t.address);
  internal::manager::roundtrip(*link, {{}, "incref", codec::encode(t.id)});
  s->links[std::this_thread::get_id()] = std::move(link);
  state_ = std::move(s);
}

void BaseProxy::check_typeid(const std::string& expected) const {
  if (token().typeid_name != expected)
    throw ValueError("proxy: the object is a '" + token().typeid_name + "', not the '" + expected +
                     "' this proxy type expects (the two programs registered different types under one name)");
}

BaseProxy BaseProxy::create(const std::string& address, const std::string& typeid_key, std::string args) {
  auto link = internal::manager::connect(address);
  auto [ident, type] = codec::decode<std::pair<std::string, std::string>>(internal::manager::roundtrip(
      *link, {{}, "create", codec::encode(std::pair<std::string, std::string>(typeid_key, std::move(args)))}));
  auto s = std::make_shared<internal::manager::ProxyState>();
  s->token = Token{std::move(type), address, std::move(ident)};
  s->links[std::this_thread::get_id()] = std::move(link);
  return BaseProxy(std::move(s));
}

}  // namespace mp
