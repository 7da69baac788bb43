// Must NOT compile: sending a type mp::codec cannot encode through a Connection.
#include <mp/connection.hpp>
#include <string_view>
struct Order {
  std::string_view item;  // an address into this process: it means nothing in another one
  int qty = 0;
};
int main() {
  auto [a, b] = mp::Pipe();
  a.send(Order{"tea", 2});
}
