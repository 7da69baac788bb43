// join_many — three sleepers started together and joined one after another.
//
// Seed: task(1), task(3), task(5) started at once, then p.join(); p1.join(); p2.join().
// The joins wait one after another, but the children sleep at the same time, so the
// total is about the longest sleep, not the sum (here 100/300/500 ms: ~500, not 900).
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <mp/process.hpp>

void task(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  std::printf("sleeper %d: slept %d ms\n", mp::current_process().pid, ms);
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<mp::Process> ps;
  for (int ms : {100, 300, 500}) ps.emplace_back(task, ms);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();  // join() reaps the child (waitpid), leaving no zombie
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::printf("main: all three joined (pids %d %d %d)\n", ps[0].pid(), ps[1].pid(), ps[2].pid());
  std::printf("main: total %lld ms: about the longest sleep (500 ms), not the sum (900 ms)\n",
              static_cast<long long>(ms));
}
