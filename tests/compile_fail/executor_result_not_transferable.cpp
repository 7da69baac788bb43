// Must NOT compile: a task whose result mp::codec cannot encode (no serialize()).
#include <mp/futures.hpp>
#include <string>
struct Order {
  std::string item;  // not trivially copyable, and no serialize()
  int qty = 0;
};
Order make_order(int qty) { return {"tea", qty}; }
int main() {
  mp::ProcessPoolExecutor ex(1);
  ex.submit(make_order, 2);
}
