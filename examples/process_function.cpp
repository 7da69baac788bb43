// process_function — start a child from a function, as in Python's Process(target=fun2).
//
// Seed: the main process runs fun1() while a child runs fun2() at the same time, so the
// whole program takes about as long as the slower one, not the sum. The child prints its
// own pid and its parent's (os.getpid() / os.getppid()).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <mp/process.hpp>

using namespace std::chrono_literals;

void fun1() {  // the main process's own work
  std::this_thread::sleep_for(200ms);
  std::printf("main: fun1 done\n");
}

void fun2(const std::string& who) {  // runs in the child
  std::printf("child: start (%s)\n", who.c_str());
  std::printf("child: pid %d, ppid %d\n", ::getpid(), ::getppid());
  std::this_thread::sleep_for(300ms);
  std::printf("child: end\n");
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, also when piped
  std::printf("main: pid %d\n", ::getpid());
  auto t0 = std::chrono::steady_clock::now();
  mp::Process p(fun2, std::string("test"));
  p.start();  // asynchronous: returns as soon as the child exists
  std::printf("main: started %s (pid %d); main keeps working meanwhile\n", p.name().c_str(), p.pid());
  fun1();
  p.join();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::printf("main: child exitcode %d\n", p.exitcode().value());
  std::printf("main: %lld ms in all: about max(200, 300), not 200 + 300, because both ran at once\n",
              static_cast<long long>(ms));
}
