// Seed: "分布式进程" task_worker — connects to the master's BaseManager (a different program,
// possibly on another host) with the shared authkey, takes tasks from its task queue and
// puts "n * n = ..." on its result queue; a get that times out on the empty queue ends
// nothing, it just says so. See distributed_master.cpp.
//
//   distributed_worker host:port [authkey]
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "mp/managers.hpp"

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: distributed_worker host:port [authkey]\n");
    return 2;
  }
  const std::string address = argv[1];
  const std::string authkey = argc > 2 ? argv[2] : "Willard";
  std::printf("Connect to server %s...\n", address.c_str());
  mp::BaseManager m(address, authkey);
  try {
    m.connect();
  } catch (const mp::AuthenticationError& e) {
    std::printf("Authentication failed: %s\n", e.what());
    return 3;
  }
  auto task = m.get<mp::QueueProxy<int>>("get_task_queue");
  auto result = m.get<mp::QueueProxy<std::string>>("get_result_queue");
  for (int i = 0; i < 10; ++i) {
    try {
      long long n = task.get(1s);
      std::printf("Run task %lld * %lld...\n", n, n);
      std::this_thread::sleep_for(10ms);  // the seed's time.sleep(1): "work"
      result.put(std::to_string(n) + " * " + std::to_string(n) + " = " + std::to_string(n * n));
    } catch (const mp::Empty&) {
      std::printf("Task queue is empty.\n");
    }
  }
  std::printf("Worker Exit.\n");
}
