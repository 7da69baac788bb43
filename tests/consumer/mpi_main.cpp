// The consumer project's mp::mpi program (find_package(mp COMPONENTS mpi)): built and
// linked against the installed mp::mpi to prove the component is usable.
#include <cstdio>

#include <mp/mpi.hpp>

int main() {
  mp::mpi::init();  // ranks other than 0 serve from here and never return
  std::printf("consumer_mpi: rank %d of %d\n", mp::mpi::rank(), mp::mpi::size());
}
