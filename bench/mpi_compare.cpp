// mp::mpi::Pool against mp::Pool on the same CPU-bound map (issue 10's benchmark).
//
//   mpirun -n 3 ./mp_bench_mpi      # 2 serving ranks vs mp::Pool(2)
//   bench/mpi_compare.sh            # both 2 and 4, as a table
//
// Rank 0 times, best of `--repeat` runs: the map run serially on rank 0, on mp::Pool with
// as many worker processes as the job has serving ranks, and on mp::mpi::Pool. Prints one
// markdown table row: workers | items | serial | mp::Pool | mp::mpi::Pool | mpi/Pool.
// On one host the two pools do the same work; the difference is the transport (shared
// memory rings vs MPI messages) and dispatch. mp::mpi::Pool's point is other hosts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <ranges>
#include <vector>

#include "mp/mpi.hpp"
#include "mp/pool.hpp"

namespace {

/// CPU-bound: counts the primes below 20000 + 10 * seed by trial division (~ms per item).
long count_primes(int seed) {
  long n = 20000 + 10L * seed, count = 0;
  for (long k = 2; k < n; ++k) {
    bool prime = true;
    for (long d = 2; d * d <= k; ++d)
      if (k % d == 0) {
        prime = false;
        break;
      }
    count += prime;
  }
  return count;
}
MP_REMOTE(count_primes);

template <class Fn>
double best_ms(int repeat, Fn fn) {
  double best = 1e300;
  for (int i = 0; i < repeat; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int square(int x) { return x * x; }
MP_REMOTE(square);

struct Row {
  double serial, pool, mpi;
};

/// Times `fn` over `items` serially, on mp::Pool(workers) and on mp::mpi::Pool(workers).
template <class F>
Row measure(F fn, int items, std::size_t chunksize, int workers, int repeat) {
  auto input = std::views::iota(0, items);
  long expect = 0, got_pool = 0, got_mpi = 0;
  Row r{};
  r.serial = best_ms(1, [&] {
    expect = 0;
    for (int i : input) expect += fn(i);
  });
  {
    mp::Pool pool(workers);
    r.pool = best_ms(repeat, [&] {
      auto v = pool.map(fn, input, chunksize);
      got_pool = std::accumulate(v.begin(), v.end(), 0L);
    });
  }
  {
    mp::mpi::Pool pool(workers);
    r.mpi = best_ms(repeat, [&] {
      auto v = pool.map(fn, input, chunksize);
      got_mpi = std::accumulate(v.begin(), v.end(), 0L);
    });
  }
  if (got_pool != expect || got_mpi != expect) {
    std::fprintf(stderr, "mp_bench_mpi: wrong results (%ld, %ld, expected %ld)\n", got_pool, got_mpi, expect);
    std::exit(1);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  mp::mpi::init();  // serving ranks stay here
  int items = 96, tiny = 2000, repeat = 3;
  bool header = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--items") && i + 1 < argc) items = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--tiny") && i + 1 < argc) tiny = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--header")) header = true;
  }
  int workers = std::max(1, mp::mpi::size() - 1);
  Row cpu = measure(count_primes, items, 0, workers, repeat);
  Row small = measure(square, tiny, 1, workers, repeat);
  if (header)
    std::printf("| case | workers | serial (ms) | mp::Pool (ms) | mp::mpi::Pool (ms) | mpi / Pool |\n"
                "|---|--:|--:|--:|--:|--:|\n");
  std::printf("| %d x count_primes (CPU-bound, auto chunksize) | %d | %.1f | %.1f | %.1f | %.2f |\n", items, workers,
              cpu.serial, cpu.pool, cpu.mpi, cpu.mpi / cpu.pool);
  std::printf("| %d x square, chunksize 1 (per-task cost) | %d | %.2f | %.1f | %.1f | %.2f |\n", tiny, workers,
              small.serial, small.pool, small.mpi, small.mpi / small.pool);
  return 0;
}
