// The consumer project's program: starts a Process that takes a Lock shared with main.
#include <cstdio>
#include <mutex>

#include <mp/mp.hpp>

void work(mp::Lock lock, int n) {
  std::scoped_lock g(lock);  // the same lock as main's
  std::printf("consumer: child %d holds the lock\n", n);
}

int main() {
  mp::Lock lock;
  mp::Process p(work, lock, 1);
  {
    std::scoped_lock g(lock);  // the child waits until main lets go
    p.start();
    std::printf("consumer: main holds the lock\n");
  }
  p.join();
  std::printf("consumer: child exitcode %d\n", p.exitcode().value_or(-1));
  return p.exitcode() == 0 ? 0 : 1;
}
