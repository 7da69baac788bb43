// Seed: "Lock" — two threads run change_it() 2,000,000 times each. change_it adds and then
// subtracts n, so the balance should stay 0. Without a lock the read-modify-write steps of
// the two threads interleave and updates get lost; with the lock the balance is always 0.
// (The unlocked run uses relaxed atomic loads/stores: the same lost updates as Python's,
// without undefined behaviour in C++.)
//
// usage: balance_lock [iterations]   (default 2000000)
#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "mp/synchronize.hpp"
#include "mp/threading.hpp"

namespace {

std::atomic<long> balance{0};
mp::Lock lock;

void change_it(long n) {
  balance.store(balance.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  balance.store(balance.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
}

void run_thread(long n, long iterations, bool locked) {
  for (long i = 0; i < iterations; ++i) {
    if (!locked) {
      change_it(n);
      continue;
    }
    lock.acquire();
    try {
      change_it(n);
    } catch (...) {
      lock.release();
      throw;
    }
    lock.release();
  }
}

long run(long iterations, bool locked) {
  balance = 0;
  mp::Thread t1(run_thread, 5L, iterations, locked);
  mp::Thread t2(run_thread, 8L, iterations, locked);
  t1.start();
  t2.start();
  t1.join();
  t2.join();
  return balance.load();
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 2'000'000;
  std::printf("without a lock: balance = %ld (varies from run to run; often not 0)\n", run(iterations, false));
  std::printf("with the lock:  balance = %ld\n", run(iterations, true));
}
