// Seed 002, 十一: a callback receives the task's return value — in the parent process.
// The seed needed time.sleep(2) so the callback ran before the program ended; with mp,
// close() + join() (or get()) guarantee the callback has run.
#include <mp/pool.hpp>

#include "start_method.hpp"

#include <cstdio>
#include <unistd.h>

int fun1(int a, int b) { return a + b; }

int main(int argc, char** argv) {
  mp_example::start_method_from_args(argc, argv);  // --forkserver: see start_method.hpp
  mp::Pool p(4);
  pid_t parent = ::getpid();
  p.apply_async(fun1, mp::args(2, 3), [parent](int i) {
    std::printf("I am the callback, %d (running in the %s)\n", i, ::getpid() == parent ? "parent" : "worker");
  });
  p.apply_async(fun1, mp::args(40, 2), [](int i) { std::printf("I am the callback, %d\n", i); });
  p.close();
  p.join();
  std::printf("callbacks done before join() returned\n");
}
