// Declarations shared by the files of src/connection/ (private): the receive state, the
// error helpers, and the handshake steps that Listener and Client run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "common/wait_policy.hpp"
#include "mp/connection.hpp"
#include "os/socket.hpp"

namespace mp {

constexpr std::size_t kReadBuffer = 64 * 1024;
// Reused buffers larger than this are released after use.
constexpr std::size_t kKeepBuffer = 16u << 20;

[[noreturn]] void throw_closed(const char* what);
[[noreturn]] void throw_io(int err, const char* what);

struct Connection::RecvState {
  RecvState() {}  // user-provided: make_unique must not zero the 64 KiB buffer
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t pending = 0;  // bytes of the frame handed out by recv_frame_view
  bool fds_lost = false;
  // Poll budget of a read that finds nothing (-1: this descriptor cannot poll).
  std::int64_t spin_ns = internal::wait_policy::kSpinInitialNs;
  bool streaming = false;  // the last read found data waiting and took less than it could (kGatherNs)
  std::deque<UniqueFd> fds;  // descriptors that arrived with the bytes in `buf`
  std::string big;           // frames larger than the read buffer, for recv<T>
  alignas(64) char buf[kReadBuffer];
};

// The hot paths are forced inline: measured on ping-pong, every call level between
// the program and the blocking read() adds latency after a context switch (the return
// predictions are lost), and these levels added 10% to a round trip.
[[gnu::always_inline]] inline void Connection::check_writable(const char* what) const {
  if (!writable_) [[unlikely]]
    unusable(what);
}

[[gnu::always_inline]] inline void Connection::check_readable(const char* what) const {
  if (!readable_) [[unlikely]]
    unusable(what);
}

namespace connection {

// The two halves of CPython's handshake, without the error translation (auth.cpp).
void deliver_raw(Connection& c, std::string_view authkey, internal::Deadline deadline);
void answer_raw(Connection& c, std::string_view authkey, internal::Deadline deadline);

// Every way a peer can fail the handshake, as one AuthenticationError (accept() and the
// public deliver/answer functions), so a server loop catches one type per bad client.
template <class F>
void as_authentication_error(F&& f, const char* side) {
  try {
    f();
  } catch (const AuthenticationError&) {
    throw;
  } catch (const EOFError&) {
    throw AuthenticationError(std::string(side) + ": the peer closed the connection during authentication");
  } catch (const TimeoutError&) {
    throw AuthenticationError(std::string(side) + ": the peer did not complete authentication in time");
  } catch (const OSError& e) {
    throw AuthenticationError(std::string(side) + ": authentication failed: " + e.what());
  }
}

}  // namespace connection
}  // namespace mp
