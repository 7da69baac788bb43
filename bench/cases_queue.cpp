// mp::Queue cases (python_baseline.py's "queue" section, and the queue_throughput_{4096,
// 1048576}B scaling rows of python_extra.py).
//
// Payload type: std::string. Python sends `b"x" * size`, a bytes object whose length
// travels with it; mp::Queue<std::string> is the same thing (raw bytes plus their length,
// no serialiser), whereas a std::array<char, 64> would be a fixed-size memcpy that Python
// has no equivalent of. Python's end marker is None; here it is the empty string, which
// no payload of these cases can be.
#include "bench.hpp"

#include <mp/process.hpp>
#include <mp/queue.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

// A child process puts n payloads of `size` bytes and then the end marker; the main
// process gets until the marker. Timed from before start() to the marker, join not timed
// (as python_baseline's queue_throughput).
void queue_throughput(const mp_bench::Context& ctx, std::size_t size, long count) {
  const long n = ctx.scale(count);
  mp::Queue<std::string> q(1024);
  mp::Process p(
      [n](mp::Queue<std::string> q, std::string payload) {
        for (long i = 0; i < n; ++i) q.put(payload);
        q.put(std::string());
      },
      q, std::string(size, 'x'));
  mp_bench::Stopwatch sw;
  p.start();
  long got = 0;
  std::size_t bad = 0;
  for (;;) {
    std::string m = q.get();
    if (m.empty()) break;
    if (m.size() != size) ++bad;
    ++got;
  }
  const double dt = sw.seconds();
  p.join();
  if (got != n || bad != 0 || p.exitcode() != 0)
    throw std::runtime_error("queue_throughput_" + std::to_string(size) + "B: got " + std::to_string(got) + " of " +
                             std::to_string(n) + " messages (" + std::to_string(bad) + " of the wrong size)");
  ctx.emit("queue_throughput_" + std::to_string(size) + "B", static_cast<double>(n) / dt, "msg/s", mp_bench::higher,
           n);
}

void queue_throughput_64B(const mp_bench::Context& ctx) { queue_throughput(ctx, 64, 200'000); }
void queue_throughput_4096B(const mp_bench::Context& ctx) { queue_throughput(ctx, 4096, 100'000); }
void queue_throughput_1048576B(const mp_bench::Context& ctx) { queue_throughput(ctx, std::size_t{1} << 20, 2'000); }

// Two unbounded queues and an echo child; n × (put "ping" on A, get the echo from B), each
// round trip timed; the median in µs (as python_baseline's queue_pingpong).
void queue_pingpong_rtt_p50(const mp_bench::Context& ctx) {
  const long n = ctx.scale(20'000);
  mp::Queue<std::string> qa, qb;
  mp::Process echo(
      [](mp::Queue<std::string> in, mp::Queue<std::string> out) {
        for (;;) {
          std::string m = in.get();
          if (m.empty()) return;
          out.put(m);
        }
      },
      qa, qb);
  echo.start();
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(n));
  const std::string ping = "ping";
  long ok = 0;
  for (long i = 0; i < n; ++i) {
    mp_bench::Stopwatch sw;
    qa.put(ping);
    std::string back = qb.get();
    samples.push_back(sw.micros());
    ok += back == ping;
  }
  qa.put(std::string());
  echo.join();
  if (ok != n) throw std::runtime_error("queue_pingpong_rtt_p50: " + std::to_string(n - ok) + " wrong echoes");
  ctx.emit("queue_pingpong_rtt_p50", mp_bench::median(std::move(samples)), "us", mp_bench::lower, n);
}

const mp_bench::Register reg_queue_throughput_64B{
    {.group = "queue_throughput_64B", .emits = {"queue_throughput_64B"}, .run = queue_throughput_64B}};
const mp_bench::Register reg_queue_throughput_4096B{
    {.group = "queue_throughput_4096B", .emits = {"queue_throughput_4096B"}, .run = queue_throughput_4096B}};
const mp_bench::Register reg_queue_throughput_1048576B{{.group = "queue_throughput_1048576B",
                                                        .emits = {"queue_throughput_1048576B"},
                                                        .run = queue_throughput_1048576B}};
const mp_bench::Register reg_queue_pingpong_rtt_p50{
    {.group = "queue_pingpong_rtt_p50", .emits = {"queue_pingpong_rtt_p50"}, .run = queue_pingpong_rtt_p50}};

}  // namespace
