// mp/internal/managers/method.hpp — a proxy method described once: name and signature.
//
// Part of <mp/managers.hpp> (include that). A method of a managed referent is called by
// name over a socket: the client encodes a tuple of arguments, the server decodes it,
// calls, and encodes the result. Written as two strings and two signatures — one in the
// server's table, one in the client's proxy — the halves drift, and a mismatch shows only
// at run time as a decode error. So each method is one constexpr descriptor,
//
//   static constexpr mp::Method<"__getitem__", V(K)> getitem{};
//
// that both halves use: MethodTable::def(getitem, fn) refuses (static_assert) a function
// whose signature differs, and BaseProxy::call(getitem, k) returns V and converts its
// arguments to K, refusing what does not convert. The wire does not change: the name goes
// as a string, the arguments as the codec encoding of std::tuple<K>.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "mp/codec.hpp"
#include "mp/errors.hpp"

namespace mp {

namespace internal::manager {
/// A string literal usable as a template argument (a method's name in its descriptor).
template <std::size_t N>
struct MethodName {
  char chars[N]{};
  constexpr MethodName(const char (&s)[N]) { std::copy_n(s, N, chars); }  // NOLINT: implicit from a literal
  [[nodiscard]] constexpr std::string_view view() const { return {chars, N - 1}; }
};

/// An argument as the declared parameter type P: passed through when it already is one,
/// converted (a temporary that lives to the end of the call's full expression) otherwise.
template <class P, class Arg>
decltype(auto) as_parameter(const Arg& a) {
  if constexpr (std::is_same_v<std::decay_t<P>, Arg>) return (a);
  else return std::decay_t<P>(a);
}
}  // namespace internal::manager

/// The descriptor of one exposed method: `Method<"name", Ret(Args...)>`. Arguments and
/// result must be Transferable (mp::codec); parameters are by value on the wire.
template <internal::manager::MethodName Name, class Signature>
struct Method;

template <internal::manager::MethodName Name, class Ret, class... Args>
struct Method<Name, Ret(Args...)> {
  using result_type = Ret;
  using argument_types = std::tuple<std::decay_t<Args>...>;
  /// What goes on the wire as the method's name.
  [[nodiscard]] static constexpr std::string_view name() { return Name.view(); }
};

/// The methods a referent type exposes, by name. Built once per type from
/// Exposed<R>::methods(); its entries decode the arguments, call, and encode the result.
template <class R>
class MethodTable {
 public:
  using Fn = std::function<std::string(R&, std::string_view)>;

  /// Exposes `fn(referent, args...)` as the method `m` describes. `fn` must have exactly
  /// the descriptor's signature (with the referent first): a function pointer or a
  /// captureless lambda `[](R& r, Args... a) -> Ret`.
  template <internal::manager::MethodName Name, class Ret, class... A, class F>
  MethodTable& def(Method<Name, Ret(A...)> m, F fn) {
    static_assert(std::is_convertible_v<F, Ret (*)(R&, A...)>,
                  "MethodTable::def(method, fn): fn's signature differs from the method descriptor's: it must "
                  "be `Ret fn(R&, Args...)` exactly as Method<\"name\", Ret(Args...)> declares");
    return def(std::string(m.name()), static_cast<Ret (*)(R&, A...)>(fn));
  }

  /// Exposes `fn(referent, args...)` as `name` (for types without descriptors; mp's own
  /// referents use the form above). Arguments and result must be Transferable.
  template <class Ret, class... A>
  MethodTable& def(std::string name, Ret (*fn)(R&, A...)) {
    methods_[std::move(name)] = [fn](R& r, std::string_view args) -> std::string {
      auto tup = decode_args<std::decay_t<A>...>(args);
      if constexpr (std::is_void_v<Ret>) {
        std::apply([&](auto&... a) { fn(r, std::move(a)...); }, tup);
        return {};
      } else {
        return codec::encode(std::apply([&](auto&... a) -> Ret { return fn(r, std::move(a)...); }, tup));
      }
    };
    return *this;
  }

  /// Runs `method` on `r`. Throws mp::AttributeError for a name the table does not have.
  [[nodiscard]] std::string invoke(R& r, std::string_view method, std::string_view args) const {
    auto it = methods_.find(std::string(method));
    if (it == methods_.end())
      throw AttributeError("'" + std::string(method) + "' is not a method exposed by the referent");
    return it->second(r, args);
  }

  /// Encodes call arguments the way def() decodes them.
  template <class... A>
  static std::string encode_args(const A&... a) {
    if constexpr (sizeof...(A) == 0) return {};
    else return codec::encode(std::tuple<A...>(a...));
  }
  template <class... A>
  static std::tuple<A...> decode_args(std::string_view args) {
    if constexpr (sizeof...(A) == 0) {
      if (!args.empty()) throw CodecError("the method takes no arguments, but " + std::to_string(args.size()) + " bytes came");
      return {};
    } else {
      return codec::decode<std::tuple<A...>>(args);
    }
  }

 private:
  std::unordered_map<std::string, Fn> methods_;
};

}  // namespace mp
