// Seed: "分布式进程" task_worker, speaking CPython's manager protocol — so the master may be
// the seeds' own Python script (examples/python/task_master.py, unchanged but for the
// address). It connects with the authkey, takes tasks with get(timeout=1s) — Python's
// queue.Empty arrives as mp::Empty — and puts "n * n = ..." on the result queue.
//
//   distributed_worker_py host:port [authkey]   work for the master at host:port
//   distributed_worker_py                       (the tour) runs task_master.py on a free
//                                               port itself, works for it, shows its output
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "mp/managers_python.hpp"
#include "python_peer.hpp"

using namespace std::chrono_literals;
namespace py = mp::managers::python;

static int work(const std::string& address, const std::string& authkey) {
  std::printf("Connect to server %s...\n", address.c_str());
  mp::BaseManager m(address, authkey, {.protocol = mp::managers::Protocol::python});
  try {
    m.connect();
  } catch (const mp::AuthenticationError& e) {
    std::printf("Authentication failed: %s\n", e.what());
    return 3;
  }
  auto task = m.get<py::QueueProxy<long long>>("get_task_queue");
  auto result = m.get<py::QueueProxy<std::string>>("get_result_queue");
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
  std::fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1) return work(argv[1], argc > 2 ? argv[2] : "Willard");

  // Tour mode: the seeds' Python master on a free port, then work for it.
  std::string script = interop_example::python_script("task_master.py");
  if (script.empty()) {
    std::printf("examples/python/task_master.py not found: set MP_PYTHON_EXAMPLES to its directory\n");
    return 2;
  }
  FILE* master = interop_example::run_python(script, "127.0.0.1:0");
  if (!master) return 2;
  std::string address;
  char line[512];
  while (address.empty() && std::fgets(line, sizeof line, master)) {  // its readiness line
    std::string s(line);
    std::printf("  [python master] %s", line);
    if (s.starts_with("Master listening on ")) address = s.substr(20, s.find('\n') - 20);
  }
  std::fflush(stdout);
  int code = address.empty() ? 2 : work(address, "Willard");
  while (std::fgets(line, sizeof line, master)) std::printf("  [python master] %s", line);
  int st = ::pclose(master);
  std::printf("Python master exit status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  return code != 0 ? code : (WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1);
}
