// Seed 004: long_time_task — 5 tasks on Pool(4): the fifth runs in a worker freed by an
// earlier task (same pid). A progress bar shows on stderr when it is a terminal.
#include <mp/pool.hpp>
#include <mp/progress.hpp>

#include "start_method.hpp"

#include <chrono>
#include <cstdio>
#include <numeric>
#include <set>
#include <thread>
#include <unistd.h>
#include <vector>

int long_time_task(int name) {
  std::printf("Run task %d (%d)...\n", name, ::getpid());
  std::fflush(stdout);
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(20 + 15 * name));  // the seed: random() * 3 s
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("Task %d runs %0.2f seconds.\n", name, secs);
  std::fflush(stdout);
  return ::getpid();
}

int main(int argc, char** argv) {
  mp_example::start_method_from_args(argc, argv);  // --forkserver: see start_method.hpp
  std::printf("Parent process %d.\n", ::getpid());
  mp::Pool p(4);
  std::vector<mp::AsyncResult<int>> rs;
  for (int i = 0; i < 5; ++i) rs.push_back(p.apply_async(long_time_task, i));
  std::printf("Waiting for all subprocesses done...\n");
  std::fflush(stdout);
  p.close();
  p.join();
  std::printf("All subprocesses done.\n");
  std::set<int> pids;
  for (auto& r : rs) pids.insert(r.get());
  std::printf("5 tasks ran in %zu worker processes (pids reused)\n", pids.size());

  // The same work again with map and a progress bar (drawn on stderr only on a terminal).
  mp::Pool q(4);
  std::vector<int> items(5);  // Python's range(5); a vector, as Clang 14 cannot compile views::iota here
  std::iota(items.begin(), items.end(), 0);
  auto again = q.map(long_time_task, items, 1, mp::progress("long_time_task"));
  std::printf("map finished %zu tasks\n", again.size());
}
