// mp::mpi::Pool: the Pool API over the ranks of an MPI job. Run it with
//   mpirun -n 3 ./mpi_pool                            (one host: ranks 1 and 2 serve)
//   mpirun --hostfile hosts -n 9 ./mpi_pool           (several hosts; see docs/mpi.md)
// Rank 0 runs main(); the other ranks serve tasks from mp::mpi::init() on. Without
// mpirun it is a job of one rank and the tasks run on rank 0.
#include <cstdio>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "mp/mpi.hpp"

// Functions reach other ranks by name: register each one at namespace scope.
long square(long x) { return x * x; }
MP_REMOTE(square);

int served_by(int) { return mp::mpi::rank(); }
MP_REMOTE(served_by);

std::string greet(std::string name, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += "hello " + name + (i + 1 < times ? ", " : "");
  return out;
}
MP_REMOTE(greet);

double checked_sqrt(double x) {
  if (x < 0) throw mp::ValueError("no negative numbers: " + std::to_string(x));
  return x < 1 ? x : x / 2;  // (not a real square root: a stand-in for work)
}
MP_REMOTE(checked_sqrt);

int main() {
  mp::mpi::init();  // ranks other than 0 serve from here and never return
  std::printf("mpi_pool: rank %d of a %d-rank job runs main()\n", mp::mpi::rank(), mp::mpi::size());

  mp::mpi::Pool pool;  // every serving rank (code as with mp::Pool, except the type)
  std::vector<long> numbers(100);  // Python's range(100); a vector, as Clang 14 cannot compile views::iota here
  std::iota(numbers.begin(), numbers.end(), 0L);
  auto sq = pool.map(square, numbers);
  std::printf("sum of squares 0..99 = %ld\n", std::accumulate(sq.begin(), sq.end(), 0L));

  std::vector<int> tasks(20);
  std::iota(tasks.begin(), tasks.end(), 0);
  auto ranks = pool.map(served_by, tasks, 1);
  std::set<int> seen(ranks.begin(), ranks.end());
  std::printf("served by ranks");
  for (int r : seen) std::printf(" %d", r);
  std::printf("\n");

  auto r = pool.apply_async(greet, mp::args(std::string("mpi"), 2),
                            [](const std::string& s) { std::printf("callback on rank 0: %s\n", s.c_str()); });
  r.wait();

  try {
    pool.apply(checked_sqrt, -4.0);
  } catch (const mp::ValueError& e) {
    std::printf("the task's exception came back as mp::ValueError: %s\n", e.what());
  }

  mp::mpi::Executor ex;
  auto f = ex.submit(square, 12L);
  std::printf("Executor.submit(square, 12).result() = %ld\n", f.result());
  std::printf("done (the serving ranks stop when rank 0 exits)\n");
}
