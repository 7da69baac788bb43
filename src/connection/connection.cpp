// Connection framing, Pipe, wait, Listener/Client and CPython's authentication handshake.
// See include/mp/connection.hpp for the contract.
#include "mp/connection.hpp"

#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <deque>

#include "mp/internal/os.hpp"
#include "os/socket.hpp"
#include "mp/process.hpp"

namespace mp {

namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;
// Frames up to PIPE_BUF bytes are copied into one buffer and written with write(): one
// atomic pipe write, and cheaper than writev for small messages (measured).
constexpr std::size_t kSmallFrame = 4096;
constexpr std::size_t kTinyFrame = 256;
// A std::string for a large message grows (and is zero-filled) this much ahead of the reads.
constexpr std::size_t kGrowStep = 64 * 1024;
constexpr std::size_t kMaxHeader = 12;
// Descriptors received but not yet collected by recv_fd(); more are closed, not hoarded.
constexpr std::size_t kMaxStashedFds = 1024;
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
// A reader whose last read found data waiting, but less than it asked for, is keeping up
// with a writer that streams: each of its reads then takes the pipe's lock between two
// writes, and writer and reader end up taking turns on that lock, one message per read.
// Such a reader lets writes gather for a moment (in user space, no system call) before
// reading again: the writer then runs unhindered and every read collects a batch. Measured
// with 68-byte frames: 1.1M msg/s reading at once, 2.3-3.1M waiting 2 us first (a plain
// reader of exact-size reads: 1.8M). Delivery is delayed by at most this much, and only
// while data keeps arriving faster than it is read.
constexpr std::int64_t kGatherNs = 2'000;

std::size_t put_header(std::uint64_t n, char* out) noexcept {
  if (n > 0x7fffffffu) {
    std::memset(out, 0xff, 4);
    for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<char>(n >> (56 - 8 * i));
    return 12;
  }
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(n >> (24 - 8 * i));
  return 4;
}

std::uint64_t get_be(const char* p, int bytes) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

[[noreturn]] void throw_closed(const char* what) { throw OSError(EBADF, std::string(what) + ": handle is closed"); }

[[noreturn]] void throw_io(int err, const char* what) {
  if (err == ETIMEDOUT) throw TimeoutError(std::string(what) + ": timed out");
  if (err == EPIPE || err == ECONNRESET)
    throw OSError(err, std::string(what) + ": the other end of the connection is closed");
  throw OSError(err, what);
}

[[noreturn]] void throw_truncated_message(const char* what, std::size_t got, std::size_t want) {
  throw OSError(EPROTO, std::string(what) + ": got end of file during message (" + std::to_string(got) + " of " +
                            std::to_string(want) + " bytes); the sender closed mid-message");
}

[[gnu::always_inline]] inline void check_range(std::size_t len, std::size_t offset, std::optional<std::size_t> size) {
  if (offset > len) throw ValueError("send_bytes: offset " + std::to_string(offset) + " is beyond the buffer's " +
                                     std::to_string(len) + " bytes");
  if (size && *size > len - offset)
    throw ValueError("send_bytes: offset + size (" + std::to_string(offset) + " + " + std::to_string(*size) +
                     ") exceeds the buffer's " + std::to_string(len) + " bytes");
}

}  // namespace

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

// --- construction ------------------------------------------------------------------

Connection::Connection() noexcept = default;

Connection::Connection(UniqueFd fd, bool readable, bool writable, ConnectionOptions opts)
    : fd_(std::move(fd)), readable_(readable), writable_(writable), opts_(opts) {
  if (!fd_) throw ValueError("Connection: no file descriptor given");
  if (!readable && !writable) throw ValueError("Connection: at least one of readable or writable must be true");
  init_kinds();
}

Connection::Connection(UniqueFd read_fd, UniqueFd write_fd, ConnectionOptions opts)
    : fd_(std::move(read_fd)), wfd_(std::move(write_fd)), readable_(true), writable_(true), opts_(opts) {
  if (!fd_ || !wfd_) throw ValueError("Connection: both a read and a write descriptor are needed");
  init_kinds();
}

void Connection::init_kinds() {
  auto rk = internal::fd_kind(fd_.get());
  auto wk = wfd_ ? internal::fd_kind(wfd_.get()) : rk;
  read_unix_ = readable_ && rk == internal::FdKind::unix_socket;
  write_socket_ = wk != internal::FdKind::other;
  fd_passing_ = !wfd_ && rk == internal::FdKind::unix_socket;
  if (writable_ && !write_socket_) internal::ignore_sigpipe_if_default();
}

Connection::Connection(Connection&& o) noexcept
    : fd_(std::move(o.fd_)),
      wfd_(std::move(o.wfd_)),
      readable_(std::exchange(o.readable_, false)),
      writable_(std::exchange(o.writable_, false)),
      write_socket_(o.write_socket_),
      read_unix_(o.read_unix_),
      fd_passing_(std::exchange(o.fd_passing_, false)),
      sent_since_recv_(o.sent_since_recv_.load(std::memory_order_relaxed)),
      opts_(o.opts_),
      send_buf_(std::move(o.send_buf_)),
      rs_(std::move(o.rs_)) {}

Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::move(o.fd_);
    wfd_ = std::move(o.wfd_);
    readable_ = std::exchange(o.readable_, false);
    writable_ = std::exchange(o.writable_, false);
    write_socket_ = o.write_socket_;
    read_unix_ = o.read_unix_;
    fd_passing_ = std::exchange(o.fd_passing_, false);
    sent_since_recv_.store(o.sent_since_recv_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    opts_ = o.opts_;
    send_buf_ = std::move(o.send_buf_);
    rs_ = std::move(o.rs_);
  }
  return *this;
}

Connection::~Connection() { close(); }

void Connection::close() noexcept {
  readable_ = writable_ = fd_passing_ = false;
  rs_.reset();
  std::string().swap(send_buf_);
  // Read side first: a peer that sees end of file (our write side closing) must already
  // find nobody to write to, as with a socket, whose two directions close at once.
  fd_.reset();
  wfd_.reset();
}

int Connection::fileno() const {
  if (closed()) throw_closed("Connection.fileno");
  return fd_.get();
}

int Connection::write_fileno() const {
  if (!writable_) throw_closed("Connection.write_fileno");
  return wfd_ ? wfd_.get() : fd_.get();
}

// The hot paths below are forced inline: measured on ping-pong, every call level between
// the program and the blocking read() adds latency after a context switch (the return
// predictions are lost), and these levels added 10% to a round trip.
[[noreturn, gnu::noinline, gnu::cold]] void Connection::unusable(const char* what) const {
  if (closed()) throw_closed(what);
  throw OSError(EBADF, std::string(what) + (readable_ ? ": connection is read-only" : ": connection is write-only"));
}

[[gnu::always_inline]] inline void Connection::check_writable(const char* what) const {
  if (!writable_) [[unlikely]]
    unusable(what);
}

[[gnu::always_inline]] inline void Connection::check_readable(const char* what) const {
  if (!readable_) [[unlikely]]
    unusable(what);
}

// --- sending -----------------------------------------------------------------------

[[noreturn, gnu::noinline, gnu::cold]] void Connection::io_failed(long err, const char* what) {
  if (err == ETIMEDOUT) close();  // part of a frame may be done: the stream is unusable
  throw_io(static_cast<int>(err), what);
}

[[gnu::always_inline]] inline void Connection::write_iov(::iovec* iov, int n, internal::Deadline deadline,
                                                         const char* what) {
  int fd = wfd_ ? wfd_.get() : fd_.get();
  sent_since_recv_.store(true, std::memory_order_relaxed);
  int r = internal::write_all(fd, iov, n, write_socket_, deadline);
  if (r != 0) [[unlikely]]
    io_failed(-r, what);
}

// Out of line so that the 4 KiB stack buffer is only set up for frames that need it.
[[gnu::noinline]] void Connection::send_copied(const char* header, std::size_t hl, const char* data, std::size_t size,
                                               internal::Deadline deadline) {
  char frame[kSmallFrame];
  std::memcpy(frame, header, hl);
  std::memcpy(frame + hl, data, size);
  ::iovec iov{frame, hl + size};
  write_iov(&iov, 1, deadline, "Connection.send");
}

[[gnu::always_inline]] inline void Connection::send_frame_inline(const char* data, std::size_t size,
                                                                 internal::Deadline deadline) {
  check_writable("Connection.send");
  char header[kMaxHeader];
  std::size_t hl = put_header(size, header);
  if (hl + size <= kTinyFrame) {
    char frame[kTinyFrame];
    std::memcpy(frame, header, hl);
    if (size) std::memcpy(frame + hl, data, size);
    ::iovec iov{frame, hl + size};
    write_iov(&iov, 1, deadline, "Connection.send");
  } else if (hl + size <= kSmallFrame) {
    send_copied(header, hl, data, size, deadline);
  } else {
    ::iovec iov[2] = {{header, hl}, {const_cast<char*>(data), size}};
    write_iov(iov, 2, deadline, "Connection.send");
  }
}

void Connection::send_frame(const char* data, std::size_t size, internal::Deadline deadline) {
  send_frame_inline(data, size, deadline);
}

std::string& Connection::begin_encoded_frame() {
  check_writable("Connection.send");
  send_buf_.assign(kMaxHeader, '\0');  // room for the longest header, filled in afterwards
  return send_buf_;
}

void Connection::send_encoded_frame() {
  std::size_t n = send_buf_.size() - kMaxHeader;
  char header[kMaxHeader];
  std::size_t hl = put_header(n, header);
  char* start = send_buf_.data() + (kMaxHeader - hl);
  std::memcpy(start, header, hl);
  ::iovec iov{start, hl + n};
  write_iov(&iov, 1, std::nullopt, "Connection.send");
  if (send_buf_.capacity() > kKeepBuffer) std::string().swap(send_buf_);
}

void Connection::send_bytes(std::string_view data, std::size_t offset, std::optional<std::size_t> size) {
  check_range(data.size(), offset, size);
  send_frame_inline(data.data() + offset, size.value_or(data.size() - offset), std::nullopt);
}

void Connection::send_bytes(std::span<const std::byte> data, std::size_t offset, std::optional<std::size_t> size) {
  check_range(data.size(), offset, size);
  send_frame_inline(reinterpret_cast<const char*>(data.data()) + offset, size.value_or(data.size() - offset),
                    std::nullopt);
}

void Connection::send_bytes_until(internal::Deadline deadline, std::string_view data) {
  send_frame(data.data(), data.size(), deadline);
}

// --- receiving ---------------------------------------------------------------------

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

// The budget adapts as the queue's does (Ring::await_change in src/queue/queue.cpp): a wait that
// ended within kSpinMaxNs, even after blocking, would have been caught by polling that
// long, so the budget grows to twice that wait; a longer wait (an idle peer) halves it;
// and a reader woken on the CPU where it polled in vain learns that its writer runs there
// (polling only delayed it), so its next wait blocks at once.
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
    s.spin_ns = waited <= kSpinMaxNs ? std::clamp<std::int64_t>(2 * waited, spin, kSpinMaxNs)
                                     : std::clamp<std::int64_t>(spin / 2, kSpinMinNs, kSpinMaxNs);
    if (blocked && spin > 0 && cpu >= 0 && ::sched_getcpu() == cpu) s.spin_ns = 0;
  };
  for (int pauses = 1; internal::Clock::now() < spin_end;) {
    for (int i = 0; i < pauses; ++i) internal::cpu_relax();
    pauses = std::min(pauses * 2, kSpinMaxPauses);
    ssize_t r = internal::read_nowait(fd_.get(), dest, n);
    if (r >= 0) {
      adapt(false, -1);
      return static_cast<std::size_t>(r);
    }
    if (r != -EAGAIN) io_failed(-r, what);
  }
  const int cpu = ::sched_getcpu();
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

// --- descriptors -------------------------------------------------------------------

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

// --- Pipe and wait -----------------------------------------------------------------

std::pair<Connection, Connection> Pipe(bool duplex, PipeOptions opts) {
  ConnectionOptions co{.max_message_size = opts.max_message_size, .read_ahead = opts.read_ahead};
  UniqueFd a, b;
  if (!duplex) {
    if (int r = internal::make_pipe(a, b); r != 0) throw OSError(-r, "Pipe: pipe2");
    return {Connection(std::move(a), true, false, co), Connection(std::move(b), false, true, co)};
  }
  if (opts.unix_socket) {
    if (int r = internal::make_socketpair(a, b); r != 0) throw OSError(-r, "Pipe: socketpair");
    return {Connection(std::move(a), true, true, co), Connection(std::move(b), true, true, co)};
  }
  UniqueFd c, d;
  if (int r = internal::make_pipe(a, b); r != 0) throw OSError(-r, "Pipe: pipe2");
  if (int r = internal::make_pipe(c, d); r != 0) throw OSError(-r, "Pipe: pipe2");
  // The first end reads what the second writes (a <- b) and writes what it reads (d -> c).
  return {Connection(std::move(a), std::move(d), co), Connection(std::move(c), std::move(b), co)};
}

Waitable::Waitable(const Process& p) : fd_(p.sentinel()) {
  if (fd_ < 0)
    throw ValueError("wait: process " + p.name() + " has no sentinel any more (already joined or closed); "
                     "wait on it before joining");
}

int Waitable::fd() const { return conn_ ? conn_->fileno() : fd_; }

std::vector<Waitable> wait_until(std::span<const Waitable> objects, internal::Deadline deadline) {
  std::vector<pollfd> pfds(objects.size());
  std::vector<char> ready(objects.size(), 0);
  bool any = false;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    const Waitable& w = objects[i];
    pfds[i] = pollfd{w.fd(), POLLIN, 0};
    if (pfds[i].fd < 0) throw ValueError("wait: invalid file descriptor " + std::to_string(pfds[i].fd));
    if (Connection* c = w.connection(); c && c->readable() && c->buffered() > (c->rs_ ? c->rs_->pending : 0))
      ready[i] = any = true;
  }
  int r = internal::poll_until(pfds.data(), pfds.size(), any ? internal::Deadline(internal::Clock::now()) : deadline);
  if (r < 0) throw OSError(-r, "wait: poll");
  std::vector<Waitable> out;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (pfds[i].revents & POLLNVAL) throw OSError(EBADF, "wait: descriptor " + std::to_string(pfds[i].fd));
    if (ready[i] || pfds[i].revents) out.push_back(objects[i]);
  }
  return out;
}

std::vector<Connection*> wait_until(std::span<Connection* const> conns, internal::Deadline deadline) {
  std::vector<Waitable> ws;
  ws.reserve(conns.size());
  for (Connection* c : conns) ws.emplace_back(*c);
  std::vector<Connection*> out;
  for (const Waitable& w : wait_until(std::span<const Waitable>(ws), deadline)) out.push_back(w.connection());
  return out;
}

// --- addresses ---------------------------------------------------------------------

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

namespace {

std::string printable(const Address& a) {
  std::string s = a.str();
  if (!s.empty() && s[0] == '\0') s = "@" + s.substr(1);  // abstract Unix name
  return s;
}

internal::SockAddr unix_sockaddr(const Address& a, const char* what) {
  internal::SockAddr sa;
  if (internal::unix_address(a.path().data(), a.path().size(), sa) != 0)
    throw ValueError(std::string(what) + ": Unix socket path too long (at most 107 bytes): " + printable(a));
  return sa;
}

internal::ResolvedAddrs resolve(const Address& a, bool passive, const char* what) {
  internal::ResolvedAddrs out;
  if (int rc = internal::resolve_tcp(a.host().c_str(), a.port(), passive, out); rc != 0)
    throw OSError(EHOSTUNREACH, std::string(what) + ": cannot resolve " + a.str() + " (" + internal::resolve_error(rc) + ")");
  return out;
}

Address tcp_address_of(const internal::SockAddr& sa) {
  char host[64];
  std::uint16_t port = 0;
  internal::numeric_host_port(sa, host, sizeof host, port);
  return Address::tcp(host, port);
}

// --- the handshake ---------------------------------------------------------------

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

}  // namespace

void deliver_challenge(Connection& c, std::string_view authkey, internal::Deadline deadline) {
  as_authentication_error([&] { deliver_raw(c, authkey, deadline); }, "deliver_challenge");
}

void answer_challenge(Connection& c, std::string_view authkey, internal::Deadline deadline) {
  as_authentication_error([&] { answer_raw(c, authkey, deadline); }, "answer_challenge");
}

// --- Listener and Client -----------------------------------------------------------

Listener::Listener() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp && *tmp && std::strlen(tmp) < 60 ? tmp : "/tmp";
  std::string dir = base + "/mp-XXXXXX";
  if (int r = internal::make_temp_dir(dir.data()); r != 0) throw OSError(-r, "Listener: cannot create " + dir);
  temp_dir_ = dir;
  try {
    *this = Listener(Address::unix_socket(dir + "/listener"), {});
  } catch (...) {
    internal::remove_socket_file(nullptr, dir.c_str());
    throw;
  }
  temp_dir_ = dir;
}

Listener::Listener(const Address& address, ListenerOptions opts)
    : address_(address), opts_(std::move(opts)), owner_pid_(internal::self_pid()) {
  if (opts_.backlog < 1) opts_.backlog = 1;
  if (address.family() == Address::Family::unix_socket) {
    auto sa = unix_sockaddr(address, "Listener");
    int r = internal::listen_on(sa, opts_.backlog, opts_.unix_mode, fd_);
    if (r == -EADDRINUSE)
      throw OSError(EADDRINUSE, "Listener: cannot listen on " + printable(address) +
                                    " (if no server runs there, remove the stale socket file)");
    if (r != 0) throw OSError(-r, "Listener: cannot listen on " + printable(address));
    return;
  }
  auto addrs = resolve(address, true, "Listener");
  int r = -EADDRNOTAVAIL;
  for (int i = 0; i < addrs.count && r != 0; ++i) r = internal::listen_on(addrs.addrs[i], opts_.backlog, 0, fd_);
  if (r != 0) throw OSError(-r, "Listener: cannot listen on " + address.str());
  internal::SockAddr bound;
  if (internal::local_address(fd_.get(), bound) == 0) address_ = Address::tcp(address.host(), tcp_address_of(bound).port());
}

Listener::Listener(Listener&& o) noexcept
    : fd_(std::move(o.fd_)),
      address_(std::move(o.address_)),
      opts_(std::move(o.opts_)),
      last_accepted_(std::move(o.last_accepted_)),
      temp_dir_(std::exchange(o.temp_dir_, {})),
      owner_pid_(std::exchange(o.owner_pid_, 0)) {}

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::move(o.fd_);
    address_ = std::move(o.address_);
    opts_ = std::move(o.opts_);
    last_accepted_ = std::move(o.last_accepted_);
    temp_dir_ = std::exchange(o.temp_dir_, {});
    owner_pid_ = std::exchange(o.owner_pid_, 0);
  }
  return *this;
}

Listener::~Listener() { close(); }

void Listener::close() noexcept {
  bool owner = owner_pid_ != 0 && owner_pid_ == internal::self_pid();
  if (fd_ && owner && address_.family() == Address::Family::unix_socket && !address_.path().empty() &&
      address_.path()[0] != '\0')
    internal::remove_socket_file(address_.path().c_str(), temp_dir_.empty() ? nullptr : temp_dir_.c_str());
  else if (owner && !temp_dir_.empty())
    internal::remove_socket_file(nullptr, temp_dir_.c_str());
  temp_dir_.clear();
  fd_.reset();
}

Connection Listener::accept() { return accept_until(std::nullopt); }

Connection Listener::accept_until(internal::Deadline deadline) {
  if (!fd_) throw OSError(EBADF, "Listener.accept: the listener is closed");
  UniqueFd fd;
  internal::SockAddr peer;
  int r = internal::accept_on(fd_.get(), deadline, fd, &peer);
  if (r == -ETIMEDOUT) throw TimeoutError("Listener.accept: no client connected in time");
  if (r != 0) throw OSError(-r, "Listener.accept");
  Connection c(std::move(fd), true, true, {.max_message_size = opts_.max_message_size});
  if (peer.family() == AF_UNIX) last_accepted_.reset();
  else last_accepted_ = tcp_address_of(peer);
  if (opts_.authkey && !opts_.authkey->empty()) {
    internal::Deadline hd;
    if (opts_.handshake_timeout) hd = internal::deadline_after(*opts_.handshake_timeout);
    as_authentication_error(
        [&] {
          deliver_raw(c, *opts_.authkey, hd);
          answer_raw(c, *opts_.authkey, hd);
        },
        "Listener.accept");
  }
  return c;
}

Connection Client(const Address& address, ClientOptions opts) {
  internal::Deadline deadline;
  if (opts.timeout) deadline = internal::deadline_after(*opts.timeout);
  UniqueFd fd;
  int r = -ECONNREFUSED;
  if (address.family() == Address::Family::unix_socket) {
    r = internal::connect_to(unix_sockaddr(address, "Client"), deadline, fd);
  } else {
    auto addrs = resolve(address, false, "Client");
    for (int i = 0; i < addrs.count && r != 0 && r != -ETIMEDOUT; ++i)
      r = internal::connect_to(addrs.addrs[i], deadline, fd);
  }
  if (r == -ETIMEDOUT) throw TimeoutError("Client: connecting to " + printable(address) + " timed out");
  if (r != 0) throw OSError(-r, "Client: cannot connect to " + printable(address));
  Connection c(std::move(fd), true, true, {.max_message_size = opts.max_message_size});
  if (opts.authkey && !opts.authkey->empty()) {
    try {
      answer_raw(c, *opts.authkey, deadline);
      deliver_raw(c, *opts.authkey, deadline);
    } catch (const AuthenticationError&) {
      throw;
    } catch (const TimeoutError&) {
      throw TimeoutError("Client: authentication with " + printable(address) +
                         " timed out (does the Listener use an authkey?)");
    } catch (const EOFError&) {
      throw AuthenticationError("Client: " + printable(address) +
                                " closed the connection during authentication (wrong authkey?)");
    } catch (const OSError& e) {
      throw AuthenticationError(std::string("Client: authentication failed: ") + e.what());
    }
  }
  return c;
}

}  // namespace connection
}  // namespace mp
