// daemon_process — a daemon child ends with the main program; a normal child does not.
//
// Seed: son1 (daemon) prints "is alive" forever; son2 (not a daemon) prints five times;
// main sleeps, then its code ends. At that moment son1 is terminated, while son2 runs to
// its end: the program waits for its non-daemon children before exiting. (A daemon also
// dies if the main process is killed outright: the kernel sends it a parent-death signal.)
#include <chrono>
#include <cstdio>
#include <thread>

#include <mp/process.hpp>

using namespace std::chrono_literals;

[[noreturn]] void son1() {
  for (;;) {
    std::printf("son1 (daemon): is alive\n");
    std::this_thread::sleep_for(50ms);
  }
}

void son2() {
  for (int i = 0; i < 5; ++i) {
    std::printf("son2: step %d\n", i);
    std::this_thread::sleep_for(100ms);
  }
  std::printf("son2: finished\n");
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::Process p({.name = "son1", .daemon = true}, son1);  // daemon must be set before start()
  p.start();
  std::printf("main: daemon pid %d\n", p.pid());
  mp::Process p2({.name = "son2"}, son2);
  p2.start();
  std::this_thread::sleep_for(200ms);
  std::printf("main: end of main(): son1 (daemon) is terminated now; son2 is not a daemon, so the program "
              "waits for it\n");
}
