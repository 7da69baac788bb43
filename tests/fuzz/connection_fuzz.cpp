// libFuzzer target: the Connection frame parser (recv_bytes / recv_bytes_into / recv<T>).
//
// Input: one options byte, then the bytes a peer sent before closing its end.
//   bit 0     read_ahead (buffered) or one frame at a time
//   bits 1-2  max_message_size: 1 GiB (default), 16, 300 or 70000 bytes
//   bits 3-4  how to receive: recv_bytes(), recv_bytes(reused string), recv_bytes_into(a
//             512-byte buffer), recv<std::string>()
//   bit 5     the stream arrives through a Unix socketpair (recvmsg path) instead of a file
// The stream is also parsed by the reference below (CPython's framing: a 4-byte signed
// big-endian length, or -1 and an 8-byte length). The Connection must deliver exactly the
// reference's messages, in order, then end exactly as the reference says: EOFError on a
// clean end, OSError(EPROTO) on a frame cut short, OSError(EMSGSIZE) on a negative or too
// large length (and the connection is then closed: EBADF afterwards). Anything else —
// a different message, another exception, a crash, a sanitizer report — aborts.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "mp/connection.hpp"

namespace {

enum class End { eof, truncated, too_long };

struct Expected {
  std::vector<std::string_view> messages;
  End end = End::eof;
};

std::uint64_t be(const char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

Expected reference(std::string_view s, std::size_t limit) {
  Expected e;
  std::size_t pos = 0;
  for (;;) {
    std::size_t left = s.size() - pos;
    if (left == 0) return e;
    if (left < 4) {
      e.end = End::truncated;
      return e;
    }
    auto n32 = static_cast<std::int32_t>(static_cast<std::uint32_t>(be(s.data() + pos, 4)));
    pos += 4;
    std::uint64_t n;
    if (n32 == -1) {
      if (s.size() - pos < 8) {
        e.end = End::truncated;
        return e;
      }
      n = be(s.data() + pos, 8);
      pos += 8;
    } else if (n32 < 0) {
      e.end = End::too_long;
      return e;
    } else {
      n = static_cast<std::uint64_t>(n32);
    }
    if (n > limit) {
      e.end = End::too_long;
      return e;
    }
    if (s.size() - pos < n) {
      e.end = End::truncated;
      return e;
    }
    e.messages.push_back(s.substr(pos, n));
    pos += n;
  }
}

/// A descriptor from which `data` can be read, followed by end of file.
mp::UniqueFd source(std::string_view data, bool socket) {
  if (socket) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    mp::UniqueFd reader(sv[0]), writer(sv[1]);
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(writer.get(), data.data() + done, data.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n <= 0) break;  // the socket buffer is full: fall back to a file below
      done += static_cast<std::size_t>(n);
    }
    if (done == data.size()) return reader;
  }
  int fd = ::memfd_create("connection_fuzz", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  mp::UniqueFd f(fd);
  for (std::size_t done = 0; done < data.size();) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n <= 0) std::abort();
    done += static_cast<std::size_t>(n);
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) std::abort();
  return f;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned flags = data[0];
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  static constexpr std::size_t kLimits[4] = {mp::ConnectionOptions::kDefaultMaxMessageSize, 16, 300, 70000};
  mp::ConnectionOptions opts{.max_message_size = kLimits[(flags >> 1) & 3], .read_ahead = (flags & 1) != 0};
  const unsigned how = (flags >> 3) & 3;
  Expected want = reference(stream, opts.max_message_size);

  mp::Connection c(source(stream, (flags & 32) != 0), true, false, opts);
  std::string reused;
  std::vector<char> buffer(512);
  for (std::string_view m : want.messages) {
    switch (how) {
      case 0:
        check(c.recv_bytes() == m);
        break;
      case 1:
        check(c.recv_bytes(reused) == m.size() && reused == m);
        break;
      case 2:
        try {
          std::size_t n = c.recv_bytes_into(std::span<char>(buffer));
          check(n == m.size() && std::string_view(buffer.data(), n) == m);
        } catch (const mp::BufferTooShort& e) {
          check(m.size() > buffer.size() && e.message() == m);
        }
        break;
      default:
        check(c.recv<std::string>() == m);
        break;
    }
  }
  // The end of the stream, then what a further receive says.
  int code = 0;
  try {
    (void)c.recv_bytes();
    std::abort();  // a message the reference did not see
  } catch (const mp::EOFError&) {
    check(want.end == End::eof);
  } catch (const mp::OSError& e) {
    code = e.code().value();
    check((want.end == End::truncated && code == EPROTO) || (want.end == End::too_long && code == EMSGSIZE));
  }
  try {
    (void)c.recv_bytes();
    std::abort();
  } catch (const mp::EOFError&) {
    check(want.end != End::too_long);
  } catch (const mp::OSError& e) {
    check(want.end == End::too_long && e.code().value() == EBADF);
  }
  return 0;
}
