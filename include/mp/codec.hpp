// mp/codec.hpp — how values cross process boundaries (Python's pickle, for C++ types).
//
// Everything that moves a value between processes (Connection, Queue, Pool, Manager)
// encodes it with mp::codec. A type is *transferable* when it is
//   - trivially copyable (ints, doubles, PODs, std::array of those): copied with memcpy; or
//   - std::string / std::vector of trivially copyable elements: copied as raw bytes; or
//   - serializable by cereal (https://uscilab.github.io/cereal/): every standard container,
//     std::optional/variant/tuple/pair, and any user type with a `serialize` function:
//
//       struct Order { std::string item; int qty;
//                      template <class A> void serialize(A& ar) { ar(item, qty); } };
//       std::string bytes = mp::codec::encode(Order{"tea", 2});
//       Order o = mp::codec::decode<Order>(bytes);
//
// Using a non-transferable type is a compile-time error (the `mp::Transferable` concept).
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

#include "mp/errors.hpp"

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
struct is_byte_vector : std::false_type {};
template <class E, class A>
struct is_byte_vector<std::vector<E, A>> : std::bool_constant<std::is_trivially_copyable_v<E>> {};

}  // namespace mp::internal

CEREAL_REGISTER_ARCHIVE(mp::internal::OutArchive)
CEREAL_REGISTER_ARCHIVE(mp::internal::InArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(mp::internal::InArchive, mp::internal::OutArchive)

namespace mp {

/// Values of T can be copied byte for byte (and contain no pointers to chase).
template <class T>
concept TriviallyTransferable = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                                !std::is_member_pointer_v<T>;

/// Values of T can be sent to another process through mp::codec.
template <class T>
concept Transferable =
    !std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&  // an address means nothing elsewhere
    (TriviallyTransferable<T> || std::is_same_v<T, std::string> || internal::is_byte_vector<T>::value ||
    (cereal::traits::is_output_serializable<T, internal::OutArchive>::value &&
     cereal::traits::is_input_serializable<T, internal::InArchive>::value && std::is_default_constructible_v<T>));

namespace codec {

/// Appends the encoding of `value` to `out`.
template <class T>
void encode_into(const T& value, std::string& out) {
  static_assert(Transferable<T>,
                "mp::codec: this type cannot be sent between processes. Make it trivially copyable, or give it "
                "`template <class Archive> void serialize(Archive& ar) { ar(field1, field2, ...); }` and a default "
                "constructor (cereal), or include the cereal header for the standard type it uses.");
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
