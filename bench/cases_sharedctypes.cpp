// mp::Value cases (python_baseline.py's "synchronization" section).
#include "bench.hpp"

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <mp/process.hpp>
#include <mp/sharedctypes.hpp>

namespace {

void counter_worker(mp::Value<long long> v, long n) {
  for (long i = 0; i < n; ++i) {
    // `with v.get_lock(): v.value += 1`; as in Python, the value's getter and setter take
    // the (recursive) lock again inside.
    std::scoped_lock g(v.get_lock());
    v.value(v.value() + 1);
  }
}

// Two processes each increment a shared Value('q') n times under its lock, as
// python_baseline's value_contended: timed from the first start() to the last join(); the
// total is checked.
void value_locked_increment_2proc(const mp_bench::Context& ctx) {
  const long n = ctx.scale(50'000);
  mp::Value<long long> v(0);
  std::vector<mp::Process> ps;
  for (int i = 0; i < 2; ++i) ps.emplace_back(counter_worker, v, n);
  mp_bench::Stopwatch sw;
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  const double dt = sw.seconds();
  if (v.value() != 2LL * n)
    throw std::runtime_error("value_locked_increment_2proc: counted " + std::to_string(v.value()) + ", expected " +
                             std::to_string(2LL * n));
  ctx.emit("value_locked_increment_2proc", 2.0 * static_cast<double>(n) / dt, "op/s", mp_bench::higher, 2 * n);
}

const mp_bench::Register reg_value_locked_increment_2proc{{.group = "value_locked_increment_2proc",
                                                           .emits = {"value_locked_increment_2proc"},
                                                           .run = value_locked_increment_2proc}};

}  // namespace
