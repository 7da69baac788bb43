#include "os/cgroup.hpp"

#include <sched.h>

#include <cerrno>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

namespace mp::internal {

int affinity_cpu_count() noexcept {
  // CPU_ALLOC sizes: start at 1024 CPUs and grow while the kernel's mask is larger (EINVAL).
  for (int ncpus = 1024; ncpus <= (1 << 20); ncpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(ncpus);
    if (!set) return 0;
    std::size_t size = CPU_ALLOC_SIZE(ncpus);
    CPU_ZERO_S(size, set);
    int n = 0;
    bool too_small = false;
    if (::sched_getaffinity(0, size, set) == 0)
      n = CPU_COUNT_S(size, set);
    else
      too_small = errno == EINVAL;
    CPU_FREE(set);
    if (!too_small) return n;
  }
  return 0;
}

namespace {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t i = s.find(sep, start);
    out.emplace_back(s.substr(start, i == std::string_view::npos ? std::string_view::npos : i - start));
    if (i == std::string_view::npos) return out;
    start = i + 1;
  }
}

bool has_token(std::string_view list, std::string_view token) {
  for (const auto& t : split(list, ','))
    if (t == token) return true;
  return false;
}

/// A non-negative integer read from the start of `s`, or -1 ("max", "-1", unreadable).
long long number(std::string_view s) {
  long long v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc{} && v >= 0 ? v : -1;
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// ceil(quota / period) for one cgroup directory, or 0 when it sets no quota.
int limit_in(const std::string& dir, bool v2) {
  long long quota = -1, period = -1;
  if (v2) {  // cpu.max: "<quota|max> <period>"
    std::istringstream in(first_line(dir + "/cpu.max"));
    std::string q, p;
    in >> q >> p;
    quota = number(q);
    period = number(p);
  } else {
    quota = number(first_line(dir + "/cpu.cfs_quota_us"));
    period = number(first_line(dir + "/cpu.cfs_period_us"));
  }
  if (quota <= 0 || period <= 0) return 0;
  long long cpus = (quota + period - 1) / period;
  return cpus > (1 << 20) ? (1 << 20) : static_cast<int>(cpus);
}

/// The tightest limit from `dir` up to (and including) the hierarchy's mount point.
int tightest_limit(std::string dir, const std::string& mount_point, bool v2) {
  int best = 0;
  for (;;) {
    int l = limit_in(dir, v2);
    if (l > 0 && (best == 0 || l < best)) best = l;
    if (dir.size() <= mount_point.size()) return best;
    std::size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos || slash < mount_point.size()) return best;
    dir.resize(slash);
  }
}

}  // namespace

std::vector<CgroupDir> cgroup_dirs(std::string_view controller, const std::string& root) {
  // /proc/self/cgroup: "hierarchy-id:controllers:path"; v2 is "0::path".
  std::string v2_path, v1_path;
  bool have_v2 = false, have_v1 = false;
  {
    std::ifstream in(root + "/proc/self/cgroup");
    for (std::string line; std::getline(in, line);) {
      auto c1 = line.find(':');
      auto c2 = c1 == std::string::npos ? std::string::npos : line.find(':', c1 + 1);
      if (c2 == std::string::npos) continue;
      std::string_view controllers(line.data() + c1 + 1, c2 - c1 - 1);
      if (line.compare(0, c1, "0") == 0 && controllers.empty()) {
        v2_path = line.substr(c2 + 1);
        have_v2 = true;
      } else if (has_token(controllers, controller)) {
        v1_path = line.substr(c2 + 1);
        have_v1 = true;
      }
    }
  }
  std::vector<CgroupDir> out;
  if (!have_v1 && !have_v2) return out;
  // /proc/self/mountinfo: "id parent maj:min root mount-point options ... - fstype source super-options".
  std::ifstream in(root + "/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto before = split(std::string_view(line).substr(0, dash), ' ');
    auto after = split(std::string_view(line).substr(dash + 3), ' ');
    if (before.size() < 5 || after.size() < 3) continue;
    bool v2 = after[0] == "cgroup2";
    bool v1 = after[0] == "cgroup" && has_token(after[2], controller);
    if (!(v2 && have_v2) && !(v1 && have_v1)) continue;
    const std::string& mount_root = before[3];
    const std::string& path = v2 ? v2_path : v1_path;
    CgroupDir d{root + before[4], {}, v2};
    // The process's cgroup as seen through this mount: the part of its path below the
    // mount's root (a container sees its own cgroup as "/").
    d.path = d.mount_point;
    if (mount_root == "/")
      d.path.append(path);
    else if (path.compare(0, mount_root.size(), mount_root) == 0)
      d.path.append(path, mount_root.size());
    while (d.path.size() > d.mount_point.size() && d.path.back() == '/') d.path.pop_back();
    out.push_back(std::move(d));
  }
  return out;
}

int cgroup_cpu_limit(const std::string& root) noexcept {
  try {
    int best = 0;
    for (const auto& d : cgroup_dirs("cpu", root)) {
      int l = tightest_limit(d.path, d.mount_point, d.v2);
      if (l > 0 && (best == 0 || l < best)) best = l;
    }
    return best;
  } catch (...) {
    return 0;  // no limit can be read: none is applied
  }
}

long long cgroup_oom_kills(const std::string& root) noexcept {
  try {
    long long total = -1;
    for (const auto& d : cgroup_dirs("memory", root)) {
      // v1: memory.oom_control has "oom_kill N" (Linux 4.13+); v2: memory.events has it.
      std::ifstream in(d.path + (d.v2 ? "/memory.events" : "/memory.oom_control"));
      for (std::string key, value; in >> key >> value;)
        if (key == "oom_kill") {
          long long n = number(value);
          if (n >= 0) total = (total < 0 ? 0 : total) + n;
        }
    }
    return total;
  } catch (...) {
    return -1;
  }
}

}  // namespace mp::internal
