// mp::Thread cases (python_baseline.py's "subprocess / threads" section, threads part).
#include "bench.hpp"

#include <mp/threading.hpp>

namespace {

void noop() {}

// Start and join a thread running a no-op, one at a time, as
// `t = threading.Thread(target=_noop); t.start(); t.join()`: the cost of the Thread object
// (state, name, registry entry), pthread_create and the join.
void thread_start_join(const mp_bench::Context& ctx) {
  const long n = ctx.scale(20'000);
  mp_bench::Stopwatch sw;
  for (long i = 0; i < n; ++i) {
    mp::Thread t(noop);
    t.start();
    t.join();
  }
  ctx.emit("thread_start_join", sw.micros() / static_cast<double>(n), "us", mp_bench::lower, n);
}

const mp_bench::Register reg_thread_start_join{
    {.group = "thread_start_join", .emits = {"thread_start_join"}, .run = thread_start_join}};

}  // namespace
