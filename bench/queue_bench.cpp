// mp::Queue on the queue cases of /work/shared/bench/python_baseline.py, same shapes:
//   queue_throughput_64B    one producer process -> the main process, 64-byte messages,
//                           Queue(maxsize=1024), messages per second
//   queue_pingpong_rtt_p50  main puts on queue A, a child echoes each message on queue B;
//                           median round trip in µs
// Prints one JSON object per line ({"case", "value", "unit", "better", "n", "impl"}), like
// python_baseline.py and raw_limits.cpp. `--quick` divides the counts by 10;
// `--only CASE[,CASE]` selects cases.
//
// Build (Release library first: cmake --preset release && cmake --build build/release -j2):
//   g++ -O2 -std=c++20 -pthread -Iinclude bench/queue_bench.cpp -Lbuild/release -lmp -lfmt -lcrypto -o queue_bench
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "mp/process.hpp"
#include "mp/queue.hpp"

namespace {

using Clock = std::chrono::steady_clock;
bool quick = false;
std::string only;

long scale(long n) { return quick ? std::max(1L, n / 10) : n; }
bool wanted(const char* c) { return only.empty() || ("," + only + ",").find(std::string(",") + c + ",") != std::string::npos; }

void emit(const char* c, double v, const char* unit, const char* better, long n, const char* impl) {
  std::printf("{\"case\": \"%s\", \"value\": %.4f, \"unit\": \"%s\", \"better\": \"%s\", \"n\": %ld, \"impl\": \"%s\"}\n",
              c, v, unit, better, n, impl);
  std::fflush(stdout);
}

// One producer process puts n messages and a stop marker; the main process gets them.
template <class Msg>
void throughput(const char* impl, Msg payload, Msg stop, bool (*is_stop)(const Msg&)) {
  long n = scale(5'000'000);
  mp::Queue<Msg> q(1024);
  mp::Process p(
      [n](mp::Queue<Msg> q, Msg m, Msg s) {
        for (long i = 0; i < n; ++i) q.put(m);
        q.put(s);
      },
      q, payload, stop);
  auto t0 = Clock::now();
  p.start();
  long got = 0;
  while (!is_stop(q.get())) ++got;
  double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  p.join();
  if (got != n) std::fprintf(stderr, "queue_bench: got %ld of %ld messages\n", got, n);
  emit("queue_throughput_64B", n / dt, "msg/s", "higher", n, impl);
}

void pingpong() {
  long n = scale(200'000);
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
  std::vector<double> s;
  s.reserve(n);
  for (long i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    qa.put("ping");
    (void)qb.get();
    s.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  qa.put("");
  echo.join();
  std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
  emit("queue_pingpong_rtt_p50", s[s.size() / 2], "us", "lower", n, "mp");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
  }
  if (wanted("queue_throughput_64B")) {
    using Bytes = std::array<char, 64>;
    Bytes m{}, stop{};
    m.fill('x');
    throughput<Bytes>("mp", m, stop, [](const Bytes& b) { return b[0] == 0; });
    throughput<std::string>("mp-string", std::string(64, 'x'), std::string(),
                            [](const std::string& b) { return b.empty(); });
  }
  if (wanted("queue_pingpong_rtt_p50")) pingpong();
}
