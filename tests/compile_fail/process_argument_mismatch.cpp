// Must NOT compile: Process arguments given as a tuple (Python's args=(1, "x")).
#include <mp/process.hpp>
#include <string>
#include <tuple>
void work(int n, std::string s) { (void)n, (void)s; }
int main() {
  mp::Process p(work, std::make_tuple(1, std::string("x")));
  p.start();
}
