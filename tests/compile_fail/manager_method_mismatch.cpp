// Must NOT compile: the server binds a function whose signature differs from the method's
// descriptor (see mp/internal/managers/method.hpp). Found only at run time, as a decode
// error, when server table and proxy each spelled the method themselves.
#include <mp/managers.hpp>
struct Counter {
  long n = 0;
};
template <>
struct mp::Exposed<Counter> {
  static constexpr bool serialized = true;
  static std::string name() { return "Counter"; }
  static constexpr mp::Method<"add", long(long)> add{};
  static void methods(mp::MethodTable<Counter>& t) {
    t.def(add, +[](Counter& c, int delta) -> long { return c.n += delta; });  // int, not long
  }
};
int main() { (void)mp::internal::manager::method_table<Counter>(); }
