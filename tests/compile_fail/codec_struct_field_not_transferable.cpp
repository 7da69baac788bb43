// Must NOT compile: a plain struct travels field by field, and a field that is an address
// (here a std::string_view) is refused with mp's own error naming the struct, the field's
// position and its type (FieldCheck<Order, 1, std::basic_string_view<char>>), issue 17.
#include <mp/codec.hpp>

#include <string_view>

struct Order {
  int qty = 0;
  std::string_view item;
};

int main() { (void)mp::codec::encode(Order{2, "tea"}); }
