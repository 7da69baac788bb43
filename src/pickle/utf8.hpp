// UTF-8 as a pickled str carries it: checked by the encoder and the decoder, and built
// from code points for latin-1 bytes and raw-unicode-escape text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mp::pickle::internal {

/// UTF-8 as CPython's 'surrogatepass' accepts it: well-formed sequences, shortest form,
/// code points up to U+10FFFF, surrogates (U+D800..DFFF) allowed. Returns the offset of the
/// first bad byte, or npos.
std::size_t bad_utf8(std::string_view s);

void append_utf8(std::string& out, std::uint32_t cp);

/// Code points of valid UTF-8 (as checked by bad_utf8).
template <class F>
void for_each_code_point(std::string_view s, F f) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    unsigned c = p[i];
    std::size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3F);
    f(cp);
    i += len;
  }
}

}  // namespace mp::pickle::internal
