// Pipe(), and wait() over connections, processes and descriptors.
// See include/mp/connection.hpp for the contract.
#include "mp/connection.hpp"

#include <poll.h>

#include <cerrno>

#include "connection/internal.hpp"
#include "mp/process.hpp"

namespace mp {

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

}  // namespace mp
