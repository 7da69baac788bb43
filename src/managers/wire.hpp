// src/managers/wire.hpp — the messages a manager client and server exchange.
//
// A manager connection carries *frames* (the Connection layer's length-prefixed byte
// strings). Each frame holds exactly one message, encoded by a WireCodec. The codec is an
// interface so that a second encoding (CPython's pickled tuples, issue 9) can be selected
// per manager without touching the server registry or the proxies.
//
// The native encoding (version 1), all integers little-endian:
//
//   request  = 'Q' version:u8 ident:str method:str args:str
//   reply    = 'R' version:u8 kind:u8 type:str body:str
//   str      = length:u32 bytes[length]
//
// `ident` names the target object ("" for the server itself: create, incref, decref,
// shutdown, dummy, number_of_objects). `args` is the mp::codec encoding of a std::tuple of
// the method's arguments; a reply's `body` is the codec encoding of the result (kind
// value), or the error message (kind error, with `type` the Python-style exception name).
// A message must be consumed exactly: a wrong tag, unknown version or kind, a length that
// runs past the end, or trailing bytes raise mp::CodecError. Parsing never allocates more
// than the frame's own size and never trusts a length field.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "mp/errors.hpp"

namespace mp::internal::manager {

inline constexpr std::uint8_t kWireVersion = 1;
/// The largest frame a server accepts (a defence against hostile length prefixes).
inline constexpr std::size_t kMaxFrame = std::size_t{256} << 20;

struct Request {
  std::string ident;
  std::string method;
  std::string args;
  bool operator==(const Request&) const = default;
};

enum class ReplyKind : std::uint8_t {
  value = 0,      ///< body: the codec encoding of the result
  error = 1,      ///< type: exception name, body: its message (re-raised as that type)
  traceback = 2,  ///< body: a description of an unexpected failure (raised as RemoteError)
};

struct Reply {
  ReplyKind kind = ReplyKind::value;
  std::string type;
  std::string body;
  bool operator==(const Reply&) const = default;
  static Reply value(std::string body) { return {ReplyKind::value, {}, std::move(body)}; }
  static Reply error(std::string type, std::string message) {
    return {ReplyKind::error, std::move(type), std::move(message)};
  }
};

/// How messages become frame payloads. Implementations are stateless and thread-safe.
class WireCodec {
 public:
  virtual ~WireCodec() = default;
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  [[nodiscard]] virtual std::string encode(const Request& r) const = 0;
  [[nodiscard]] virtual std::string encode(const Reply& r) const = 0;
  /// Throws mp::CodecError on anything but a whole, valid request.
  [[nodiscard]] virtual Request decode_request(std::string_view frame) const = 0;
  /// Throws mp::CodecError on anything but a whole, valid reply.
  [[nodiscard]] virtual Reply decode_reply(std::string_view frame) const = 0;
};

/// The native encoding described above.
[[nodiscard]] const WireCodec& native_wire() noexcept;

/// The Python-style name of an exception ("KeyError", "Empty", "ValueError"...), used as
/// a reply's `type`; "RuntimeError" for an unknown std::exception.
[[nodiscard]] std::string error_type_name(const std::exception& e);
/// Throws the exception a reply of kind error/traceback stands for: the mp type of the
/// same name when there is one (mp::KeyError, mp::Empty, ...), else mp::RemoteError.
[[noreturn]] void raise_reply_error(const Reply& r);

}  // namespace mp::internal::manager
