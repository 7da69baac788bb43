// Seed: "互斥锁" — 100 threads each decrement a shared n under a Lock. Without the lock
// every thread would read n == 100 during its nap and the result would be 99; with it the
// read-nap-write sequences are serialised and n ends at 0.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "mp/synchronize.hpp"
#include "mp/threading.hpp"

using namespace std::chrono_literals;

namespace {

int n = 100;

void task(mp::Lock mutex) {
  mutex.acquire();
  int num = n;
  std::this_thread::sleep_for(1ms);  // "simulated IO" while holding the lock
  n = num - 1;
  mutex.release();
}

}  // namespace

int main() {
  mp::Lock mutex;
  std::vector<mp::Thread> threads;
  threads.reserve(100);
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back(task, mutex);  // copies of an mp::Lock are the same lock
    threads.back().start();
  }
  for (auto& t : threads) t.join();
  std::printf("n = %d\n", n);
}
