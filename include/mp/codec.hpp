// mp/codec.hpp — how values cross process boundaries (Python's pickle, for C++ types).
//
// Everything that moves a value between processes (Connection, Queue, Pool, Manager)
// encodes it with mp::codec. A type is *transferable* when it is
//   - trivially copyable and holds no address (ints, doubles, enums, std::array of those,
//     plain structs of those): copied with memcpy; or
//   - std::string / std::vector of such elements: copied as raw bytes; or
//   - a plain struct (an aggregate: no constructors, no base class) whose fields are all
//     transferable: encoded field by field, no code to write:
//
//       struct Order { std::string item; std::vector<double> prices; Point where; };
//       std::string bytes = mp::codec::encode(Order{"tea", {1.5}, {3, 4}});
//       Order o = mp::codec::decode<Order>(bytes);
//
//   - serializable by cereal (https://uscilab.github.io/cereal/): every standard container,
//     std::optional/variant/tuple/pair, and any user type with a `serialize` function
//     (`template <class A> void serialize(A& ar) { ar(item, qty); }`), which takes
//     precedence over the field-by-field encoding.
//
// What may NOT travel: an address means nothing in another process, so raw pointers,
// references, std::string_view, std::span, and structs holding any of them are refused —
// send std::string and std::vector instead. A trivially copyable class that is not an
// aggregate (it has constructors or private fields) cannot be looked into: give it a
// serialize function, or declare it address-free with
// `template <> inline constexpr bool mp::is_pointer_free<MyType> = true;`.
//
// Using a non-transferable type is a compile-time error (the `mp::Transferable` concept);
// for a struct, the error names the first field that cannot travel (its position and type,
// in the `FieldCheck<Struct, position, FieldType>` the compiler shows).
// Decoding never trusts its input: truncated data, trailing garbage and length fields
// larger than the remaining input raise mp::CodecError instead of allocating or crashing.
// The encoding is native-endian and meant for processes of the same build, not storage.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <chrono>
#include <complex>
#include <optional>

#include "mp/errors.hpp"
#include "mp/internal/reflect.hpp"

namespace mp {
/// Declares a trivially copyable class that is not an aggregate (so mp::codec cannot look
/// at its fields) to hold no address, so that it may be copied to another process.
template <class T>
inline constexpr bool is_pointer_free = false;
}  // namespace mp

namespace mp::internal {

/// cereal output archive that appends to a std::string (no iostream on the hot path).
class OutArchive : public cereal::OutputArchive<OutArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit OutArchive(std::string& out) : OutputArchive(this), out_(out) {}
  void save_binary(const void* data, std::size_t size) { out_.append(static_cast<const char*>(data), size); }

 private:
  std::string& out_;
};

/// cereal input archive over a byte range that refuses to read past its end and refuses
/// any length field larger than the bytes that remain (so hostile input cannot make it
/// allocate gigabytes).
class InArchive : public cereal::InputArchive<InArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit InArchive(std::string_view in) : InputArchive(this), p_(in.data()), end_(in.data() + in.size()) {}
  void load_binary(void* data, std::size_t size) {
    if (size == 0) return;  // an empty vector's data() may be null: memcpy(nullptr, p, 0) is UB
    if (size > remaining()) throw CodecError("codec: truncated input (wanted " + std::to_string(size) +
                                             " more bytes, have " + std::to_string(remaining()) + ")");
    std::memcpy(data, p_, size);
    p_ += size;
  }
  void check_size(std::uint64_t n) const {
    if (n > remaining())
      throw CodecError("codec: length field " + std::to_string(n) + " exceeds the " + std::to_string(remaining()) +
                       " bytes left: the data is corrupt or not of the expected type");
  }
  [[nodiscard]] std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

 private:
  const char* p_;
  const char* end_;
};

template <class T>
  requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const T& t) { ar.save_binary(std::addressof(t), sizeof(t)); }
template <class T>
  requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, T& t) {
  if constexpr (std::is_same_v<T, bool>) {
    // A bool's object representation must be 0 or 1; copying any other byte into it is UB.
    unsigned char b = 0;
    ar.load_binary(&b, 1);
    if (b > 1) throw CodecError("codec: byte " + std::to_string(b) + " is not a bool (0 or 1): the data is corrupt");
    t = b != 0;
  } else {
    ar.load_binary(std::addressof(t), sizeof(t));
  }
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(OutArchive& ar, cereal::NameValuePair<T>& t) { ar(t.value); }
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(InArchive& ar, cereal::NameValuePair<T>& t) { ar(t.value); }
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const cereal::SizeTag<T>& t) {
  auto n = static_cast<std::uint64_t>(t.size);
  ar.save_binary(&n, sizeof n);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, cereal::SizeTag<T>& t) {
  std::uint64_t n = 0;
  ar.load_binary(&n, sizeof n);
  ar.check_size(n);
  t.size = static_cast<std::remove_reference_t<T>>(n);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const cereal::BinaryData<T>& bd) { ar.save_binary(bd.data, bd.size); }
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, cereal::BinaryData<T>& bd) { ar.load_binary(bd.data, bd.size); }

template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};
template <class T>
struct is_std_pair : std::false_type {};
template <class A, class B>
struct is_std_pair<std::pair<A, B>> : std::true_type {};
template <class T>
struct is_std_optional : std::false_type {};
template <class T>
struct is_std_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_chrono_value : reflect::is_duration<T> {};
template <class C, class D>
struct is_chrono_value<std::chrono::time_point<C, D>> : std::true_type {};

/// True when no part of a T is an address (pointer, reference, member pointer), as far as
/// can be seen: scalars, arrays and standard wrappers of such, aggregates whose fields are
/// such, empty classes, and classes declared mp::is_pointer_free. std::string_view,
/// std::span and other classes that cannot be looked into are not.
template <class T>
constexpr bool pointer_free() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_reference_v<T> || std::is_pointer_v<U> || std::is_member_pointer_v<U> ||
                std::is_null_pointer_v<U>) {
    return false;
  } else if constexpr (std::is_arithmetic_v<U> || std::is_enum_v<U>) {
    return true;
  } else if constexpr (std::is_array_v<U>) {
    return pointer_free<std::remove_extent_t<U>>();
  } else if constexpr (mp::is_pointer_free<U> || (std::is_empty_v<U> && std::is_trivially_copyable_v<U>)) {
    return true;
  } else if constexpr (is_std_array<U>::value || is_std_optional<U>::value) {
    return pointer_free<typename U::value_type>();
  } else if constexpr (is_std_pair<U>::value) {
    return pointer_free<typename U::first_type>() && pointer_free<typename U::second_type>();
  } else if constexpr (is_chrono_value<U>::value) {
    return true;  // a count of ticks
  } else if constexpr (std::is_same_v<U, std::complex<float>> || std::is_same_v<U, std::complex<double>> ||
                       std::is_same_v<U, std::complex<long double>>) {
    return true;
  } else if constexpr (reflect::Reflectable<U>) {
    return reflect::all_fields<U>([]<std::size_t, class F>() { return pointer_free<F>(); });
  } else {
    return false;
  }
}

template <class T>
struct is_byte_vector : std::false_type {};
template <class E, class A>
struct is_byte_vector<std::vector<E, A>>
    : std::bool_constant<std::is_trivially_copyable_v<E> && pointer_free<E>()> {};

/// An archive of no namespace mp declares anything for: finds only a type's own
/// (member, or found through the type's own namespace) cereal functions.
namespace probe {
struct Archive {};
}  // namespace probe
template <class T>
concept HasOwnSerialization = requires(probe::Archive& a, T& t) { t.serialize(a); } ||
                              requires(probe::Archive& a, T& t) { t.save(a); } ||
                              requires(probe::Archive& a, T& t) { t.load(a); } ||
                              requires(probe::Archive& a, T& t) { serialize(a, t); } ||
                              requires(probe::Archive& a, T& t) { save(a, t); } ||
                              requires(probe::Archive& a, T& t) { load(a, t); };

/// A plain struct mp::codec encodes field by field (issue 17): an aggregate it can look
/// into, without serialization of its own (std::array is cereal's).
template <class T>
concept FieldWise = reflect::Reflectable<T> && !is_std_array<T>::value && !HasOwnSerialization<T>;

template <class Archive, class T>
  requires(std::is_same_v<Archive, OutArchive> || std::is_same_v<Archive, InArchive>) && FieldWise<T>
void CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, T& t) {
  std::apply([&](auto&... f) { ar(f...); }, reflect::fields(t));
}

}  // namespace mp::internal

CEREAL_REGISTER_ARCHIVE(mp::internal::OutArchive)
CEREAL_REGISTER_ARCHIVE(mp::internal::InArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(mp::internal::InArchive, mp::internal::OutArchive)

namespace mp {

/// Values of T can be copied byte for byte: trivially copyable, and no part of them is an
/// address (see mp::is_pointer_free for classes mp::codec cannot look into).
template <class T>
concept TriviallyTransferable = std::is_trivially_copyable_v<T> && internal::pointer_free<T>();

namespace internal {
template <class T>
constexpr bool transferable();

/// For the standard containers and wrappers cereal encodes: whether every element type
/// travels too (cereal's own traits do not look inside). True for any other type.
template <class T>
struct ElementsTravel : std::true_type {};
template <class T, class A>
struct ElementsTravel<std::vector<T, A>> : std::bool_constant<transferable<T>()> {};
template <class T, class A>
struct ElementsTravel<std::deque<T, A>> : std::bool_constant<transferable<T>()> {};
template <class T, class A>
struct ElementsTravel<std::list<T, A>> : std::bool_constant<transferable<T>()> {};
template <class T, std::size_t N>
struct ElementsTravel<std::array<T, N>> : std::bool_constant<transferable<T>()> {};
template <class T, std::size_t N>
struct ElementsTravel<T[N]> : std::bool_constant<transferable<T>()> {};
template <class K, class C, class A>
struct ElementsTravel<std::set<K, C, A>> : std::bool_constant<transferable<K>()> {};
template <class K, class C, class A>
struct ElementsTravel<std::multiset<K, C, A>> : std::bool_constant<transferable<K>()> {};
template <class K, class H, class E, class A>
struct ElementsTravel<std::unordered_set<K, H, E, A>> : std::bool_constant<transferable<K>()> {};
template <class K, class V, class C, class A>
struct ElementsTravel<std::map<K, V, C, A>> : std::bool_constant<transferable<K>() && transferable<V>()> {};
template <class K, class V, class C, class A>
struct ElementsTravel<std::multimap<K, V, C, A>> : std::bool_constant<transferable<K>() && transferable<V>()> {};
template <class K, class V, class H, class E, class A>
struct ElementsTravel<std::unordered_map<K, V, H, E, A>>
    : std::bool_constant<transferable<K>() && transferable<V>()> {};
template <class T>
struct ElementsTravel<std::optional<T>> : std::bool_constant<transferable<T>()> {};
template <class A, class B>
struct ElementsTravel<std::pair<A, B>> : std::bool_constant<transferable<A>() && transferable<B>()> {};
template <class... T>
struct ElementsTravel<std::tuple<T...>> : std::bool_constant<(transferable<T>() && ...)> {};
template <class... T>
struct ElementsTravel<std::variant<T...>> : std::bool_constant<(transferable<T>() && ...)> {};
template <class T, class D>
struct ElementsTravel<std::unique_ptr<T, D>> : std::bool_constant<transferable<T>()> {};
template <class T>
struct ElementsTravel<std::shared_ptr<T>> : std::bool_constant<transferable<T>()> {};

template <class T>
constexpr bool transferable() {
  if constexpr (std::is_reference_v<T> || std::is_pointer_v<T> || std::is_member_pointer_v<T>) {
    return false;  // an address means nothing elsewhere
  } else if constexpr (TriviallyTransferable<T> || std::is_same_v<T, std::string> || is_byte_vector<T>::value) {
    return true;
  } else if constexpr (FieldWise<T>) {
    return reflect::all_fields<T>([]<std::size_t, class F>() { return transferable<F>(); });
  } else {
    return cereal::traits::is_output_serializable<T, OutArchive>::value &&
           cereal::traits::is_input_serializable<T, InArchive>::value && std::is_default_constructible_v<T> &&
           ElementsTravel<T>::value;
  }
}
}  // namespace internal

/// Values of T can be sent to another process through mp::codec (see the top of this file).
template <class T>
concept Transferable = internal::transferable<T>();

namespace internal {
/// Instantiated for each field of a struct that is not Transferable, so that the compiler's
/// error names the struct, the field's position and its type.
template <class Struct, std::size_t Position, class FieldType>
struct FieldCheck {
  static_assert(Transferable<FieldType>,
                "mp::codec: a field of this struct cannot be sent to another process. The FieldCheck<Struct, "
                "position, FieldType> in this error names the struct, the field (counted from 0) and its type. An "
                "address means nothing in another process: use std::string for std::string_view or const char*, "
                "std::vector for std::span or a pointer to elements, a value for a reference.");
  static constexpr bool ok = true;
};

template <class T>
constexpr bool explain_fields() {
  if constexpr (reflect::Reflectable<T> && !Transferable<T>) {
    return reflect::all_fields<T>([]<std::size_t I, class F>() { return FieldCheck<T, I, F>::ok; });
  } else {
    return true;
  }
}
}  // namespace internal

namespace codec {

/// Appends the encoding of `value` to `out`.
template <class T>
void encode_into(const T& value, std::string& out) {
  static_assert(internal::explain_fields<T>());
  static_assert(Transferable<T>,
                "mp::codec: this type cannot be sent between processes. An address means nothing in another "
                "process: raw pointers, references, std::string_view and std::span are refused (send std::string "
                "and std::vector). Otherwise make it a plain struct of transferable fields, or trivially copyable "
                "without pointers, or give it `template <class Archive> void serialize(Archive& ar) { ar(field1, "
                "field2, ...); }` and a default constructor (cereal), or include the cereal header for the "
                "standard type it uses.");
  if constexpr (TriviallyTransferable<T>) {
    out.append(reinterpret_cast<const char*>(std::addressof(value)), sizeof(T));
  } else if constexpr (std::is_same_v<T, std::string>) {
    out.append(value);
  } else if constexpr (internal::is_byte_vector<T>::value) {
    out.append(reinterpret_cast<const char*>(value.data()), value.size() * sizeof(typename T::value_type));
  } else {
    internal::OutArchive ar(out);
    ar(value);
  }
}

/// The encoding of `value` as a byte string.
template <class T>
std::string encode(const T& value) {
  std::string out;
  encode_into(value, out);
  return out;
}

/// Decodes exactly `bytes` as a T. Throws mp::CodecError when the bytes are not a whole,
/// valid encoding of a T (too short, too long, or with impossible lengths).
template <class T>
T decode(std::string_view bytes) {
  static_assert(Transferable<T>, "mp::codec: this type cannot be received from another process (see encode_into)");
  if constexpr (TriviallyTransferable<T>) {
    if (bytes.size() != sizeof(T))
      throw CodecError("codec: expected " + std::to_string(sizeof(T)) + " bytes for a trivially copyable value, got " +
                       std::to_string(bytes.size()));
    std::remove_cv_t<T> v;
    std::memcpy(static_cast<void*>(std::addressof(v)), bytes.data(), sizeof(T));
    return v;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return std::string(bytes);
  } else if constexpr (internal::is_byte_vector<T>::value) {
    using E = typename T::value_type;
    if (bytes.size() % sizeof(E) != 0)
      throw CodecError("codec: " + std::to_string(bytes.size()) + " bytes is not a whole number of " +
                       std::to_string(sizeof(E)) + "-byte elements");
    T v(bytes.size() / sizeof(E));
    if (!v.empty()) std::memcpy(static_cast<void*>(v.data()), bytes.data(), bytes.size());
    return v;
  } else {
    T v{};
    try {
      internal::InArchive ar(bytes);
      ar(v);
      if (ar.remaining() != 0)
        throw CodecError("codec: " + std::to_string(ar.remaining()) +
                         " unexpected bytes after the value: the sender encoded a different type");
    } catch (const CodecError&) {
      throw;
    } catch (const std::exception& e) {
      throw CodecError(std::string("codec: cannot decode value: ") + e.what());
    }
    return v;
  }
}

}  // namespace codec
}  // namespace mp
