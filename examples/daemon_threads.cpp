// Seed: "守护线程" (daemon threads) and its "小例子".
// The main thread ends when main() returns, but the process waits for every non-daemon
// thread first; a daemon thread is not waited for and vanishes with the process.
#include <chrono>
#include <cstdio>
#include <thread>

#include "mp/threading.hpp"

using namespace std::chrono_literals;

namespace {

void task(std::chrono::milliseconds nap) {
  std::printf("%s\n", mp::current_thread().name().c_str());
  std::fflush(stdout);
  std::this_thread::sleep_for(nap);
  std::printf("GG\n");  // the daemon thread never gets here: the process is gone by then
  std::fflush(stdout);
}

void foo() {
  std::puts("123");
  std::this_thread::sleep_for(20ms);
  std::puts("end123");
}

void bar() {
  std::puts("456");
  std::this_thread::sleep_for(300ms);
  std::puts("end456");
}

}  // namespace

int main() {
  mp::Thread t1(task, 50ms);
  mp::Thread t2(task, 50ms);
  mp::Thread t3(task, 5000ms);
  t3.daemon(true);  // the seed's t3.daemon = True
  t1.start();
  t2.start();
  t3.start();
  std::puts("zhu (main is done: the non-daemon threads still finish, the daemon one is not waited for)");

  // The seed's small example: a daemon thread finishes anyway when a non-daemon thread
  // keeps the process alive long enough.
  mp::Thread d(foo);
  mp::Thread n(bar);
  d.daemon(true);
  d.start();
  n.start();
  std::puts("main-------");
  // main() returns here: the process waits for t1, t2 and n, not for t3 (nor d).
}
