// mp/internal/reflect.hpp — the fields of a plain struct, without writing serialize().
//
// An aggregate's fields are counted by brace-initialising it from N values that convert to
// anything, and reached through a structured binding of that many names (the technique of
// Boost.PFR, which Debian 12's Boost 1.74 does not have), each value in its own braces so
// that a C-array field counts once. Supported: default-constructible aggregates without
// base classes or bit-fields, with at most kMaxFields fields, each of which can be
// copy-initialised from a value of its own type (every standard type can). mp::codec uses it to
// encode such structs field by field and to check that none of their fields is an
// address (issue 17).
#pragma once

#include <cstddef>
#include <chrono>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

namespace mp::internal::reflect {

inline constexpr std::size_t kMaxFields = 24;

/// Initialises one field of T in `T{{f0}, {f1}, ...}`: each in its own braces, so that a
/// C-array field takes one value (brace elision would miscount it). Three kinds, each
/// converting to one family of types only, so that no list-initialisation is ambiguous
/// and no constructor template of the field (std::chrono::duration's from a number,
/// std::string's from a string_view-like) is a better match than copying: scalars,
/// classes (copy-constructed), addresses (pointer fields, arrays of pointers; also what
/// initialises a std::string), durations. Only used unevaluated.
template <class T>
struct ScalarField {
  template <class U>
    requires(std::is_arithmetic_v<U> || std::is_enum_v<U>)
  operator U() const;  // NOLINT(google-explicit-constructor)
};
template <class U>
struct is_duration : std::false_type {};
template <class R, class P>
struct is_duration<std::chrono::duration<R, P>> : std::true_type {};
template <class T>
struct ClassField {
  template <class U>
    requires(std::is_class_v<U> && !std::is_same_v<std::remove_cv_t<U>, T> && !is_duration<U>::value)
  operator U() const;  // NOLINT(google-explicit-constructor)
};
/// Durations apart: a time_point's explicit constructor from one would otherwise compete
/// with its copy (GCC 12 finds that ambiguous).
template <class T>
struct DurationField {
  template <class U>
    requires is_duration<U>::value
  operator U() const;  // NOLINT(google-explicit-constructor)
};
template <class T>
struct AddressField {
  template <class U>
    requires(std::is_pointer_v<U> || std::is_member_pointer_v<U> || std::is_null_pointer_v<U>)
  operator U() const;  // NOLINT(google-explicit-constructor)
};

/// The kind chosen for each field so far, two bits per field.
template <class T, std::uint64_t Kinds, std::size_t I>
using FieldAt = std::conditional_t<
    ((Kinds >> (2 * I)) & 3u) == 0, ScalarField<T>,
    std::conditional_t<((Kinds >> (2 * I)) & 3u) == 1, ClassField<T>,
                       std::conditional_t<((Kinds >> (2 * I)) & 3u) == 2, AddressField<T>, DurationField<T>>>>;

template <class T, std::uint64_t Kinds, std::size_t... I>
constexpr bool brace_constructible(std::index_sequence<I...>) {
  return requires { T{{FieldAt<T, Kinds, I>{}}...}; };
}

/// Counts fields one at a time, choosing for each the first kind that initialises it.
template <class T, std::size_t N = 0, std::uint64_t Kinds = 0>
constexpr std::size_t count_fields() {
  constexpr auto with = [](std::uint64_t kind) { return Kinds | (kind << (2 * N)); };
  if constexpr (N > kMaxFields) {
    return N;
  } else if constexpr (brace_constructible<T, with(0)>(std::make_index_sequence<N + 1>{})) {
    return count_fields<T, N + 1, with(0)>();
  } else if constexpr (brace_constructible<T, with(1)>(std::make_index_sequence<N + 1>{})) {
    return count_fields<T, N + 1, with(1)>();
  } else if constexpr (brace_constructible<T, with(2)>(std::make_index_sequence<N + 1>{})) {
    return count_fields<T, N + 1, with(2)>();
  } else if constexpr (brace_constructible<T, with(3)>(std::make_index_sequence<N + 1>{})) {
    return count_fields<T, N + 1, with(3)>();
  } else {
    return N;
  }
}

/// A struct whose fields can be reached: an aggregate class, not empty, at most kMaxFields
/// fields (see above).
template <class T>
concept Reflectable = std::is_class_v<T> && std::is_aggregate_v<T> && !std::is_empty_v<T> &&
                      !std::is_polymorphic_v<T> && std::is_default_constructible_v<T> &&  // no reference field
                      (count_fields<T>() >= 1) && (count_fields<T>() <= kMaxFields);

/// The fields of `t` as a tuple of references. If the compiler stops here with "only N names
/// provided for structured binding", a field of the struct could not be initialised from a
/// value of its own type by any of the kinds above (a type with an explicit constructor
/// from another class, say): give the struct a `serialize` function (see mp/codec.hpp).
template <class T>
  requires Reflectable<std::remove_const_t<T>>
constexpr auto fields(T& t) noexcept {
  constexpr std::size_t n = count_fields<std::remove_const_t<T>>();
  // clang-format off
  if constexpr (n == 1) { auto& [a] = t; return std::tie(a); }
  else if constexpr (n == 2) { auto& [a, b] = t; return std::tie(a, b); }
  else if constexpr (n == 3) { auto& [a, b, c] = t; return std::tie(a, b, c); }
  else if constexpr (n == 4) { auto& [a, b, c, d] = t; return std::tie(a, b, c, d); }
  else if constexpr (n == 5) { auto& [a, b, c, d, e] = t; return std::tie(a, b, c, d, e); }
  else if constexpr (n == 6) { auto& [a, b, c, d, e, f] = t; return std::tie(a, b, c, d, e, f); }
  else if constexpr (n == 7) { auto& [a, b, c, d, e, f, g] = t; return std::tie(a, b, c, d, e, f, g); }
  else if constexpr (n == 8) { auto& [a, b, c, d, e, f, g, h] = t; return std::tie(a, b, c, d, e, f, g, h); }
  else if constexpr (n == 9) { auto& [a, b, c, d, e, f, g, h, i] = t; return std::tie(a, b, c, d, e, f, g, h, i); }
  else if constexpr (n == 10) { auto& [a, b, c, d, e, f, g, h, i, j] = t; return std::tie(a, b, c, d, e, f, g, h, i, j); }
  else if constexpr (n == 11) { auto& [a, b, c, d, e, f, g, h, i, j, k] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k); }
  else if constexpr (n == 12) { auto& [a, b, c, d, e, f, g, h, i, j, k, l] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l); }
  else if constexpr (n == 13) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m); }
  else if constexpr (n == 14) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o); }
  else if constexpr (n == 15) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p); }
  else if constexpr (n == 16) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q); }
  else if constexpr (n == 17) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r); }
  else if constexpr (n == 18) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s); }
  else if constexpr (n == 19) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u); }
  else if constexpr (n == 20) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v); }
  else if constexpr (n == 21) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v, w] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v, w); }
  else if constexpr (n == 22) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v, w, x] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v, w, x); }
  else if constexpr (n == 23) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v, w, x, y] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v, w, x, y); }
  else { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v, w, x, y, z] = t; return std::tie(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, s, u, v, w, x, y, z); }
  // clang-format on
}

/// The type of field I of T (without reference).
template <class T, std::size_t I>
using Field = std::remove_reference_t<std::tuple_element_t<I, decltype(fields(std::declval<T&>()))>>;

/// Whether `test.template operator()<I, Field<T, I>>()` holds for every field I of T:
/// `all_fields<T>([]<std::size_t I, class F>() { return ...; })`.
template <class T, class Test>
constexpr bool all_fields(Test test) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return (test.template operator()<I, Field<T, I>>() && ...);
  }(std::make_index_sequence<count_fields<T>()>{});
}

}  // namespace mp::internal::reflect
