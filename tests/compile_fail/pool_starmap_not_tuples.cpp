// Must NOT compile: starmap over items that are not tuples of arguments.
#include <mp/pool.hpp>
#include <vector>
int square(int x) { return x * x; }
int main() {
  mp::Pool pool(1);
  pool.starmap(square, std::vector<int>{1, 2, 3});
}
