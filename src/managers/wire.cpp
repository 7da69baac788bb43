// The native manager wire encoding; exceptions travel by their names in the exception table.
#include <cstring>

#include "common/exception_table.hpp"
#include "managers/wire.hpp"
#include "mp/managers.hpp"

namespace mp::internal::manager {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16), static_cast<char>(v >> 24)};
  out.append(b, 4);
}

void put_str(std::string& out, std::string_view s) {
  if (s.size() > kMaxFrame) throw CodecError("manager wire: field of " + std::to_string(s.size()) + " bytes is too large");
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

/// Reads fields off a frame, refusing to step past its end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::uint8_t u8(const char* what) {
    need(1, what);
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  std::string str(const char* what) {
    need(4, what);
    const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + pos_);
    std::uint32_t n = p[0] | (p[1] << 8) | (p[2] << 16) | (std::uint32_t{p[3]} << 24);
    pos_ += 4;
    need(n, what);
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  void finish(const char* what) const {
    if (pos_ != in_.size())
      throw CodecError(std::string("manager wire: ") + std::to_string(in_.size() - pos_) + " trailing bytes after the " +
                       what);
  }

 private:
  void need(std::size_t n, const char* what) const {
    if (n > in_.size() - pos_)
      throw CodecError(std::string("manager wire: truncated ") + what + " (needs " + std::to_string(n) +
                       " bytes, " + std::to_string(in_.size() - pos_) + " left)");
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

void check_header(Reader& r, char tag, const char* what) {
  if (r.u8(what) != static_cast<std::uint8_t>(tag))
    throw CodecError(std::string("manager wire: not a ") + what + " (bad tag): the peer is not an mp manager");
  if (auto v = r.u8(what); v != kWireVersion)
    throw CodecError("manager wire: unsupported version " + std::to_string(v) + " (this build speaks " +
                     std::to_string(kWireVersion) + ")");
}

class NativeWire final : public WireCodec {
 public:
  std::string_view name() const noexcept override { return "native"; }
  std::string encode(const Request& r) const override {
    std::string out;
    out.reserve(2 + 12 + r.ident.size() + r.method.size() + r.args.size());
    out.push_back('Q');
    out.push_back(static_cast<char>(kWireVersion));
    put_str(out, r.ident);
    put_str(out, r.method);
    put_str(out, r.args);
    return out;
  }
  std::string encode(const Reply& r) const override {
    std::string out;
    out.reserve(3 + 8 + r.type.size() + r.body.size());
    out.push_back('R');
    out.push_back(static_cast<char>(kWireVersion));
    out.push_back(static_cast<char>(r.kind));
    put_str(out, r.type);
    put_str(out, r.body);
    return out;
  }
  Request decode_request(std::string_view frame) const override {
    Reader in(frame);
    check_header(in, 'Q', "request");
    Request r;
    r.ident = in.str("request ident");
    r.method = in.str("request method");
    r.args = in.str("request arguments");
    in.finish("request");
    return r;
  }
  Reply decode_reply(std::string_view frame) const override {
    Reader in(frame);
    check_header(in, 'R', "reply");
    Reply r;
    auto kind = in.u8("reply kind");
    if (kind > static_cast<std::uint8_t>(ReplyKind::traceback))
      throw CodecError("manager wire: unknown reply kind " + std::to_string(kind));
    r.kind = static_cast<ReplyKind>(kind);
    r.type = in.str("reply type");
    r.body = in.str("reply body");
    in.finish("reply");
    return r;
  }
};

}  // namespace

const WireCodec& native_wire() noexcept {
  static const NativeWire wire;
  return wire;
}

// The names are one column of the exception table (src/common/exception_table.cpp).
std::string error_type_name(const std::exception& e) { return exceptions::native_name(e); }

void raise_reply_error(const Reply& r) {
  if (r.kind == ReplyKind::traceback) throw RemoteError("Traceback", r.body);
  exceptions::raise_native(r.type, r.body);
}

}  // namespace mp::internal::manager
