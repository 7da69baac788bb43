// mp/internal/managers/proxy.hpp — the client half: Token, BaseProxy, Proxy<R>.
//
// Part of <mp/managers.hpp> (include that). A proxy holds a shared ProxyState (src/
// managers/proxy_state.hpp: the token, one connection per client thread, the reference
// this process holds) and turns each call into one request on its thread's connection.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "mp/internal/managers/method.hpp"
#include "mp/internal/managers/served.hpp"

namespace mp {

namespace internal::manager {
struct ProxyState;
}  // namespace internal::manager

/// What identifies a managed object (Python's Token): its typeid, the server's address
/// and the object's id there. Transferable.
struct Token {
  std::string typeid_name;
  std::string address;
  std::string id;
  template <class A>
  void serialize(A& ar) {
    ar(typeid_name, address, id);
  }
  bool operator==(const Token&) const = default;
};

/// Records the authkey for connections to `address` made by this process (and the
/// children it forks later). Manager and BaseManager do it for their own address.
void set_authkey(const std::string& address, std::string authkey);

/// A reference to a managed object (Python's BaseProxy). Copies share one reference and
/// one set of connections; copies in a forked child take their own. Transferable (encodes
/// as its Token). A default-constructed proxy refers to nothing (calls raise ValueError).
class BaseProxy {
 public:
  BaseProxy() = default;
  [[nodiscard]] const Token& token() const;
  [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }
  /// Two proxies are equal when they refer to the same managed object (same token), as
  /// list.index()/count()/remove() on a list of proxies need; empty proxies are equal.
  friend bool operator==(const BaseProxy& a, const BaseProxy& b) {
    if (!a.state_ || !b.state_) return !a.state_ && !b.state_;
    return a.token() == b.token();
  }

  /// Calls `method` on the referent by name (Python's _callmethod) and decodes its result
  /// as Ret: for types exposed with string names (MethodTable::def("name", fn)).
  template <class Ret = void, class... A>
  Ret call(std::string_view method, const A&... args) const {
    std::string body = call_raw(method, MethodTable<int>::encode_args(args...));
    if constexpr (!std::is_void_v<Ret>) return codec::decode<Ret>(body);
  }
  /// Calls the method `m` describes (mp's typed proxies use this form): the arguments are
  /// converted to its declared parameter types, the result decoded as its declared type.
  /// A wrong number of arguments, or one that does not convert, is a compile error.
  template <internal::manager::MethodName Name, class Ret, class... P, class... A>
  Ret call(Method<Name, Ret(P...)> m, const A&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "proxy.call(method, args...): the number of arguments differs from "
                                                "the method descriptor's signature");
    static_assert((std::is_convertible_v<const A&, std::decay_t<P>> && ...),
                  "proxy.call(method, args...): an argument does not convert to the parameter type the method "
                  "descriptor declares");
    std::string body = call_raw(m.name(), MethodTable<int>::template encode_args<std::decay_t<P>...>(
                                              internal::manager::as_parameter<P>(args)...));
    if constexpr (!std::is_void_v<Ret>) return codec::decode<Ret>(body);
  }
  /// The raw form: codec-encoded argument tuple in, codec-encoded result out.
  std::string call_raw(std::string_view method, std::string args) const;

  /// Asks the server at `address` to create an object of `typeid_key` from the
  /// codec-encoded constructor arguments `args` (Python's BaseManager._create), and
  /// returns the proxy holding its first reference. Throws mp::ValueError for a typeid the
  /// server does not know, mp::AuthenticationError / mp::OSError when it cannot connect.
  static BaseProxy create(const std::string& address, const std::string& typeid_key, std::string args);

  template <class A>
  void save(A& ar) const {
    ar(token());
  }
  template <class A>
  void load(A& ar) {
    Token t;
    ar(t);
    attach(t);
  }

 protected:
  explicit BaseProxy(std::shared_ptr<internal::manager::ProxyState> s) noexcept : state_(std::move(s)) {}
  /// Takes a new reference to the object `t` names (connects and increfs).
  void attach(const Token& t);
  /// Throws mp::ValueError unless the token's typeid is `expected`.
  void check_typeid(const std::string& expected) const;

 private:
  friend class BaseManager;
  std::shared_ptr<internal::manager::ProxyState> state_;
};

/// A typed proxy for any exposed referent R: call<Ret>("method", args...).
template <class R>
class Proxy : public BaseProxy {
 public:
  using referent_type = R;
  Proxy() = default;
  explicit Proxy(BaseProxy p) : BaseProxy(std::move(p)) { check_typeid(Exposed<R>::name()); }
  template <class A>
  void load(A& ar) {
    BaseProxy::load(ar);
    check_typeid(Exposed<R>::name());
  }
  template <class A>
  void save(A& ar) const {
    BaseProxy::save(ar);
  }
};

namespace internal::manager {
/// Creates a referent of P's type on the server at `address`, constructed from `args`
/// (which also selects the constructor: the typeid key names their types).
template <class P, class... A>
P create_proxy(const std::string& address, const A&... args) {
  using R = typename P::referent_type;
  (void)AutoRegister<R, A...>::registered;
  return P(BaseProxy::create(address, AutoRegister<R, A...>::key(), MethodTable<R>::encode_args(args...)));
}
}  // namespace internal::manager

}  // namespace mp
