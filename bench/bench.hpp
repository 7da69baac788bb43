// bench/bench.hpp — the case registry of mp_bench, mp's side of the comparison with CPython.
//
// mp_bench measures mp on the case names of ../shared/bench/python_baseline.py, with the
// same workloads (same message sizes, same counts, same --quick scaling) and prints the same
// JSON lines: {"case", "value", "unit", "better", "n", "impl": "mp"}. bench/compare runs it
// interleaved with CPython, the raw OS mechanism and Boost.Interprocess.
//
// Each area keeps its cases in its own file, bench/cases_<area>.cpp (globbed by
// bench/CMakeLists.txt), and registers them by the *group* name python_baseline.py accepts
// after --only (one group may print several cases, e.g. "pool_map"):
//
//   namespace {
//   void lock_acquire_release(const mp_bench::Context& ctx) {
//     long n = ctx.scale(1'000'000);                     // python_baseline's count
//     mp::Lock lk;
//     mp_bench::Stopwatch sw;
//     for (long i = 0; i < n; ++i) { lk.acquire(); lk.release(); }
//     ctx.emit("lock_acquire_release", sw.seconds() / n * 1e9, "ns", mp_bench::lower, n);
//   }
//   const mp_bench::Register reg{{.group = "lock_acquire_release",
//                                 .emits = {"lock_acquire_release"},
//                                 .run = lock_acquire_release}};
//   }  // namespace
//
// A case that fails throws; mp_bench reports it on stderr, goes on with the next group and
// exits non-zero, and bench/compare shows the row as "n/a (failed)".
#pragma once

#include <algorithm>
#include <chrono>
#include <string_view>
#include <vector>

namespace mp_bench {

enum class Better { higher, lower };
inline constexpr Better higher = Better::higher;
inline constexpr Better lower = Better::lower;

/// What a case needs from the runner: the --quick scaling and the output line.
class Context {
 public:
  explicit Context(bool quick) noexcept : quick_(quick) {}
  [[nodiscard]] bool quick() const noexcept { return quick_; }
  /// python_baseline.py's scale(): n, or max(1, n / 10) with --quick.
  [[nodiscard]] long scale(long n) const noexcept { return quick_ ? std::max(1L, n / 10) : n; }
  /// Prints one JSON line (impl "mp") and flushes it, so nothing is left in stdio's buffer
  /// when a case forks.
  void emit(std::string_view case_name, double value, std::string_view unit, Better better, long n) const;

 private:
  bool quick_;
};

/// One group of cases, registered under python_baseline.py's --only name.
struct Case {
  std::string_view group;               ///< the name given to --only
  std::vector<std::string_view> emits;  ///< the case names it prints (for --list)
  void (*run)(const Context&) = nullptr;
};

/// Every registered group, in no particular order.
std::vector<Case>& registry();

/// Registers a group at static-initialisation time (the case files are linked into the
/// executable directly, never through a static library, so no registration is dropped).
struct Register {
  explicit Register(Case c);
};

/// Wall-clock seconds since construction (steady clock, like time.perf_counter()).
class Stopwatch {
 public:
  using Clock = std::chrono::steady_clock;
  Stopwatch() noexcept : t0_(Clock::now()) {}
  [[nodiscard]] double seconds() const noexcept { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  [[nodiscard]] double micros() const noexcept { return seconds() * 1e6; }

 private:
  Clock::time_point t0_;
};

/// The median of `samples` (Python's statistics.median: mean of the middle two when even).
double median(std::vector<double> samples);

}  // namespace mp_bench
