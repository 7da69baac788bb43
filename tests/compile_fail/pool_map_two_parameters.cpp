// Must NOT compile: map with a function of two parameters (Python's starmap is meant).
#include <mp/pool.hpp>
#include <tuple>
#include <vector>
int add(int a, int b) { return a + b; }
int main() {
  mp::Pool pool(1);
  std::vector<std::tuple<int, int>> items{{1, 2}, {3, 4}};
  pool.map(add, items);
}
