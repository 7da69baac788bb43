// Must NOT compile: a task whose result mp::codec cannot encode (no serialize()).
#include <mp/futures.hpp>
#include <string_view>
struct Order {
  std::string_view item;  // an address into this process: it means nothing in another one
  int qty = 0;
};
Order make_order(int qty) { return {"tea", qty}; }
int main() {
  mp::ProcessPoolExecutor ex(1);
  ex.submit(make_order, 2);
}
