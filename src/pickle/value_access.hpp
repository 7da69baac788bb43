// The pickle sources' access to a Value's storage: the encoder memoizes by node identity,
// the decoder builds and freezes nodes, and Value's accessors reach the node behind a kind.
// Private to src/pickle/ (Value befriends ValueAccess).
#pragma once

#include <memory>
#include <variant>

#include "mp/pickle.hpp"

namespace mp::pickle {

/// This thread's value comparisons: `steps` (each looks at one pair of values) in all, and
/// the most one top-level comparison took. Decoding compares the keys of sets and dicts; the
/// fuzz target and pickle_test check `largest` against O(size^2) (value.cpp says why it holds).
struct EqualityStats {
  std::uint64_t steps = 0;
  std::uint64_t largest = 0;
};
EqualityStats& equality_stats() noexcept;

struct ValueAccess {
  static Value::Storage& storage(Value& v) noexcept { return v.v_; }
  static const Value::Storage& storage(const Value& v) noexcept { return v.v_; }
  template <class Node>
  static Value make(std::shared_ptr<Node> n) {
    Value v;
    v.v_ = std::move(n);
    return v;
  }
  /// Identity of the shared node, or nullptr for scalars.
  static const void* node(const Value& v) noexcept {
    return std::visit(
        [](const auto& x) -> const void* {
          if constexpr (requires { x.get(); }) return x.get();
          else return nullptr;
        },
        v.v_);
  }
  static long use_count(const Value& v) noexcept {
    return std::visit(
        [](const auto& x) -> long {
          if constexpr (requires { x.use_count(); }) return x.use_count();
          else return 0;
        },
        v.v_);
  }
};

namespace internal {

template <class Node>
const Node& node_of(const Value& v) {
  return *std::get<std::shared_ptr<Node>>(ValueAccess::storage(v));
}

/// The node of `v`, copied first if any other Value shares it (copy-on-write).
template <class Node>
Node& unique_node(Value& v) {
  auto& p = std::get<std::shared_ptr<Node>>(ValueAccess::storage(v));
  if (p.use_count() != 1) p = std::make_shared<Node>(*p);
  return *p;
}

}  // namespace internal
}  // namespace mp::pickle
