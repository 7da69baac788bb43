// Must NOT compile: a Queue of a type mp::codec cannot carry is rejected at compile time
// with the codec's explanation (checked by tests/queue_compile_fail.cmake).
#include <mp/queue.hpp>

#include <string>

struct Opaque {
  std::string name;  // not trivially copyable, and no serialize()
};

int main() {
  mp::Queue<Opaque> q;
  q.put(Opaque{"x"});
}
