// Must NOT compile: a Queue of a type mp::codec cannot carry is rejected at compile time
// with the codec's explanation (checked by tests/queue_compile_fail.cmake).
#include <mp/queue.hpp>

struct Opaque {
  const char* name;  // an address into this process: it means nothing in another one
};

int main() {
  mp::Queue<Opaque> q;
  q.put(Opaque{"x"});
}
