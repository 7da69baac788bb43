// BaseManager / Manager: forking, serving and stopping a manager server.
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "mp/connection.hpp"
#include "process/internal.hpp"
#include "managers/client.hpp"
#include "managers/python.hpp"
#include "managers/socket.hpp"
#include "os/file.hpp"
#include "os/process.hpp"
#include "mp/managers.hpp"
#include "mp/process.hpp"

namespace mp {
namespace internal::manager {

/// The manager server's target: `here` when forked from the owner, the fork server's call
/// (BaseManager::served_main) under StartMethod::forkserver.
template <class Here>
class ServerTarget final : public Target {
 public:
  ServerTarget(Here here, ServerCall served) : here_(std::move(here)), served_(std::move(served)) {}
  void call() override { here_(); }
  [[nodiscard]] ServerCall server_call() const override { return served_; }

 private:
  Here here_;
  ServerCall served_;
};

void serve_as_child(Connection& control, const std::function<std::unique_ptr<SocketServer>()>& make_server,
                    bool private_dir, pid_t owner);

/// The server process start() forked, as seen by its owner.
struct Running {
  pid_t owner = internal::kernel_pid();
  Process proc;
  Connection control;  // its end of file tells the server its owner is gone
};

namespace {
std::string random_authkey() {
  std::string key(32, '\0');
  std::size_t got = 0;
  while (got < key.size()) {
    ssize_t n = internal::get_random(key.data() + got, key.size() - got);
    if (n < 0) {
      if (n == -EINTR) continue;
      throw OSError(static_cast<int>(-n), "manager: getrandom (making an authkey)");
    }
    got += static_cast<std::size_t>(n);
  }
  return key;
}

/// True for addresses only this host can reach: Unix sockets and loopback TCP hosts.
bool is_local_only(const std::string& address) {
  if (address.empty()) return true;
  connection::Address a(address);
  if (a.family() == connection::Address::Family::unix_socket) return true;
  const std::string& h = a.host();
  return h == "localhost" || h == "::1" || h.starts_with("127.");
}

/// A server without an authkey runs any request from anyone who can connect: only allowed
/// where nobody but this host's users can.
void check_exposure(const std::string& address, const std::string& authkey) {
  if (authkey.empty() && !is_local_only(address))
    throw ValueError("BaseManager: refusing to serve on '" + address +
                     "' without an authkey: anyone who can reach that address could call methods on the "
                     "managed objects. Give an authkey (or leave it out for a random one), or bind "
                     "127.0.0.1 / a Unix socket");
}

// The socket file (and private directory) of the server running in this process, for the
// signal handler below: fixed buffers, filled before the handler is installed.
char g_socket_path[256];
char g_socket_dir[256];
pid_t g_owner = 0;

/// SIGTERM (the owner's exit, Process::terminate) and the parent-death signal: remove the
/// socket file and its private directory, then die of the signal. Async-signal-safe.
extern "C" void on_server_signal(int sig) {
  // A real-time parent-death signal also comes when only the owner's forking *thread*
  // ended (see process.cpp): the owner process still lives, so keep serving.
  if (sig != SIGTERM && internal::parent_pid() == g_owner) return;
  if (g_socket_path[0]) (void)internal::unlink_path(g_socket_path);
  if (g_socket_dir[0]) (void)internal::remove_dir(g_socket_dir);
  (void)internal::set_signal_handler(sig, SIG_DFL);
  (void)internal::raise_signal(sig);
  ::_exit(128 + sig);
}

/// Without this, a server killed with its owner (PR_SET_PDEATHSIG is SIGKILL for daemon
/// children) or terminated at the owner's exit left its socket file and /tmp/mp-XXXXXX
/// directory behind: the parent-death signal becomes a handled SIGTERM.
void remove_socket_on_death(const std::string& listening_at, bool private_dir, pid_t owner) {
  if (listening_at.empty() || listening_at[0] == '\0' || listening_at.find('/') == std::string::npos ||
      listening_at.size() >= sizeof g_socket_path)
    return;  // TCP, abstract, or a path too long to keep: nothing (or nothing safe) to remove
  std::memcpy(g_socket_path, listening_at.c_str(), listening_at.size() + 1);
  if (private_dir) {
    std::string dir = listening_at.substr(0, listening_at.rfind('/'));
    std::memcpy(g_socket_dir, dir.c_str(), dir.size() + 1);
  }
  g_owner = owner;
  struct sigaction sa {};
  sa.sa_handler = on_server_signal;
  sa.sa_flags = SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  int pdeath = 0;
  (void)internal::get_parent_death_signal(pdeath);
  (void)internal::set_signal_action(SIGTERM, &sa, nullptr);
  if (pdeath == SIGKILL) {
    // prctl replaces the armed signal atomically; if the owner died before, SIGKILL came.
    (void)internal::set_parent_death_signal(SIGTERM);
    if (internal::parent_pid() != g_owner) on_server_signal(SIGTERM);
  } else if (pdeath != 0 && pdeath != SIGTERM) {
    (void)internal::set_signal_action(pdeath, &sa, nullptr);
  }
}

}  // namespace

void run_server(Connection& control, const std::function<std::unique_ptr<SocketServer>()>& make_server,
                bool private_dir, pid_t owner) {
  int code = 0;
  try {
    std::unique_ptr<SocketServer> srv = make_server();
    remove_socket_on_death(srv->address(), private_dir, owner);
    control.send_bytes("ok:" + srv->address());
    srv->watch(control.fileno());
    srv->serve_forever();
    // Let replies in flight (the shutdown request's own, a last put) reach their clients;
    // a thread blocked in a referent call is not waited for beyond this grace period.
    srv->wait_idle(deadline_after(std::chrono::seconds(2)));
  } catch (const std::exception& e) {
    try {
      control.send_bytes(std::string("err:") + e.what());
    } catch (...) {  // NOLINT(bugprone-empty-catch): the owner is gone; exit code 1 says enough
    }
    code = 1;
  }
  // Connection threads are detached (they own what their handler captured); leave without
  // running the owner's exit handlers.
  std::fflush(nullptr);
  ::_exit(code);
}

/// The server process's body, whichever way it was started. A daemon for its owner's sake
/// (it goes when the owner does), but inside, the host of referents whose methods may
/// start processes, as CPython's non-daemonic server allows.
void serve_as_child(Connection& control, const std::function<std::unique_ptr<SocketServer>()>& make_server,
                    bool private_dir, pid_t owner) {
  internal::self().daemon = false;
  run_server(control, make_server, private_dir, owner);
}

}  // namespace internal::manager

void BaseManager::served_main(std::string_view payload) {
  internal::CallReader r(payload, internal::kServerCallErrors);
  auto [address, authkey] = r.args<std::string, std::string>();
  auto options = r.raw<BaseManagerOptions>();
  auto n = r.raw<std::uint32_t>();
  BaseManager m(address, authkey, options);
  for (std::uint32_t i = 0; i < n; ++i) {
    auto [name] = r.args<std::string>();
    auto recipe = r.raw<internal::manager::Recipe>();
    recipe.make(m, name, recipe.fn);
  }
  r.finish();
  const std::vector<int>& fds = internal::server_fds();
  if (fds.empty() || fds.size() > 2)
    throw RuntimeError("BaseManager server: the fork server passed the wrong descriptors");
  Connection control =
      fds.size() == 1 ? Connection(UniqueFd(fds[0])) : Connection(UniqueFd(fds[0]), UniqueFd(fds[1]));
  // The server dies with the fork server (its parent, which dies with the owner): the
  // parent's death is what it watches, not the owner's.
  internal::manager::serve_as_child(control, [&] { return m.make_server(); }, address.empty(),
                                    internal::parent_pid());
}

// ------------------------------------------------------------------------------ Server

Server::Server(std::unique_ptr<internal::manager::SocketServer> s) : impl_(std::move(s)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;
std::string Server::address() const { return impl_->address(); }
void Server::serve_forever() {
  impl_->serve_forever();
  impl_->wait_idle(internal::deadline_after(std::chrono::seconds(2)));
}
void Server::stop() noexcept { impl_->stop(); }

// ------------------------------------------------------------------------- BaseManager

BaseManager::BaseManager(std::string address, std::optional<std::string> authkey, BaseManagerOptions options)
    : address_(std::move(address)),
      authkey_(authkey ? std::move(*authkey) : internal::manager::random_authkey()),
      options_(options) {
  if (!address_.empty()) set_authkey(address_, authkey_);
}

BaseManager::~BaseManager() {
  try {
    if (running_) shutdown();
  } catch (...) {
  }
}

void BaseManager::start() {
  if (running_) throw ProcessError("BaseManager.start: the manager has already been started");
  internal::manager::check_exposure(address_, authkey_);
  // Named pair members, not a structured binding: clang 14 cannot capture bindings in lambdas.
  auto pipe = Pipe();
  Connection& mine = pipe.first;
  Connection& theirs = pipe.second;
  auto r = std::make_unique<internal::manager::Running>();
  const pid_t owner = r->owner;
  // Under forkserver the server is a copy of the fork server: it gets the registrations as
  // recipes (code addresses), its settings as bytes and its end of the pipe as a descriptor.
  internal::ServerCall served{&BaseManager::served_main, {}, {theirs.fileno()}};
  if (theirs.write_fileno() != theirs.fileno()) served.fds.push_back(theirs.write_fileno());  // two pipes
  if (get_start_method() == StartMethod::forkserver) {
    for (const auto& [name, recipe] : recipes_)
      if (!recipe.make)
        throw ValueError("BaseManager.start: under StartMethod::forkserver the callable registered as '" + name +
                         "' must be a function or a captureless lambda: the server is forked by the fork server, "
                         "not copied from this process, so what it captures would not be there. Return a "
                         "function-local static instead (see examples/distributed_master.cpp), or use "
                         "StartMethod::fork");
    internal::put_field(served.payload, address_);
    internal::put_field(served.payload, authkey_);
    internal::put_raw(served.payload, options_);
    internal::put_raw(served.payload, static_cast<std::uint32_t>(recipes_.size()));
    for (const auto& [name, recipe] : recipes_) {
      internal::put_field(served.payload, name);
      internal::put_raw(served.payload, recipe);
    }
  }
  auto here = [&] {
    mine.close();
    internal::manager::serve_as_child(theirs, [&] { return make_server(); }, address_.empty(), owner);
  };
  r->proc = Process(ProcessOptions{.name = "SyncManager-server", .daemon = true},
                    std::make_unique<internal::manager::ServerTarget<decltype(here)>>(here, std::move(served)));
  r->proc.start();
  theirs.close();
  std::string ready;
  try {
    ready = mine.recv_bytes();
  } catch (const EOFError&) {
    r->proc.join();
    throw ProcessError("BaseManager.start: the server process ended before it was ready (exit code " +
                       std::to_string(r->proc.exitcode().value_or(-1)) + ")");
  }
  if (ready.starts_with("err:")) {
    r->proc.join();
    throw OSError(EADDRNOTAVAIL, "BaseManager.start: the server could not listen at '" + address_ +
                                     "': " + ready.substr(4));
  }
  address_ = ready.substr(3);
  set_authkey(address_, authkey_);
  r->control = std::move(mine);
  running_ = std::move(r);
}

void BaseManager::connect() {
  if (options_.protocol == managers::Protocol::python) {
    (void)internal::manager::python_server_call(address_, authkey_, "dummy");
    connected_ = true;
    return;
  }
  set_authkey(address_, authkey_);
  auto link = internal::manager::connect(address_);
  internal::manager::roundtrip(*link, {{}, "dummy", {}});
  connected_ = true;
}

Server BaseManager::get_server() {
  internal::manager::check_exposure(address_, authkey_);
  auto s = make_server();
  address_ = s->address();
  return Server(std::move(s));
}

std::unique_ptr<internal::manager::SocketServer> BaseManager::make_server() const {
  std::unique_ptr<internal::manager::SocketServer> s =
      options_.protocol == managers::Protocol::python
          ? internal::manager::make_python_server(python_callables_, address_, authkey_, options_.handshake_timeout)
          : internal::manager::make_native_server(std::make_shared<internal::manager::ServerCore>(callables_),
                                                  address_, authkey_, options_.handshake_timeout);
  // The serving process's own key for the address it got (an empty address_ lets the server
  // choose one): decoding a proxy stored in a referent connects back to this very server.
  set_authkey(s->address(), authkey_);
  return s;
}

void BaseManager::shutdown() {
  if (running_) {
    if (running_->owner != internal::kernel_pid()) return;  // a forked child's copy
    try {
      if (options_.protocol == managers::Protocol::python) {
        (void)internal::manager::python_server_call(address_, authkey_, "shutdown");
      } else {
        auto link = internal::manager::connect(address_);
        internal::manager::roundtrip(*link, {{}, "shutdown", {}});
      }
    } catch (...) {
      // Already gone, or it closed the connection while stopping: the join decides.
    }
    running_->control.close();
    if (!running_->proc.join(std::chrono::seconds(10))) {
      running_->proc.kill();
      running_->proc.join();
    }
    running_.reset();
  } else if (connected_) {
    connected_ = false;
    if (options_.protocol == managers::Protocol::python) {
      try {
        (void)internal::manager::python_server_call(address_, authkey_, "shutdown");
      } catch (const EOFError&) {
      } catch (const OSError&) {
      }
      return;
    }
    auto link = internal::manager::connect(address_);
    try {
      internal::manager::roundtrip(*link, {{}, "shutdown", {}});
    } catch (const EOFError&) {
    } catch (const OSError&) {
    }
  }
}

std::size_t BaseManager::number_of_objects() const {
  if (options_.protocol == managers::Protocol::python) {
    auto n = internal::manager::python_server_call(address_, authkey_, "number_of_objects");
    return static_cast<std::size_t>(n.as_int());
  }
  auto link = internal::manager::connect(address_);
  return codec::decode<std::uint64_t>(internal::manager::roundtrip(*link, {{}, "number_of_objects", {}}));
}

int BaseManager::server_pid() const noexcept {
  return running_ ? static_cast<int>(running_->proc.pid()) : 0;
}

}  // namespace mp
