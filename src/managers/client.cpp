// Client side of managers: links to a server, the ProxyState both protocols share
// (managers/proxy_state.hpp) with the native protocol's steps, and BaseProxy's calls.
#include <unistd.h>

#include <thread>

#include "managers/client.hpp"
#include "managers/proxy_state.hpp"
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

ProxyState::~ProxyState() {
  links_.clear();  // the server threads serving them see end of file and end
  if (protocol_.give_back && owner_ == self_pid()) protocol_.give_back(*this);
}

Link& ProxyState::link() {
  std::lock_guard g(mu_);
  if (owner_ != self_pid()) {
    // A forked child: take our own reference first (the inherited connections keep the
    // object alive until then), and only then drop our copies of the parent's.
    std::unique_ptr<Link> mine = protocol_.take_reference(*this);
    links_.clear();
    if (mine) links_[std::this_thread::get_id()] = std::move(mine);
    owner_ = self_pid();
  }
  auto& l = links_[std::this_thread::get_id()];
  if (!l) l = protocol_.open(*this);
  return *l;
}

void ProxyState::adopt(std::unique_ptr<Link> l) {
  std::lock_guard g(mu_);
  links_[std::this_thread::get_id()] = std::move(l);
}

const ProxyProtocol& native_proxy_protocol() noexcept {
  static const ProxyProtocol protocol{
      .open = [](const ProxyState& s) { return connect(s.token.address); },
      .take_reference =
          [](const ProxyState& s) {
            auto mine = connect(s.token.address);
            roundtrip(*mine, Request{{}, "incref", codec::encode(s.token.id)});
            return mine;
          },
      .give_back = nullptr,  // the server drops the reference when the first channel closes
  };
  return protocol;
}

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
  auto link = internal::manager::connect(t.address);
  internal::manager::roundtrip(*link, {{}, "incref", codec::encode(t.id)});
  auto s = std::make_shared<internal::manager::ProxyState>(internal::manager::native_proxy_protocol(), t);
  s->adopt(std::move(link));
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
  auto s = std::make_shared<internal::manager::ProxyState>(internal::manager::native_proxy_protocol(),
                                                           Token{std::move(type), address, std::move(ident)});
  s->adopt(std::move(link));
  return BaseProxy(std::move(s));
}

}  // namespace mp
