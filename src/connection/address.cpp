// connection::Address: parsing "host:port", "[v6]:port" and Unix socket paths.
// See include/mp/connection.hpp for the contract.
#include "mp/connection.hpp"

#include <cerrno>
#include <charconv>


namespace mp {
namespace connection {

namespace {

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

constexpr const char* kLoopback = "127.0.0.1";

}  // namespace

Address::Address(std::string_view s) {
  if (s.empty()) throw ValueError("Address: empty address (give a Unix socket path or host:port)");
  auto as_tcp = [&](std::string host, std::uint16_t port) {
    family_ = Family::tcp;
    host_or_path_ = host.empty() ? kLoopback : std::move(host);
    port_ = port;
  };
  if (s[0] != '\0' && s.find('/') == std::string_view::npos) {
    if (auto port = parse_port(s)) {
      as_tcp({}, *port);
      return;
    }
    if (s[0] == '[') {
      auto close = s.find("]:");
      if (close != std::string_view::npos) {
        if (auto port = parse_port(s.substr(close + 2))) {
          as_tcp(std::string(s.substr(1, close - 1)), *port);
          return;
        }
      }
    }
    auto colon = s.rfind(':');
    if (colon != std::string_view::npos && s.substr(0, colon).find(':') == std::string_view::npos) {
      if (auto port = parse_port(s.substr(colon + 1))) {
        as_tcp(std::string(s.substr(0, colon)), *port);
        return;
      }
    }
  }
  family_ = Family::unix_socket;
  host_or_path_ = std::string(s);
}

Address::Address(std::string host, std::uint16_t port)
    : family_(Family::tcp), host_or_path_(host.empty() ? kLoopback : std::move(host)), port_(port) {}

Address Address::unix_socket(std::string path) {
  if (path.empty()) throw ValueError("Address::unix_socket: empty path");
  Address a;
  a.family_ = Family::unix_socket;
  a.host_or_path_ = std::move(path);
  return a;
}

Address Address::tcp(std::string host, std::uint16_t port) { return Address(std::move(host), port); }

std::string Address::str() const {
  if (family_ == Family::unix_socket) return host_or_path_;
  if (host_or_path_.find(':') != std::string::npos) return "[" + host_or_path_ + "]:" + std::to_string(port_);
  return host_or_path_ + ":" + std::to_string(port_);
}

}  // namespace connection
}  // namespace mp
