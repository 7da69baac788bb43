// terminate_is_alive — terminate() is asynchronous; join() is what makes it final.
//
// Seed: p.start(); is_alive() is True; p.terminate(); is_alive() may still be True right
// after, because terminate() only sends SIGTERM and the OS has not necessarily acted yet;
// once joined the process is dead and its exitcode is -15 (killed by signal 15).
#include <chrono>
#include <cstdio>
#include <thread>

#include <mp/process.hpp>

using namespace std::chrono_literals;

[[noreturn]] void son1() {
  for (;;) {
    std::printf("son1: is alive\n");
    std::this_thread::sleep_for(50ms);
  }
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::Process p(son1);
  p.start();  // asynchronous, non-blocking
  std::printf("main: after start: is_alive() = %s\n", p.is_alive() ? "true" : "false");
  std::this_thread::sleep_for(120ms);
  p.terminate();  // asynchronous too: sends SIGTERM and returns
  bool right_after = p.is_alive();
  std::printf("main: right after terminate(): is_alive() = %s (either is possible: the signal may not "
              "have been acted on yet)\n", right_after ? "true" : "false");
  p.join();  // synchronous: waits until the child is gone and reaped
  std::printf("main: after join(): is_alive() = %s\n", p.is_alive() ? "true" : "false");
  std::printf("main: exitcode = %d (killed by SIGTERM, as Python reports it)\n", p.exitcode().value());
}
