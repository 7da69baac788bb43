// mp::mpi::Pool and Executor (include/mp/mpi.hpp), run under `mpirun -n 3` by
// tests/mpi.cmake: rank 0 runs these tests, ranks 1 and 2 serve the tasks. Tasks that
// must stay busy until the test says so wait for a file to appear (the ranks share this
// host's /tmp), never for a time.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mp/mpi.hpp"

namespace {

int square(int x) { return x * x; }
MP_REMOTE(square);

int add(int a, int b) { return a + b; }
MP_REMOTE(add);

int which_rank(int) { return mp::mpi::rank(); }
MP_REMOTE(which_rank);

std::string shout(const std::string& s) {
  std::string out = s;
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out + "!";
}
MP_REMOTE(shout);

std::vector<double> scale(std::vector<double> v, double k) {
  for (auto& x : v) x *= k;
  return v;
}
MP_REMOTE(scale);

void nothing(int) {}
MP_REMOTE(nothing);

int fail_on_odd(int x) {
  if (x % 2) throw std::invalid_argument("odd: " + std::to_string(x));
  return x;
}
MP_REMOTE(fail_on_odd);

struct Custom : std::exception {
  const char* what() const noexcept override { return "custom failure"; }
};
int throw_custom(int) { throw Custom(); }
MP_REMOTE(throw_custom);

/// Busy until `path` exists; returns the rank it ran on.
int wait_for_file(std::string path) {
  while (!std::filesystem::exists(path)) ::usleep(1000);
  return mp::mpi::rank();
}
MP_REMOTE(wait_for_file);

[[noreturn]] int die(int) {
  std::raise(SIGKILL);
  std::abort();
}
MP_REMOTE(die);

constexpr auto cube = [](int x) { return x * x * x; };
MP_REMOTE(cube);

int not_registered(int x) { return x; }

std::string temp_path(const char* what) {
  return std::filesystem::temp_directory_path() / ("mp-mpi-test-" + std::to_string(::getpid()) + "-" + what);
}

struct FileGate {
  std::string path;
  explicit FileGate(const char* what) : path(temp_path(what)) { std::filesystem::remove(path); }
  void open() const { std::ofstream(path).put('1'); }
  ~FileGate() {
    open();  // whatever happened, release the task that waits
    // (removed by the next run's constructor: the task may still be checking it)
  }
};

TEST(MpiPool, JobHasThreeRanksAndThisIsRankZero) {
  EXPECT_EQ(mp::mpi::rank(), 0);
  EXPECT_EQ(mp::mpi::size(), 3);
  mp::mpi::Pool pool;
  EXPECT_EQ(pool.workers(), 2u);
  EXPECT_EQ(pool.ranks(), (std::vector<int>{1, 2}));
  mp::mpi::Pool one(1);
  EXPECT_EQ(one.workers(), 1u);
  mp::mpi::Pool many(16);  // more than the job has: every serving rank
  EXPECT_EQ(many.workers(), 2u);
}

TEST(MpiPool, MapReturnsResultsInOrder) {
  mp::mpi::Pool pool;
  auto v = pool.map(square, std::views::iota(0, 100));
  ASSERT_EQ(v.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(v[static_cast<std::size_t>(i)], i * i);
}

TEST(MpiPool, MapRunsOnTheServingRanksNotOnRankZero) {
  mp::mpi::Pool pool;
  auto v = pool.map(which_rank, std::views::iota(0, 40), 1);
  std::set<int> seen(v.begin(), v.end());
  EXPECT_EQ(seen, (std::set<int>{1, 2}));  // both idle ranks are handed chunks at once
}

TEST(MpiPool, MapWithChunksizeAndProgressCoversEveryItem) {
  mp::mpi::Pool pool;
  std::size_t last_done = 0, total = 0;
  auto v = pool.map(square, std::views::iota(0, 50), 7, [&](std::size_t done, std::size_t t) {
    last_done = done;
    total = t;
  });
  EXPECT_EQ(v.size(), 50u);
  EXPECT_EQ(v[49], 49 * 49);
  EXPECT_EQ(last_done, 50u);
  EXPECT_EQ(total, 50u);
}

TEST(MpiPool, MapOfNothingIsEmpty) {
  mp::mpi::Pool pool;
  EXPECT_TRUE(pool.map(square, std::vector<int>{}).empty());
}

TEST(MpiPool, ImapYieldsInOrder) {
  mp::mpi::Pool pool;
  std::vector<int> got;
  for (int x : pool.imap(square, std::views::iota(0, 30))) got.push_back(x);
  std::vector<int> want;
  for (int i = 0; i < 30; ++i) want.push_back(i * i);
  EXPECT_EQ(got, want);
}

TEST(MpiPool, ImapUnorderedYieldsEveryResult) {
  mp::mpi::Pool pool;
  std::vector<int> got;
  for (int x : pool.imap_unordered(square, std::views::iota(0, 30), 4)) got.push_back(x);
  std::sort(got.begin(), got.end());
  std::vector<int> want;
  for (int i = 0; i < 30; ++i) want.push_back(i * i);
  EXPECT_EQ(got, want);
}

TEST(MpiPool, StarmapUnpacksTuplesAndPairs) {
  mp::mpi::Pool pool;
  std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(pool.starmap(add, pairs), (std::vector<int>{3, 7, 11}));
  std::vector<std::tuple<int, int>> tuples{{10, 1}, {20, 2}};
  EXPECT_EQ(pool.starmap(add, tuples), (std::vector<int>{11, 22}));
}

TEST(MpiPool, StringsAndVectorsTravel) {
  mp::mpi::Pool pool;
  EXPECT_EQ(pool.apply(shout, std::string("hello")), "HELLO!");
  EXPECT_EQ(pool.apply(scale, std::vector<double>{1, 2, 3}, 2.0), (std::vector<double>{2, 4, 6}));
  // Arguments are converted to the parameter types on rank 0: a char* becomes a string.
  EXPECT_EQ(pool.apply(shout, "abc"), "ABC!");
}

TEST(MpiPool, VoidFunctionMapsToNone) {
  mp::mpi::Pool pool;
  auto v = pool.map(nothing, std::views::iota(0, 5));
  EXPECT_EQ(v.size(), 5u);
  pool.apply(nothing, 1);
}

TEST(MpiPool, RegisteredLambdaRuns) {
  mp::mpi::Pool pool;
  EXPECT_EQ(pool.map(cube, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 8, 27}));
}

TEST(MpiPool, ApplyAsyncRunsCallbackBeforeGetReturns) {
  mp::mpi::Pool pool;
  std::atomic<int> seen{-1};
  auto r = pool.apply_async(square, mp::args(12), [&](int v) { seen = v; });
  EXPECT_EQ(r.get(), 144);
  EXPECT_EQ(seen.load(), 144);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
}

TEST(MpiPool, MapAsyncCallbackGetsTheWholeList) {
  mp::mpi::Pool pool;
  std::vector<int> seen;
  auto r = pool.map_async(square, std::vector<int>{1, 2, 3}, 0, [&](const std::vector<int>& v) { seen = v; });
  EXPECT_EQ(r.get(), (std::vector<int>{1, 4, 9}));
  EXPECT_EQ(seen, (std::vector<int>{1, 4, 9}));
}

TEST(MpiPool, StandardExceptionIsRethrownAsItsOwnType) {
  mp::mpi::Pool pool;
  std::string err;
  auto r = pool.apply_async(fail_on_odd, mp::args(3), [](int) {}, [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      err = x.what();
    }
  });
  EXPECT_THROW(r.get(), std::invalid_argument);
  EXPECT_EQ(err, "odd: 3");
  EXPECT_FALSE(r.successful());
}

TEST(MpiPool, OtherExceptionsBecomeRemoteError) {
  mp::mpi::Pool pool;
  try {
    pool.apply(throw_custom, 1);
    FAIL() << "no exception";
  } catch (const mp::RemoteError& e) {
    EXPECT_NE(e.type_name().find("Custom"), std::string::npos) << e.type_name();
    EXPECT_EQ(e.message(), "custom failure");
  }
}

TEST(MpiPool, FirstFailingChunkFailsTheMap) {
  mp::mpi::Pool pool;
  EXPECT_THROW(pool.map(fail_on_odd, std::views::iota(0, 10), 2), std::invalid_argument);
  // ... and imap raises at the failing position, after the good ones.
  std::vector<int> got;
  auto it = pool.imap(fail_on_odd, std::vector<int>{0, 2, 3, 4});
  EXPECT_EQ(*it.next(), 0);
  EXPECT_EQ(*it.next(), 2);
  EXPECT_THROW(it.next(), std::invalid_argument);
}

TEST(MpiPool, UnregisteredFunctionRaisesNotRegisteredBeforeSending) {
  mp::mpi::Pool pool;
  try {
    pool.apply_async(not_registered, 1);
    FAIL() << "no exception";
  } catch (const mp::mpi::NotRegistered& e) {
    EXPECT_NE(std::string(e.what()).find("MP_REMOTE"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pool.map(not_registered, std::vector<int>{1}), mp::ValueError);  // NotRegistered is a ValueError
  EXPECT_EQ(pool.apply(square, 3), 9);  // the pool is unaffected
}

int rank0_only(int x) { return x; }

TEST(MpiPool, FunctionMissingOnTheServingRankFailsWithNotRegistered) {
  // What a serving rank running a different build sees: a name it does not have. The
  // function is registered here, at run time, on rank 0 only (MP_REMOTE would register
  // it on every rank).
  namespace in = mp::mpi::internal;
  using Fn = int (*)(int);
  auto* p = reinterpret_cast<const void*>(&rank0_only);
  in::register_function(in::Entry{"rank0_only", in::Signature<Fn>::id(), &in::run_items<Fn>, p}, p, nullptr);
  mp::mpi::Pool pool;
  try {
    pool.apply(rank0_only, 1);
    FAIL() << "no exception";
  } catch (const mp::mpi::NotRegistered& e) {
    EXPECT_NE(std::string(e.what()).find("has no function registered as 'rank0_only'"), std::string::npos)
        << e.what();
  }
}

TEST(MpiPool, OneBusyRankDoesNotHoldUpTheOthersWork) {
  // On-demand dispatch: while one rank is stuck in a task, a map of three chunks runs to
  // completion on the other one. (A static split would hang here until the gate opens.)
  mp::mpi::Pool pool;
  FileGate gate("busy");
  auto blocker = pool.apply_async(wait_for_file, gate.path);
  auto v = pool.map(which_rank, std::views::iota(0, 21), 7);
  std::set<int> seen(v.begin(), v.end());
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_FALSE(blocker.ready());
  gate.open();
  int busy_rank = blocker.get();
  EXPECT_FALSE(seen.count(busy_rank));
}

TEST(MpiPool, CloseJoinWaitsForEverything) {
  mp::mpi::Pool pool;
  std::vector<mp::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(pool.apply_async(square, i));
  EXPECT_THROW(pool.join(), mp::ValueError);  // not closed yet
  pool.close();
  pool.join();
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(rs[static_cast<std::size_t>(i)].ready());
    EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(), i * i);
  }
  EXPECT_THROW(pool.apply_async(square, 1), mp::ValueError);
}

TEST(MpiPool, TerminateFailsUnfinishedTasksWithBrokenPool) {
  FileGate gate("terminate");
  mp::AsyncResult<int> r(nullptr);
  {
    mp::mpi::Pool pool;
    r = pool.apply_async(wait_for_file, gate.path);
    pool.terminate();
    EXPECT_THROW(r.get(), mp::BrokenPool);
  }
  gate.open();
  // The ranks serve on: a new pool works (the stuck chunk finishes and is dropped).
  mp::mpi::Pool pool;
  EXPECT_EQ(pool.apply(square, 5), 25);
}

TEST(MpiPool, DestructorTerminatesLikePool) {
  FileGate gate("destructor");
  std::shared_ptr<mp::internal::ResultState<int>> st;
  {
    mp::mpi::Pool pool;
    st = pool.apply_async(wait_for_file, gate.path).state();
  }
  ASSERT_TRUE(st->ready());
  EXPECT_THROW(std::rethrow_exception(st->error()), mp::BrokenPool);
}

TEST(MpiPool, SeveralPoolsShareTheRanks) {
  mp::mpi::Pool a, b;
  auto ra = a.map_async(square, std::views::iota(0, 20));
  auto rb = b.starmap_async(add, std::vector<std::tuple<int, int>>{{1, 1}, {2, 2}});
  EXPECT_EQ(ra.get()[19], 361);
  EXPECT_EQ(rb.get(), (std::vector<int>{2, 4}));
}

TEST(MpiPool, SubmittingFromManyThreadsIsSafe) {
  mp::mpi::Pool pool;
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&pool, &ok, t] {
      for (int i = 0; i < 10; ++i) ok += pool.apply(square, t * 10 + i) == (t * 10 + i) * (t * 10 + i);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST(MpiExecutor, SubmitAndAsCompleted) {
  mp::mpi::Executor ex;
  std::vector<mp::Future<int>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(ex.submit(square, i));
  int sum = 0;
  for (auto& f : mp::as_completed(fs)) sum += f.result();
  EXPECT_EQ(sum, 285);
  std::vector<int> got;
  for (int x : ex.map(square, std::vector<int>{4, 5})) got.push_back(x);
  EXPECT_EQ(got, (std::vector<int>{16, 25}));
  auto bad = ex.submit(fail_on_odd, 1);
  EXPECT_THROW(bad.result(), std::invalid_argument);
  ex.shutdown();
  EXPECT_THROW(ex.submit(square, 1), mp::RuntimeError);
}

// Run by tests/mpi.cmake in their own jobs, with `mpirun --enable-recovery`.
TEST(MpiRankLoss, KilledRankFailsItsTaskWithRankLostAndThePoolGoesOn) {
  mp::mpi::Pool pool({.lost_after = std::chrono::milliseconds(2500)});
  auto before = pool.ranks();
  ASSERT_EQ(before.size(), 2u);
  try {
    pool.apply(die, 0);
    FAIL() << "no exception";
  } catch (const mp::mpi::RankLost& e) {
    EXPECT_TRUE(e.rank() == 1 || e.rank() == 2) << e.rank();
    EXPECT_GT(e.pid(), 0);
    EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(e.rank())), std::string::npos) << e.what();
    EXPECT_EQ(pool.ranks(), (std::vector<int>{3 - e.rank()}));
  }
  // The surviving rank takes all the work.
  auto v = pool.map(which_rank, std::views::iota(0, 10), 1);
  EXPECT_EQ(std::set<int>(v.begin(), v.end()).size(), 1u);
  EXPECT_THROW(pool.apply(die, 0), mp::WorkerLost);  // the last one
  EXPECT_TRUE(pool.ranks().empty());
  EXPECT_THROW(pool.apply(square, 2), mp::BrokenPool);
}

// Run by tests/mpi.cmake in its own job, with `mpirun --enable-recovery`: the job must
// end (the serving ranks notice rank 0's death) instead of hanging until the timeout.
TEST(MpiRankZeroLoss, ServingRanksStopWhenRankZeroDies) {
  mp::mpi::Pool pool;
  ASSERT_EQ(pool.apply(square, 4), 16);
  std::raise(SIGKILL);
}

}  // namespace

int main(int argc, char** argv) {
  mp::mpi::init();  // ranks 1 and 2 serve here until rank 0 exits
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
