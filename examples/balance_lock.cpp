// Seed: "Lock" — two threads run change_it() 2,000,000 times each. change_it adds and then
// subtracts n, so the balance should stay 0. Without a lock the read-modify-write steps of
// the two threads interleave and updates get lost; with the lock the balance is always 0.
//
// Making the race visible every run. Two C++ threads doing 2,000,000 tiny steps often
// barely overlap (one may be done before the other starts), so a free race alone shows
// lost updates only now and then. Here the first step of each thread is made to overlap
// on purpose: both threads read the balance, wait for each other (a Barrier), and only
// then write — so one write erases the other's, every run. The remaining steps race
// freely, as in the seed. Each write also reports what it overwrote: a value other than
// the one the thread read means the other thread's update in between was erased, and the
// program counts those. Without the lock that count is at least 1 (more when the free race
// overlaps too); with the lock it is 0 and the balance is exactly 0.
// (The balance is a std::atomic<long> read and written with separate relaxed operations:
// the same lost updates as Python's `balance = balance + n`, without undefined behaviour
// in C++. The final unlocked balance is minus the sum of the erased amounts, so it varies
// and can even come back to 0 by chance; the count of erased updates cannot.)
//
// usage: balance_lock [iterations]   (default 2000000)
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "mp/synchronize.hpp"
#include "mp/threading.hpp"

namespace {

std::atomic<long> balance{0};
std::atomic<long> erased{0};  // writes that overwrote the other thread's update
mp::Lock lock;
mp::Barrier both(2);

/// `balance = balance + delta`, as two separate steps: read, then write. With `collide`,
/// both threads have read before either writes (and both have written before either goes
/// on), so the second write certainly erases the first.
long add(long delta, bool collide) {
  long seen = balance.load(std::memory_order_relaxed);
  if (collide) both.wait();
  // exchange() only reports what was overwritten; the value written still comes from the
  // earlier read, so the update is as unprotected as in the seed.
  long overwritten = balance.exchange(seen + delta, std::memory_order_relaxed);
  if (collide) both.wait();
  return overwritten != seen ? 1 : 0;
}

/// The seed's change_it(n); returns how many of its two writes erased an update.
long change_it(long n, bool collide = false) { return add(n, collide) + add(-n, false); }

void run_thread(long n, long iterations, bool locked) {
  long mine = 0;
  if (!locked) {
    for (long i = 0; i < iterations; ++i) mine += change_it(n, /*collide=*/i == 0);
  } else {
    both.wait();  // start together: the threads contend for the lock from the first step
    for (long i = 0; i < iterations; ++i) {
      std::scoped_lock guard(lock);  // the seed's lock.acquire() ... finally: lock.release()
      mine += change_it(n);
    }
  }
  erased += mine;
}

void run(long iterations, bool locked) {
  balance = 0;
  erased = 0;
  mp::Thread t1(run_thread, 5L, iterations, locked);
  mp::Thread t2(run_thread, 8L, iterations, locked);
  t1.start();
  t2.start();
  t1.join();
  t2.join();
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 2'000'000;
  if (iterations < 1) {
    std::fprintf(stderr, "usage: balance_lock [iterations]   (iterations >= 1; default 2000000)\n");
    return 2;
  }
  run(iterations, false);
  std::printf("without a lock: balance = %ld, updates erased = %ld (at least 1 every run: the first steps collide on "
              "purpose; the free race may add more)\n",
              balance.load(), erased.load());
  run(iterations, true);
  std::printf("with the lock:  balance = %ld, updates erased = %ld\n", balance.load(), erased.load());
}
