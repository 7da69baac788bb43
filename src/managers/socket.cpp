// The socket transport of managers: SocketServer and the client-side SocketLink.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>

#include "common/wait_policy.hpp"
#include "managers/client.hpp"
#include "managers/socket.hpp"
#include "os/file.hpp"

namespace mp::internal::manager {

namespace {

/// Waits for a connection to become readable: first a short, bounded, adaptive spell of
/// polling without sleeping, then a blocking wait (left to the caller's recv).
///
/// Why: a manager call is a request/reply round trip, and each direction that finds its
/// reader asleep pays a scheduler wake-up — on an otherwise idle machine the wake-up of an
/// idle CPU, 30-40 µs on a VM, several times the cost of the call itself. A peer that
/// answers within microseconds (the server computing a reply, a client issuing its next
/// call) is caught by polling instead, so an active client/server pair never sleeps.
/// The budget (wait_policy::OutcomeBudget) is judged by the polling's outcome, since the
/// blocking wait happens in recv; no polling while no CPU is free for the peer.
class ReadWaiter {
 public:
  void wait(Connection& c) {
    if (!wait_policy::spare_cpu_for_peer()) return;
    const auto budget = budget_.next();
    if (budget == budget.zero()) return;
    auto end = Clock::now() + budget;
    while (!c.poll()) {  // poll() also sees bytes already buffered by the Connection
      if (Clock::now() >= end) {
        budget_.missed();
        return;
      }
      for (int i = 0; i < wait_policy::kPausesBetweenPolls; ++i) cpu_relax();
    }
    budget_.caught();
  }

 private:
  wait_policy::OutcomeBudget budget_;
};

}  // namespace

struct SocketServer::Shared {
  std::string authkey;
  std::chrono::milliseconds handshake_timeout;
  Handler handler;
  UniqueFd wake;  // eventfd: readable once stop() was called
  std::atomic<bool> stopping{false};
  // Out of descriptors with no spare to refuse a client with, serve_forever stops polling
  // the listener; the next connection to end frees a descriptor and says so here.
  UniqueFd freed;  // eventfd
  std::atomic<bool> accept_paused{false};
  std::mutex mu;
  std::set<int> conn_fds;  // sockets of live connections (shut down by stop())
  int active = 0;          // connection threads still running
  std::condition_variable idle;

  void stop() noexcept {
    std::lock_guard g(mu);
    if (stopping.exchange(true)) return;
    std::uint64_t one = 1;
    (void)write_to(wake.get(), &one, sizeof one);
    // Only the reading side: a reply being computed or written (say, to the put that
    // let the owner finish and ask for shutdown) still reaches its client, while
    // threads waiting for the next request see end of file and end.
    for (int fd : conn_fds) (void)socket_shutdown(fd, SHUT_RD);
  }

  /// One connection: handshake with a deadline, then the protocol's handler.
  static void serve(std::shared_ptr<Shared> self, Connection c) noexcept {
    int fd = c.fileno();
    {
      std::lock_guard g(self->mu);
      if (self->stopping) return;
      self->conn_fds.insert(fd);
      ++self->active;
    }
    try {
      auto deadline = deadline_after(self->handshake_timeout);
      if (!self->authkey.empty()) {
        connection::deliver_challenge(c, self->authkey, deadline);
        connection::answer_challenge(c, self->authkey, deadline);
      } else if (!c.poll_until(deadline)) {
        throw TimeoutError("manager server: no request within the handshake timeout");
      }
      self->handler(c);
    } catch (...) {  // NOLINT(bugprone-empty-catch)
      // EOF, broken socket, failed handshake, oversized frame: this connection only.
    }
    std::lock_guard g(self->mu);
    self->conn_fds.erase(fd);
    // `c` closes here, after fd left conn_fds (stop() never shuts down a reused number).
    c.close();
    if (self->accept_paused.exchange(false)) {
      std::uint64_t one = 1;
      (void)write_to(self->freed.get(), &one, sizeof one);
    }
    if (--self->active == 0) self->idle.notify_all();
  }
};

namespace {
connection::Listener make_listener(const std::string& address) {
  connection::ListenerOptions o;
  o.max_message_size = kMaxFrame;
  if (address.empty()) return connection::Listener();
  return connection::Listener(connection::Address(address), o);
}
}  // namespace

SocketServer::SocketServer(const std::string& address, std::string authkey,
                           std::chrono::milliseconds handshake_timeout, Handler handler)
    : shared_(std::make_shared<Shared>()), listener_(make_listener(address)), address_(listener_.address().str()) {
  shared_->authkey = std::move(authkey);
  shared_->handshake_timeout = handshake_timeout;
  shared_->handler = std::move(handler);
  int wake = make_eventfd(0, EFD_CLOEXEC);
  if (wake < 0) throw OSError(-wake, "manager server: eventfd");
  shared_->wake = UniqueFd(wake);
  int freed = make_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (freed < 0) throw OSError(-freed, "manager server: eventfd");
  shared_->freed = UniqueFd(freed);
  reserve_spare();
}

void SocketServer::reserve_spare() noexcept {
  int fd = open_path("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) spare_ = UniqueFd(fd);
}

bool SocketServer::refuse_one_client() noexcept {
  if (!spare_) return false;
  spare_.reset();  // one descriptor free: take the client that waits, and close it at once
  try {
    Connection c = listener_.accept_until(deadline_after(std::chrono::seconds(0)));
    c.close();
  } catch (...) {  // NOLINT(bugprone-empty-catch): gone, or another thread took the descriptor
  }
  reserve_spare();
  return static_cast<bool>(spare_);
}

SocketServer::~SocketServer() {
  stop();
  listener_.close();
}

void SocketServer::stop() noexcept { shared_->stop(); }

std::function<void()> SocketServer::stopper() const {
  return [weak = std::weak_ptr<Shared>(shared_)] {
    if (auto s = weak.lock()) s->stop();
  };
}

bool SocketServer::wait_idle(Deadline deadline) {
  std::unique_lock g(shared_->mu);
  auto done = [&] { return shared_->active == 0; };
  if (!deadline) {
    shared_->idle.wait(g, done);
    return true;
  }
  auto left = *deadline - Clock::now();
  return shared_->idle.wait_for(g, left, done);
}

void SocketServer::serve_forever() {
  // Out of descriptors (EMFILE, ENFILE), accept() fails while the client stays queued and
  // the listener stays readable: polling it again would spin. As libuv does, the server
  // keeps a spare descriptor: it closes it, accepts the client and closes that connection
  // (refused, not left hanging), then takes the spare again. Without a spare it stops
  // polling the listener until one of its connections ends (or a second passes: other
  // parts of the program may free descriptors too), and serves the open connections.
  bool paused = false;
  while (!shared_->stopping) {
    ::pollfd fds[4] = {{paused ? -1 : listener_.fileno(), POLLIN, 0},
                       {shared_->wake.get(), POLLIN, 0},
                       {watch_fd_, POLLIN, 0},
                       {shared_->freed.get(), POLLIN, 0}};
    int n = poll_fds(fds, 4, paused ? 1000 : -1);  // negative descriptors are skipped
    if (n < 0) {
      if (n == -EINTR) continue;
      throw OSError(-n, "manager server: poll");
    }
    if (watch_fd_ >= 0 && fds[2].revents != 0) stop();  // the owner is gone
    if (shared_->stopping) break;
    if (fds[3].revents & POLLIN) {
      std::uint64_t v;
      (void)read_from(shared_->freed.get(), &v, sizeof v);
    }
    if (paused) {  // a connection ended, or a second passed: try the listener again
      paused = false;
      shared_->accept_paused = false;
      if (!spare_) reserve_spare();
      continue;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    Connection c;
    try {
      // The client is already queued; the deadline only guards against it vanishing
      // between poll and accept. No handshake here (it runs in the connection's thread).
      c = listener_.accept_until(deadline_after(std::chrono::seconds(1)));
    } catch (const TimeoutError&) {
      continue;
    } catch (const OSError& e) {
      int err = e.code().value();
      if (err == EMFILE || err == ENFILE) {
        if (!refuse_one_client()) {
          paused = true;
          shared_->accept_paused = true;
        }
        continue;
      }
      if (err == ECONNABORTED || err == EINTR || err == EAGAIN) continue;
      throw;
    }
    c.max_message_size(kMaxFrame);
    try {
      std::thread(&Shared::serve, shared_, std::move(c)).detach();
    } catch (const std::system_error& e) {
      // No thread to be had (RLIMIT_NPROC, a cgroup's pids.max, memory): this client is
      // refused (its connection closes with the failed thread's arguments); the server
      // and the clients it serves go on.
      static std::atomic<bool> told{false};
      if (!told.exchange(true))
        std::fprintf(stderr, "mp manager server: cannot start a thread for a new connection (%s): refusing it\n",
                     e.what());
    }
  }
  listener_.close();
}

std::unique_ptr<SocketServer> make_native_server(std::shared_ptr<ServerCore> core, const std::string& address,
                                                 std::string authkey, std::chrono::milliseconds handshake_timeout) {
  auto frame_loop = [core](Connection& c) {
    Session session;
    try {
      std::string frame;
      ReadWaiter reader;
      for (;;) {
        reader.wait(c);  // an active client's next request usually follows within µs
        c.recv_bytes(frame, kMaxFrame);
        std::string reply = core->handle_frame(session, frame, native_wire());
        if (reply.empty()) break;  // malformed: this stream can no longer be trusted
        c.send_bytes(reply);
      }
    } catch (...) {
      core->release(session);
      throw;
    }
    core->release(session);
  };
  auto srv = std::make_unique<SocketServer>(address, std::move(authkey), handshake_timeout, std::move(frame_loop));
  core->on_shutdown = srv->stopper();
  return srv;
}

// ------------------------------------------------------------------------ client side

namespace {
class SocketLink final : public Link {
 public:
  SocketLink(Connection c, std::string address, bool keyless)
      : c_(std::move(c)), address_(std::move(address)), keyless_(keyless) {}
  std::string roundtrip(std::string_view frame) override {
    c_.send_bytes(frame);
    reader_.wait(c_);  // most replies take the server microseconds
    std::string reply = c_.recv_bytes();
    if (keyless_ && reply.starts_with("#CHALLENGE#"))
      throw AuthenticationError("manager at '" + address_ + "' asks for an authkey, and this process knows none for "
                                "that address: construct a BaseManager/SyncManager with its address and key, or "
                                "call mp::set_authkey(address, key), before using its proxies");
    keyless_ = false;
    return reply;
  }

 private:
  Connection c_;
  ReadWaiter reader_;
  std::string address_;
  bool keyless_;  // connected without a key: until the first reply, a challenge means "key missing"
};
}  // namespace

std::unique_ptr<Link> connect_socket(const std::string& address, const std::string& authkey) {
  connection::ClientOptions o;
  if (!authkey.empty()) o.authkey = authkey;
  return std::make_unique<SocketLink>(connection::Client(connection::Address(address), o), address, authkey.empty());
}

}  // namespace mp::internal::manager
