// mp::Pipe / mp::Connection cases (python_baseline.py's "pipe" and "ping-pong latency over
// a duplex Pipe" sections).
//
// Bytes: payloads are std::string (Python's bytes) sent with send_bytes(). The receiving
// side uses recv_bytes(std::string&), which reuses one buffer instead of returning a new
// string per message: that is how a C++ loop is written (the raw pipe baseline also reads
// into one buffer), whereas Python has no choice but to allocate a bytes object each time.
// An empty message is the end marker, as in Python.
#include "bench.hpp"

#include <mp/connection.hpp>
#include <mp/process.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Pipe(duplex=false); a child sends n messages of `size` bytes, then an empty one, and
// closes; the parent closes its copy of the writer after start() and receives up to the
// empty message. Timed from before start() to the empty message (join not timed).
// Emits msg/s below 64 KiB, GB/s (bytes / s / 1e9) from 64 KiB on, as python_baseline.
void pipe_throughput(const mp_bench::Context& ctx, std::size_t size, long count) {
  const long n = ctx.scale(count);
  auto [r, w] = mp::Pipe(false);
  mp::Process p([&] {
    const std::string b(size, 'x');
    for (long i = 0; i < n; ++i) w.send_bytes(b);
    w.send_bytes(std::string_view());
    w.close();
  });
  mp_bench::Stopwatch sw;
  p.start();
  w.close();
  long got = 0;
  std::size_t nbytes = 0;
  std::string b;
  while (r.recv_bytes(b) != 0) {
    ++got;
    nbytes += b.size();
  }
  const double dt = sw.seconds();
  p.join();
  if (got != n || nbytes != static_cast<std::size_t>(n) * size || p.exitcode() != 0)
    throw std::runtime_error("pipe_throughput(" + std::to_string(size) + "): got " + std::to_string(got) + " of " +
                             std::to_string(n) + " messages, " + std::to_string(nbytes) + " bytes");
  if (size >= 65536)
    ctx.emit("pipe_bandwidth_" + std::to_string(size) + "B", static_cast<double>(nbytes) / dt / 1e9, "GB/s",
             mp_bench::higher, n);
  else
    ctx.emit("pipe_throughput_" + std::to_string(size) + "B", static_cast<double>(n) / dt, "msg/s", mp_bench::higher,
             n);
}

void pipe_throughput_64B(const mp_bench::Context& ctx) { pipe_throughput(ctx, 64, 500'000); }
void pipe_bandwidth_1048576B(const mp_bench::Context& ctx) { pipe_throughput(ctx, std::size_t{1} << 20, 2'000); }

// Duplex Pipe and an echo child; n × (send_bytes("ping"), recv_bytes()), each round trip
// timed; the median in µs (as python_baseline's pipe_pingpong).
void pipe_pingpong_rtt_p50(const mp_bench::Context& ctx) {
  const long n = ctx.scale(20'000);
  auto [a, b] = mp::Pipe();
  mp::Process p([&] {
    std::string m;
    while (b.recv_bytes(m) != 0) b.send_bytes(m);
  });
  p.start();
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(n));
  const std::string ping = "ping";
  std::string back;
  long ok = 0;
  for (long i = 0; i < n; ++i) {
    mp_bench::Stopwatch sw;
    a.send_bytes(ping);
    a.recv_bytes(back);
    samples.push_back(sw.micros());
    ok += back == ping;
  }
  a.send_bytes(std::string_view());
  p.join();
  if (ok != n || p.exitcode() != 0)
    throw std::runtime_error("pipe_pingpong_rtt_p50: " + std::to_string(n - ok) + " wrong echoes");
  ctx.emit("pipe_pingpong_rtt_p50", mp_bench::median(std::move(samples)), "us", mp_bench::lower, n);
}

const mp_bench::Register reg_pipe_throughput_64B{
    {.group = "pipe_throughput_64B", .emits = {"pipe_throughput_64B"}, .run = pipe_throughput_64B}};
const mp_bench::Register reg_pipe_bandwidth_1048576B{
    {.group = "pipe_bandwidth_1048576B", .emits = {"pipe_bandwidth_1048576B"}, .run = pipe_bandwidth_1048576B}};
const mp_bench::Register reg_pipe_pingpong_rtt_p50{
    {.group = "pipe_pingpong_rtt_p50", .emits = {"pipe_pingpong_rtt_p50"}, .run = pipe_pingpong_rtt_p50}};

}  // namespace
