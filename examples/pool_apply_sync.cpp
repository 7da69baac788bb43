// Seed 002, 十一: Pool.apply is synchronous — each call waits for its result, so ten
// calls run one after another even though the pool has 4 workers.
#include <mp/pool.hpp>

#include "start_method.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

int fun(int i) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // "work"
  int sum = 0;
  for (int n = 0; n < 5; ++n) sum += i;
  return sum;
}

int main(int argc, char** argv) {
  mp_example::start_method_from_args(argc, argv);  // --forkserver: see start_method.hpp
  mp::Pool p(4);
  for (int i = 0; i < 10; ++i) {
    int res = p.apply(fun, i);  // blocks until this task is done
    std::printf("apply(fun, %d) = %d\n", i, res);
  }
  p.close();
  p.join();
}
