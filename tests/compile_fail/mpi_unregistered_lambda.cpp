// Must NOT compile: a lambda sent to mp::mpi::Pool without MP_REMOTE (tests/mpi.cmake).
#include <vector>

#include "mp/mpi.hpp"

constexpr auto twice = [](int x) { return 2 * x; };  // no MP_REMOTE(twice)

int main() {
  mp::mpi::Pool pool;
  pool.map(twice, std::vector<int>{1, 2});
}
