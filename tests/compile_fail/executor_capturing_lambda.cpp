// Must NOT compile: a lambda with captures submitted to a ProcessPoolExecutor.
#include <mp/futures.hpp>
int main() {
  mp::ProcessPoolExecutor ex(1);
  int k = 3;
  return ex.submit([k](int x) { return x + k; }, 1).result();
}
