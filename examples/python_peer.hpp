// Shared by the interop examples: find the seeds' Python scripts (examples/python/) and
// run python3 on one of them with its output on a pipe.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace interop_example {

/// examples/python/<name>: $MP_PYTHON_EXAMPLES/<name> if set, else the first
/// examples/python/<name> found walking up from this program's directory (the build tree
/// lives inside the source tree: build/<preset>/examples/). "" when not found.
inline std::string python_script(const std::string& name) {
  if (const char* dir = std::getenv("MP_PYTHON_EXAMPLES")) return std::string(dir) + "/" + name;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return {};
  std::string dir(self, static_cast<std::size_t>(n));
  for (int up = 0; up < 6 && dir.rfind('/') != std::string::npos; ++up) {
    dir = dir.substr(0, dir.rfind('/'));
    std::string candidate = dir + "/examples/python/" + name;
    if (::access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return {};
}

/// `python3 -u <script> <args>` with stdout+stderr readable from the returned FILE*
/// (pclose it). -u: unbuffered, so lines arrive as the script prints them.
inline FILE* run_python(const std::string& script, const std::string& args) {
  std::string cmd = "python3 -u '" + script + "' " + args + " 2>&1";
  return ::popen(cmd.c_str(), "r");
}

}  // namespace interop_example
