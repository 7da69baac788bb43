// connection::Listener and connection::Client: sockets that listen, accept and connect,
// with the optional handshake. See include/mp/connection.hpp for the contract.
#include "mp/connection.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "connection/internal.hpp"
#include "mp/internal/os.hpp"

namespace mp {
namespace connection {

namespace {

// Addresses as the socket layer takes them, and as error messages print them.
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

}  // namespace

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
