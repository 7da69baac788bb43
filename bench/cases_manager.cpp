// Managers (issue 6): a dict proxy's remote set + get, as `d[k] = v; d[k]` on a
// multiprocessing.Manager().dict() (CPython's baseline section "managers").
#include "bench.hpp"

#include <mp/managers.hpp>

#include <cstdlib>

namespace {

// __setitem__ and __getitem__ round trips to the manager's server process over its Unix
// socket, reported per operation (2n of them), exactly like python_baseline.py.
void manager_dict_set_get(const mp_bench::Context& ctx) {
  const long n = ctx.scale(20'000);
  mp::Manager m;
  auto d = m.dict<int, int>();
  d[0] = 0;  // connect outside the timed loop
  mp_bench::Stopwatch sw;
  long sum = 0;
  for (long i = 0; i < n; ++i) {
    d[static_cast<int>(i % 100)] = static_cast<int>(i);
    sum += d[static_cast<int>(i % 100)].get();
  }
  double dt = sw.seconds();
  if (sum < 0) std::abort();
  ctx.emit("manager_dict_set_get", dt / static_cast<double>(2 * n) * 1e6, "us", mp_bench::lower, 2 * n);
}

const mp_bench::Register reg_manager_dict_set_get{
    {.group = "manager_dict_set_get", .emits = {"manager_dict_set_get"}, .run = manager_dict_set_get}};

}  // namespace
