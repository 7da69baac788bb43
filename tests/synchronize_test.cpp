// Tests for mp/synchronize.hpp across real processes (and threads).
// Children report failures through their exit code; the parent asserts on it. Nothing here
// sleeps to synchronize: "the child is now asleep on the futex" is observed in /proc.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "helpers/pid_reuse.hpp"
#include "helpers/fd_exhaustion.hpp"
#include "helpers/support.hpp"
#include "mp/connection.hpp"
#include "mp/internal/os.hpp"
#include "mp/process.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

namespace {

/// A T in anonymous shared memory, visible to children forked after its creation.
template <class T>
class SharedBlock {
 public:
  SharedBlock() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    obj_ = new (p) T{};
  }
  ~SharedBlock() { ::munmap(obj_, sizeof(T)); }
  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;
  T* operator->() const { return obj_; }
  T& operator*() const { return *obj_; }

 private:
  T* obj_;
};

/// Joins with a generous safety timeout; a child that hangs is killed so the suite goes on.
void join_or_kill(mp::Process& p) {
  if (!p.join(60s)) {
    ADD_FAILURE() << "child " << p.pid() << " still running after 60 s: killing it";
    p.kill();
    p.join();
  }
}

void join_all(std::vector<mp::Process>& ps) {
  for (auto& p : ps) join_or_kill(p);
  for (auto& p : ps) EXPECT_EQ(p.exitcode(), 0) << "child " << p.pid();
}

/// Waits (safety net: 60 s) until thread or process `id` sleeps in the kernel ('S').
bool wait_until_asleep(pid_t id) {
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (mp_test::proc_state(id) == 'S') return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

}  // namespace

// ------------------------------------------------------------------------------------ Lock

TEST(Lock, AcquireReleaseAndTimeout) {
  mp::Lock l;
  EXPECT_TRUE(l.acquire());
  EXPECT_TRUE(l.locked());
  EXPECT_FALSE(l.try_acquire());
  EXPECT_FALSE(l.acquire(10ms));
  EXPECT_FALSE(l.acquire(-5s));  // negative timeout: an immediate try
  EXPECT_FALSE(l.acquire_until(std::chrono::steady_clock::now() - 1s));
  l.release();
  EXPECT_FALSE(l.locked());
  EXPECT_THROW(l.release(), mp::ValueError);
}

// Issue 20: the kernel gives a dead holder's pid to a new process (clone3 set_tid here;
// unprivileged programs recycle pids in seconds). The lock must still be taken over.
TEST(Lock, AHolderWhosePidWasReusedIsStillDeadToTheNextAcquirer) {
  for (bool rlock : {false, true}) {
    mp::Lock lock;
    mp::RLock rl;
    auto [rd, wr] = mp::Pipe(false);
    mp::Process holder([&] {
      if (rlock) rl.acquire(); else lock.acquire();
      wr.send(1);
      for (;;) ::pause();
    });
    holder.start();
    ASSERT_EQ(rd.recv<int>(), 1);
    const std::uint64_t holder_start = mp::internal::process_start_time(holder.pid());
    holder.kill();
    holder.join();
    auto squatter = mp_test::ProcessAtPid::start(holder.pid(), holder_start);
    if (!squatter) GTEST_SKIP() << "cannot start a process at a chosen pid here (clone3 set_tid needs root)";
    ASSERT_NE(mp_test::proc_state(holder.pid()), 0);
    if (rlock) {
      EXPECT_TRUE(rl.acquire(30s)) << "RLock: the holder's pid is alive, but not the holder";
      rl.release();
    } else {
      EXPECT_TRUE(lock.acquire(30s)) << "Lock: the holder's pid is alive, but not the holder";
      EXPECT_TRUE(lock.owner_died());
      lock.release();
    }
  }
}

TEST(Lock, WorksWithStdLockGuards) {
  mp::Lock l;
  { std::scoped_lock g(l); EXPECT_TRUE(l.locked()); }
  { std::unique_lock g(l, 10ms); EXPECT_TRUE(g.owns_lock()); }
  { std::unique_lock g(l, std::chrono::system_clock::now() + 10ms); EXPECT_TRUE(g.owns_lock()); }
  EXPECT_FALSE(l.locked());
}

TEST(Lock, CopiesAreTheSameLock) {
  mp::Lock a;
  mp::Lock b = a;
  a.acquire();
  EXPECT_TRUE(b.locked());
  b.release();  // a Lock is not owner-checked, as in Python
  EXPECT_FALSE(a.locked());
}

TEST(Lock, MutualExclusionAcrossProcesses) {
  mp::Lock l;
  SharedBlock<long> counter;
  constexpr int kProcs = 4, kIters = 20000;
  std::vector<mp::Process> ps;
  for (int i = 0; i < kProcs; ++i)
    ps.emplace_back([&counter](mp::Lock lk) {
      for (int j = 0; j < kIters; ++j) {
        std::scoped_lock g(lk);
        long v = *counter;  // non-atomic read-modify-write: only correct under the lock
        *counter = v + 1;
      }
    }, l);
  for (auto& p : ps) p.start();
  join_all(ps);
  EXPECT_EQ(*counter, kProcs * kIters);
}

TEST(Lock, MutualExclusionAcrossThreads) {
  mp::Lock l;
  long counter = 0;
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      for (int j = 0; j < 20000; ++j) {
        std::scoped_lock g(l);
        ++counter;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 80000);
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
  EXPECT_FALSE(l.owner_died());
  p.kill();
  p.join();
  ASSERT_TRUE(l.acquire(60s)) << "a lock whose holder was SIGKILLed must be recoverable";
  EXPECT_TRUE(l.owner_died());
  l.release();
  EXPECT_FALSE(l.owner_died());
  EXPECT_TRUE(l.try_acquire());
  EXPECT_FALSE(l.owner_died()) << "a normal acquire after recovery is not flagged";
  l.release();
}

TEST(Lock, ExpiredTimedAcquireStillRecoversDeadHolder) {
  mp::Lock l;
  mp::Process p([&] { l.acquire(); });  // exits holding it
  p.start();
  join_or_kill(p);
  ASSERT_TRUE(l.locked());
  EXPECT_TRUE(l.acquire(0s)) << "even an immediate try notices that the holder is gone";
  EXPECT_TRUE(l.owner_died());
  l.release();
}

// Issue 20: a waiter with no descriptor free could not open a pidfd on the holder and took
// a zombie holder for a live one, so acquire() waited forever. The waiter here runs with
// RLIMIT_NOFILE at exactly the descriptors it has open; without the fix it times out.
TEST(Lock, ZombieHolderIsTakenOverByAWaiterWithNoDescriptorFree) {
  mp::Lock l;
  const pid_t holder = ::fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {
    l.acquire();
    ::_exit(0);  // exits holding the lock; not reaped until the end: a zombie
  }
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (mp_test::proc_state(holder) != 'Z' && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(mp_test::proc_state(holder), 'Z');

  const pid_t waiter = ::fork();
  ASSERT_GE(waiter, 0);
  if (waiter == 0) {
    const int lowest_free = ::fcntl(0, F_DUPFD, 0);
    if (lowest_free < 0) ::_exit(2);
    ::close(lowest_free);
    const rlimit lim{static_cast<rlim_t>(lowest_free), static_cast<rlim_t>(lowest_free)};
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(3);
    if (::fcntl(0, F_DUPFD_CLOEXEC, 0) >= 0 || errno != EMFILE) ::_exit(4);  // truly none free
    ::_exit(l.acquire(30s) && l.owner_died() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(waiter, &status, 0), waiter);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the waiter did not take the lock over from its zombie holder";
  ASSERT_EQ(::waitpid(holder, &status, 0), holder);
}

// ----------------------------------------------------------------------------------- RLock

TEST(RLock, RecursiveAcquireNeedsAsManyReleases) {
  mp::RLock r;
  EXPECT_TRUE(r.acquire());
  EXPECT_TRUE(r.acquire(10ms));
  EXPECT_TRUE(r.try_acquire());
  EXPECT_EQ(r.recursion_count(), 3u);
  EXPECT_TRUE(r.is_owned());
  r.release();
  r.release();
  EXPECT_TRUE(r.locked());
  r.release();
  EXPECT_FALSE(r.locked());
  EXPECT_FALSE(r.is_owned());
  EXPECT_THROW(r.release(), mp::RuntimeError);
}

TEST(RLock, WorksWithStdLockGuards) {
  mp::RLock r;
  std::scoped_lock a(r);
  std::unique_lock b(r, 10ms);
  EXPECT_TRUE(b.owns_lock());
  EXPECT_EQ(r.recursion_count(), 2u);
}

TEST(RLock, OtherThreadCannotAcquireOrRelease) {
  mp::RLock r;
  r.acquire();
  bool acquired = true, release_threw = false;
  std::thread t([&] {
    acquired = r.acquire(10ms);
    try {
      r.release();
    } catch (const mp::RuntimeError&) {
      release_threw = true;
    }
  });
  t.join();
  EXPECT_FALSE(acquired);
  EXPECT_TRUE(release_threw);
  EXPECT_EQ(r.recursion_count(), 1u) << "a failed foreign release must not change the owner's count";
  r.release();
}

TEST(RLock, OtherProcessCannotAcquireOrRelease) {
  mp::RLock r;
  r.acquire();
  mp::Process p([&] {
    if (r.try_acquire() || r.acquire(10ms)) mp::exit(2);
    try {
      r.release();
    } catch (const mp::RuntimeError&) {
      mp::exit(0);
    }
    mp::exit(3);
  });
  p.start();
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_TRUE(r.is_owned());
  r.release();
}

TEST(RLock, ReleasedLockPassesToWaitingProcess) {
  mp::RLock r;
  mp::Event waiting;
  r.acquire();
  r.acquire();
  mp::Process p([&] {
    waiting.set();
    if (!r.acquire(60s)) mp::exit(2);
    mp::exit(r.recursion_count() == 1 ? 0 : 3);
  });
  p.start();
  ASSERT_TRUE(waiting.wait(60s));
  r.release();
  r.release();
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(RLock, KilledOwnerIsTakenOver) {
  mp::RLock r;
  mp::Event held;
  mp::Process p([&] {
    r.acquire();
    r.acquire();
    held.set();
    for (;;) pause();
  });
  p.start();
  ASSERT_TRUE(held.wait(60s));
  p.kill();
  p.join();
  ASSERT_TRUE(r.acquire(60s));
  EXPECT_TRUE(r.owner_died());
  EXPECT_EQ(r.recursion_count(), 1u);
  r.release();
  EXPECT_FALSE(r.locked());
}

// ------------------------------------------------------------------------------- Semaphore

TEST(Semaphore, CountsAndTimesOut) {
  mp::Semaphore s(2);
  EXPECT_EQ(s.get_value(), 2);
  EXPECT_TRUE(s.acquire());
  EXPECT_TRUE(s.acquire(10ms));
  EXPECT_EQ(s.get_value(), 0);
  EXPECT_FALSE(s.try_acquire());
  EXPECT_FALSE(s.acquire(10ms));
  EXPECT_FALSE(s.acquire(-1s));
  s.release(2);
  EXPECT_EQ(s.get_value(), 2);
  { std::lock_guard g(s); EXPECT_EQ(s.get_value(), 1); }
  EXPECT_EQ(s.get_value(), 2);
  s.release();  // a plain Semaphore may go above its initial value
  EXPECT_EQ(s.get_value(), 3);
  EXPECT_THROW(mp::Semaphore(-1), mp::ValueError);
  EXPECT_THROW(s.release(0), mp::ValueError);
}

TEST(Semaphore, NeverAdmitsMoreThanItsValueUnderEightProcesses) {
  constexpr int kValue = 3, kProcs = 8, kRounds = 300;
  struct Stats {
    std::atomic<int> inside{0};
    std::atomic<int> max_inside{0};
    std::atomic<int> entries{0};
  };
  SharedBlock<Stats> stats;
  mp::Semaphore s(kValue);
  std::vector<mp::Process> ps;
  for (int i = 0; i < kProcs; ++i)
    ps.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        std::lock_guard g(s);
        int now = stats->inside.fetch_add(1) + 1;
        int seen = stats->max_inside.load();
        while (now > seen && !stats->max_inside.compare_exchange_weak(seen, now)) {
        }
        stats->entries.fetch_add(1);
        for (int k = 0; k < 100; ++k) std::atomic_signal_fence(std::memory_order_seq_cst);  // stay a while
        stats->inside.fetch_sub(1);
      }
    });
  for (auto& p : ps) p.start();
  join_all(ps);
  EXPECT_LE(stats->max_inside.load(), kValue);
  EXPECT_GE(stats->max_inside.load(), 1);
  EXPECT_EQ(stats->entries.load(), kProcs * kRounds);
  EXPECT_EQ(s.get_value(), kValue);
}

TEST(Semaphore, ReleaseWakesWaiterInAnotherProcess) {
  mp::Semaphore s(0);
  mp::Process p([&] { mp::exit(s.acquire(60s) ? 0 : 1); });
  p.start();
  ASSERT_TRUE(wait_until_asleep(p.pid()));
  s.release();
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(s.get_value(), 0);
}

TEST(BoundedSemaphore, ReleaseAboveInitialValueThrowsValueError) {
  mp::BoundedSemaphore s(2);
  EXPECT_THROW(s.release(), mp::ValueError);
  EXPECT_EQ(s.get_value(), 2);
  s.acquire();
  EXPECT_THROW(s.release(2), mp::ValueError);
  s.release();
  EXPECT_EQ(s.get_value(), 2);
}

TEST(BoundedSemaphore, OverReleaseInAChildIsRejectedToo) {
  mp::BoundedSemaphore s(1);
  mp::Process p([&] {
    try {
      s.release();
    } catch (const mp::ValueError&) {
      mp::exit(0);
    }
    mp::exit(1);
  });
  p.start();
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(s.get_value(), 1);
}

// ------------------------------------------------------------------------------- Condition

TEST(Condition, WaitAndNotifyRequireTheLock) {
  mp::Condition c;
  EXPECT_THROW(c.wait(), mp::RuntimeError);
  EXPECT_THROW(c.wait(1ms), mp::RuntimeError);
  EXPECT_THROW(c.notify(), mp::RuntimeError);
  EXPECT_THROW(c.notify_all(), mp::RuntimeError);
  mp::Lock plain;
  mp::Condition with_lock(plain);
  EXPECT_THROW(with_lock.notify(), mp::RuntimeError);
  std::scoped_lock g(with_lock);
  EXPECT_NO_THROW(with_lock.notify());
}

TEST(Condition, WaitTimesOutWithLockReacquired) {
  mp::RLock r;
  mp::Condition c(r);
  std::unique_lock g(c);
  EXPECT_FALSE(c.wait(10ms));
  EXPECT_FALSE(c.wait(-1s));
  EXPECT_TRUE(r.is_owned());
  EXPECT_FALSE(c.wait_for([] { return false; }, 10ms));
  EXPECT_TRUE(c.wait_for([] { return true; }, 0s));
  EXPECT_TRUE(r.is_owned());
}

TEST(Condition, WaitFullyReleasesARecursiveRLockAndRestoresIt) {
  mp::RLock r;
  mp::Condition c(r);
  r.acquire();
  r.acquire();
  r.acquire();
  bool flag = false;
  std::thread t([&] {
    std::scoped_lock g(c);  // only possible if wait() released all three levels
    flag = true;
    c.notify();
  });
  EXPECT_TRUE(c.wait_for([&] { return flag; }, 60s));
  EXPECT_EQ(r.recursion_count(), 3u);
  r.release();
  r.release();
  r.release();
  t.join();
}

TEST(Condition, NotifyAllWakesEveryWaitingProcess) {
  constexpr int kWaiters = 4;
  struct State {
    int waiting = 0;
    int woken = 0;
  };
  SharedBlock<State> st;
  mp::RLock lock;
  mp::Condition children(lock), parent(lock);  // two conditions, one lock
  std::vector<mp::Process> ps;
  for (int i = 0; i < kWaiters; ++i)
    ps.emplace_back([&] {
      std::unique_lock g(lock);
      ++st->waiting;
      parent.notify();
      if (!children.wait()) mp::exit(2);  // a single wait: only a notify can end it
      ++st->woken;
    });
  for (auto& p : ps) p.start();
  {
    std::unique_lock g(lock);
    ASSERT_TRUE(parent.wait_for([&] { return st->waiting == kWaiters; }, 60s));
    children.notify_all();
  }
  join_all(ps);
  EXPECT_EQ(st->woken, kWaiters);
}

TEST(Condition, NotifyWakesTheOldestWaitersFirst) {
  constexpr int kWaiters = 3;
  struct State {
    int waiting = 0;
    int woken = 0;
    int order[kWaiters] = {-1, -1, -1};
  };
  SharedBlock<State> st;
  mp::Lock lock;
  mp::Condition children(lock), parent(lock);
  std::vector<mp::Process> ps;
  for (int i = 0; i < kWaiters; ++i) {
    ps.emplace_back([&, i] {
      std::unique_lock g(lock);
      ++st->waiting;
      parent.notify();
      if (!children.wait()) mp::exit(2);
      st->order[st->woken++] = i;
      parent.notify();
    });
    ps.back().start();
    std::unique_lock g(lock);  // child i waits before child i+1 starts
    ASSERT_TRUE(parent.wait_for([&] { return st->waiting == i + 1; }, 60s));
  }
  for (int k = 1; k <= kWaiters; ++k) {
    std::unique_lock g(lock);
    children.notify(1);
    ASSERT_TRUE(parent.wait_for([&] { return st->woken >= k; }, 60s));
    EXPECT_EQ(st->woken, k) << "notify(1) woke more than one waiter";
  }
  join_all(ps);
  EXPECT_EQ(st->order[0], 0);
  EXPECT_EQ(st->order[1], 1);
  EXPECT_EQ(st->order[2], 2);
}

TEST(Condition, NotifyAllAlsoWakesWaitersBeyondTheSlotTable) {
  constexpr int kWaiters = 400;  // more than the ~336 per-waiter slots of a Condition
  mp::RLock lock;
  mp::Condition children(lock), parent(lock);
  int waiting = 0, woken = 0, returned_true = 0;
  std::vector<std::thread> ts;
  for (int i = 0; i < kWaiters; ++i)
    ts.emplace_back([&] {
      std::unique_lock g(lock);
      ++waiting;
      parent.notify();
      bool r = children.wait(60s);
      ++woken;
      returned_true += r;
    });
  {
    std::unique_lock g(lock);
    ASSERT_TRUE(parent.wait_for([&] { return waiting == kWaiters; }, 60s));
    children.notify_all();
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(woken, kWaiters);
  EXPECT_EQ(returned_true, kWaiters);
}

TEST(Condition, ProducerConsumerAcrossThreads) {
  mp::Condition c;
  std::vector<int> items;
  int consumed = 0;
  std::thread consumer([&] {
    for (int n = 0; n < 1000; ++n) {
      std::unique_lock g(c);
      c.wait_for([&] { return !items.empty(); });
      consumed += items.back();
      items.pop_back();
    }
  });
  for (int n = 0; n < 1000; ++n) {
    std::unique_lock g(c);
    items.push_back(1);
    c.notify();
  }
  consumer.join();
  EXPECT_EQ(consumed, 1000);
}

// ----------------------------------------------------------------------------------- Event

TEST(Event, SetClearAndTimeout) {
  mp::Event e;
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait(10ms));
  EXPECT_FALSE(e.wait(0s));
  e.set();
  e.set();
  EXPECT_TRUE(e.is_set());
  EXPECT_TRUE(e.wait());
  EXPECT_TRUE(e.wait(0s));
  e.clear();
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait(1ms));
}

TEST(Event, SetWakesEveryWaitingProcess) {
  constexpr int kWaiters = 4;
  mp::Event e;
  std::vector<mp::Process> ps;
  for (int i = 0; i < kWaiters; ++i) ps.emplace_back([&] { mp::exit(e.wait() && e.is_set() ? 0 : 1); });
  for (auto& p : ps) p.start();
  for (auto& p : ps) ASSERT_TRUE(wait_until_asleep(p.pid()));
  e.set();
  join_all(ps);
}

TEST(Event, SetThenClearStillWakesThoseAlreadyWaiting) {
  mp::Event e;
  std::atomic<pid_t> tid{0};
  bool result = false;
  std::thread t([&] {
    tid = static_cast<pid_t>(::gettid());
    result = e.wait(60s);
  });
  while (tid == 0) std::this_thread::yield();
  ASSERT_TRUE(wait_until_asleep(tid));
  e.set();
  e.clear();
  t.join();
  EXPECT_TRUE(result) << "the flag was set during the wait (threading.Event semantics)";
}

TEST(Event, WritesBeforeSetAreVisibleAfterWait) {
  SharedBlock<int> data;
  mp::Event e;
  mp::Process p([&] {
    *data = 42;
    e.set();
  });
  p.start();
  ASSERT_TRUE(e.wait(60s));
  EXPECT_EQ(*data, 42);
  join_or_kill(p);
}

// --------------------------------------------------------------------------------- Barrier

TEST(Barrier, ReleasesAllPartiesWithDistinctIndicesEveryRound) {
  constexpr int kParties = 4, kRounds = 3;
  struct State {
    std::atomic<int> actions{0};
    std::atomic<int> index_seen[kRounds][kParties] = {};
  };
  SharedBlock<State> st;
  mp::Barrier b(kParties, [&] { st->actions.fetch_add(1); });
  EXPECT_EQ(b.parties(), kParties);
  auto body = [&] {
    for (int r = 0; r < kRounds; ++r) {
      int i = b.wait();
      if (i < 0 || i >= kParties) mp::exit(2);
      st->index_seen[r][i].fetch_add(1);
      // The action of this round ran before anyone was released.
      if (st->actions.load() < r + 1) mp::exit(3);
    }
  };
  std::vector<mp::Process> ps;
  for (int i = 0; i < kParties - 1; ++i) ps.emplace_back(body);
  for (auto& p : ps) p.start();
  body();
  join_all(ps);
  EXPECT_EQ(st->actions.load(), kRounds);
  for (int r = 0; r < kRounds; ++r)
    for (int i = 0; i < kParties; ++i) EXPECT_EQ(st->index_seen[r][i].load(), 1) << "round " << r << " index " << i;
  EXPECT_FALSE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0);
}

TEST(Barrier, TimeoutBreaksItForEveryone) {
  mp::Barrier b(3);
  mp::Process p([&] {
    try {
      b.wait();
    } catch (const mp::BrokenBarrierError&) {
      mp::exit(0);
    }
    mp::exit(1);
  });
  p.start();
  // Make sure the child is a waiter before timing out (otherwise it only sees "broken").
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (b.n_waiting() < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(b.n_waiting(), 1);
  EXPECT_THROW(b.wait(10ms), mp::BrokenBarrierError);
  EXPECT_TRUE(b.broken());
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_THROW(b.wait(10ms), mp::BrokenBarrierError) << "stays broken until reset()";
  b.reset();
  EXPECT_FALSE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0);
}

TEST(Barrier, DefaultTimeoutFromConstructor) {
  mp::Barrier b(2, {}, 10ms);
  EXPECT_THROW(b.wait(), mp::BrokenBarrierError);
  EXPECT_TRUE(b.broken());
}

TEST(Barrier, AbortWakesWaitersWithBrokenBarrierError) {
  mp::Barrier b(3);
  std::vector<mp::Process> ps;
  for (int i = 0; i < 2; ++i)
    ps.emplace_back([&] {
      try {
        b.wait();
      } catch (const mp::BrokenBarrierError&) {
        mp::exit(0);
      }
      mp::exit(1);
    });
  for (auto& p : ps) p.start();
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (b.n_waiting() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(b.n_waiting(), 2);
  b.abort();
  join_all(ps);
  EXPECT_TRUE(b.broken());
}

TEST(Barrier, ResetBreaksCurrentWaitersThenWorksAgain) {
  mp::Barrier b(2);
  std::thread t([&] { EXPECT_THROW(b.wait(), mp::BrokenBarrierError); });
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (b.n_waiting() < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  b.reset();
  t.join();
  EXPECT_FALSE(b.broken());
  int other = -1;
  std::thread t2([&] { other = b.wait(); });
  int mine = b.wait();
  t2.join();
  EXPECT_EQ(mine + other, 1) << "indices 0 and 1";
}

TEST(Barrier, ThrowingActionBreaksTheBarrier) {
  mp::Barrier b(2, [] { throw std::runtime_error("action failed"); });
  std::thread t([&] {
    try {
      b.wait();
    } catch (const mp::BrokenBarrierError&) {
    } catch (const std::runtime_error&) {
    }
  });
  bool mine_threw = false;
  try {
    b.wait();
  } catch (const std::runtime_error&) {
    mine_threw = true;  // either the action's error or BrokenBarrierError (also a runtime_error)
  }
  t.join();
  EXPECT_TRUE(mine_threw);
  EXPECT_TRUE(b.broken());
  EXPECT_THROW(mp::Barrier(0), mp::ValueError);
}

// -------------------------------------------------------------------------------- Examples

TEST(Examples, TicketLockSellsExactlyTheTicketsThereAre) {
  auto r = mp_test::run(mp_test::example("ticket_lock") + " 4");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("db starts with count=4"), std::string::npos) << r.out;
  EXPECT_EQ(mp_test::count(r.out, "bought a ticket"), 4) << r.out;
  EXPECT_EQ(mp_test::count(r.out, "sold out"), 11) << r.out;
  EXPECT_EQ(mp_test::count(r.out, "sees "), 15) << r.out;
  EXPECT_NE(r.out.find("db ends with count=0 (4 ticket(s) sold)"), std::string::npos) << r.out;
}

TEST(Examples, SemaphoreRestaurantNeverSeatsMoreThanFour) {
  auto r = mp_test::run(mp_test::example("semaphore_restaurant"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(mp_test::count(r.out, " enters and eats ("), 10) << r.out;
  EXPECT_EQ(mp_test::count(r.out, " leaves ("), 10) << r.out;
  for (int k = 5; k <= 10; ++k) EXPECT_EQ(r.out.find("(" + std::to_string(k) + " inside)"), std::string::npos) << r.out;
  auto at = r.out.find("at most ");
  ASSERT_NE(at, std::string::npos) << r.out;
  int max_seen = std::atoi(r.out.c_str() + at + 8);
  EXPECT_GE(max_seen, 1);
  EXPECT_LE(max_seen, 4) << r.out;
}

TEST(Examples, EventWaitParentContinuesOnlyAfterTheChildSetsIt) {
  auto r = mp_test::run(mp_test::example("event_wait"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto waiting = r.out.find("parent: waiting for the child's event");
  auto done = r.out.find("child: work done, setting the event");
  auto got = r.out.find("parent: got the event (is_set=true)");
  auto finished = r.out.find("parent: finished");
  ASSERT_NE(waiting, std::string::npos) << r.out;
  ASSERT_NE(done, std::string::npos) << r.out;
  ASSERT_NE(got, std::string::npos) << r.out;
  ASSERT_NE(finished, std::string::npos) << r.out;
  EXPECT_LT(waiting, got);
  EXPECT_LT(done, got) << r.out;
  EXPECT_LT(got, finished);
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(Synchronize, ConstructorsOutOfDescriptorsAtAnyStepLeaveNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  struct Case {
    const char* name;
    void (*make)();
  };
  const Case cases[] = {
      {"Lock", [] { mp::Lock l; }},
      {"RLock", [] { mp::RLock l; }},
      {"Semaphore", [] { mp::Semaphore s(2); }},
      {"BoundedSemaphore", [] { mp::BoundedSemaphore s(2); }},
      {"Event", [] { mp::Event e; }},
      {"Condition", [] { mp::Condition c; }},
      {"Condition(Lock)", [] { mp::Condition c(mp::Lock{}); }},
      {"Barrier", [] { mp::Barrier b(2); }},
  };
  for (const Case& c : cases) {
    auto r = mp_test::construct_out_of_descriptors(c.make);
    EXPECT_EQ(r.problem, "") << c.name;
    EXPECT_TRUE(r.succeeded) << c.name;
  }
}
