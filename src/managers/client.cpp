// Client side of managers: links to a server, the ProxyState both protocols share
// (managers/proxy_state.hpp) with the native protocol's steps, and BaseProxy's calls.
#include <pthread.h>
#include <unistd.h>

#include <thread>

#include "managers/client.hpp"
#include "process/internal.hpp"
#include "managers/proxy_state.hpp"
#include "mp/internal/os.hpp"
#include "mp/managers.hpp"

namespace mp {
namespace internal::manager {
namespace {

/// Guards the address maps below. Held only around map operations, and taken by an
/// atfork prepare handler, so no other thread holds it when this process forks: a child's
/// first connect() never waits for a lock copied locked, nor reads a map mid-update.
std::mutex& registry_mu() {
  static std::mutex* mu = [] {
    auto* m = new std::mutex;  // leaked: connect() may run from static destructors
    ::pthread_atfork([] { registry_mu().lock(); }, [] { registry_mu().unlock(); }, [] { registry_mu().unlock(); });
    return m;
  }();
  return *mu;
}
std::map<std::string, std::string>& authkeys() {
  static std::map<std::string, std::string> keys;
  return keys;
}

/// A child the fork server starts knows the authkeys this process knows, as a forked child
/// does (and as Python hands a spawned child its authkey): proxies passed to it connect.
void save_authkeys(std::string& out) {
  std::lock_guard g(registry_mu());
  put_raw(out, static_cast<std::uint32_t>(authkeys().size()));
  for (const auto& [address, key] : authkeys()) {
    put_bytes(out, address);
    put_bytes(out, key);
  }
}
void load_authkeys(std::string_view in) {
  CallReader r(in, kServerCallErrors);
  auto n = r.raw<std::uint32_t>();
  std::lock_guard g(registry_mu());
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string address(r.field());
    authkeys().insert_or_assign(std::move(address), std::string(r.field()));
  }
}
[[maybe_unused]] const bool g_authkeys_inherited = (inherit_in_served_children(save_authkeys, load_authkeys), true);
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
  Local* l = local_.load(std::memory_order_acquire);
  const bool holds = l->pid == self_pid() && l->reference.load(std::memory_order_acquire) == Local::kHeld;
  close_channels(l);  // the server threads serving ours see end of file; copies of a parent's just close
  if (holds && protocol_.give_back) protocol_.give_back(*this);
  while (l) {
    Local* up = l->inherited;
    delete l;
    l = up;
  }
}

ProxyState::Local& ProxyState::local() {
  Local* l = local_.load(std::memory_order_acquire);
  while (l->pid != self_pid()) {  // a forked child's first call: no lock, nothing of the parent's used
    auto* fresh = new Local(/*holds_reference=*/false, l);
    if (local_.compare_exchange_strong(l, fresh, std::memory_order_acq_rel, std::memory_order_acquire))
      return *fresh;
    delete fresh;  // another thread of this process installed one first: `l` is now that one
  }
  return *l;
}

void ProxyState::take_reference(Local& me) {
  int none = Local::kNone;
  if (!me.reference.compare_exchange_strong(none, Local::kTaking, std::memory_order_acq_rel)) return;
  std::unique_ptr<Link> taker;
  try {
    taker = protocol_.take_reference(*this);
  } catch (...) {
    me.reference.store(Local::kNone, std::memory_order_release);  // the next call tries again
    throw;
  }
  if (taker) {
    bool has_own = false;
    for (Channel* c = me.channels.load(std::memory_order_acquire); c; c = c->next)
      has_own = has_own || c->thread == std::this_thread::get_id();
    if (has_own)
      me.reference_link = std::move(taker);
    else
      (void)push(me, std::move(taker));
  }
  me.reference.store(Local::kHeld, std::memory_order_release);
  close_channels(me.inherited);  // only now: until here they kept the object alive
}

Link& ProxyState::push(Local& me, std::unique_ptr<Link> l) {
  auto* c = new Channel{std::this_thread::get_id(), std::move(l), me.channels.load(std::memory_order_relaxed)};
  while (!me.channels.compare_exchange_weak(c->next, c, std::memory_order_release, std::memory_order_relaxed)) {
  }
  return *c->link;
}

void ProxyState::close_channels(Local* l) noexcept {
  for (; l; l = l->inherited) {
    Channel* c = l->channels.exchange(nullptr, std::memory_order_acq_rel);
    while (c) {
      Channel* next = c->next;
      delete c;
      c = next;
    }
    l->reference_link.reset();
  }
}

Link& ProxyState::link() {
  Local& me = local();
  if (me.reference.load(std::memory_order_acquire) != Local::kHeld) take_reference(me);
  const auto self = std::this_thread::get_id();
  for (Channel* c = me.channels.load(std::memory_order_acquire); c; c = c->next)
    if (c->thread == self) return *c->link;
  return push(me, protocol_.open(*this));  // opened without any lock held
}

void ProxyState::adopt(std::unique_ptr<Link> l) { (void)push(local(), std::move(l)); }

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
