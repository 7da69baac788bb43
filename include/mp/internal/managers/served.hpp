// mp/internal/managers/served.hpp — what a manager server holds: a referent behind the
// method table of its type, and the program-wide table of types it can make.
//
// Part of <mp/managers.hpp> (include that). A type is known by its *typeid*, a string both
// sides derive from the same template (mp::Exposed<R>::name()), never by a function
// address: a master and a worker built as different programs still agree on what
// "Queue<i>" and its method "get" mean. The registry that holds served objects and counts
// their references is the servers' business (src/managers/registry.hpp).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <typeinfo>

#include "mp/internal/managers/method.hpp"

namespace mp {

/// Customisation point: how a referent type R is served. Specialise it for your own types
/// (BaseManager::register_) with
///   static std::string name();                 // its typeid, the same in every program
///   static constexpr mp::Method<"get", int(std::int64_t)> get{};  // each method, once
///   static void methods(MethodTable<R>& t);    // t.def(get, +[](R& r, std::int64_t i) -> int { ... })...
///   static constexpr bool serialized = true;   // calls run under a per-object mutex
/// and call them from the client as `proxy.call(Exposed<R>::get, i)`: a function or an
/// argument that does not match the descriptor is a compile error. The older string form,
/// `t.def("get", fn)` with `proxy.call<int>("get", i)`, still works (a mismatch then shows
/// at run time). `serialized = false` for referents that synchronise themselves and may
/// block (queues, locks): their methods then run concurrently, one per client thread.
template <class R>
struct Exposed;

namespace internal::manager {

/// A served object: a referent behind its method table.
class Object {
 public:
  virtual ~Object() = default;
  /// The typeid the object was exposed as ("dict<i,i>", "Queue<i>"...).
  [[nodiscard]] virtual const std::string& type_name() const noexcept = 0;
  /// Runs `method` on the referent with codec-encoded `args`; returns the codec-encoded
  /// result. Throws what the method throws; mp::AttributeError for an unknown method,
  /// mp::CodecError for arguments of the wrong types.
  virtual std::string call(std::string_view method, std::string_view args) = 0;
};

/// Makes an object from the codec-encoded constructor arguments of a create request.
using Factory = std::function<std::shared_ptr<Object>(std::string_view args)>;

/// Adds to the process-wide table of the typeids this program can serve (filled at
/// static initialisation by every Exposed type a proxy in this program refers to; the
/// server looks them up, managers/server.hpp).
void register_global_type(const std::string& name, Factory f);

/// A stable spelling of T for typeids: the ABI's type name (identical in every program
/// built by the same compiler, unlike function addresses).
template <class T>
std::string type_key() {
  return typeid(T).name();
}

template <class R>
const MethodTable<R>& method_table() {
  static const MethodTable<R> table = [] {
    MethodTable<R> t;
    Exposed<R>::methods(t);
    return t;
  }();
  return table;
}

template <class R>
class Served final : public Object {
 public:
  explicit Served(std::shared_ptr<R> r) : ref_(std::move(r)), name_(Exposed<R>::name()) {}
  const std::string& type_name() const noexcept override { return name_; }
  std::string call(std::string_view method, std::string_view args) override {
    if constexpr (Exposed<R>::serialized) {
      std::lock_guard g(mu_);
      return method_table<R>().invoke(*ref_, method, args);
    } else {
      return method_table<R>().invoke(*ref_, method, args);
    }
  }

 private:
  std::shared_ptr<R> ref_;
  std::string name_;
  std::mutex mu_;
};

/// Constructor arguments of a referent made by the Manager (m.dict<K,V>(init)...): R is
/// built from the decoded tuple.
template <class R, class... A>
Factory constructing_factory() {
  return [](std::string_view args) -> std::shared_ptr<Object> {
    auto tup = MethodTable<R>::template decode_args<A...>(args);
    auto r = std::apply([](auto&... a) { return std::make_shared<R>(std::move(a)...); }, tup);
    return std::make_shared<Served<R>>(std::move(r));
  };
}

/// Registers `R constructed from A...` in this program's global type table at static
/// initialisation, so a server forked from (or built from the same sources as) any program
/// that names the type can create it. ODR-use `registered` to instantiate.
template <class R, class... A>
struct AutoRegister {
  static std::string key() { return Exposed<R>::name() + "(" + (std::string{} + ... + (type_key<A>() + ",")) + ")"; }
  static inline const bool registered = (register_global_type(key(), constructing_factory<R, A...>()), true);
};

}  // namespace internal::manager
}  // namespace mp
