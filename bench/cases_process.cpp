// mp::Process cases (python_baseline.py's "process lifecycle" section).
#include "bench.hpp"

#include <mp/process.hpp>

namespace {

void noop() {}

// Start and join a process running a no-op, one at a time: the cost of a short-lived child
// (fork, the child's exit steps, reaping), as `mp.Process(target=_noop); p.start(); p.join()`.
void process_start_join(const mp_bench::Context& ctx) {
  const long n = ctx.scale(500);
  mp_bench::Stopwatch sw;
  for (long i = 0; i < n; ++i) {
    mp::Process p(noop);
    p.start();
    p.join();
  }
  ctx.emit("process_start_join", sw.micros() / static_cast<double>(n), "us", mp_bench::lower, n);
}

const mp_bench::Register reg_process_start_join{
    {.group = "process_start_join", .emits = {"process_start_join"}, .run = process_start_join}};

}  // namespace
