// Must NOT compile: an argument of a type mp::codec cannot encode (no serialize()).
#include <mp/pool.hpp>
#include <string>
struct Order {
  std::string item;  // not trivially copyable, and no serialize()
  int qty = 0;
};
int total(Order o) { return o.qty; }
int main() {
  mp::Pool pool(1);
  return pool.apply(total, Order{"tea", 2});
}
