// Must NOT compile: a proxy calls a method with an argument its descriptor does not take
// (see mp/internal/managers/method.hpp): the server would fail to decode it at run time.
#include <mp/managers.hpp>
#include <string>
int main() {
  mp::DictProxy<int, int> d;
  using E = mp::Exposed<mp::managed::Dict<int, int>>;
  return d.call(E::getitem, std::string("key"));  // the key is an int
}
