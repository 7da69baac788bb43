// Must NOT compile: sending a type mp::codec cannot encode through a Connection.
#include <mp/connection.hpp>
#include <string>
struct Order {
  std::string item;  // not trivially copyable, and no serialize()
  int qty = 0;
};
int main() {
  auto [a, b] = mp::Pipe();
  a.send(Order{"tea", 2});
}
