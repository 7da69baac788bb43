// Seed 002, 十一: why a pool? 500 tasks as 500 processes vs Pool(4).map over the same 500.
#include <mp/pool.hpp>
#include <mp/process.hpp>

#include "start_method.hpp"

#include <chrono>
#include <cstdio>
#include <numeric>
#include <ranges>
#include <vector>

long fun(long i) {
  long sum = 0;
  for (int j = 0; j < 5; ++j) sum += i;
  return sum;
}

void fun_in_process(long i) { (void)fun(i); }

int main(int argc, char** argv) {
  mp_example::start_method_from_args(argc, argv);  // --forkserver: see start_method.hpp
  mp::Pool p(4);  // a pool with (at most) 4 worker processes

  auto t0 = std::chrono::steady_clock::now();
  std::vector<mp::Process> procs;
  procs.reserve(500);
  for (long i = 0; i < 500; ++i) {
    procs.emplace_back(fun_in_process, i);
    procs.back().start();
  }
  for (auto& pr : procs) pr.join();
  double without = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("without a pool: 500 processes started and joined in %.3f s\n", without);

  auto t1 = std::chrono::steady_clock::now();
  std::vector<long> results = p.map(fun, std::views::iota(0L, 500L));
  double with = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  std::printf("with Pool(4).map: 500 tasks on 4 workers in %.3f s\n", with);

  long total = std::accumulate(results.begin(), results.end(), 0L);
  std::printf("results: %zu values, sum %ld (expected %ld)\n", results.size(), total, 5L * 499 * 500 / 2);
  std::printf("the pool created 4 processes instead of 500\n");
  p.close();
  p.join();
}
