// Runs the pool examples (examples/pool_*.cpp) and checks what they print.
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>

#include "helpers/support.hpp"

using mp_test::count;
using mp_test::example;
using mp_test::run;

// Each pool example runs as the seed wrote it (fork) and with --forkserver (Python 3.14's
// default on Linux): the same output either way (examples/start_method.hpp).
class ExamplesPoolBothStartMethods : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(StartMethod, ExamplesPoolBothStartMethods, ::testing::Values("", " --forkserver"),
                         [](const auto& info) { return info.param.empty() ? "fork" : "forkserver"; });

TEST_P(ExamplesPoolBothStartMethods, PoolVsProcessesComputesAll500Results) {
  auto r = run(example("pool_vs_processes") + GetParam());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("without a pool: 500 processes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("with Pool(4).map: 500 tasks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("results: 500 values, sum 623750 (expected 623750)"), std::string::npos) << r.out;
}

TEST_P(ExamplesPoolBothStartMethods, ApplySyncPrintsTenResultsInOrder) {
  auto r = run(example("pool_apply_sync") + GetParam());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::string expected;
  for (int i = 0; i < 10; ++i) expected += "apply(fun, " + std::to_string(i) + ") = " + std::to_string(5 * i) + "\n";
  EXPECT_EQ(r.out, expected);
}

TEST_P(ExamplesPoolBothStartMethods, ApplyAsyncCollectsResultsAfterJoin) {
  auto r = run(example("pool_apply_async") + GetParam());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (int i = 0; i < 10; ++i)
    EXPECT_NE(r.out.find("result " + std::to_string(i) + ": " + std::to_string(5 * i) + "\n"), std::string::npos)
        << r.out;
}

TEST_P(ExamplesPoolBothStartMethods, CallbackRunsInTheParent) {
  auto r = run(example("pool_callback") + GetParam());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("I am the callback, 5 (running in the parent)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("I am the callback, 42"), std::string::npos) << r.out;
  EXPECT_GT(r.out.find("callbacks done before join() returned"), r.out.find("I am the callback, 42"));
}

TEST_P(ExamplesPoolBothStartMethods, LongTasksReuseFourWorkers) {
  auto r = run(example("pool_long_tasks") + GetParam());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(count(r.out, "Run task "), 10) << r.out;
  EXPECT_EQ(count(r.out, " seconds."), 10) << r.out;
  EXPECT_NE(r.out.find("5 tasks ran in 4 worker processes (pids reused)"), std::string::npos) << r.out;
  EXPECT_LT(r.out.find("Waiting for all subprocesses done..."), r.out.find("All subprocesses done."));
  EXPECT_NE(r.out.find("map finished 5 tasks"), std::string::npos) << r.out;
}

TEST(ExamplesPool, CrawlerParsesBothLocalPagesInCallbacks) {
  auto r = run(example("pool_crawler"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(count(r.out, "{'index': "), 6) << r.out;
  EXPECT_NE(r.out.find("{'index': '71', 'title': 'Farewell My Concubine', 'actor': 'Leslie Cheung', 'time': '1993', "
                       "'score': '9.5'}"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("'index': '43', 'title': 'Roman Holiday'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fetched 2 pages"), std::string::npos) << r.out;
}
