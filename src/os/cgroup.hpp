// src/os/cgroup.hpp — what the kernel limits and counts for this process: its affinity
// mask, the CPU quota of its cgroups (v1 cpu.cfs_quota_us / cpu.cfs_period_us, v2 cpu.max)
// and the OOM kills in its memory cgroup (v1 memory.oom_control, v2 memory.events), read
// from /proc and /sys. Used by mp::process_cpu_count() and the Pool's WorkerLost.
//
// Every function takes `root`, prepended to every path read: "" for this system; a scratch
// directory holding proc/self/cgroup, proc/self/mountinfo and the cgroup files, in tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mp::internal {

/// CPUs in this process's affinity mask (sched_getaffinity, any number of CPUs), or 0 when
/// the kernel does not say.
[[nodiscard]] int affinity_cpu_count() noexcept;

/// The CPU limit the cgroups of this process set: ceil(quota / period) of the tightest
/// quota on the way from its cgroup up to the root of each mounted hierarchy (a parent's
/// quota binds its children), or 0 when no quota is set or none can be read.
[[nodiscard]] int cgroup_cpu_limit(const std::string& root = "") noexcept;

/// The kills the kernel's out-of-memory killer made in this process's memory cgroup (the
/// sum over the v1 and v2 hierarchies that count them), or -1 when no counter can be read.
/// The kernel raises the count before it sends the victim SIGKILL.
[[nodiscard]] long long cgroup_oom_kills(const std::string& root = "") noexcept;

/// One directory of this process's cgroup for `controller` ("cpu", "memory"): in the v1
/// hierarchy that has that controller, or in the v2 hierarchy (whose files say whether the
/// controller is enabled there), as mounted in this mount namespace.
struct CgroupDir {
  std::string mount_point;  ///< where the hierarchy is mounted (with `root` prepended)
  std::string path;         ///< this process's cgroup directory, mount_point or below it
  bool v2 = false;
};
[[nodiscard]] std::vector<CgroupDir> cgroup_dirs(std::string_view controller, const std::string& root = "");

}  // namespace mp::internal
