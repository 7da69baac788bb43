// mp::Pool and mp::ProcessPoolExecutor under StartMethod::forkserver (issue 18): workers are
// forked by the fork server, so a lock another thread of the owner holds while the pool
// starts (or replaces a worker) is free in every worker. Each test sets the start method
// itself (it is per process) and puts fork back.
#include <gtest/gtest.h>

#include <mp/futures.hpp>
#include <mp/pool.hpp>
#include <mp/process.hpp>

#include <csignal>
#include <future>
#include <mutex>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>

#include "helpers/forkserver.hpp"
#include "helpers/support.hpp"

using namespace std::chrono_literals;

namespace {

std::mutex g_log_mutex;  // held by a thread of the owner while workers start
int g_initialized = 0;

int square(int x) { return x * x; }
int square_under_lock(int x) {
  std::lock_guard g(g_log_mutex);  // the worker's copy, as the server saw it: free
  return x * x;
}
std::string shout(std::string s) { return s + "!"; }
pid_t worker_pid() { return ::getpid(); }
std::string worker_name() { return mp::current_process().name; }
int throw_invalid(int x) {
  if (x == 3) throw std::invalid_argument("three is not allowed");
  return x;
}
int kill_self(int) {
  ::raise(SIGKILL);
  return 0;
}
void set_initialized() { g_initialized = 42; }
int read_initialized() { return g_initialized; }

using PoolForkserver = mp_test::ForkserverTest;
using HeldLock = mp_test::HeldLock;

}  // namespace

TEST_F(PoolForkserver, WorkersNeverInheritALockAnotherThreadHolds) {
  HeldLock held(g_log_mutex);  // with fork, every worker's copy of g_log_mutex would stay locked for good
  mp::Pool pool(2);
  auto r = pool.map(square_under_lock, std::views::iota(0, 50));
  EXPECT_EQ(r.size(), 50u);
  EXPECT_EQ(r.back(), 49 * 49);
  EXPECT_EQ(pool.apply(square_under_lock, 7), 49);
}

TEST_F(PoolForkserver, EveryCallingFormWorks) {
  mp::Pool pool(3);
  EXPECT_EQ(pool.apply(shout, std::string("hi")), "hi!");
  int seen = 0;
  auto a = pool.apply_async(square, mp::args(6), [&](int v) { seen = v; });
  EXPECT_EQ(a.get(60s), 36);
  std::vector<int> ordered;
  for (int v : pool.imap(square, std::views::iota(0, 10), 2)) ordered.push_back(v);
  EXPECT_EQ(ordered.size(), 10u);
  EXPECT_EQ(ordered[9], 81);
  auto st = pool.starmap([](int a, int b) { return a + b; }, std::vector<std::pair<int, int>>{{1, 2}, {3, 4}});
  EXPECT_EQ(st, (std::vector<int>{3, 7}));
  EXPECT_THROW(pool.apply(throw_invalid, 3), std::invalid_argument);
  pool.close();
  pool.join();
  EXPECT_EQ(seen, 36) << "the callback ran here, before join() returned";
}

TEST_F(PoolForkserver, WorkersAreServedChildrenNamedAsInPython) {
  mp::Pool pool(2);
  for (pid_t p : pool.pids()) EXPECT_NE(mp_test::parent_of(p), ::getpid()) << "forked by the fork server, not by us";
  std::string name = pool.apply(worker_name);
  EXPECT_TRUE(name.starts_with("ForkServerPoolWorker-")) << name;
}

TEST_F(PoolForkserver, AKilledWorkerIsReportedAndReplacedThroughTheServer) {
  mp::Pool pool(2);
  auto before = pool.pids();
  try {
    pool.apply(kill_self, 0);
    FAIL() << "no WorkerLost";
  } catch (const mp::WorkerLost& e) {
    EXPECT_EQ(e.signal(), SIGKILL) << e.what();
  }
  EXPECT_EQ(pool.map(square, std::views::iota(0, 20), 1).back(), 19 * 19);
  EXPECT_EQ(pool.pids().size(), 2u);
  EXPECT_NE(pool.pids(), before);
}

TEST_F(PoolForkserver, MaxTasksPerChildRecyclesThroughTheServer) {
  HeldLock held(g_log_mutex);  // replacements are started from the pool's own thread: still no inherited lock
  mp::Pool pool({.processes = 1, .maxtasksperchild = 2});
  std::set<pid_t> pids;
  for (int i = 0; i < 6; ++i) {
    pids.insert(pool.apply(worker_pid));
    EXPECT_EQ(pool.apply(square_under_lock, i), i * i);
  }
  EXPECT_EQ(pids.size(), 6u) << "one worker per two tasks";
}

TEST_F(PoolForkserver, AFunctionInitializerRunsInEachWorker) {
  mp::Pool pool(2, set_initialized);
  EXPECT_EQ(pool.apply(read_initialized), 42);
  mp::Pool lambda_init({.processes = 1, .initializer = [] { g_initialized = 42; }});
  EXPECT_EQ(lambda_init.apply(read_initialized), 42);
  EXPECT_EQ(g_initialized, 0) << "the initializer ran in the workers, not here";
}

TEST_F(PoolForkserver, AnInitializerWithStateIsRefusedAndNothingIsLeftBehind) {
  int value = 42;
  int before = mp_test::child_processes();
  try {
    mp::Pool pool({.processes = 2, .initializer = [value] { g_initialized = value; }});
    FAIL() << "a capturing initializer was accepted under forkserver";
  } catch (const mp::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("forkserver"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("captureless"), std::string::npos) << e.what();
  }
  EXPECT_EQ(mp_test::child_processes(), before);
}

TEST_F(PoolForkserver, ProcessPoolExecutorRunsThroughTheServer) {
  HeldLock held(g_log_mutex);
  mp::ProcessPoolExecutor ex(2);
  auto f = ex.submit(square_under_lock, 9);
  EXPECT_EQ(f.result(60s), 81);
  std::vector<int> got;
  for (int v : ex.map(square, std::views::iota(0, 8))) got.push_back(v);
  EXPECT_EQ(got.back(), 49);
  ex.shutdown();
}
