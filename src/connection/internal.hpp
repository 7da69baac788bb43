// Declarations shared by the files of src/connection/ (private): the receive state, the
// error helpers, and the handshake steps that Listener and Client run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "mp/connection.hpp"
#include "os/socket.hpp"

namespace mp {

constexpr std::size_t kReadBuffer = 64 * 1024;
// Reused buffers larger than this are released after use.
constexpr std::size_t kKeepBuffer = 16u << 20;
// A reader that finds nothing to read polls (non-blocking reads) for an adaptive time
// before it blocks, as mp::Queue does. Why: a reader asleep in read() must be woken by the
// writer's next write(), and that wake-up costs the writer more than the write itself;
// worse, the kernel treats a pipe wake-up as a hand-off (WF_SYNC) and moves the reader
// onto the writer's CPU, where the two then take turns. A reader that keeps draining the
// pipe and sleeping cut a 64-byte stream to about half a plain reader's rate (measured).
// Not after this end has sent something since its last receive: then the reader waits
// for a reply, and the peer it has just woken may be queued on this very CPU, where
// polling would only delay it. Same bounds as the queue: 1 to 50 us, starting at 20 us.
constexpr std::int64_t kSpinInitialNs = 20'000;
constexpr std::int64_t kSpinMinNs = 1'000;
constexpr std::int64_t kSpinMaxNs = 50'000;
constexpr int kSpinMaxPauses = 32;  // between two polls, each of which is a system call

[[noreturn]] void throw_closed(const char* what);
[[noreturn]] void throw_io(int err, const char* what);

struct Connection::RecvState {
  RecvState() {}  // user-provided: make_unique must not zero the 64 KiB buffer
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t pending = 0;  // bytes of the frame handed out by recv_frame_view
  bool fds_lost = false;
  std::int64_t spin_ns = kSpinInitialNs;  // poll budget of a read that finds nothing (-1: cannot poll)
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
