// Killed processes, in loops: SIGKILL at random points (a seeded RNG picks how far the
// victim gets), 200 times per case. Each case prints its figures ("[ figure ] ...").
//
// The kill point is chosen by progress, never by time: the victim counts its steps in
// shared memory, the test waits until a random count is reached, spins a random number
// of pauses more, and kills. Every wait is on a real event (a pipe, a pidfd, a queue
// message); the 60 s safety nets are never reached when the code works.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <set>
#include <string>

#include "managers/client.hpp"
#include "managers/wire.hpp"
#include "mp/connection.hpp"
#include "mp/internal/futex.hpp"
#include "mp/managers.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"
#include "mp/queue.hpp"
#include "mp/shared_memory.hpp"
#include "mp/synchronize.hpp"
#include "reliability_support.hpp"

using namespace std::chrono_literals;
using mp_rel::figure;
using mp_rel::SharedArray;

namespace {

constexpr int kIterations = 200;

/// Spins `n` pauses: moves the kill point by a random amount of the victim's work.
void pause_for(std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) mp::internal::cpu_relax();
}

// ---------------------------------------------------------------- queue payloads

/// A message that proves it arrived whole: [iter u32][seq u64][size u32] then bytes that
/// are a function of (iter, seq, position).
std::string make_payload(std::uint32_t iter, std::uint64_t seq, std::size_t size) {
  size = std::max<std::size_t>(size, 16);
  std::string s(size, '\0');
  std::uint32_t sz = static_cast<std::uint32_t>(size);
  std::memcpy(s.data(), &iter, 4);
  std::memcpy(s.data() + 4, &seq, 8);
  std::memcpy(s.data() + 12, &sz, 4);
  for (std::size_t k = 16; k < size; ++k) s[k] = static_cast<char>((iter * 131u + seq * 31u + k) & 0xff);
  return s;
}

struct Tag {
  std::uint32_t iter;
  std::uint64_t seq;
};

/// The (iter, seq) of an intact payload; nullopt for a torn or foreign one.
std::optional<Tag> check_payload(const std::string& s) {
  if (s.size() < 16) return std::nullopt;
  Tag t;
  std::uint32_t sz;
  std::memcpy(&t.iter, s.data(), 4);
  std::memcpy(&t.seq, s.data() + 4, 8);
  std::memcpy(&sz, s.data() + 12, 4);
  if (sz != s.size()) return std::nullopt;
  for (std::size_t k = 16; k < s.size(); ++k)
    if (s[k] != static_cast<char>((t.iter * 131u + t.seq * 31u + k) & 0xff)) return std::nullopt;
  return t;
}

/// Sizes: mostly small and varied; every 50th larger than half of a 64 KiB ring, so it
/// travels in fragments.
std::size_t size_for(std::uint64_t seq) { return seq % 50 == 49 ? 40'000 : 16 + (seq * 7919) % 3000; }

}  // namespace

// ------------------------------------------------------------------------ lock holder

TEST(KillLockHolder, NextAcquirerTakesOverAndIsToldTheOwnerDied) {
  mp::Lock lock;
  SharedArray<std::atomic<std::uint64_t>> progress(1);
  std::mt19937_64 rng(mp_rel::kSeed);
  int takeovers = 0, by_waiter = 0, hangs = 0, not_told = 0;
  for (int i = 0; i < kIterations; ++i) {
    progress.reset();
    auto pipe = mp::Pipe(false);
    mp::Connection& rd = pipe.first;
    mp::Connection& wr = pipe.second;
    mp::Process holder([&] {
      lock.acquire();
      wr.send(1);
      for (;;) progress[0].fetch_add(1, std::memory_order_relaxed);  // inside the lock until killed
    });
    holder.start();
    ASSERT_EQ(rd.recv<int>(), 1);
    // One iteration in 8: the next acquirer is already waiting when the holder dies (it
    // notices at its liveness probe, ~50 ms); otherwise it arrives after the death.
    const bool waiting = i % 8 == 0;
    std::optional<mp::Process> waiter;
    if (waiting) {
      waiter.emplace([&] {
        lock.acquire();
        wr.send(lock.owner_died() ? 1 : 0);
        lock.release();
      });
      waiter->start();
    }
    const std::uint64_t point = rng() % 5000;
    ASSERT_TRUE(mp_rel::spin_until([&] { return progress[0].load(std::memory_order_relaxed) >= point; }));
    pause_for(rng() % 2000);
    holder.kill();
    ASSERT_TRUE(holder.join(mp_rel::kSafety));
    bool took = false, told = false;
    if (waiting) {
      if (rd.poll(mp_rel::kSafety)) {
        took = true;
        told = rd.recv<int>() == 1;
        ++by_waiter;
      }
      ASSERT_TRUE(waiter->join(mp_rel::kSafety));
      // The waiter released it: free, and no longer marked.
      took = took && lock.acquire(0s) && !lock.owner_died();
    } else {
      // The holder is dead and reaped: the first probe sees it, so even a zero timeout
      // takes the lock over.
      took = lock.acquire(0s);
      told = took && lock.owner_died();
    }
    if (took) {
      ++takeovers;
      lock.release();
    } else {
      ++hangs;
    }
    not_told += took && !told;
  }
  EXPECT_EQ(takeovers, kIterations);
  EXPECT_EQ(hangs, 0);
  EXPECT_EQ(not_told, 0);
  figure("lock holder killed %d times at random points: %d takeovers (%d by an acquirer already waiting), "
         "%d told owner_died(), %d hangs",
         kIterations, takeovers, by_waiter, takeovers - not_told, hangs);
}

// ------------------------------------------------------------------------------ queue

TEST(KillQueueProducer, MidPutNeverDeliversAHalfMessageAndLosesNothingPublished) {
  mp::Queue<std::string> q({.capacity_bytes = 1 << 16});
  SharedArray<std::atomic<std::uint64_t>> puts_done(1);
  std::mt19937_64 rng(mp_rel::kSeed + 1);
  long delivered = 0, in_flight_delivered = 0, torn = 0, out_of_order = 0, lost = 0;
  for (int i = 0; i < kIterations; ++i) {
    puts_done.reset();
    const auto iter = static_cast<std::uint32_t>(i);
    mp::Process producer([&] {
      for (std::uint64_t j = 0;; ++j) {
        q.put(make_payload(iter, j, size_for(j)));
        puts_done[0].store(j + 1, std::memory_order_release);
      }
    });
    producer.start();
    std::uint64_t next = 0;
    auto take = [&](const std::string& s) {
      auto t = check_payload(s);
      if (!t || t->iter != iter) {
        ++torn;
        return;
      }
      if (t->seq != next) ++out_of_order;
      next = t->seq + 1;
    };
    const std::uint64_t before_kill = rng() % 300;
    for (std::uint64_t k = 0; k < before_kill; ++k) take(q.get(mp_rel::kSafety));
    pause_for(rng() % 20000);
    producer.kill();
    ASSERT_TRUE(producer.join(mp_rel::kSafety));
    // Everything published is in the queue now. get_nowait takes the consumer side, and
    // put_nowait takes over the producer side from the dead producer at once.
    for (;;) {
      try {
        take(q.get_nowait());
      } catch (const mp::Empty&) {
        break;
      }
    }
    const std::uint64_t completed = puts_done[0].load(std::memory_order_acquire);
    // Every put() that returned was delivered; the one killed may have published or not.
    if (next < completed) lost += static_cast<long>(completed - next);
    in_flight_delivered += next > completed;
    EXPECT_LE(next, completed + 1) << "iteration " << i;
    delivered += static_cast<long>(next);
    ASSERT_NO_THROW(q.put_nowait("END")) << "iteration " << i << ": the producer side was not recovered";
    ASSERT_EQ(q.get_nowait(), "END");
  }
  EXPECT_EQ(torn, 0);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(lost, 0);
  figure("queue producer killed mid-put %d times: %ld messages delivered whole and in order, %ld of them the "
         "put in flight at the kill; %ld lost, %ld torn, 0 hangs",
         kIterations, delivered, in_flight_delivered, lost, torn);
}

TEST(KillQueueConsumer, MidGetLosesAtMostTheMessageInFlight) {
  mp::Queue<std::string> q({.capacity_bytes = 1 << 16});
  constexpr std::size_t kMaxMessages = 400;
  SharedArray<std::atomic<std::uint32_t>> seen(kMaxMessages);  // times the consumer recorded each seq
  SharedArray<std::atomic<std::uint64_t>> progress(2);         // [0] recorded, [1] torn
  std::mt19937_64 rng(mp_rel::kSeed + 2);
  long delivered = 0, lost = 0, duplicated = 0, torn = 0, worst = 0;
  for (int i = 0; i < kIterations; ++i) {
    seen.reset();
    progress.reset();
    const auto iter = static_cast<std::uint32_t>(i);
    mp::Process consumer([&] {
      for (;;) {
        auto t = check_payload(q.get());
        if (!t || t->iter != iter || t->seq >= kMaxMessages) {
          progress[1].fetch_add(1);
          continue;
        }
        seen[t->seq].fetch_add(1);
        progress[0].fetch_add(1, std::memory_order_release);
      }
    });
    consumer.start();
    const std::uint64_t m = 1 + rng() % kMaxMessages;
    const std::uint64_t point = rng() % m;
    // The kill comes while we are still putting (the ring holds 64 KiB, so puts wait for
    // the consumer) or after, as the random point falls.
    std::uint64_t put = 0;
    for (; put < m && progress[0].load(std::memory_order_acquire) < point; ++put)
      q.put(make_payload(iter, put, size_for(put)));
    ASSERT_TRUE(mp_rel::spin_until([&] { return progress[0].load(std::memory_order_acquire) >= point; }));
    pause_for(rng() % 20000);
    consumer.kill();
    ASSERT_TRUE(consumer.join(mp_rel::kSafety));
    std::vector<std::uint32_t> drained(kMaxMessages);
    auto drain = [&] {
      for (;;) {
        try {
          auto t = check_payload(q.get_nowait());
          if (!t || t->iter != iter || t->seq >= kMaxMessages) ++torn;
          else ++drained[t->seq];
        } catch (const mp::Empty&) {
          return;
        }
      }
    };
    drain();  // takes over the consumer side at once if the dead consumer held it
    for (; put < m; ++put) {  // the rest, now that the queue has room again
      q.put(make_payload(iter, put, size_for(put)));
      drain();
    }
    torn += static_cast<long>(progress[1].load());
    long missing = 0;
    for (std::uint64_t s = 0; s < m; ++s) {
      std::uint32_t n = seen[s].load() + drained[s];
      missing += n == 0;
      duplicated += n > 1;
      delivered += n == 1;
    }
    EXPECT_LE(missing, 1) << "iteration " << i << ": more than the in-flight message was lost";
    lost += missing;
    worst = std::max(worst, missing);
    q.put_nowait("END");
    ASSERT_EQ(q.get_nowait(), "END");
  }
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(torn, 0);
  figure("queue consumer killed mid-get %d times: %ld messages delivered exactly once, %ld lost (at most %ld per "
         "kill: the message the dying consumer had already taken), %ld duplicated, %ld torn, 0 hangs",
         kIterations, delivered, lost, worst, duplicated, torn);
}

// ------------------------------------------------------------------------------- pool

namespace {
struct PoolProgress {
  std::atomic<pid_t> worker{0};
  std::atomic<std::uint64_t> steps{0};
};
PoolProgress* g_pool_progress = nullptr;  // shared mapping, set before the pool forks

int endless_task(int) {
  g_pool_progress->worker.store(::getpid());
  for (;;) g_pool_progress->steps.fetch_add(1, std::memory_order_relaxed);
}
int double_it(int x) { return 2 * x; }
}  // namespace

TEST(KillPoolWorker, MidTaskRaisesWorkerLostAndThePoolGoesOn) {
  if (mp_rel::under_tsan())
    GTEST_SKIP() << "Pool forks workers while its handler threads run: TSan does not support fork in a "
                    "multithreaded process";
  SharedArray<PoolProgress> progress(1);
  g_pool_progress = &progress[0];
  mp::Pool pool(2);
  std::mt19937_64 rng(mp_rel::kSeed + 3);
  int lost = 0, wrong_pid = 0, continued = 0;
  for (int i = 0; i < kIterations; ++i) {
    progress[0].worker.store(0);
    progress[0].steps.store(0);
    auto r = pool.apply_async(endless_task, i);
    ASSERT_TRUE(mp_rel::spin_until([&] { return progress[0].worker.load() != 0; }));
    const pid_t victim = progress[0].worker.load();
    const std::uint64_t point = rng() % 3000;
    ASSERT_TRUE(mp_rel::spin_until([&] { return progress[0].steps.load(std::memory_order_relaxed) >= point; }));
    pause_for(rng() % 2000);
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    try {
      (void)r.get(mp_rel::kSafety);
      ADD_FAILURE() << "iteration " << i << ": the task of a killed worker returned";
    } catch (const mp::WorkerLost& e) {
      ++lost;
      wrong_pid += e.pid() != victim || e.signal() != SIGKILL;
    }
    if (pool.apply(double_it, i) == 2 * i) ++continued;
  }
  EXPECT_EQ(lost, kIterations);
  EXPECT_EQ(wrong_pid, 0);
  EXPECT_EQ(continued, kIterations);
  EXPECT_EQ(pool.pids().size(), 2u);
  g_pool_progress = nullptr;
  figure("pool worker killed mid-task %d times: %d WorkerLost (pid and SIGKILL right in %d), the pool served "
         "the next task %d times, still 2 workers",
         kIterations, lost, lost - wrong_pid, continued);
}

// ---------------------------------------------------------------------------- manager

/// The references the connections to `m`'s server hold (a server method of mp's own).
std::uint64_t server_references(const mp::Manager& m) {
  auto link = mp::internal::manager::connect(m.address());
  return mp::codec::decode<std::uint64_t>(mp::internal::manager::roundtrip(*link, {{}, "number_of_references", {}}));
}

TEST(KillManagerClient, MidCallLeavesTheServerServing) {
  mp::Manager m;
  auto counter = m.list<long>({0});
  auto d = m.dict<int, int>();
  (void)counter.size();  // this thread's connections exist (and hold the references) before the baseline
  (void)d.size();
  const std::uint64_t parent_references = server_references(m);
  SharedArray<std::atomic<long>> done(1);  // adds the client completed
  std::mt19937_64 rng(mp_rel::kSeed + 4);
  long total_done = 0, applied_in_flight = 0, served = 0, inconsistent = 0;
  for (int i = 0; i < kIterations; ++i) {
    done.reset();
    const long before = counter[0].get();
    mp::Process client([&] {
      // An object of the client's own, gone when the client's connections are.
      auto mine = m.list<int>({-1});
      for (int j = 0;; ++j) {
        counter.add(0, 1);
        done[0].fetch_add(1, std::memory_order_release);
        d[j % 16] = j;
        if (j % 8 == 7) (void)m.list<int>({j});  // creates and drops an object of its own
      }
    });
    client.start();
    const long point = 1 + static_cast<long>(rng() % 40);  // >= 1: `mine` exists
    ASSERT_TRUE(mp_rel::spin_until([&] { return done[0].load(std::memory_order_acquire) >= point; }));
    pause_for(rng() % 20000);
    client.kill();
    ASSERT_TRUE(client.join(mp_rel::kSafety));
    // The server may still be handling the dead client's last request: wait until it has
    // read every one of the client's connections to its end before judging it. Each proxy
    // has its own connection, and each of the client's connections holds a reference (its
    // counter and dict references, `mine`), dropped when the server reaches its end: so
    // `mine` gone is not enough (the counter's connection may not have been read yet), the
    // parent's references alone must remain.
    ASSERT_TRUE(mp_rel::spin_until([&] { return server_references(m) == parent_references; }))
        << server_references(m) << " references, the parent holds " << parent_references;
    ASSERT_EQ(m.number_of_objects(), 2u);
    // The server is still serving, and the killed client's add was applied whole or not at all.
    const long after = counter[0].get();
    const long completed = done[0].load();
    if (after == before + completed + 1) {
      ++applied_in_flight;
    } else if (after != before + completed) {
      ++inconsistent;  // issue 19 item 8: say how far off, so a failure tells which race it was
      ADD_FAILURE() << "iteration " << i << ": counter went from " << before << " to " << after << " while the killed "
                    << "client completed " << completed << " adds (off by " << (after - before - completed) << ")";
    }
    total_done += completed;
    d[100] = i;
    served += d.getitem(100) == i;
  }
  EXPECT_EQ(served, kIterations);
  EXPECT_EQ(inconsistent, 0);
  // The killed clients' references (to the counter, the dict and their own lists) are
  // dropped as the server sees their connections end.
  EXPECT_TRUE(mp_rel::spin_until([&] { return m.number_of_objects() == 2u; })) << m.number_of_objects();
  figure("manager client killed mid-call %d times: the server answered the next call %ld times; %ld calls "
         "completed, the one in flight applied whole %ld times and not at all %ld times, %ld inconsistent; "
         "objects left by the dead clients: %zu",
         kIterations, served, total_done, applied_in_flight, kIterations - applied_in_flight - inconsistent,
         inconsistent, m.number_of_objects() - 2);
}

// ------------------------------------------------------------------------ the parent

namespace {
struct Report {
  pid_t server;
  pid_t daemons[2];
  char shm_name[64];
  char socket_path[200];
};
}  // namespace

TEST(KillParent, DaemonsAndManagerServerExitAndNothingLeaks) {
  mp_rel::Subreaper reaper;  // the killed parent's orphans become ours to wait for and reap
  // Each iteration forks 5 processes and kills them; the sanitizer builds (there to find
  // memory errors and races, which a few iterations show as well as many) run 25 of them:
  // 200 under ASan took over the 300 s test timeout on a loaded 2-core machine (60 s in the
  // release build beside it). The release build runs all 200.
  const int iterations = mp_rel::under_sanitizer() ? 25 : kIterations;
  SharedArray<std::atomic<std::uint64_t>> progress(1);
  std::mt19937_64 rng(mp_rel::kSeed + 5);
  int exited = 0, orphans_left = 0, shm_leaked = 0, sockets_leaked = 0;
  long processes = 0;
  double worst_ms = 0;
  for (int i = 0; i < iterations; ++i) {
    progress.reset();
    auto pipe = mp::Pipe(false);
    mp::Connection& rd = pipe.first;
    mp::Connection& wr = pipe.second;
    mp::Process parent([&] {
      // The shared-memory tracker reports what it unlinks for a dead creator on stderr:
      // expected here, 200 times over, so keep it out of the test output.
      int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
      ::dup2(devnull, 2);
      ::close(devnull);
      mp::Manager m;
      auto l = m.list<int>({0});
      mp::SharedMemory shm({.create = true, .size = 4096});
      mp::Process sleeper({.daemon = true}, [] {
        for (;;) ::pause();
      });
      mp::Process spinner({.daemon = true}, [&] {
        for (;;) progress[0].fetch_add(1, std::memory_order_relaxed);
      });
      sleeper.start();
      spinner.start();
      Report r{};
      r.server = m.server_pid();
      r.daemons[0] = static_cast<pid_t>(sleeper.pid());
      r.daemons[1] = static_cast<pid_t>(spinner.pid());
      std::snprintf(r.shm_name, sizeof r.shm_name, "%s", shm.name().c_str());
      std::snprintf(r.socket_path, sizeof r.socket_path, "%s", m.address().c_str());
      wr.send(r);
      for (;;) l[0] += 1;  // busy with the manager when the kill comes
    });
    parent.start();
    Report r = rd.recv<Report>();
    // Pidfds while the processes certainly exist: the parent is alive, so it has not
    // reaped them and their pids cannot have been reused.
    std::vector<mp::internal::UniqueFd> fds;
    fds.push_back(mp_rel::pidfd(r.server));
    fds.push_back(mp_rel::pidfd(r.daemons[0]));
    fds.push_back(mp_rel::pidfd(r.daemons[1]));
    const std::uint64_t point = rng() % 3000;
    ASSERT_TRUE(mp_rel::spin_until([&] { return progress[0].load(std::memory_order_relaxed) >= point; }));
    pause_for(rng() % 20000);
    auto killed_at = std::chrono::steady_clock::now();
    parent.kill();
    ASSERT_TRUE(parent.join(mp_rel::kSafety));
    bool all = true;
    for (auto& fd : fds) all = mp_rel::wait_exited(fd) && all;
    worst_ms = std::max(worst_ms, mp_rel::ms_between(killed_at, std::chrono::steady_clock::now()));
    exited += all;
    // Reap every orphan (the server, the daemons, the shared-memory tracker): each must
    // end by itself. Repeat, since an orphan's own children become ours when it dies.
    for (int round = 0; round < 10; ++round) {
      auto kids = mp_rel::children_of_self();
      if (kids.empty()) break;
      for (pid_t k : kids) {
        auto fd = mp_rel::pidfd(k);
        if (!mp_rel::wait_exited(fd)) {
          ++orphans_left;
          ::kill(k, SIGKILL);
        }
        ::waitpid(k, nullptr, 0);
        ++processes;
      }
    }
    struct stat st;
    shm_leaked += ::stat(("/dev/shm/" + std::string(r.shm_name + (r.shm_name[0] == '/'))).c_str(), &st) == 0;
    sockets_leaked += std::filesystem::exists(r.socket_path) ||
                      std::filesystem::exists(std::filesystem::path(r.socket_path).parent_path());
  }
  EXPECT_EQ(exited, iterations);
  EXPECT_EQ(orphans_left, 0);
  EXPECT_EQ(shm_leaked, 0);
  EXPECT_EQ(sockets_leaked, 0);
  figure("parent killed %d times at random points: its 2 daemon children and manager server exited every time "
         "(%d/%d; slowest %.0f ms after the kill), %ld orphaned processes all ended by themselves (%d had to be "
         "killed), %d leaked /dev/shm entries, %d leaked manager socket files",
         iterations, exited, iterations, worst_ms, processes, orphans_left, shm_leaked, sockets_leaked);
}
