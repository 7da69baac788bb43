// Must NOT compile: map over a count (Python's map(f, range(n)) written as map(f, n)).
#include <mp/pool.hpp>
int square(int x) { return x * x; }
int main() {
  mp::Pool pool(1);
  pool.map(square, 10);
}
