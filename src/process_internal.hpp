// Shared between process.cpp and the start-method implementations.
#pragma once

#include <mutex>
#include <string>

#include "mp/internal/fd.hpp"
#include "mp/internal/futex.hpp"
#include "mp/process.hpp"

namespace mp::internal {

/// One started child, shared by its Process, its ProcessHandles and the registry.
struct ProcessState {
  std::mutex mu;  // serialises waitpid() so exactly one thread reaps
  std::string name;
  bool daemon = false;
  pid_t pid = 0;
  UniqueFd pidfd;  // readable once the child has ended
  ExitStatus status = ExitStatus::not_started();

  ExitStatus poll();                 // reaps without blocking
  bool wait_until(Deadline deadline);  // true once finished
  void send(int sig);                // no-op once reaped (the pid may be reused)

 private:
  ExitStatus status_locked();
};

/// Who this process is (Python's current_process() state).
struct Self {
  std::string name;
  bool daemon = false;
  pid_t parent_pid = 0;
  std::string parent_name;
  std::string identity_prefix;  // "" in main, "1:" in Process-1
  int counter = 0;              // children named so far
};
Self& self();

void register_child(std::shared_ptr<ProcessState> s);
/// The child side of start(): run, shut down, _exit. Never returns.
[[noreturn]] void child_main(Process& p, const std::string& name, bool daemon, pid_t parent);
/// Terminates daemon children, joins the others, runs at_shutdown hooks. Once per process.
void run_shutdown();
void flush_std_streams_before_fork() noexcept;
/// Starts `p` through the fork server; fills st.pid and st.pidfd.
void start_via_forkserver(Process& p, ProcessState& st);

}  // namespace mp::internal
