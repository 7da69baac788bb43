// mp/internal/call.hpp — the one encoding of "a callable sent by address, with its arguments
// encoded": how Process (under the fork server), mp::Pool and mp::mpi::Pool describe a call
// to another process running the same program, and how results come back.
//
//   callable  = the function pointer's bytes, or nothing for a stateless function object
//               (an empty class: F{} rebuilds it on the other side)
//   field     = [u32 length][bytes]; an argument or a result is a field of mp::codec bytes
//   arguments = one field per argument, in order
//
// The receiving side is a function template instantiated for the call's types (the fork
// server's trampoline, the pool's runner, mp::mpi's registered runner), so the bytes carry
// no types. Addresses are valid on the other side because it runs the same binary: the
// fork server and pool workers are forks of this program; mp::mpi sends a registered name
// instead of an address and checks the signature. Scalars are in host byte order for the
// same reason.
//
// Lengths are u32: a pool task streams many small items (a 4-byte int is a 4-byte field
// body), and a wider length is measurably slower there (pool_map_auto_chunk 0.78x with u64).
// Every carrier is bounded below 4 GiB anyway (pool and mp::mpi frames have u32 lengths;
// the fork server refuses a payload of 4 GiB), so a field that long is refused with
// mp::CodecError when it is written, never truncated. The reader checks every length
// against the bytes it holds and throws mp::CodecError with its caller's message; it never
// reads past its input.
#pragma once

#include <cstdint>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "mp/codec.hpp"
#include "mp/errors.hpp"

namespace mp {

/// A callable another process of this program can run from its code address alone: a
/// function pointer or a captureless lambda (any empty, default-constructible, trivially
/// copyable function object). The fork server's targets and every pool task are these.
template <class F>
concept StatelessCallable = (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) ||
                            (std::is_class_v<F> && std::is_empty_v<F> && std::is_default_constructible_v<F> &&
                             std::is_trivially_copyable_v<F>);

}  // namespace mp

namespace mp::internal {

/// Appends the bytes of a trivially copyable value (an address, a count).
template <class T>
void put_raw(std::string& out, const T& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

/// The width of a field's length.
using FieldLength = std::uint32_t;

[[noreturn]] inline void field_too_long(std::size_t n) {
  throw CodecError("an argument or result of " + std::to_string(n) +
                   " bytes cannot be sent to another process: the limit is 4 GiB less one byte");
}

/// Appends one field holding `bytes` as they are.
inline void put_bytes(std::string& out, std::string_view bytes) {
  if (bytes.size() > UINT32_MAX) field_too_long(bytes.size());
  put_raw(out, static_cast<FieldLength>(bytes.size()));
  out.append(bytes);
}

/// Appends one field holding the mp::codec encoding of `v`, encoded in place.
template <class T>
void put_field(std::string& out, const T& v) {
  std::size_t at = out.size();
  out.append(sizeof(FieldLength), '\0');
  codec::encode_into(v, out);
  std::size_t size = out.size() - at - sizeof(FieldLength);
  if (size > UINT32_MAX) {
    out.resize(at);
    field_too_long(size);
  }
  auto n = static_cast<FieldLength>(size);
  std::memcpy(out.data() + at, &n, sizeof n);
}

/// Appends the callable: a function pointer's bytes; nothing for a stateless function object.
template <class F>
void put_callable(std::string& out, const F& f) {
  if constexpr (std::is_pointer_v<F>) put_raw(out, f);
}

/// The messages of the mp::CodecError a reader throws, in its caller's words.
struct CallErrors {
  const char* truncated;  ///< a length or scalar runs past the end
  const char* too_long;   ///< a field is longer than the bytes left
  const char* trailing;   ///< bytes left after the last field (finish())
};
inline constexpr CallErrors kPoolCallErrors{"pool: truncated message (missing a length field)",
                                            "pool: truncated message (field longer than the data)",
                                            "pool: unexpected bytes after the last field"};

/// Reads what the functions above wrote, refusing to step past the end of its input.
class CallReader {
 public:
  CallReader(std::string_view in, const CallErrors& errors) noexcept : rest_(in), errors_(&errors) {}

  template <class T>
  T raw() {
    static_assert(std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>);
    if (rest_.size() < sizeof(T)) throw CodecError(errors_->truncated);
    T v;
    std::memcpy(static_cast<void*>(&v), rest_.data(), sizeof v);
    rest_.remove_prefix(sizeof v);
    return v;
  }
  /// One field's bytes.
  std::string_view field() {
    auto n = raw<FieldLength>();
    if (n > rest_.size()) throw CodecError(errors_->too_long);
    auto f = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return f;
  }
  /// One field, decoded as a T (mp::CodecError if it is not one).
  template <class T>
  T next() {
    return codec::decode<T>(field());
  }
  /// The callable put_callable<F> wrote.
  template <class F>
  F callable() {
    if constexpr (std::is_pointer_v<F>) {
      return raw<F>();
    } else {
      static_assert(std::is_empty_v<F> && std::is_default_constructible_v<F>);
      return F{};
    }
  }
  /// One field per argument, decoded left to right.
  template <class... A>
  std::tuple<A...> args() {
    return std::tuple<A...>{next<A>()...};  // braced: evaluated in order
  }
  /// Throws unless every byte was read.
  void finish() const {
    if (!rest_.empty()) throw CodecError(errors_->trailing);
  }
  [[nodiscard]] std::string_view rest() const noexcept { return rest_; }

 private:
  std::string_view rest_;
  const CallErrors* errors_;
};

/// Reads one field off the front of `in` (pool and mp::mpi results and messages).
inline std::string_view take_field(std::string_view& in) {
  CallReader r(in, kPoolCallErrors);
  auto f = r.field();
  in = r.rest();
  return f;
}

}  // namespace mp::internal
