// Must NOT compile: a lambda with captures cannot be sent to a Pool worker (see pool.hpp).
#include <mp/pool.hpp>
int main() { mp::Pool p(1); int k = 3; return p.apply([k](int x) { return x + k; }, 1); }
