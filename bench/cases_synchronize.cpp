// mp::Lock and friends (python_baseline.py's "synchronization" section).
#include "bench.hpp"

#include <mp/synchronize.hpp>

namespace {

// Uncontended acquire + release of a process-shared Lock, as `lk.acquire(); lk.release()`
// on a multiprocessing.Lock: the fast path only (one CAS each way, no system call).
void lock_acquire_release(const mp_bench::Context& ctx) {
  const long n = ctx.scale(1'000'000);
  mp::Lock lk;
  mp_bench::Stopwatch sw;
  for (long i = 0; i < n; ++i) {
    lk.acquire();
    lk.release();
  }
  ctx.emit("lock_acquire_release", sw.seconds() / static_cast<double>(n) * 1e9, "ns", mp_bench::lower, n);
}

const mp_bench::Register reg_lock_acquire_release{
    {.group = "lock_acquire_release", .emits = {"lock_acquire_release"}, .run = lock_acquire_release}};

}  // namespace
