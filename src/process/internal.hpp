// Shared between process.cpp (Process, the child registry, exit handling) and
// start_methods.cpp (the fork server).
#pragma once

#include <mutex>
#include <string>

#include "mp/internal/fd.hpp"
#include "mp/internal/futex.hpp"
#include "mp/process.hpp"

namespace mp::internal {

/// One started child, shared by its Process, its ProcessHandles and the registry.
/// `mu` serialises reaping so exactly one thread collects the wait status. The fds are
/// closed only when the state is destroyed: a thread may be poll()ing one of them
/// without the lock, and closing it could hand its number to an unrelated file.
struct ProcessState {
  std::mutex mu;
  std::string name;
  bool daemon = false;
  pid_t owner = 0;          // the process that started the child: only it can reap it
  pid_t pid = 0;
  bool via_server = false;  // forked by the fork server (not our child: it reports the status)
  bool server_lost = false; // the server died before reporting; we fall back to the pidfd
  UniqueFd pidfd;           // the child, for life: readable once it has exited
  UniqueFd status_fd;       // forkserver: receives the wait status, then EOF
  ExitStatus status = ExitStatus::running();

  ExitStatus poll();                   // collects the status without blocking
  bool wait_until(Deadline deadline);  // true once finished
  void send(int sig);                  // no-op once the child has ended
  [[nodiscard]] int sentinel() const noexcept { return via_server ? status_fd.get() : pidfd.get(); }

 private:
  ExitStatus poll_locked();
};

/// Who this process is (Python's current_process() state).
struct Self {
  std::string name;
  bool daemon = false;
  pid_t parent_pid = 0;
  std::string parent_name;
  std::string identity_prefix;  // "" in main, "1:" in Process-1
  std::atomic<int> counter{0};  // children named so far
};
Self& self();

/// What a new child needs to know about itself.
struct ChildIdentity {
  std::string name;
  bool daemon = false;
  pid_t parent_pid = 0;        // the logical parent (parent_process())
  std::string parent_name;
  pid_t real_parent = 0;       // the process that forked us (the fork server, or the parent)
  bool forked_by_main_thread = true;
};

void register_child(std::shared_ptr<ProcessState> s);
/// In a new process: forget (without touching them) the parent's children and fork server.
void forget_parent_state() noexcept;
/// Installs the exit handler that runs run_shutdown() (idempotent).
void ensure_exit_handler();
/// The child side of start(): become the child, run body(ctx), shut down, _exit. Never returns.
[[noreturn]] void child_main(void (*body)(void*), void* ctx, const ChildIdentity& id);
/// Arranges for this child to die when `real_parent` dies (daemons only).
void die_with_parent(pid_t real_parent, bool forked_by_main_thread) noexcept;
/// Terminates daemon children, joins the others, stops the fork server, runs at_shutdown
/// hooks. Once per process.
void run_shutdown();
void flush_std_streams() noexcept;
/// True while a child started through the fork server has not been seen to end.
bool has_unfinished_server_children();

/// Threads of mp's own that a forked child never depends on (a pool's result thread): the
/// fork warning does not count them. Held for as long as such a thread may run.
class ForkSafeThread {
 public:
  ForkSafeThread() noexcept;
  ~ForkSafeThread();
  ForkSafeThread(const ForkSafeThread&) = delete;
  ForkSafeThread& operator=(const ForkSafeThread&) = delete;
};
/// Prints the fork warning (see set_fork_warning) when this process runs other threads;
/// `what` names the call that is about to fork.
void warn_if_forking_with_threads(const char* what) noexcept;

// start_methods.cpp
/// State a child started by the fork server takes over from the process that starts it,
/// as a forked child would have it (Python sends a spawned child its authkey the same
/// way): `save` appends this process's state at start(); `load` installs it in the child
/// before its target runs. Register once per mechanism (mp's manager authkeys).
void inherit_in_served_children(void (*save)(std::string& out), void (*load)(std::string_view in));
/// Starts `call` through the fork server; fills st.pid, st.pidfd, st.status_fd.
void start_via_forkserver(const ServerCall& call, const ChildIdentity& id, ProcessState& st);
/// In a new child: drop the inherited fork-server state without touching the server.
void forget_forkserver_after_fork() noexcept;
/// At exit: close the server's control socket, wait for it (bounded), reap retired servers.
void stop_forkserver_at_exit() noexcept;
/// Reaps fork servers that were stopped while their children still ran.
void reap_retired_servers() noexcept;

}  // namespace mp::internal
