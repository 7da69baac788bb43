// Must NOT compile: a callback after f's arguments without mp::args (Python's
// apply_async(add, (2, 3), callback=cb)); see tests/misuse_compile_fail.cmake.
#include <mp/pool.hpp>
int add(int a, int b) { return a + b; }
int main() {
  mp::Pool pool(1);
  pool.apply_async(add, 2, 3, [](int) {});  // should be mp::args(2, 3), callback
}
