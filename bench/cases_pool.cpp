// mp::Pool / mp::ThreadPool cases (python_baseline.py's "pools" section, and the
// pool_map_throughput_w{1,2,4,8} scaling rows of python_extra.py).
#include "bench.hpp"

#include <mp/pool.hpp>

#include <cmath>
#include <ranges>
#include <stdexcept>
#include <string>

namespace {

long square(long x) { return x * x; }
void noop(long) {}

// Pool(2).map(square, range(n), chunksize=1) and with the automatic chunksize, per task,
// after a warm-up map of 100 no-ops (as python_baseline's pool_map_overhead).
void pool_map(const mp_bench::Context& ctx) {
  const long n = ctx.scale(100'000);
  mp::Pool pool(2);
  pool.map(noop, std::views::iota(0L, 100L));
  mp_bench::Stopwatch sw1;
  auto r1 = pool.map(square, std::views::iota(0L, n), 1);
  double dt1 = sw1.seconds();
  mp_bench::Stopwatch sw2;
  auto r2 = pool.map(square, std::views::iota(0L, n));
  double dt2 = sw2.seconds();
  if (r1.size() != static_cast<std::size_t>(n) || r1 != r2) throw std::runtime_error("pool_map: wrong results");
  ctx.emit("pool_map_chunksize1_per_task", dt1 / static_cast<double>(n) * 1e6, "us", mp_bench::lower, n);
  ctx.emit("pool_map_auto_chunk_per_task", dt2 / static_cast<double>(n) * 1e6, "us", mp_bench::lower, n);
}

// apply_async(square, (i,)).get() one at a time: the parent <-> worker round trip.
void pool_apply_roundtrip(const mp_bench::Context& ctx) {
  const long n = ctx.scale(5'000);
  mp::Pool pool(2);
  pool.apply(noop, 0L);
  mp_bench::Stopwatch sw;
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += pool.apply_async(square, i).get();
  double dt = sw.seconds();
  if (sum < 0) throw std::runtime_error("pool_apply_roundtrip: overflow");
  ctx.emit("pool_apply_roundtrip", dt / static_cast<double>(n) * 1e6, "us", mp_bench::lower, n);
}

void threadpool_map(const mp_bench::Context& ctx) {
  const long n = ctx.scale(100'000);
  mp::ThreadPool pool(2);
  mp_bench::Stopwatch sw;
  auto r = pool.map(square, std::views::iota(0L, n), 1);
  double dt = sw.seconds();
  if (r.size() != static_cast<std::size_t>(n)) throw std::runtime_error("threadpool_map: wrong results");
  ctx.emit("threadpool_map_chunksize1_per_task", dt / static_cast<double>(n) * 1e6, "us", mp_bench::lower, n);
}

template <int W>
void pool_map_throughput(const mp_bench::Context& ctx) {
  const long n = ctx.scale(20'000);
  mp::Pool pool(W);
  pool.map(noop, std::views::iota(0L, 100L));
  mp_bench::Stopwatch sw;
  auto r = pool.map(square, std::views::iota(0L, n), 1);
  double dt = sw.seconds();
  if (r.size() != static_cast<std::size_t>(n)) throw std::runtime_error("pool_map_throughput: wrong results");
  ctx.emit("pool_map_throughput_w" + std::to_string(W), static_cast<double>(n) / dt, "task/s", mp_bench::higher, n);
}

// CPU-bound work (about 1 ms per item): Pool(2).map against the same loop in one process.
// The target: >= 1.8x on 2 cores.
double burn(long seed) {
  double x = static_cast<double>(seed);
  for (int i = 0; i < 400'000; ++i) x = std::sin(x) + 1.0001;
  return x;
}

void pool_cpu_speedup(const mp_bench::Context& ctx) {
  const long n = ctx.quick() ? 40 : 400;
  mp_bench::Stopwatch s1;
  double a = 0;
  for (long i = 0; i < n; ++i) a += burn(i);
  double single = s1.seconds();
  mp::Pool pool(2);
  pool.map(noop, std::views::iota(0L, 10L));
  mp_bench::Stopwatch s2;
  double b = 0;
  for (double v : pool.map(burn, std::views::iota(0L, n))) b += v;
  double pooled = s2.seconds();
  if (std::abs(a - b) > 1e-6 * std::abs(a)) throw std::runtime_error("pool_cpu_speedup: results differ");
  ctx.emit("pool_cpu_speedup_2w", single / pooled, "x", mp_bench::higher, n);
}

const mp_bench::Register reg_pool_map{{.group = "pool_map",
                                       .emits = {"pool_map_chunksize1_per_task", "pool_map_auto_chunk_per_task"},
                                       .run = pool_map}};
const mp_bench::Register reg_apply{
    {.group = "pool_apply_roundtrip", .emits = {"pool_apply_roundtrip"}, .run = pool_apply_roundtrip}};
const mp_bench::Register reg_threadpool{
    {.group = "threadpool_map", .emits = {"threadpool_map_chunksize1_per_task"}, .run = threadpool_map}};
const mp_bench::Register reg_w1{
    {.group = "pool_map_throughput_w1", .emits = {"pool_map_throughput_w1"}, .run = pool_map_throughput<1>}};
const mp_bench::Register reg_w2{
    {.group = "pool_map_throughput_w2", .emits = {"pool_map_throughput_w2"}, .run = pool_map_throughput<2>}};
const mp_bench::Register reg_w4{
    {.group = "pool_map_throughput_w4", .emits = {"pool_map_throughput_w4"}, .run = pool_map_throughput<4>}};
const mp_bench::Register reg_w8{
    {.group = "pool_map_throughput_w8", .emits = {"pool_map_throughput_w8"}, .run = pool_map_throughput<8>}};
const mp_bench::Register reg_cpu{
    {.group = "pool_cpu_speedup_2w", .emits = {"pool_cpu_speedup_2w"}, .run = pool_cpu_speedup}};

}  // namespace
