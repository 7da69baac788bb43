// src/os/cpu.hpp — how many CPUs this process may use: its affinity mask, and the CPU quota
// of the cgroups it runs in (cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us, cgroup v2
// cpu.max), read from /proc and /sys. Used by mp::process_cpu_count().
#pragma once

#include <string>

namespace mp::internal {

/// CPUs in this process's affinity mask (sched_getaffinity, any number of CPUs), or 0 when
/// the kernel does not say.
[[nodiscard]] int affinity_cpu_count() noexcept;

/// The CPU limit the cgroups of this process set: ceil(quota / period) of the tightest
/// quota on the way from its cgroup up to the root of each mounted hierarchy (a parent's
/// quota binds its children), or 0 when no quota is set or none can be read.
/// `root` is prepended to every path read: "" for this system; a scratch directory with
/// proc/self/cgroup, proc/self/mountinfo and the cgroup files, in tests.
[[nodiscard]] int cgroup_cpu_limit(const std::string& root = "") noexcept;

}  // namespace mp::internal
