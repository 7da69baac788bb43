// Seed: "分布式进程" task_master, speaking CPython's manager protocol — so the workers may be
// the seeds' own Python script (examples/python/task_worker.py, unchanged but for the
// address). The master registers a task queue and a result queue on a BaseManager over TCP
// with the authkey "Willard", puts 10 random numbers and reads 10 results "n * n = ...".
//
//   distributed_master_py [port]     serve on 127.0.0.1:port (0: the system picks) and wait
//                                    for workers: python3 task_worker.py 127.0.0.1:<port>
//   distributed_master_py            (the tour) port 0, and it runs task_worker.py itself
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include "mp/managers_python.hpp"
#include "python_peer.hpp"

using namespace std::chrono_literals;
namespace py = mp::managers::python;

int main(int argc, char** argv) {
  const std::string port = argc > 1 ? argv[1] : "0";
  mp::BaseManager manager("127.0.0.1:" + port, "Willard", {.protocol = mp::managers::Protocol::python});
  // The callables run in the server process: return the same queue every time. A Python
  // worker sees them as queue.Queue proxies (put, get(timeout=1), qsize...).
  manager.register_<py::Queue>("get_task_queue", [] {
    static auto q = std::make_shared<py::Queue>();
    return q;
  });
  manager.register_<py::Queue>("get_result_queue", [] {
    static auto q = std::make_shared<py::Queue>();
    return q;
  });
  manager.start();
  std::printf("Master listening on %s (CPython's manager protocol)\n", manager.address().c_str());

  auto task = manager.get<py::QueueProxy<int>>("get_task_queue");
  auto result = manager.get<py::QueueProxy<std::string>>("get_result_queue");
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
  if (argc == 1) {  // tour mode: the seeds' Python worker, as another program
    std::string script = interop_example::python_script("task_worker.py");
    if (script.empty()) {
      std::printf("examples/python/task_worker.py not found: set MP_PYTHON_EXAMPLES to its directory\n");
    } else {
      worker = std::thread([script, address = manager.address()] {
        FILE* out = interop_example::run_python(script, address);
        if (!out) return;
        char line[512];
        while (std::fgets(line, sizeof line, out)) std::printf("  [python worker] %s", line);
        std::fflush(stdout);
        ::pclose(out);
      });
    }
  }
  int got = 0;
  try {
    for (int i = 0; i < 10; ++i) {
      std::string r = result.get(10s);
      std::printf("Result: %s\n", r.c_str());
      std::fflush(stdout);
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
