// Connection: receiving frames (the read-ahead buffer, polling before blocking) and the
// descriptors that arrive with them. See include/mp/connection.hpp for the contract.
#include "mp/connection.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "connection/internal.hpp"
#include "mp/internal/os.hpp"

namespace mp {

namespace {

// A std::string for a large message grows (and is zero-filled) this much ahead of the reads.
constexpr std::size_t kGrowStep = 64 * 1024;
// Descriptors received but not yet collected by recv_fd(); more are closed, not hoarded.
constexpr std::size_t kMaxStashedFds = 1024;
// A reader whose last read found data waiting, but less than it asked for, is keeping up
// with a writer that streams: each of its reads then takes the pipe's lock between two
// writes, and writer and reader end up taking turns on that lock, one message per read.
// Such a reader lets writes gather for a moment (in user space, no system call) before
// reading again: the writer then runs unhindered and every read collects a batch. Measured
// with 68-byte frames: 1.1M msg/s reading at once, 2.3-3.1M waiting 2 us first (a plain
// reader of exact-size reads: 1.8M). Delivery is delayed by at most this much, and only
// while data keeps arriving faster than it is read.
constexpr std::int64_t kGatherNs = 2'000;

std::uint64_t get_be(const char* p, int bytes) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

[[noreturn]] void throw_truncated_message(const char* what, std::size_t got, std::size_t want) {
  throw OSError(EPROTO, std::string(what) + ": got end of file during message (" + std::to_string(got) + " of " +
                            std::to_string(want) + " bytes); the sender closed mid-message");
}

}  // namespace

[[gnu::noinline]] void Connection::make_recv_state() { rs_ = std::make_unique<RecvState>(); }

[[gnu::always_inline]] inline Connection::RecvState& Connection::recv_state() {
  if (!rs_) [[unlikely]]
    make_recv_state();
  return *rs_;
}

std::size_t Connection::buffered() const noexcept { return rs_ ? rs_->end - rs_->begin : 0; }

[[gnu::always_inline]] inline std::size_t Connection::raw_read(char* dest, std::size_t n, internal::Deadline deadline,
                                                               const char* what) {
  if (!read_unix_) [[likely]] {
    ssize_t r = internal::read_some(fd_.get(), dest, n, deadline);
    if (r < 0) [[unlikely]]
      io_failed(-r, what);
    return static_cast<std::size_t>(r);
  }
  ::iovec iov{dest, n};
  return recv_with_fds(&iov, 1, deadline, what);
}

// The blocking read of fill(), polled first for a while when nothing is there yet.
[[gnu::always_inline]] inline std::size_t Connection::read_or_spin(char* dest, std::size_t n, const char* what) {
  auto& s = *rs_;
  if (s.streaming) let_writes_gather();
  ssize_t r = internal::read_nowait(fd_.get(), dest, n);
  if (r >= 0) [[likely]] {
    s.streaming = r > 0 && static_cast<std::size_t>(r) < n;
    return static_cast<std::size_t>(r);
  }
  s.streaming = false;
  return spin_then_read(dest, n, what, static_cast<int>(-r));
}

[[gnu::noinline]] void Connection::let_writes_gather() noexcept {
  const auto end = internal::Clock::now() + std::chrono::nanoseconds(kGatherNs);
  do {
    for (int i = 0; i < 8; ++i) internal::cpu_relax();
  } while (internal::Clock::now() < end);
}

// A reader that finds nothing to read polls (non-blocking reads) for the adaptive budget of
// the wait policy (src/common/wait_policy.hpp) before it blocks, as mp::Queue does. Why, for
// a pipe: a reader asleep in read() must be woken by the writer's next write(), and that
// wake-up costs the writer more than the write itself; worse, the kernel treats a pipe
// wake-up as a hand-off (WF_SYNC) and moves the reader onto the writer's CPU, where the two
// then take turns. A reader that keeps draining the pipe and sleeping cut a 64-byte stream
// to about half a plain reader's rate (measured). Not after this end has sent something
// since its last receive (fill()): then the reader waits for a reply, and the peer it has
// just woken may be queued on this very CPU, where polling would only delay it.
// The evidence that the writer ran on our CPU: the reader woke on the CPU where it polled
// in vain (the kernel wakes a pipe reader on its writer's CPU).
[[gnu::noinline]] std::size_t Connection::spin_then_read(char* dest, std::size_t n, const char* what, int err) {
  auto& s = *rs_;
  if (err != EAGAIN) {
    if (err != EOPNOTSUPP && err != EINVAL) io_failed(err, what);
    s.spin_ns = -1;  // this kernel or descriptor cannot read without waiting: plain reads
    return raw_read(dest, n, std::nullopt, what);
  }
  const auto start = internal::Clock::now();
  const std::int64_t spin = s.spin_ns;
  const auto spin_end = start + std::chrono::nanoseconds(spin);
  auto adapt = [&](bool blocked, int cpu) {
    auto waited = std::chrono::duration_cast<std::chrono::nanoseconds>(internal::Clock::now() - start).count();
    s.spin_ns = internal::wait_policy::next_spin_ns(
        spin, waited, blocked && spin > 0 && cpu >= 0 && internal::current_cpu() == cpu);
  };
  internal::wait_policy::Backoff backoff(internal::wait_policy::kPausesBetweenReads);
  while (internal::Clock::now() < spin_end) {
    backoff.pause();
    ssize_t r = internal::read_nowait(fd_.get(), dest, n);
    if (r >= 0) {
      adapt(false, -1);
      return static_cast<std::size_t>(r);
    }
    if (r != -EAGAIN) io_failed(-r, what);
  }
  const int cpu = internal::current_cpu();
  std::size_t got = raw_read(dest, n, std::nullopt, what);
  adapt(true, cpu);
  return got;
}

std::size_t Connection::raw_readv(const ::iovec* iov, int iovcnt, internal::Deadline deadline, const char* what) {
  if (!read_unix_) {
    ssize_t r = internal::readv_some(fd_.get(), iov, iovcnt, deadline);
    if (r < 0) [[unlikely]]
      io_failed(-r, what);
    return static_cast<std::size_t>(r);
  }
  return recv_with_fds(iov, iovcnt, deadline, what);
}

[[gnu::noinline]] std::size_t Connection::recv_with_fds(const ::iovec* iov, int iovcnt, internal::Deadline deadline,
                                                        const char* what) {
  ssize_t r;
  {
    internal::ReceivedFds got;
    r = internal::recv_some(fd_.get(), iov, iovcnt, deadline, got);
    if (got.count > 0 || got.truncated) {
      auto& s = recv_state();
      for (int i = 0; i < got.count; ++i) {
        if (s.fds.size() < kMaxStashedFds) s.fds.emplace_back(got.fds[static_cast<std::size_t>(i)]);
        else {
          UniqueFd drop(got.fds[static_cast<std::size_t>(i)]);
          s.fds_lost = true;
        }
      }
      if (got.truncated) s.fds_lost = true;
    }
  }
  if (r < 0) io_failed(-r, what);
  return static_cast<std::size_t>(r);
}

[[gnu::always_inline]] inline bool Connection::fill(std::size_t need, internal::Deadline deadline, const char* what) {
  auto& s = recv_state();
  while (s.end - s.begin < need) {
    if (s.begin == s.end) {
      s.begin = s.end = 0;
    } else if (kReadBuffer - s.begin < need) {
      std::memmove(s.buf, s.buf + s.begin, s.end - s.begin);
      s.end -= s.begin;
      s.begin = 0;
    }
    std::size_t want = opts_.read_ahead ? kReadBuffer - s.end : need - (s.end - s.begin);
    const bool poll_first = opts_.read_ahead && !deadline && !read_unix_ && s.spin_ns >= 0 &&
                            !sent_since_recv_.load(std::memory_order_relaxed);
    std::size_t got = poll_first ? read_or_spin(s.buf + s.end, want, what) : raw_read(s.buf + s.end, want, deadline, what);
    if (got == 0) return false;
    s.end += got;
  }
  return true;
}

void Connection::truncated(const char* what, std::size_t got, std::size_t want) {
  if (rs_) rs_->begin = rs_->end = rs_->pending = 0;  // the partial frame is garbage; the stream has ended
  throw_truncated_message(what, got, want);
}

void Connection::bad_length(std::uint64_t n, std::size_t limit, const char* what) {
  close();
  throw OSError(EMSGSIZE, std::string(what) + ": bad message length " + std::to_string(n) + " (the limit is " +
                              std::to_string(limit) +
                              " bytes); the connection was closed. Raise max_message_size if this is legitimate");
}

[[gnu::always_inline]] inline std::size_t Connection::read_header(internal::Deadline deadline, std::size_t maxlength, const char* what) {
  check_readable(what);
  auto& s = recv_state();
  if (s.pending) release_frame();
  if (!fill(4, deadline, what)) {
    if (buffered() == 0) throw EOFError(std::string(what) + ": the other end of the connection is closed");
    truncated(what, buffered(), 4);
  }
  auto n32 = static_cast<std::int32_t>(static_cast<std::uint32_t>(get_be(s.buf + s.begin, 4)));
  s.begin += 4;
  std::uint64_t n;
  if (n32 == -1) {
    if (!fill(8, deadline, what)) truncated(what, buffered(), 8);
    n = get_be(s.buf + s.begin, 8);
    s.begin += 8;
  } else if (n32 < 0) {
    bad_length(static_cast<std::uint32_t>(n32), maxlength, what);
  } else {
    n = static_cast<std::uint64_t>(n32);
  }
  if (n > maxlength) bad_length(n, maxlength, what);
  sent_since_recv_.store(false, std::memory_order_relaxed);
  return static_cast<std::size_t>(n);
}

[[gnu::always_inline]] inline void Connection::read_payload(char* dest, std::size_t n, internal::Deadline deadline, const char* what) {
  auto& s = recv_state();
  if (opts_.read_ahead && n <= kReadBuffer / 2) {
    // Small: through the buffer, so the same read() also brings the next frames.
    if (!fill(n, deadline, what)) truncated(what, buffered(), n);
    std::memcpy(dest, s.buf + s.begin, n);
    s.begin += n;
    return;
  }
  read_direct(dest, n, deadline, what, 0, n);
}

// Buffered bytes first, then the rest straight into `dest`: no copy, and never a byte of
// the next frame. `done`/`total` place this piece in its frame for the error message.
void Connection::read_direct(char* dest, std::size_t n, internal::Deadline deadline, const char* what,
                             std::size_t done, std::size_t total) {
  // Read ahead past `dest` only when this piece ends the frame: a piece of a larger frame
  // is followed by the next piece, which would then need a copy out of the buffer.
  bool read_ahead = opts_.read_ahead && done + n == total;
  auto& s = recv_state();
  std::size_t have = std::min(n, s.end - s.begin);
  if (have) std::memcpy(dest, s.buf + s.begin, have);
  s.begin += have;
  for (std::size_t off = have; off < n;) {
    std::size_t got;
    if (read_ahead) {
      // The buffer is empty here. One readv ends this piece in place and carries on into
      // the read-ahead buffer: large reads, as a raw reader makes, without copying.
      s.begin = s.end = 0;
      ::iovec iov[2] = {{dest + off, n - off}, {s.buf, kReadBuffer}};
      got = raw_readv(iov, 2, deadline, what);
      if (got > n - off) {
        s.end = got - (n - off);
        got = n - off;
      }
    } else {
      got = raw_read(dest + off, n - off, deadline, what);
    }
    if (got == 0) truncated(what, done + off, total);
    off += got;
  }
}

void Connection::read_growing(std::string& out, std::size_t n, internal::Deadline deadline, const char* what) {
  // std::string cannot grow without zero-filling, so grow it one 64 KiB chunk at a time
  // and read each chunk while it is still in cache: the fill then costs little. Capacity
  // beyond 16 MiB is only reserved as bytes arrive, so a hostile length costs nothing.
  out.clear();
  if (out.capacity() < std::min(n, kKeepBuffer)) out.reserve(std::min(n, kKeepBuffer));
  for (std::size_t off = 0; off < n;) {
    std::size_t step = std::min(n - off, kGrowStep);
    if (off + step > out.capacity()) out.reserve(std::min(n, 2 * out.capacity()));
    out.resize(off + step);
    read_direct(out.data() + off, step, deadline, what, off, n);
    off += step;
  }
}

Connection::FrameView Connection::recv_frame_view(internal::Deadline deadline) {
  static constexpr const char* what = "Connection.recv";
  std::size_t n = read_header(deadline, opts_.max_message_size, what);
  auto& s = *rs_;
  if (n <= kReadBuffer) {
    if (!fill(n, deadline, what)) truncated(what, buffered(), n);
    s.pending = n;
    return {std::string_view(s.buf + s.begin, n), n};
  }
  read_growing(s.big, n, deadline, what);
  return {std::string_view(s.big), 0};
}

void Connection::release_frame() noexcept {
  if (!rs_) return;
  rs_->begin += rs_->pending;
  rs_->pending = 0;
  if (rs_->big.capacity() > kKeepBuffer) std::string().swap(rs_->big);
}

std::string Connection::recv_bytes(std::optional<std::size_t> maxlength) {
  static constexpr const char* what = "Connection.recv_bytes";
  std::size_t limit = std::min(maxlength.value_or(opts_.max_message_size), opts_.max_message_size);
  std::size_t n = read_header(std::nullopt, limit, what);
  auto& s = *rs_;
  if (n <= kReadBuffer) {
    if (!fill(n, std::nullopt, what)) truncated(what, buffered(), n);
    std::string out(s.buf + s.begin, n);
    s.begin += n;
    return out;
  }
  std::string out;
  read_growing(out, n, std::nullopt, what);
  return out;
}

std::size_t Connection::recv_bytes(std::string& out, std::optional<std::size_t> maxlength) {
  static constexpr const char* what = "Connection.recv_bytes";
  std::size_t limit = std::min(maxlength.value_or(opts_.max_message_size), opts_.max_message_size);
  std::size_t n = read_header(std::nullopt, limit, what);
  if (n <= out.capacity()) {
    out.resize(n);
    read_payload(out.data(), n, std::nullopt, what);
  } else {
    read_growing(out, n, std::nullopt, what);
  }
  return n;
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buffer, std::size_t offset) {
  return recv_into_inline(std::span<char>(reinterpret_cast<char*>(buffer.data()), buffer.size()), offset);
}

std::size_t Connection::recv_bytes_into(std::span<char> buffer, std::size_t offset) {
  return recv_into_inline(buffer, offset);
}

[[gnu::always_inline]] inline std::size_t Connection::recv_into_inline(std::span<char> buffer, std::size_t offset) {
  static constexpr const char* what = "Connection.recv_bytes_into";
  if (offset > buffer.size())
    throw ValueError(std::string(what) + ": offset " + std::to_string(offset) + " is beyond the buffer's " +
                     std::to_string(buffer.size()) + " bytes");
  std::size_t n = read_header(std::nullopt, opts_.max_message_size, what);
  if (n > buffer.size() - offset) {
    std::string whole;
    read_growing(whole, n, std::nullopt, what);
    throw BufferTooShort(std::move(whole));
  }
  read_payload(buffer.data() + offset, n, std::nullopt, what);
  return n;
}

std::string Connection::recv_bytes_until(internal::Deadline deadline, std::size_t maxlength) {
  static constexpr const char* what = "Connection.recv_bytes";
  std::size_t n = read_header(deadline, std::min(maxlength, opts_.max_message_size), what);
  std::string out;
  read_growing(out, n, deadline, what);
  return out;
}

bool Connection::poll_until(internal::Deadline deadline) {
  check_readable("Connection.poll");
  if (buffered() > (rs_ ? rs_->pending : 0)) return true;
  int r = internal::wait_readable(fd_.get(), deadline);
  if (r == 1) return true;
  if (r == -ETIMEDOUT) return false;
  throw OSError(-r, "Connection.poll");
}

// Descriptors (Unix sockets only). Here, not in a file of their own: recv_fds reads through
// the same inline fill() as every receive, and they arrive with the bytes (recv_with_fds).

void Connection::send_fd(int fd) { send_fds(std::span<const int>(&fd, 1)); }

void Connection::send_fds(std::span<const int> fds) {
  check_writable("Connection.send_fd");
  if (!fd_passing_)
    throw ValueError(
        "Connection.send_fd: descriptors travel only over a Unix socket; create the pipe with "
        "mp::Pipe(true, {.unix_socket = true}) or use a Listener/Client on a Unix path");
  if (fds.empty() || fds.size() > internal::ReceivedFds::kMax)
    throw ValueError("Connection.send_fds: between 1 and 253 descriptors per call");
  int r = internal::send_fds(fd_.get(), fds.data(), static_cast<int>(fds.size()));
  if (r != 0) throw_io(-r, "Connection.send_fd");
}

UniqueFd Connection::recv_fd() {
  auto v = recv_fds(1);
  return std::move(v.front());
}

std::vector<UniqueFd> Connection::recv_fds(std::size_t n) {
  static constexpr const char* what = "Connection.recv_fd";
  check_readable(what);
  if (!fd_passing_)
    throw ValueError(std::string(what) + ": descriptors travel only over a Unix socket connection");
  if (n == 0 || n > internal::ReceivedFds::kMax) throw ValueError("Connection.recv_fds: between 1 and 253 descriptors");
  auto& s = recv_state();
  if (s.pending) release_frame();
  if (!fill(1, std::nullopt, what)) throw EOFError(std::string(what) + ": the other end of the connection is closed");
  auto marker = static_cast<unsigned char>(s.buf[s.begin]);
  // Check before consuming, so a caller that guessed wrong can still recv() the message.
  if (marker != n % 256 || s.fds.size() < n) {
    if (s.fds_lost)
      throw OSError(EMFILE, std::string(what) + ": descriptors sent to this process were dropped (too many open files?)");
    throw OSError(EPROTO, std::string(what) + ": the next item on the connection is a message, not " +
                              std::to_string(n) + " descriptor(s); receive in the order the peer sent");
  }
  s.begin += 1;
  std::vector<UniqueFd> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(std::move(s.fds.front()));
    s.fds.pop_front();
  }
  return out;
}

}  // namespace mp
