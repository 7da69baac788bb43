// Start methods: fork (default) and forkserver. See set_start_method() in mp/process.hpp.
#include <cstdio>
#include <iostream>

#include "process_internal.hpp"

namespace mp {

namespace {
StartMethod g_method = StartMethod::fork;
bool g_method_set = false;
}  // namespace

void set_start_method(StartMethod method, bool force) {
  if (g_method_set && method != g_method && !force)
    throw RuntimeError("set_start_method: the start method has already been set; pass force=true to change it");
  if (method == StartMethod::forkserver)
    throw RuntimeError("set_start_method: forkserver is not available in this build yet");
  g_method = method;
  g_method_set = true;
}

StartMethod get_start_method() noexcept { return g_method; }

namespace internal {

void flush_std_streams_before_fork() noexcept {
  // Buffered output would otherwise be written twice: once by the parent, once by the child.
  try {
    std::cout.flush();
    std::cerr.flush();
  } catch (...) {
    // Nothing useful to do; the child must still start.
  }
  std::fflush(nullptr);
}

void start_via_forkserver(Process&, ProcessState&) {
  throw RuntimeError("forkserver start method is not available in this build yet");
}

}  // namespace internal
}  // namespace mp
