// The subprocess module's exceptions, with Python's messages.
#include "mp/subprocess.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mp::subprocess {

namespace {

std::string quote_cmd(const std::vector<std::string>& cmd) {
  std::string s = "[";
  for (std::size_t i = 0; i < cmd.size(); ++i) {
    if (i) s += ", ";
    s += "'" + cmd[i] + "'";
  }
  return s + "]";
}

std::string seconds_text(std::chrono::nanoseconds t) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", std::chrono::duration<double>(t).count());
  return buf;
}

}  // namespace

TimeoutExpired::TimeoutExpired(std::vector<std::string> cmd, std::chrono::nanoseconds timeout, std::string output,
                               std::string stderr_output)
    : SubprocessError("Command '" + quote_cmd(cmd) + "' timed out after " + seconds_text(timeout) + " seconds"),
      cmd_(std::move(cmd)),
      timeout_(timeout),
      output_(std::move(output)),
      stderr_(std::move(stderr_output)) {}

namespace {
std::string called_process_message(int rc, const std::vector<std::string>& cmd) {
  std::string s = "Command '" + quote_cmd(cmd) + "' ";
  if (rc < 0) {
    const char* abbrev = sigabbrev_np(-rc);
    s += "died with signal " + (abbrev ? std::string("SIG") + abbrev : std::to_string(-rc)) + ".";
  } else {
    s += "returned non-zero exit status " + std::to_string(rc) + ".";
  }
  return s;
}
}  // namespace

CalledProcessError::CalledProcessError(int returncode, std::vector<std::string> cmd, std::string output,
                                       std::string stderr_output)
    : SubprocessError(called_process_message(returncode, cmd)),
      returncode_(returncode),
      cmd_(std::move(cmd)),
      output_(std::move(output)),
      stderr_(std::move(stderr_output)) {}

}  // namespace mp::subprocess
