// Seed: "数据共享" — a Manager shares a list between 100 processes; each decrements l[0]
// under a Lock. `l[0] -= 1` is two remote calls (get, then set), exactly as in Python, so
// without the lock updates would be lost; with it the list ends at 0.
//
// The seed uses a multiprocessing.Lock (shared by fork). Run with --manager-lock to use
// m.Lock() instead — a lock living in the manager's server, which could also be sent to
// processes that were not forked from this one.
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "mp/managers.hpp"
#include "mp/process.hpp"
#include "mp/synchronize.hpp"

int main(int argc, char** argv) {
  const bool manager_lock = argc > 1 && std::strcmp(argv[1], "--manager-lock") == 0;
  mp::Manager m;                    // forks the manager's server process
  auto l = m.list<int>({100});      // a list living in the server
  mp::Lock lo;                      // the seed's Lock(): shared with the children by fork
  auto mlo = m.Lock();              // the same role, served by the manager
  std::printf("using %s\n", manager_lock ? "the manager's Lock (m.Lock())" : "an mp::Lock shared by fork");
  std::printf("manager server pid %d, address %s\n", m.server_pid(), m.address().c_str());

  std::vector<mp::Process> ps;
  ps.reserve(100);
  for (int i = 0; i < 100; ++i) {
    ps.emplace_back([&] {
      if (manager_lock) {
        std::scoped_lock g(mlo);
        l[0] -= 1;
      } else {
        std::scoped_lock g(lo);
        l[0] -= 1;
      }
    });
    ps.back().start();
  }
  for (auto& p : ps) p.join();
  std::printf("100 processes decremented l[0]: l[0] = %d\n", l[0].get());
  return l[0].get() == 0 ? 0 : 1;
}
