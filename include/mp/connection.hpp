// mp/connection.hpp — message connections between processes: Pipe, Listener, Client, wait.
//
// Mirrors: multiprocessing.Pipe, multiprocessing.connection.Connection / Listener /
// Client / wait / deliver_challenge / answer_challenge, and reduction.send_handle /
// recv_handle (here send_fd / recv_fd).
//
//   auto [a, b] = mp::Pipe();                   // duplex: both ends send and receive
//   mp::Process p([&] { b.send(b.recv<int>() * 2); });
//   p.start();
//   a.send(21);  int answer = a.recv<int>();     // 42
//
// Guarantees:
// - Messages, not bytes: each send()/send_bytes() arrives as exactly one recv()/
//   recv_bytes(), whole, in order. The framing is CPython's (a 4-byte signed big-endian
//   length, or ff ff ff ff + an 8-byte big-endian length above 0x7fffffff), so a
//   Listener/Client connection talks to Python's multiprocessing.connection directly
//   with send_bytes/recv_bytes (send/recv use mp::codec, not pickle).
// - End of stream is a value, never a hang: once every copy of the other end is closed
//   (in every process), recv*() raises mp::EOFError. End of file in the middle of a
//   message raises mp::OSError (EPROTO, "got end of file during message").
// - Untrusted lengths never allocate: a length above max_message_size (default 1 GiB,
//   per connection) raises mp::OSError (EMSGSIZE) and closes the connection, as CPython
//   does. Memory for a large message grows only as its bytes actually arrive.
// - Broken connections are exceptions: sending to a peer that is gone raises mp::OSError
//   with code EPIPE or ECONNRESET. SIGPIPE never kills the process: sockets write with
//   MSG_NOSIGNAL, and creating a pipe-based connection sets SIGPIPE to SIG_IGN if it was
//   still at its default (CPython ignores SIGPIPE at start-up for the same reason; a
//   handler you installed is kept). Programs you exec inherit the ignored SIGPIPE.
// - Using a closed connection raises mp::OSError (EBADF, "handle is closed").
//
// Threads: a Connection is not locked (Python's is not either). One thread may send
// while another receives on the same Connection; two concurrent senders (or receivers)
// on one Connection object need a lock. close() must not race with other calls.
//
// Processes: fork (mp::Process) gives the child a copy of every Connection object; capture
// them by reference (`[&]`) — Connection is move-only so that a stray copy never keeps an
// end open and delays EOF. Several processes may share one end. On pipes, frames of at
// most 4092 payload bytes are written atomically, so concurrent senders in different
// processes never interleave them; bigger frames from concurrent senders need a Lock.
// Receiving is buffered (one read() serves many small frames): the bytes a Connection
// has read ahead belong to that object, so two processes must not receive from the same
// end in turn (one would swallow the other's frames) unless both use
// `.read_ahead = false`, which reads exactly one frame at a time, as CPython does.
// A receive that finds nothing polls for up to 50 us (adaptive) before it blocks, unless
// this end has sent something since its last receive (it then awaits a reply): see
// docs/connection.md for why a sleeping reader slows its writer down.
//
// Differences from Python: duplex Pipe() is two pipes rather than a socketpair (its round
// trip is 1.7x faster); ask for `.unix_socket = true` to get a socketpair that can also
// carry descriptors (send_fd). Listener's default backlog is 128 (Python: 1). Listener
// and Client time out a stalled authentication handshake (30 s by default).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "mp/internal/fd.hpp"
#include "mp/internal/futex.hpp"

struct iovec;

namespace mp {

class Process;
class Waitable;

/// An owned file descriptor (closed when destroyed), as returned by Connection::recv_fd().
using UniqueFd = internal::UniqueFd;

/// multiprocessing.BufferTooShort: recv_bytes_into() got a message larger than the
/// buffer. The message has been consumed; it is available whole as message().
class BufferTooShort : public ProcessError {
 public:
  explicit BufferTooShort(std::string message)
      : ProcessError("recv_bytes_into: the message (" + std::to_string(message.size()) +
                     " bytes) does not fit the buffer; it is available as BufferTooShort::message()"),
        message_(std::move(message)) {}
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
};

/// Limits and buffering of one connection.
struct ConnectionOptions {
  static constexpr std::size_t kDefaultMaxMessageSize = std::size_t{1} << 30;
  /// Longest message recv*() accepts; a longer length closes the connection. Default 1 GiB.
  std::size_t max_message_size = kDefaultMaxMessageSize;
  /// true (default): read as much as is available into a 64 KiB buffer, so many small
  /// messages cost one read(). false: read exactly one message (see the header comment).
  bool read_ahead = true;
};

/// One end of a message channel. Move-only; the destructor closes it.
class Connection {
 public:
  /// A closed connection.
  Connection() noexcept;
  /// Wraps a connected descriptor (pipe end, socketpair end, or stream socket) like
  /// Python's Connection(handle, readable, writable). Throws mp::ValueError if neither
  /// readable nor writable, or if `fd` is empty.
  explicit Connection(UniqueFd fd, bool readable = true, bool writable = true, ConnectionOptions opts = {});
  /// A duplex connection made of a read descriptor and a write descriptor (two pipes).
  Connection(UniqueFd read_fd, UniqueFd write_fd, ConnectionOptions opts = {});
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // --- sending -------------------------------------------------------------------

  /// Sends `value` encoded by mp::codec as one message (Python's send(obj)). One system
  /// call; the encoding buffer is reused between calls. Throws mp::OSError (EBADF when
  /// closed or read-only, EPIPE/ECONNRESET when the peer is gone).
  template <class T>
  void send(const T& value) {
    static_assert(Transferable<T>,
                  "mp::Connection::send(value): this type cannot be sent between processes. Make it trivially "
                  "copyable, or give it `template <class Archive> void serialize(Archive& ar) { ar(field1, field2, "
                  "...); }` and a default constructor (cereal), or include the cereal header for the standard type "
                  "it uses; pointers cannot be sent.");
    if constexpr (!Transferable<T>) {
      return;  // the static_assert above is the one error
    } else if constexpr (TriviallyTransferable<T>) {
      send_frame(reinterpret_cast<const char*>(std::addressof(value)), sizeof(T));
    } else {
      std::string& buf = begin_encoded_frame();
      codec::encode_into(value, buf);
      send_encoded_frame();
    }
  }

  /// Sends bytes [offset, offset + size) of `data` as one message (size = the rest by
  /// default). Header and payload go out in one write; the payload is never copied when
  /// it is larger than 4 KiB. Throws mp::ValueError if the range is outside `data`;
  /// otherwise as send().
  void send_bytes(std::string_view data, std::size_t offset = 0, std::optional<std::size_t> size = std::nullopt);
  void send_bytes(std::span<const std::byte> data, std::size_t offset = 0,
                  std::optional<std::size_t> size = std::nullopt);

  // --- receiving -----------------------------------------------------------------

  /// Receives one message and decodes it as a T (Python's recv()). Blocks until a whole
  /// message is there. Throws mp::EOFError when the other end is closed and nothing is
  /// left, mp::CodecError if the message is not a T (the message is consumed and the
  /// connection stays usable), mp::OSError on a broken or oversized frame.
  template <class T>
  T recv() {
    static_assert(Transferable<T>, "mp::Connection::recv: this type cannot be received (see mp/codec.hpp)");
    FrameView f = recv_frame_view(std::nullopt);
    FrameRelease release{this};
    return codec::decode<T>(f.bytes);
  }

  /// Receives one message as bytes (Python's recv_bytes(maxlength)). A message longer
  /// than `maxlength` (or max_message_size) closes the connection and raises mp::OSError
  /// (EMSGSIZE), as CPython does. Otherwise throws as recv(). A fresh std::string is
  /// zero-filled before the bytes land (C++20 has no uninitialized resize): for bandwidth
  /// on large messages, receive into a reused buffer with the next two forms.
  [[nodiscard]] std::string recv_bytes(std::optional<std::size_t> maxlength = std::nullopt);
  /// Receives one message into `out`, replacing its contents and reusing its capacity
  /// (no allocation once it is large enough). Returns the message size.
  std::size_t recv_bytes(std::string& out, std::optional<std::size_t> maxlength = std::nullopt);
  /// Receives one message into `buffer` at `offset` (Python's recv_bytes_into); returns
  /// its size. Throws mp::ValueError if offset > buffer.size(), mp::BufferTooShort if the
  /// message does not fit (it is consumed and carried by the exception).
  std::size_t recv_bytes_into(std::span<std::byte> buffer, std::size_t offset = 0);
  std::size_t recv_bytes_into(std::span<char> buffer, std::size_t offset = 0);

  /// True when recv*() would not block: a message (or part of one) is buffered or
  /// readable, or the other end is closed (recv then raises EOFError). poll() does not
  /// wait (Python's default timeout=0); poll(timeout) waits at most `timeout` (negative
  /// counts as zero); poll(std::nullopt) waits forever (Python's poll(None)).
  /// Throws mp::OSError if closed or write-only.
  [[nodiscard]] bool poll() { return poll_until(internal::Clock::now()); }
  template <class Rep, class Period>
  [[nodiscard]] bool poll(std::chrono::duration<Rep, Period> timeout) {
    return poll_until(internal::deadline_after(timeout));
  }
  [[nodiscard]] bool poll(std::nullopt_t) { return poll_until(std::nullopt); }
  [[nodiscard]] bool poll_until(internal::Deadline deadline);

  // --- descriptors ---------------------------------------------------------------

  /// Sends a duplicate of `fd` to the peer process (SCM_RIGHTS; Python's
  /// reduction.send_handle). Needs a Unix-socket connection: mp::Pipe(true,
  /// {.unix_socket = true}) or a Listener/Client on a Unix path; throws mp::ValueError
  /// otherwise. The caller keeps `fd` open (close it when you no longer need it).
  void send_fd(int fd);
  /// Receives a descriptor sent by send_fd() (close-on-exec, owned by the result).
  /// Messages and descriptors share one ordered stream: receive them in the order they
  /// were sent. Throws mp::EOFError at end of stream, mp::OSError if the next item is not
  /// a descriptor.
  [[nodiscard]] UniqueFd recv_fd();
  /// Several descriptors in one transfer (at most 253); recv_fds(n) expects exactly n.
  void send_fds(std::span<const int> fds);
  [[nodiscard]] std::vector<UniqueFd> recv_fds(std::size_t n);

  // --- state ---------------------------------------------------------------------

  /// Closes the end (idempotent). Messages read ahead but not yet received are dropped;
  /// descriptors received but not collected are closed.
  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept { return !readable_ && !writable_; }
  [[nodiscard]] bool readable() const noexcept { return readable_; }
  [[nodiscard]] bool writable() const noexcept { return writable_; }
  /// The descriptor to wait on for readability (Python's fileno()): the read side, or the
  /// write side of a write-only end. Throws mp::OSError if closed.
  [[nodiscard]] int fileno() const;
  /// The descriptor messages are written to (differs from fileno() for a two-pipe duplex end).
  [[nodiscard]] int write_fileno() const;
  [[nodiscard]] std::size_t max_message_size() const noexcept { return opts_.max_message_size; }
  void max_message_size(std::size_t n) noexcept { opts_.max_message_size = n; }
  /// True if this end is a Unix socket (send_fd / recv_fd work).
  [[nodiscard]] bool is_unix_socket() const noexcept { return fd_passing_; }

  /// Internal: like recv_bytes / send_bytes but giving up at `deadline` with
  /// mp::TimeoutError (the connection is then closed, since a message may be half done).
  /// Used by the authentication handshake.
  std::string recv_bytes_until(internal::Deadline deadline, std::size_t maxlength);
  void send_bytes_until(internal::Deadline deadline, std::string_view data);

 private:
  struct FrameView {
    std::string_view bytes;
    std::size_t consume = 0;  // bytes to drop from the read buffer once used
  };
  struct FrameRelease {
    Connection* c;
    ~FrameRelease() { c->release_frame(); }
  };
  struct RecvState;

  void init_kinds();
  std::size_t raw_read(char* dest, std::size_t n, internal::Deadline deadline, const char* what);
  RecvState& recv_state();
  [[noreturn]] void unusable(const char* what) const;
  [[noreturn]] void io_failed(long err, const char* what);
  void make_recv_state();
  std::size_t recv_with_fds(const ::iovec* iov, int iovcnt, internal::Deadline deadline, const char* what);
  std::size_t read_or_spin(char* dest, std::size_t n, const char* what);
  std::size_t spin_then_read(char* dest, std::size_t n, const char* what, int err);
  static void let_writes_gather() noexcept;
  std::size_t raw_readv(const ::iovec* iov, int iovcnt, internal::Deadline deadline, const char* what);
  void check_writable(const char* what) const;
  void check_readable(const char* what) const;
  void send_frame(const char* data, std::size_t size, internal::Deadline deadline = std::nullopt);
  void send_frame_inline(const char* data, std::size_t size, internal::Deadline deadline);
  std::size_t recv_into_inline(std::span<char> buffer, std::size_t offset);
  void send_copied(const char* header, std::size_t hl, const char* data, std::size_t size,
                   internal::Deadline deadline);
  std::string& begin_encoded_frame();
  void send_encoded_frame();
  void write_iov(::iovec* iov, int n, internal::Deadline deadline, const char* what);
  std::size_t read_header(internal::Deadline deadline, std::size_t maxlength, const char* what);
  FrameView recv_frame_view(internal::Deadline deadline);
  void release_frame() noexcept;
  void read_payload(char* dest, std::size_t n, internal::Deadline deadline, const char* what);
  void read_direct(char* dest, std::size_t n, internal::Deadline deadline, const char* what, std::size_t done,
                   std::size_t total);
  bool fill(std::size_t need, internal::Deadline deadline, const char* what);
  std::size_t buffered() const noexcept;
  [[noreturn]] void truncated(const char* what, std::size_t got, std::size_t want);
  [[noreturn]] void bad_length(std::uint64_t n, std::size_t limit, const char* what);
  void read_growing(std::string& out, std::size_t n, internal::Deadline deadline, const char* what);

  friend std::vector<Waitable> wait_until(std::span<const Waitable>, internal::Deadline);

  UniqueFd fd_;        // the socket, or the read end / only end of a pipe
  UniqueFd wfd_;       // the write pipe of a two-pipe duplex end
  bool readable_ = false;
  bool writable_ = false;
  bool write_socket_ = false;  // write with sendmsg(MSG_NOSIGNAL)
  bool read_unix_ = false;     // read with recvmsg, collecting passed descriptors
  bool fd_passing_ = false;    // one Unix socket both ways: send_fd/recv_fd allowed
  // A receive now awaits a reply: block, do not poll. Atomic (relaxed, a hint only): one
  // thread may send while another receives.
  std::atomic<bool> sent_since_recv_{false};
  ConnectionOptions opts_;
  std::string send_buf_;            // reused encoding buffer for send(value)
  std::unique_ptr<RecvState> rs_;   // read-ahead buffer and received descriptors (lazy)
};

/// Options for mp::Pipe().
struct PipeOptions {
  /// Duplex only: a Unix socketpair instead of two pipes, so the ends can also pass
  /// descriptors (send_fd). A little slower for small messages. Default false.
  bool unix_socket = false;
  std::size_t max_message_size = ConnectionOptions::kDefaultMaxMessageSize;
  bool read_ahead = true;
};

/// A pair of connected ends (Python's multiprocessing.Pipe). duplex=true: both ends send
/// and receive. duplex=false: the first end only receives, the second only sends.
/// Throws mp::OSError if the system is out of descriptors.
[[nodiscard]] std::pair<Connection, Connection> Pipe(bool duplex = true, PipeOptions opts = {});

/// Something mp::wait() can wait on: a Connection (ready when recv would not block), a
/// raw descriptor (ready when readable), or a started Process (ready when it has ended).
class Waitable {
 public:
  Waitable(Connection& c) noexcept : conn_(&c) {}  // NOLINT: implicit, like Python's duck typing
  Waitable(int fd) noexcept : fd_(fd) {}           // NOLINT
  /// Ready when the process has ended. Throws mp::ProcessError if it was not started,
  /// mp::ValueError once it has been joined (its sentinel is gone by then).
  Waitable(const Process& p);  // NOLINT
  [[nodiscard]] Connection* connection() const noexcept { return conn_; }
  /// The descriptor polled (a Connection's fileno(), the fd, or the process sentinel).
  [[nodiscard]] int fd() const;
  bool operator==(const Waitable&) const = default;

 private:
  Connection* conn_ = nullptr;
  int fd_ = -1;
};

/// Waits until at least one object is ready and returns the ready ones, in the order
/// given (Python's multiprocessing.connection.wait). wait(objects) waits forever;
/// wait(objects, timeout) returns an empty list when the timeout passes (negative counts
/// as zero). A connection with read-ahead data is ready without a system call.
/// Throws mp::OSError for a closed connection or a bad descriptor.
std::vector<Waitable> wait_until(std::span<const Waitable> objects, internal::Deadline deadline);
inline std::vector<Waitable> wait(std::span<const Waitable> objects) { return wait_until(objects, std::nullopt); }
inline std::vector<Waitable> wait(std::initializer_list<Waitable> objects) {
  return wait_until({objects.begin(), objects.size()}, std::nullopt);
}
template <class Rep, class Period>
std::vector<Waitable> wait(std::span<const Waitable> objects, std::chrono::duration<Rep, Period> timeout) {
  return wait_until(objects, internal::deadline_after(timeout));
}
template <class Rep, class Period>
std::vector<Waitable> wait(std::initializer_list<Waitable> objects, std::chrono::duration<Rep, Period> timeout) {
  return wait_until({objects.begin(), objects.size()}, internal::deadline_after(timeout));
}
/// The same for a list of connections: returns the ready ones.
std::vector<Connection*> wait_until(std::span<Connection* const> conns, internal::Deadline deadline);
inline std::vector<Connection*> wait(std::span<Connection* const> conns) { return wait_until(conns, std::nullopt); }
template <class Rep, class Period>
std::vector<Connection*> wait(std::span<Connection* const> conns, std::chrono::duration<Rep, Period> timeout) {
  return wait_until(conns, internal::deadline_after(timeout));
}

namespace connection {

using mp::Connection;
using mp::wait;
using mp::wait_until;

/// Where a Listener listens and a Client connects: a Unix socket path (Python's AF_UNIX
/// string address) or a TCP host and port (Python's (host, port) tuple).
///
/// From a string: "host:port", "[v6addr]:port", ":port" or "port" are TCP ("" host means
/// 127.0.0.1 — binding every interface needs an explicit "0.0.0.0:port"); a string that
/// starts with '\0' is an abstract Unix name; anything else is a Unix socket path.
class Address {
 public:
  enum class Family { unix_socket, tcp };
  Address(const char* s) : Address(std::string_view(s)) {}  // NOLINT: implicit, as Python strings
  Address(std::string_view s);                              // NOLINT
  Address(const std::string& s) : Address(std::string_view(s)) {}  // NOLINT
  Address(std::string host, std::uint16_t port);
  static Address unix_socket(std::string path);
  static Address tcp(std::string host, std::uint16_t port);

  [[nodiscard]] Family family() const noexcept { return family_; }
  /// The Unix socket path (Family::unix_socket).
  [[nodiscard]] const std::string& path() const noexcept { return host_or_path_; }
  /// The host (Family::tcp).
  [[nodiscard]] const std::string& host() const noexcept { return host_or_path_; }
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// "host:port" (IPv6 hosts in brackets) or the path; parses back to the same Address.
  [[nodiscard]] std::string str() const;
  bool operator==(const Address&) const = default;

 private:
  friend class Listener;
  Address() = default;
  Family family_ = Family::unix_socket;
  std::string host_or_path_;
  std::uint16_t port_ = 0;
};

using Timeout = std::optional<std::chrono::milliseconds>;

/// Options for a Listener.
struct ListenerOptions {
  /// Shared secret. When set and not empty, accept() runs CPython's mutual HMAC
  /// challenge/response before returning a connection. Default: no authentication.
  std::optional<std::string> authkey;
  /// listen() backlog: how many connections may wait for accept(). Default 128.
  int backlog = 128;
  /// Longest accept() waits for a connected client to finish authenticating; nullopt:
  /// forever (Python's behaviour). Default 30 s.
  Timeout handshake_timeout = std::chrono::seconds(30);
  /// max_message_size of accepted connections (default 1 GiB).
  std::size_t max_message_size = ConnectionOptions::kDefaultMaxMessageSize;
  /// Permissions of a Unix socket file (who may connect). Default 0600: the owner only.
  unsigned unix_mode = 0600;
};

/// A bound, listening socket (Python's multiprocessing.connection.Listener). Move-only;
/// the destructor closes it and removes its Unix socket file (only in the process that
/// created it, so a forked child's copy never unlinks the parent's socket).
class Listener {
 public:
  /// Listens on a fresh Unix socket in a private temporary directory (Python's
  /// Listener() with no address); address() tells where.
  Listener();
  /// Throws mp::OSError if the address is in use or cannot be bound (a stale Unix socket
  /// file must be removed first, as in Python), mp::ValueError for an unusable address.
  explicit Listener(const Address& address, ListenerOptions opts = {});
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  /// Waits for a client and returns its connection, authenticated if an authkey is set.
  /// A client that fails the handshake — wrong key, silence past handshake_timeout,
  /// closing early, speaking another protocol — raises mp::AuthenticationError for that
  /// client only: its socket is closed and the Listener keeps working.
  /// Throws mp::OSError if the listener is closed or the system refuses.
  Connection accept();
  /// As accept(), but raises mp::TimeoutError if no client connects within `timeout`.
  template <class Rep, class Period>
  Connection accept(std::chrono::duration<Rep, Period> timeout) {
    return accept_until(internal::deadline_after(timeout));
  }
  Connection accept_until(internal::Deadline deadline);

  /// Closes the socket and removes its file (idempotent).
  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept { return !fd_; }
  /// Where clients connect: for TCP port 0, the port the system chose.
  [[nodiscard]] const Address& address() const noexcept { return address_; }
  /// The peer address of the last accepted connection (TCP only; nullopt for Unix).
  [[nodiscard]] const std::optional<Address>& last_accepted() const noexcept { return last_accepted_; }
  [[nodiscard]] int fileno() const noexcept { return fd_.get(); }

 private:
  UniqueFd fd_;
  Address address_;
  ListenerOptions opts_;
  std::optional<Address> last_accepted_;
  std::string temp_dir_;  // created by Listener(): removed on close
  int owner_pid_ = 0;
};

/// Options for Client().
struct ClientOptions {
  /// Shared secret: when set and not empty, Client() answers the Listener's challenge and
  /// then challenges it in turn (mutual authentication). Default: no authentication.
  std::optional<std::string> authkey;
  /// Bound on connecting plus authenticating; mp::TimeoutError when it passes.
  /// nullopt: no limit. Default 30 s.
  Timeout timeout = std::chrono::seconds(30);
  std::size_t max_message_size = ConnectionOptions::kDefaultMaxMessageSize;
};

/// Connects to a Listener (mp's or Python's) at `address` (Python's Client()).
/// Throws mp::OSError if nobody listens there, mp::AuthenticationError if the keys do
/// not match (or the server is not authenticating the way the key says),
/// mp::TimeoutError when options.timeout passes.
[[nodiscard]] Connection Client(const Address& address, ClientOptions opts = {});

/// The two halves of CPython's handshake, for servers that authenticate outside
/// accept() (say, in a worker thread). deliver_challenge sends `#CHALLENGE#{sha256}` +
/// 40 random bytes and accepts an answer in any digest CPython 3.12+ allows (md5 raw
/// 16-byte legacy answers included, as CPython does for 3.11 peers); it replies
/// `#WELCOME#` or `#FAILURE#`. answer_challenge answers both legacy 20-byte challenges
/// (raw HMAC-MD5) and `{digest}` ones. Both compare MACs in constant time and raise
/// mp::AuthenticationError on any failure (wrong key, protocol error, peer closed, or
/// `deadline` passed).
void deliver_challenge(Connection& c, std::string_view authkey, internal::Deadline deadline = std::nullopt);
void answer_challenge(Connection& c, std::string_view authkey, internal::Deadline deadline = std::nullopt);

}  // namespace connection
}  // namespace mp
