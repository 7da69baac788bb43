// Must NOT compile: an argument of a type mp::codec cannot encode (no serialize()).
#include <mp/pool.hpp>
#include <string_view>
struct Order {
  std::string_view item;  // an address into this process: it means nothing in another one
  int qty = 0;
};
int total(Order o) { return o.qty; }
int main() {
  mp::Pool pool(1);
  return pool.apply(total, Order{"tea", 2});
}
