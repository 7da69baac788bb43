// Google Benchmark micro-benchmarks of mp::Lock's hot paths (binary: mp_micro_synchronize).
// Not part of bench/compare's table; use it to look at one path in isolation, e.g.
//   build/release/bench/mp_micro_synchronize --benchmark_filter=Lock
#include <benchmark/benchmark.h>

#include <mutex>

#include <mp/synchronize.hpp>

namespace {

void BM_LockAcquireRelease(benchmark::State& state) {
  mp::Lock lk;
  for (auto _ : state) {
    lk.acquire();
    lk.release();
  }
}
BENCHMARK(BM_LockAcquireRelease);

void BM_LockTryAcquireRelease(benchmark::State& state) {
  mp::Lock lk;
  for (auto _ : state) {
    benchmark::DoNotOptimize(lk.try_acquire());
    lk.release();
  }
}
BENCHMARK(BM_LockTryAcquireRelease);

// Two threads of one process on the same Lock: the futex slow path under contention.
void BM_LockContendedThreads(benchmark::State& state) {
  static mp::Lock* lk = nullptr;
  if (state.thread_index() == 0) lk = new mp::Lock;
  for (auto _ : state) {
    std::scoped_lock g(*lk);
    benchmark::ClobberMemory();
  }
  if (state.thread_index() == 0) {
    delete lk;
    lk = nullptr;
  }
}
BENCHMARK(BM_LockContendedThreads)->Threads(2)->UseRealTime();

// std::mutex for scale: a process-private lock with the same fast path.
void BM_StdMutexLockUnlock(benchmark::State& state) {
  std::mutex m;
  for (auto _ : state) {
    m.lock();
    m.unlock();
  }
}
BENCHMARK(BM_StdMutexLockUnlock);

}  // namespace
