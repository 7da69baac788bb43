// Load: 8 processes x 8 threads hammering one object — a Queue, a Lock, a Manager dict —
// for a fixed amount of work (counts, never time). Afterwards every count must check out
// exactly. Each test prints its figures ("[ figure ] ...").
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "mp/managers.hpp"
#include "mp/process.hpp"
#include "mp/queue.hpp"
#include "mp/synchronize.hpp"
#include "reliability_support.hpp"

using namespace std::chrono_literals;
using mp_rel::figure;
using mp_rel::SharedArray;

namespace {

constexpr int kProcesses = 8;
constexpr int kThreads = 8;

/// Starts kProcesses children, each running `body(process_index, thread_index)` on
/// kThreads threads, and joins them all. Returns how many exited with code 0.
template <class F>
int run_everywhere(F body) {
  std::vector<mp::Process> ps;
  for (int p = 0; p < kProcesses; ++p) {
    ps.emplace_back([&body, p] {
      std::vector<std::thread> ts;
      for (int t = 0; t < kThreads; ++t) ts.emplace_back(body, p, t);
      for (auto& t : ts) t.join();
    });
    ps.back().start();
  }
  int ok = 0;
  for (auto& p : ps) ok += p.join(mp_rel::kSafety) && p.exitcode() == 0;
  return ok;
}

struct Msg {
  std::uint32_t producer;
  std::uint32_t seq;
};
constexpr std::uint32_t kStop = 0xffffffffu;

}  // namespace

TEST(LoadQueue, SixtyFourThreadsInEightProcessesDeliverEveryMessageExactlyOnceInOrder) {
  // In each process, threads 0-3 produce and threads 4-7 consume: 32 producers, 32
  // consumers. A producer ends with one stop message; a consumer stops at its first, so
  // the last stop is consumed only once every producer has finished — and FIFO puts every
  // message before it.
  constexpr int kProducers = kProcesses * kThreads / 2;
  constexpr std::uint32_t kPerProducer = 10000;
  mp::Queue<Msg> q({.capacity_bytes = 1 << 16});
  SharedArray<std::atomic<std::uint8_t>> seen(kProducers * kPerProducer);
  SharedArray<std::atomic<long>> stats(3);  // [0] received, [1] out of order, [2] stops
  auto t0 = std::chrono::steady_clock::now();
  int ok = run_everywhere([&](int p, int t) {
    if (t < kThreads / 2) {
      const auto id = static_cast<std::uint32_t>(p * kThreads / 2 + t);
      for (std::uint32_t s = 0; s < kPerProducer; ++s) q.put({id, s});
      q.put({kStop, 0});
      return;
    }
    std::vector<std::int64_t> last(kProducers, -1);
    for (;;) {
      Msg m = q.get();
      if (m.producer == kStop) {
        stats[2].fetch_add(1);
        return;
      }
      if (m.producer >= kProducers || m.seq >= kPerProducer) {
        stats[1].fetch_add(1);
        continue;
      }
      seen[m.producer * kPerProducer + m.seq].fetch_add(1);
      if (static_cast<std::int64_t>(m.seq) <= last[m.producer]) stats[1].fetch_add(1);
      last[m.producer] = m.seq;
      stats[0].fetch_add(1, std::memory_order_relaxed);
    }
  });
  double ms = mp_rel::ms_between(t0, std::chrono::steady_clock::now());
  EXPECT_EQ(ok, kProcesses);
  long once = 0, never = 0, twice = 0;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    once += seen[i] == 1;
    never += seen[i] == 0;
    twice += seen[i] > 1;
  }
  EXPECT_EQ(once, kProducers * static_cast<long>(kPerProducer));
  EXPECT_EQ(stats[0], kProducers * static_cast<long>(kPerProducer));
  EXPECT_EQ(stats[1], 0);
  EXPECT_EQ(stats[2], kProducers);
  EXPECT_TRUE(q.empty());
  figure("queue, %d processes x %d threads (32 producers, 32 consumers): %ld of %ld messages delivered exactly "
         "once, %ld missing, %ld duplicated, %ld out of per-producer order (%.0f ms)",
         kProcesses, kThreads, once, kProducers * static_cast<long>(kPerProducer), never, twice, stats[1].load(), ms);
}

TEST(LoadLock, SixtyFourThreadsInEightProcessesNeverOverlapInTheCriticalSection) {
  constexpr long kPerThread = 50000;
  mp::Lock lock;
  // A plain (non-atomic) counter and an "inside" flag, both protected by the lock only.
  SharedArray<long> counter(2);
  SharedArray<std::atomic<long>> stats(2);  // [0] overlaps seen, [1] owner_died reported
  auto t0 = std::chrono::steady_clock::now();
  int ok = run_everywhere([&](int, int) {
    for (long i = 0; i < kPerThread; ++i) {
      std::scoped_lock g(lock);
      if (counter[1] != 0) stats[0].fetch_add(1);
      counter[1] = 1;
      if (lock.owner_died()) stats[1].fetch_add(1);
      counter[0] = counter[0] + 1;
      counter[1] = 0;
    }
  });
  double ms = mp_rel::ms_between(t0, std::chrono::steady_clock::now());
  EXPECT_EQ(ok, kProcesses);
  const long want = kProcesses * kThreads * kPerThread;
  EXPECT_EQ(counter[0], want);
  EXPECT_EQ(stats[0], 0);
  EXPECT_EQ(stats[1], 0);
  figure("lock, %d processes x %d threads x %ld acquire/increment/release: counter %ld of %ld, %ld overlapping "
         "holders, %ld false owner_died (%.0f ms)",
         kProcesses, kThreads, kPerThread, counter[0], want, stats[0].load(), stats[1].load(), ms);
}

TEST(LoadManagerDict, SixtyFourThreadsInEightProcessesLoseNoUpdate) {
  constexpr int kPerThread = 150;
  mp::Manager m;
  auto d = m.dict<int, int>();
  auto counter = m.list<long>({0});
  SharedArray<std::atomic<long>> failures(1);
  auto t0 = std::chrono::steady_clock::now();
  int ok = run_everywhere([&](int p, int t) {
    try {
      for (int i = 0; i < kPerThread; ++i) {
        int key = (p * kThreads + t) * kPerThread + i;
        d[key] = key * 3;
        counter.add(0, 1);  // read-modify-write in one server call
      }
    } catch (const std::exception&) {
      failures[0].fetch_add(1);
    }
  });
  double ms = mp_rel::ms_between(t0, std::chrono::steady_clock::now());
  EXPECT_EQ(ok, kProcesses);
  EXPECT_EQ(failures[0], 0);
  const long want = kProcesses * kThreads * kPerThread;
  auto all = d.copy();
  long right = 0;
  for (auto& kv : all) right += kv.second == kv.first * 3;
  EXPECT_EQ(static_cast<long>(all.size()), want);
  EXPECT_EQ(right, want);
  EXPECT_EQ(counter[0].get(), want);
  // Each thread had its own connection; all of them are gone with the children.
  EXPECT_TRUE(mp_rel::spin_until([&] { return m.number_of_objects() == 2u; }));
  figure("manager dict, %d processes x %d threads x %d setitem+add calls (%d connections): %zu of %ld keys with "
         "the right value, counter %ld of %ld, %ld failed calls (%.0f ms)",
         kProcesses, kThreads, kPerThread, kProcesses * kThreads, all.size(), want, counter[0].get(), want,
         failures[0].load(), ms);
}
