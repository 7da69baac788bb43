// Seed 002, 十一: Pool.apply_async returns at once with an AsyncResult; 4 tasks run at a
// time. Calling get() right away would make it synchronous again, so the results are
// kept in a list and collected after close() + join().
#include <mp/pool.hpp>

#include "start_method.hpp"

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

int fun(int i) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int sum = 0;
  for (int n = 0; n < 5; ++n) sum += i;
  return sum;
}

int main(int argc, char** argv) {
  mp_example::start_method_from_args(argc, argv);  // --forkserver: see start_method.hpp
  mp::Pool p(4);
  std::vector<mp::AsyncResult<int>> l1;
  for (int i = 0; i < 10; ++i) l1.push_back(p.apply_async(fun, i));  // not a value yet
  std::printf("submitted 10 tasks; ready now: %s\n", l1.back().ready() ? "yes" : "not yet");
  p.close();
  p.join();  // every task has finished once join() returns
  for (std::size_t i = 0; i < l1.size(); ++i) std::printf("result %zu: %d\n", i, l1[i].get());
}
