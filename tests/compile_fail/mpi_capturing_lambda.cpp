// Must NOT compile: a lambda with captures sent to mp::mpi::Pool (tests/mpi.cmake).
#include <vector>

#include "mp/mpi.hpp"

int main() {
  int k = 3;
  mp::mpi::Pool pool;
  pool.map([k](int x) { return k * x; }, std::vector<int>{1, 2});
}
