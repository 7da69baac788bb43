// Must NOT compile: apply's arguments do not match f's parameters (one is missing).
#include <mp/pool.hpp>
int add(int a, int b) { return a + b; }
int main() {
  mp::Pool pool(1);
  return pool.apply(add, 2);
}
