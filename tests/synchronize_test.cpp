// Tests for mp/synchronize.hpp across real processes.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <csignal>
#include <mutex>

#include "helpers/support.hpp"
#include "mp/process.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

TEST(Lock, AcquireReleaseAndTimeout) {
  mp::Lock l;
  EXPECT_TRUE(l.acquire());
  EXPECT_TRUE(l.locked());
  EXPECT_FALSE(l.try_acquire());
  EXPECT_FALSE(l.acquire(10ms));
  EXPECT_FALSE(l.acquire(-5s));  // negative timeout: an immediate try
  l.release();
  EXPECT_FALSE(l.locked());
  EXPECT_THROW(l.release(), mp::ValueError);
}

TEST(Lock, WorksWithStdLockGuards) {
  mp::Lock l;
  { std::scoped_lock g(l); EXPECT_TRUE(l.locked()); }
  { std::unique_lock g(l, 10ms); EXPECT_TRUE(g.owns_lock()); }
  EXPECT_FALSE(l.locked());
}

TEST(Lock, MutualExclusionAcrossProcesses) {
  mp::Lock l;
  auto* counter = static_cast<long*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  *counter = 0;
  constexpr int kProcs = 4, kIters = 20000;
  std::vector<mp::Process> ps;
  for (int i = 0; i < kProcs; ++i)
    ps.emplace_back([=](mp::Lock lk) {
      for (int j = 0; j < kIters; ++j) {
        std::scoped_lock g(lk);
        long v = *counter;  // non-atomic read-modify-write: only correct under the lock
        *counter = v + 1;
      }
    }, l);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  for (auto& p : ps) EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(*counter, kProcs * kIters);
  munmap(counter, 4096);
}

TEST(Lock, KilledHolderDoesNotDeadlockNextAcquirer) {
  mp::Lock l;
  mp::Lock held;  // the child signals "I hold l" by releasing this
  held.acquire();
  mp::Process p([&] {
    l.acquire();
    held.release();
    for (;;) pause();
  });
  p.start();
  ASSERT_TRUE(held.acquire(60s));
  EXPECT_TRUE(l.locked());
  p.kill();
  p.join();
  ASSERT_TRUE(l.acquire(60s)) << "a lock whose holder was SIGKILLed must be recoverable";
  EXPECT_TRUE(l.owner_died());
  l.release();
  EXPECT_FALSE(l.owner_died());
}
