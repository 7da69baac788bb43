// The socket transport of managers: SocketServer and the client-side SocketLink.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <thread>

#include "mp/internal/manager_client.hpp"
#include "mp/internal/manager_socket.hpp"

namespace mp::internal::manager {

struct SocketServer::Shared {
  std::shared_ptr<ServerCore> core;
  std::string authkey;
  std::chrono::milliseconds handshake_timeout;
  UniqueFd wake;  // eventfd: readable once stop() was called
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::set<int> conn_fds;  // sockets of live connections (shut down by stop())
  int active = 0;          // connection threads still running
  std::condition_variable idle;

  void stop() noexcept {
    std::lock_guard g(mu);
    if (stopping.exchange(true)) return;
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake.get(), &one, sizeof one);
    // Only the reading side: a reply being computed or written (say, to the put that
    // let the owner finish and ask for shutdown) still reaches its client, while
    // threads waiting for the next request see end of file and end.
    for (int fd : conn_fds) ::shutdown(fd, SHUT_RD);
  }

  /// One connection: handshake with a deadline, then the frame loop.
  static void serve(std::shared_ptr<Shared> self, Connection c) noexcept {
    int fd = c.fileno();
    {
      std::lock_guard g(self->mu);
      if (self->stopping) return;
      self->conn_fds.insert(fd);
      ++self->active;
    }
    Session session;
    try {
      auto deadline = deadline_after(self->handshake_timeout);
      if (!self->authkey.empty()) {
        connection::deliver_challenge(c, self->authkey, deadline);
        connection::answer_challenge(c, self->authkey, deadline);
      } else if (!c.poll_until(deadline)) {
        throw TimeoutError("manager server: no request within the handshake timeout");
      }
      std::string frame;
      for (;;) {
        c.recv_bytes(frame, kMaxFrame);
        std::string reply = self->core->handle_frame(session, frame, native_wire());
        if (reply.empty()) break;  // malformed: this stream can no longer be trusted
        c.send_bytes(reply);
      }
    } catch (...) {
      // EOF, broken socket, failed handshake, oversized frame: this connection only.
    }
    self->core->release(session);
    std::lock_guard g(self->mu);
    self->conn_fds.erase(fd);
    // `c` closes here, after fd left conn_fds (stop() never shuts down a reused number).
    c.close();
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

SocketServer::SocketServer(std::shared_ptr<ServerCore> core, const std::string& address, std::string authkey,
                           std::chrono::milliseconds handshake_timeout)
    : shared_(std::make_shared<Shared>()), listener_(make_listener(address)) {
  shared_->core = std::move(core);
  shared_->authkey = std::move(authkey);
  shared_->handshake_timeout = handshake_timeout;
  shared_->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!shared_->wake) throw OSError(errno, "manager server: eventfd");
  std::weak_ptr<Shared> weak = shared_;
  shared_->core->on_shutdown = [weak] {
    if (auto s = weak.lock()) s->stop();
  };
}

SocketServer::~SocketServer() {
  stop();
  shared_->core->on_shutdown = nullptr;
  listener_.close();
}

std::string SocketServer::address() const { return listener_.address().str(); }

void SocketServer::stop() noexcept { shared_->stop(); }

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
  while (!shared_->stopping) {
    ::pollfd fds[3] = {{listener_.fileno(), POLLIN, 0}, {shared_->wake.get(), POLLIN, 0}, {watch_fd_, POLLIN, 0}};
    if (::poll(fds, watch_fd_ >= 0 ? 3 : 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw OSError(errno, "manager server: poll");
    }
    if (watch_fd_ >= 0 && fds[2].revents != 0) stop();  // the owner is gone
    if (shared_->stopping) break;
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
      if (err == EMFILE || err == ENFILE || err == ECONNABORTED || err == EINTR || err == EAGAIN) continue;
      throw;
    }
    c.max_message_size(kMaxFrame);
    std::thread(&Shared::serve, shared_, std::move(c)).detach();
  }
}

// ------------------------------------------------------------------------ client side

namespace {
class SocketLink final : public Link {
 public:
  explicit SocketLink(Connection c) : c_(std::move(c)) {}
  std::string roundtrip(std::string_view frame) override {
    c_.send_bytes(frame);
    return c_.recv_bytes();
  }

 private:
  Connection c_;
};
}  // namespace

std::unique_ptr<Link> connect_socket(const std::string& address, const std::string& authkey) {
  connection::ClientOptions o;
  if (!authkey.empty()) o.authkey = authkey;
  return std::make_unique<SocketLink>(connection::Client(connection::Address(address), o));
}

}  // namespace mp::internal::manager
