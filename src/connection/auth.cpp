// CPython's connection authentication handshake (HMAC challenge and response), as
// deliver_challenge / answer_challenge and the steps Listener and Client run.
#include "mp/connection.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cerrno>

#include "connection/internal.hpp"

namespace mp {
namespace connection {

namespace {

constexpr std::string_view kChallenge = "#CHALLENGE#";
constexpr std::string_view kWelcome = "#WELCOME#";
constexpr std::string_view kFailure = "#FAILURE#";
constexpr std::size_t kMessageLength = 40;  // random bytes in our challenge (CPython 3.12: > 20)
constexpr std::size_t kMd5OnlyMessageLength = 20;
constexpr std::size_t kMd5DigestLength = 16;
constexpr std::size_t kMaxDigestNameLength = 8;  // "sha3_256"
constexpr std::size_t kHandshakeMaxMessage = 256;

const EVP_MD* digest_by_name(std::string_view name) {
  if (name == "md5") return EVP_md5();
  if (name == "sha256") return EVP_sha256();
  if (name == "sha384") return EVP_sha384();
  if (name == "sha3_256") return EVP_sha3_256();
  if (name == "sha3_384") return EVP_sha3_384();
  return nullptr;
}

// HMAC-<digest>(key, message); empty if the digest is unavailable (MD5 under FIPS).
std::string hmac(std::string_view digest, std::string_view key, std::string_view message) {
  const EVP_MD* md = digest_by_name(digest);
  if (!md) return {};
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  static const char kEmpty = 0;  // OpenSSL reads a null key as "keep the previous key"
  if (!HMAC(md, key.empty() ? &kEmpty : key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len))
    return {};
  return std::string(reinterpret_cast<const char*>(out), len);
}

// CPython's _get_digest_name_and_payload: a 16- or 20-byte message is legacy (MD5, no
// prefix, returned as an empty name); otherwise it must start with an allowed "{name}".
std::pair<std::string, std::string_view> digest_name_and_payload(std::string_view m) {
  if (m.size() == kMd5OnlyMessageLength || m.size() == kMd5DigestLength) return {std::string(), m};
  if (!m.empty() && m[0] == '{') {
    auto curly = m.substr(0, kMaxDigestNameLength + 2).find('}', 1);
    if (curly != std::string_view::npos) {
      std::string_view name = m.substr(1, curly - 1);
      if (digest_by_name(name)) return {std::string(name), m.substr(curly + 1)};
    }
  }
  throw AuthenticationError("authentication: unsupported message length (" + std::to_string(m.size()) +
                            " bytes), missing {digest} prefix, or unsupported digest");
}

std::string random_bytes(std::size_t n) {
  std::string s(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n)) != 1)
    throw OSError(EIO, "authentication: the random number generator failed");
  return s;
}
}  // namespace

void deliver_raw(Connection& c, std::string_view authkey, internal::Deadline deadline) {
  std::string message = "{sha256}" + random_bytes(kMessageLength);
  c.send_bytes_until(deadline, std::string(kChallenge) + message);
  std::string response = c.recv_bytes_until(deadline, kHandshakeMaxMessage);
  try {
    auto [name, mac] = digest_name_and_payload(response);
    if (name.empty()) name = "md5";
    std::string expected = hmac(name, authkey, message);
    if (expected.empty()) throw AuthenticationError("authentication: digest " + name + " is unavailable here");
    if (expected.size() != mac.size())
      throw AuthenticationError("authentication: expected a " + name + " digest of " + std::to_string(expected.size()) +
                                " bytes, got " + std::to_string(mac.size()));
    if (CRYPTO_memcmp(expected.data(), mac.data(), expected.size()) != 0)
      throw AuthenticationError("authentication: the digest received was wrong: the peer uses a different authkey");
  } catch (const AuthenticationError&) {
    try {
      c.send_bytes_until(deadline, kFailure);
    } catch (const Error&) {
      // The peer may already be gone; the authentication failure is what matters.
    }
    throw;
  }
  c.send_bytes_until(deadline, kWelcome);
}

void answer_raw(Connection& c, std::string_view authkey, internal::Deadline deadline) {
  std::string message = c.recv_bytes_until(deadline, kHandshakeMaxMessage);
  if (message.compare(0, kChallenge.size(), kChallenge) != 0)
    throw AuthenticationError("authentication: protocol error, expected a challenge: the peer is not an "
                              "authenticating multiprocessing Listener/Client");
  std::string_view challenge = std::string_view(message).substr(kChallenge.size());
  if (challenge.size() < kMd5OnlyMessageLength)
    throw AuthenticationError("authentication: challenge too short (" + std::to_string(challenge.size()) + " bytes)");
  std::string name = digest_name_and_payload(challenge).first;
  std::string response;
  if (name.empty()) response = hmac("md5", authkey, challenge);  // legacy peer: raw HMAC-MD5
  if (response.empty()) {
    if (name.empty()) name = "sha256";  // MD5 unavailable (FIPS): answer in the modern form
    response = "{" + name + "}" + hmac(name, authkey, challenge);
  }
  c.send_bytes_until(deadline, response);
  std::string verdict = c.recv_bytes_until(deadline, kHandshakeMaxMessage);
  if (verdict != kWelcome)
    throw AuthenticationError("authentication: the digest sent was rejected: the peer uses a different authkey");
}

void deliver_challenge(Connection& c, std::string_view authkey, internal::Deadline deadline) {
  as_authentication_error([&] { deliver_raw(c, authkey, deadline); }, "deliver_challenge");
}

void answer_challenge(Connection& c, std::string_view authkey, internal::Deadline deadline) {
  as_authentication_error([&] { answer_raw(c, authkey, deadline); }, "answer_challenge");
}

}  // namespace connection
}  // namespace mp
