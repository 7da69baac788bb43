// Seed: "多线程" — a named thread (LoopThread) counts to 5 while main waits for it;
// current_thread().name tells which thread is printing.
#include <chrono>
#include <cstdio>
#include <thread>

#include "mp/threading.hpp"

using namespace std::chrono_literals;

namespace {

void loop() {
  const std::string me = mp::current_thread().name();
  std::printf("Thread %s is running...\n", me.c_str());
  for (int n = 1; n <= 5; ++n) {
    std::printf("Thread %s >>> %d\n", me.c_str(), n);
    std::this_thread::sleep_for(10ms);
  }
  std::printf("Thread %s ended.\n", me.c_str());
}

}  // namespace

int main() {
  std::printf("Thread %s is running...\n", mp::current_thread().name().c_str());
  mp::Thread thread1({.name = "LoopThread"}, loop);
  thread1.start();
  thread1.join();
  std::printf("Thread %s ended.\n", mp::current_thread().name().c_str());
}
