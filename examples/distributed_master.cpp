// Seed: "分布式进程" task_master — the master registers a task queue and a result queue on a
// BaseManager listening on TCP, protected by an authkey; it puts 10 random numbers in and
// reads 10 results (n * n) that workers — other programs, possibly on other hosts — put
// back. See distributed_worker.cpp.
//
//   distributed_master [port] [authkey]     port 0: the system picks a free one
//   distributed_master                      (the tour) port 0, and it starts one
//                                           distributed_worker itself, as another program
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>

#include "mp/managers.hpp"

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const std::string port = argc > 1 ? argv[1] : "0";
  const std::string authkey = argc > 2 ? argv[2] : "Willard";
  const std::string host = std::getenv("MASTER_HOST") ? std::getenv("MASTER_HOST") : "127.0.0.1";

  mp::BaseManager manager(host + ":" + port, authkey);
  // The callables run in the server process: return the same queue every time.
  manager.register_<mp::managed::Queue<int>>("get_task_queue", [] {
    static auto q = std::make_shared<mp::managed::Queue<int>>(0);
    return q;
  });
  manager.register_<mp::managed::Queue<std::string>>("get_result_queue", [] {
    static auto q = std::make_shared<mp::managed::Queue<std::string>>(0);
    return q;
  });
  manager.start();
  std::printf("Master listening on %s\n", manager.address().c_str());

  auto task = manager.get<mp::QueueProxy<int>>("get_task_queue");
  auto result = manager.get<mp::QueueProxy<std::string>>("get_result_queue");
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> dist(0, 10000);
  for (int i = 0; i < 10; ++i) {
    int n = dist(rng);
    std::printf("Put task %d...\n", n);
    task.put(n);
  }
  std::printf("Try get results...\n");
  std::fflush(stdout);
  std::thread worker;
  if (argc == 1) {  // tour mode: run a worker program next to this one
    char self[4096];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    std::string dir = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string("./x");
    dir = dir.substr(0, dir.rfind('/') + 1);
    std::string cmd = "'" + dir + "distributed_worker' " + manager.address() + " '" + authkey + "'";
    worker = std::thread([cmd] { (void)std::system(cmd.c_str()); });
  }
  int got = 0;
  try {
    for (int i = 0; i < 10; ++i) {
      std::string r = result.get(10s);
      std::printf("Result: %s\n", r.c_str());
      ++got;
    }
  } catch (const mp::Empty&) {
    std::printf("No result within 10 s: is a worker running?\n");
  }
  if (worker.joinable()) worker.join();
  manager.shutdown();
  std::printf("Master Exit. (%d results)\n", got);
  return got == 10 ? 0 : 1;
}
