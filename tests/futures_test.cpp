// Tests for the executors and futures (include/mp/futures.hpp).
#include <gtest/gtest.h>

#include <mp/futures.hpp>

#include "helpers/support.hpp"
#include "helpers/fd_exhaustion.hpp"

#include <atomic>
#include <fcntl.h>
#include <stdexcept>
#include <string>
#include <csignal>
#include <latch>
#include <map>
#include <ranges>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

int square(int x) { return x * x; }
int fail_on(int x) {
  if (x < 0) throw std::invalid_argument("negative");
  return x;
}
int kill_self(int) {
  ::raise(SIGKILL);
  return 0;
}
int wait_on(int fd) {
  char c = 0;
  return ::read(fd, &c, 1) == 1 ? c : -1;
}

using mp_test::Gate;

int g_report_fd = -1;
void report_sigterm(int) { (void)!::write(g_report_fd, "T", 1); }
/// Says "S" on `fd` once running, then holds its worker until a signal ends it; a SIGTERM
/// is reported as "T" and does not end it.
int announce_and_hold(int fd) {
  g_report_fd = fd;
  ::signal(SIGTERM, report_sigterm);
  (void)!::write(fd, "S", 1);
  for (;;) ::pause();
}
/// Everything written to the pipe `fd` so far (it must not block).
std::string drain(int fd) {
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  std::string out;
  char buf[64];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

/// terminate_workers()/kill_workers() with two running tasks and three queued: the running
/// ones raise BrokenPool, the queued ones CancelledError (or BrokenPool if already handed to
/// a worker), no worker is left, no new work is taken. Returns what the workers reported.
std::string stop_workers_with_work_in_flight(void (mp::ProcessPoolExecutor::*stop)()) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  mp::ProcessPoolExecutor ex(2);
  auto pids = ex.pool().pids();
  auto a = ex.submit(announce_and_hold, fds[1]);
  auto b = ex.submit(announce_and_hold, fds[1]);
  for (int started = 0; started < 2;) {  // both are running: two "S"
    char c;
    if (::read(fds[0], &c, 1) != 1) throw std::runtime_error("read");
    EXPECT_EQ(c, 'S');
    ++started;
  }
  std::vector<mp::Future<int>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(ex.submit(square, i));
  (ex.*stop)();
  EXPECT_THROW(a.result(), mp::BrokenPool);
  EXPECT_THROW(b.result(), mp::BrokenPool);
  for (auto& f : queued) {
    if (f.cancelled()) EXPECT_THROW(f.result(), mp::CancelledError);
    else EXPECT_THROW(f.result(), mp::BrokenPool);
  }
  EXPECT_TRUE(queued.back().cancelled());
  EXPECT_THROW(ex.submit(square, 1), mp::RuntimeError);
  for (pid_t p : pids) EXPECT_EQ(mp_test::proc_state(p), 0) << "worker " << p << " was not reaped";
  std::string reported = drain(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
  return reported;
}

}  // namespace

TEST(ProcessPoolExecutor, SubmitReturnsAFutureWithTheResult) {
  mp::ProcessPoolExecutor ex(2);
  auto f = ex.submit(square, 9);
  EXPECT_EQ(f.result(), 81);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.cancelled());
  EXPECT_EQ(f.exception(), nullptr);
}

TEST(ProcessPoolExecutor, MapYieldsResultsInOrder) {
  mp::ProcessPoolExecutor ex(2);
  std::vector<int> got;
  for (int v : ex.map(square, std::views::iota(0, 20))) got.push_back(v);
  ASSERT_EQ(got.size(), 20u);
  EXPECT_EQ(got[19], 361);
}

TEST(ProcessPoolExecutor, AsCompletedYieldsEveryFutureOnce) {
  mp::ProcessPoolExecutor ex(2);
  std::vector<mp::Future<int>> fs;
  for (int i = 0; i < 30; ++i) fs.push_back(ex.submit(square, i));
  std::multiset<int> got;
  for (auto& f : mp::as_completed(fs)) got.insert(f.result());
  ASSERT_EQ(got.size(), 30u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(got.count(i * i), 1u);
}

// Python: future_to_n = {ex.submit(square, n): n for n in range(20)}
//         for f in as_completed(future_to_n): assert f.result() == future_to_n[f] ** 2
TEST(ProcessPoolExecutor, FuturesAreDictKeysAsInPython) {
  mp::ProcessPoolExecutor ex(2);
  std::unordered_map<mp::Future<int>, int> future_to_n;
  for (int n = 0; n < 20; ++n) future_to_n.emplace(ex.submit(square, n), n);
  ASSERT_EQ(future_to_n.size(), 20u) << "each submission is a distinct key";
  std::set<int> seen;
  for (auto& f : mp::as_completed(future_to_n)) {  // the map itself: its keys, as a dict
    int n = future_to_n.at(f);
    EXPECT_EQ(f.result(), n * n);
    seen.insert(n);
  }
  EXPECT_EQ(seen.size(), 20u);

  std::vector<mp::Future<int>> keys;  // futures taken out of the map are the same keys
  for (auto& [f, n] : future_to_n) keys.push_back(f);
  for (auto& f : mp::as_completed(keys)) EXPECT_EQ(f.result(), future_to_n.at(f) * future_to_n.at(f));
  auto r = mp::wait(keys);
  EXPECT_EQ(r.done.size(), 20u);
  for (auto& f : r.done) EXPECT_TRUE(future_to_n.contains(f));
}

TEST(ProcessPoolExecutor, FutureIdentityIsItsSubmission) {
  mp::ProcessPoolExecutor ex(1);
  auto a = ex.submit(square, 2);
  auto b = ex.submit(square, 2);
  mp::Future<int> copy = a;
  EXPECT_EQ(a, copy);
  EXPECT_EQ(std::hash<mp::Future<int>>{}(a), std::hash<mp::Future<int>>{}(copy));
  EXPECT_NE(a, b) << "same function and argument, still two futures (Python compares identity)";
  EXPECT_TRUE((a < b) != (b < a));
  EXPECT_EQ(a <=> copy, std::strong_ordering::equal);
  EXPECT_EQ(mp::Future<int>(), mp::Future<int>());
  EXPECT_NE(a, mp::Future<int>());
  std::latch called(1);
  bool same = false;
  a.add_done_callback([&](const mp::Future<int>& g) {
    same = g == copy;  // the future a callback receives is the one it was added to
    called.count_down();
  });
  called.wait();
  EXPECT_TRUE(same);
  std::set<mp::Future<int>> ordered{a, b, copy};
  EXPECT_EQ(ordered.size(), 2u);
  std::vector<mp::Future<int>> twice{a, b, a};
  int yielded = 0;
  for (auto& f : mp::as_completed(twice)) yielded += f.result() == 4;
  EXPECT_EQ(yielded, 2) << "a future given twice is returned once (Python takes set(fs))";
  auto r = mp::wait(twice);
  EXPECT_EQ(r.done.size(), 2u);
}

TEST(ProcessPoolExecutor, WaitFirstCompletedReturnsWhileOthersRun) {
  Gate gate;
  mp::ProcessPoolExecutor ex(2);
  std::vector<mp::Future<int>> fs{ex.submit(wait_on, gate.fd()), ex.submit(square, 3)};
  auto r = mp::wait(fs, std::nullopt, mp::FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.done[0].result(), 9);
  ASSERT_EQ(r.not_done.size(), 1u);
  auto timed = mp::wait(fs, 1ms, mp::ALL_COMPLETED);
  EXPECT_EQ(timed.not_done.size(), 1u) << "a timeout returns what is not done, without raising";
  EXPECT_THROW(fs[0].result(1ms), mp::TimeoutError);
  gate.release();
  auto all = mp::wait(fs);
  EXPECT_EQ(all.done.size(), 2u);
  EXPECT_TRUE(all.not_done.empty());
}

TEST(ProcessPoolExecutor, WaitFirstExceptionStopsAtTheFailure) {
  Gate gate;
  mp::ProcessPoolExecutor ex(2);
  std::vector<mp::Future<int>> fs{ex.submit(wait_on, gate.fd()), ex.submit(fail_on, -1)};
  auto r = mp::wait(fs, std::nullopt, mp::FIRST_EXCEPTION);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_THROW(r.done[0].result(), std::invalid_argument);
  EXPECT_NE(r.done[0].exception(), nullptr);
  gate.release();
}

TEST(ProcessPoolExecutor, AsCompletedWithTimeoutRaisesTimeoutError) {
  Gate gate;
  mp::ProcessPoolExecutor ex(1);
  std::vector<mp::Future<int>> fs{ex.submit(wait_on, gate.fd())};
  auto it = mp::as_completed(fs, 1ms);
  EXPECT_THROW(it.next(), mp::TimeoutError);
  gate.release();
}

TEST(ProcessPoolExecutor, AWorkerCrashFailsOnlyThatFuture) {
  mp::ProcessPoolExecutor ex(2);
  auto bad = ex.submit(kill_self, 0);
  auto good = ex.submit(square, 4);
  EXPECT_THROW(bad.result(), mp::WorkerLost);
  EXPECT_EQ(good.result(), 16);
  EXPECT_EQ(ex.submit(square, 5).result(), 25) << "the executor is not broken";
}

TEST(ProcessPoolExecutor, ShutdownCancelFuturesCancelsWhatHadNotStarted) {
  Gate gate;
  mp::ProcessPoolExecutor ex(1);
  auto running = ex.submit(wait_on, gate.fd());
  std::vector<mp::Future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(ex.submit(square, i));
  ex.shutdown(false, true);
  // A task already handed to the busy worker's prefetch window has started, as in
  // CPython's call queue; everything else is cancelled.
  int cancelled = 0;
  for (auto& f : queued)
    if (f.cancelled()) {
      ++cancelled;
      EXPECT_THROW(f.result(), mp::CancelledError);
    }
  EXPECT_GE(cancelled, 4);
  EXPECT_TRUE(queued.back().cancelled());
  EXPECT_THROW(ex.submit(square, 1), mp::RuntimeError);
  gate.release();
  EXPECT_EQ(running.result(), 'x');
  ex.shutdown(true);
  for (int i = 0; i < 5; ++i)
    if (!queued[i].cancelled()) EXPECT_EQ(queued[i].result(), i * i);
}

TEST(ProcessPoolExecutor, TerminateWorkersSendsSigtermToRunningTasksAndCancelsTheRest) {
  EXPECT_EQ(stop_workers_with_work_in_flight(&mp::ProcessPoolExecutor::terminate_workers), "TT");
}

TEST(ProcessPoolExecutor, KillWorkersEndsThemWithSigkillAtOnce) {
  // No "T": the workers never saw a SIGTERM they could catch or ignore.
  EXPECT_EQ(stop_workers_with_work_in_flight(&mp::ProcessPoolExecutor::kill_workers), "");
}

TEST(ProcessPoolExecutor, CancelOfARunningFutureKillsItsWorkerAndTheExecutorGoesOn) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  mp::ProcessPoolExecutor ex(1);
  auto before = ex.pool().pids();
  auto running = ex.submit(announce_and_hold, fds[1]);
  char c = 0;
  ASSERT_EQ(::read(fds[0], &c, 1), 1);  // "S": it runs
  EXPECT_TRUE(running.running());
  EXPECT_TRUE(running.cancel()) << "Python returns False here; mp owns the worker and stops it";
  EXPECT_TRUE(running.cancelled());
  EXPECT_THROW(running.result(60s), mp::CancelledError);
  EXPECT_EQ(ex.submit(square, 6).result(60s), 36) << "a replacement worker runs the next task";
  EXPECT_NE(ex.pool().pids(), before);
  EXPECT_EQ(mp_test::proc_state(before.at(0)), 0) << "the cancelled task's worker is gone";
  auto done = ex.submit(square, 2);
  EXPECT_EQ(done.result(60s), 4);
  EXPECT_FALSE(done.cancel()) << "a finished future cannot be cancelled";
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(ThreadPoolExecutor, ARunningFutureCannotBeCancelledAsInPython) {
  Gate gate;
  mp::ThreadPoolExecutor ex(1);
  std::atomic<bool> started{false};
  auto f = ex.submit([&] {
    started = true;
    return wait_on(gate.fd());
  });
  while (!started) std::this_thread::yield();
  EXPECT_FALSE(f.cancel()) << "a thread cannot be stopped";
  gate.release();
  EXPECT_EQ(f.result(60s), 'x');
}

TEST(ProcessPoolExecutor, SubmitWithATimeoutRaisesTimeoutErrorAndTheExecutorGoesOn) {
  mp::ProcessPoolExecutor ex(1);
  auto stuck = ex.submit({.timeout = 100ms}, announce_and_hold, -1);
  EXPECT_THROW(stuck.result(60s), mp::TimeoutError);
  EXPECT_EQ(ex.submit(square, 4).result(60s), 16) << "a replacement worker runs the next task";
  EXPECT_EQ(ex.submit({.timeout = 60s}, square, 5).result(60s), 25);
}

TEST(ProcessPoolExecutor, MaxPendingMakesSubmitWaitOrRaiseFull) {
  Gate gate;
  mp::ProcessPoolExecutor ex({.processes = 1, .max_pending = 1});
  auto busy = ex.submit(wait_on, gate.fd());
  auto queued = ex.submit(square, 3);
  EXPECT_THROW(ex.submit({.submit_timeout = 50ms}, square, 4), mp::Full);
  gate.release();
  EXPECT_EQ(busy.result(60s), 'x');
  EXPECT_EQ(queued.result(60s), 9);
  EXPECT_EQ(ex.submit({.submit_timeout = 60s}, square, 5).result(60s), 25);
}

TEST(ThreadPoolExecutor, CancelOnlyBeforeItStarts) {
  mp::ThreadPoolExecutor ex(1);
  std::latch started(1), release(1);
  auto busy = ex.submit([&] {
    started.count_down();
    release.wait();
    return 1;
  });
  started.wait();
  auto queued = ex.submit(square, 3);
  EXPECT_TRUE(busy.running());
  EXPECT_FALSE(busy.cancel());
  EXPECT_TRUE(queued.cancel());
  EXPECT_TRUE(queued.cancelled());
  release.count_down();
  EXPECT_EQ(busy.result(), 1);
  EXPECT_THROW(queued.result(), mp::CancelledError);
}

TEST(ThreadPoolExecutor, DoneCallbacksRunOnceDone) {
  std::atomic<int> calls{0};
  {
    mp::ThreadPoolExecutor ex(2);
    std::latch first_ran(1);
    auto f = ex.submit(square, 6);
    f.add_done_callback([&](const mp::Future<int>& g) {
      calls += g.result() == 36;  // a done callback may call result(): the future is done
      first_ran.count_down();
    });
    f.result();
    first_ran.wait();  // done callbacks run right after waiters are released (as in CPython)
    f.add_done_callback([&](const mp::Future<int>&) { ++calls; });  // already done: runs now, here
    EXPECT_EQ(calls.load(), 2);
  }
}

TEST(ThreadPoolExecutor, ShutdownWaitsForSubmittedWork) {
  std::atomic<int> done{0};
  std::vector<mp::Future<int>> fs;
  {
    mp::ThreadPoolExecutor ex(3);
    for (int i = 0; i < 50; ++i) fs.push_back(ex.submit([&done, i] {
      ++done;
      return i;
    }));
  }  // destructor: shutdown(wait=true)
  EXPECT_EQ(done.load(), 50);
  for (auto& f : fs) EXPECT_TRUE(f.done());
}

TEST(ThreadPoolExecutor, FuturesAreKeysOfOrderedAndUnorderedMaps) {
  mp::ThreadPoolExecutor ex(3);
  std::map<mp::Future<int>, int> ordered;
  std::unordered_map<mp::Future<int>, int> hashed;
  for (int n = 0; n < 20; ++n) {
    auto f = ex.submit([n] { return n * 10; });
    ordered.emplace(f, n);
    hashed.emplace(f, n);
  }
  ASSERT_EQ(ordered.size(), 20u);
  ASSERT_EQ(hashed.size(), 20u);
  int count = 0;
  for (auto& f : mp::as_completed(hashed)) {
    EXPECT_EQ(f.result(), hashed.at(f) * 10);
    EXPECT_EQ(ordered.at(f), hashed.at(f));
    ++count;
  }
  EXPECT_EQ(count, 20);
  auto r = mp::wait(ordered, std::nullopt, mp::ALL_COMPLETED);
  EXPECT_EQ(r.done.size(), 20u);
  EXPECT_TRUE(r.not_done.empty());
  for (auto& f : r.done) EXPECT_EQ(f.result(), ordered.at(f) * 10);
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(ProcessPoolExecutor, AConstructorOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  auto r = mp_test::construct_out_of_descriptors([] { mp::ProcessPoolExecutor ex(2); });
  EXPECT_EQ(r.problem, "");
  EXPECT_TRUE(r.succeeded);
  EXPECT_GE(r.failures, 3);
}
