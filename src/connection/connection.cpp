// Connection: construction, ownership, and sending frames. See include/mp/connection.hpp
// for the contract; receiving is in receive.cpp.
#include "mp/connection.hpp"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "connection/internal.hpp"

namespace mp {

namespace {

// Frames up to PIPE_BUF bytes are copied into one buffer and written with write(): one
// atomic pipe write, and cheaper than writev for small messages (measured).
constexpr std::size_t kSmallFrame = 4096;
constexpr std::size_t kTinyFrame = 256;
constexpr std::size_t kMaxHeader = 12;

std::size_t put_header(std::uint64_t n, char* out) noexcept {
  if (n > 0x7fffffffu) {
    std::memset(out, 0xff, 4);
    for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<char>(n >> (56 - 8 * i));
    return 12;
  }
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(n >> (24 - 8 * i));
  return 4;
}

[[gnu::always_inline]] inline void check_range(std::size_t len, std::size_t offset, std::optional<std::size_t> size) {
  if (offset > len) throw ValueError("send_bytes: offset " + std::to_string(offset) + " is beyond the buffer's " +
                                     std::to_string(len) + " bytes");
  if (size && *size > len - offset)
    throw ValueError("send_bytes: offset + size (" + std::to_string(offset) + " + " + std::to_string(*size) +
                     ") exceeds the buffer's " + std::to_string(len) + " bytes");
}

}  // namespace

[[noreturn]] void throw_closed(const char* what) { throw OSError(EBADF, std::string(what) + ": handle is closed"); }

[[noreturn]] void throw_io(int err, const char* what) {
  if (err == ETIMEDOUT) throw TimeoutError(std::string(what) + ": timed out");
  if (err == EPIPE || err == ECONNRESET)
    throw OSError(err, std::string(what) + ": the other end of the connection is closed");
  throw OSError(err, what);
}

// Construction and ownership.

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
[[noreturn, gnu::noinline, gnu::cold]] void Connection::unusable(const char* what) const {
  if (closed()) throw_closed(what);
  throw OSError(EBADF, std::string(what) + (readable_ ? ": connection is read-only" : ": connection is write-only"));
}

// Sending.

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

}  // namespace mp
