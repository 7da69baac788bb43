// src/os/membarrier.hpp — asymmetric fences between processes (membarrier(2)).
//
// Some protocols pair a hot side that runs millions of times a second with a cold side that
// runs rarely, and need a full fence on both (Dekker: "store my flag, load yours"). On x86
// that fence is a locked instruction, ~20 ns here. membarrier moves the cost to the cold
// side: a process registered with register_light_fences() may use a compiler-only fence on
// its hot path, and the cold side calls heavy_fence(), which makes the kernel run a full
// memory barrier on every CPU currently running a registered process (a process that is
// not running has passed a barrier when it was switched out). After heavy_fence() returns,
// every store a registered process issued before its compiler fence is visible, or that
// process has not yet reached the load after its fence (so that load sees the cold side's
// earlier stores).
//
// Registration is per process and is done again in a forked child. Both calls fail
// cleanly where membarrier is unavailable (old kernel, seccomp): callers then fall back to
// real fences on the hot side, or to bounded waits on the cold side.
#pragma once

#include <atomic>

#include "mp/internal/os.hpp"

namespace mp::internal {

namespace detail {
extern std::atomic<pid_t> light_fences_pid;  // the process that registered (a forked child has another pid)
bool register_light_fences() noexcept;
}  // namespace detail

/// True when this process is registered for heavy_fence(), registering it on the first
/// call in each process (one system call; a forked child registers again). False if the
/// kernel refuses: the caller must then use a real fence on its hot path.
[[nodiscard]] inline bool light_fences_registered() noexcept {
  return detail::light_fences_pid.load(std::memory_order_relaxed) == self_pid() || detail::register_light_fences();
}

/// Runs a full barrier on every CPU running a registered process (membarrier
/// GLOBAL_EXPEDITED, ~1.5 us here). False if that is not available.
[[nodiscard]] bool heavy_fence() noexcept;

}  // namespace mp::internal
