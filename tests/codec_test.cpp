// Tests for mp/codec.hpp: round trips and refusal of corrupt input.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mp/codec.hpp"

namespace {
struct Order {
  std::string item;
  int qty = 0;
  std::vector<double> prices;
  std::optional<bool> gift;
  template <class A>
  void serialize(A& ar) {
    ar(item, qty, prices, gift);
  }
  bool operator==(const Order&) const = default;
};
struct Pod {
  int a;
  double b;
  std::array<char, 4> c;
  bool operator==(const Pod&) const = default;
};
}  // namespace

static_assert(mp::Transferable<int> && mp::Transferable<Pod> && mp::Transferable<std::string> &&
              mp::Transferable<Order> && mp::Transferable<std::map<std::string, std::vector<int>>>);
static_assert(!mp::Transferable<int*> && !mp::Transferable<const char*> && !mp::Transferable<int Pod::*>,
              "an address means nothing in another process");

// Issue 17: non-owning types would arrive as dangling addresses; they are refused, and so
// is anything holding one, however deep.
namespace {
struct WithView {
  int n;
  std::string_view name;
};
struct WithPointer {
  double x;
  const char* label;
};
struct WithReference {
  int& r;
};
struct PointerArray {
  const char* names[2];
};
struct DeepPointer {
  std::string s;
  std::vector<WithPointer> inner;
};
/// Trivially copyable, but mp::codec cannot look into it (private fields, a constructor).
class Opaque {
 public:
  Opaque() = default;
  explicit Opaque(int v) : v_(v) {}
  [[nodiscard]] int v() const { return v_; }

 private:
  int v_ = 0;
};
class DeclaredPlain {
 public:
  DeclaredPlain() = default;
  explicit DeclaredPlain(int v) : v_(v) {}
  [[nodiscard]] int v() const { return v_; }

 private:
  int v_ = 0;
};
}  // namespace
template <>
inline constexpr bool mp::is_pointer_free<DeclaredPlain> = true;

static_assert(!mp::Transferable<std::string_view> && !mp::Transferable<std::span<int>> &&
              !mp::Transferable<std::span<const char>>);
static_assert(!mp::Transferable<WithView> && !mp::Transferable<WithPointer> && !mp::Transferable<WithReference> &&
              !mp::Transferable<PointerArray> && !mp::Transferable<DeepPointer>);
static_assert(!mp::Transferable<std::vector<int*>> && !mp::Transferable<std::vector<std::string_view>> &&
              !mp::Transferable<std::optional<const char*>> && !mp::Transferable<std::pair<int, int*>> &&
              !mp::Transferable<std::map<int, std::string_view>> && !mp::Transferable<std::array<int*, 2>>);
static_assert(!mp::Transferable<Opaque>, "a class the codec cannot look into must say it holds no address");
static_assert(mp::Transferable<DeclaredPlain> && mp::TriviallyTransferable<DeclaredPlain>);

// Issue 17: a plain struct of strings, vectors and nested structs travels without serialize().
namespace {
struct Point {
  int x, y;
  bool operator==(const Point&) const = default;
};
struct Report {  // C arrays count as one field each
  int server;
  int daemons[2];
  char name[16];
};
struct Shipment {
  std::string item;
  std::vector<double> prices;
  Point where;
  std::map<int, Point> stops;
  std::optional<std::string> note;
  std::chrono::milliseconds eta;
  bool operator==(const Shipment&) const = default;
};
}  // namespace
struct Stamp {  // clocks' values are plain numbers; GCC 12 and Clang 14 both count 3 fields
  int id;
  std::chrono::steady_clock::time_point at;
  std::chrono::milliseconds took;
};
static_assert(mp::internal::reflect::count_fields<Stamp>() == 3 && mp::internal::reflect::count_fields<Report>() == 3);
static_assert(mp::TriviallyTransferable<Point> && mp::TriviallyTransferable<Report> && mp::TriviallyTransferable<Stamp>);
static_assert(mp::Transferable<Shipment> && mp::Transferable<std::vector<Shipment>> &&
              mp::Transferable<std::map<std::string, Shipment>>);

TEST(Codec, PlainStructsTravelFieldByFieldWithoutSerialize) {
  Shipment s{"tea", {1.5, 2.5}, {3, 4}, {{1, {5, 6}}, {2, {7, 8}}}, "fragile", std::chrono::milliseconds(250)};
  EXPECT_EQ(mp::codec::decode<Shipment>(mp::codec::encode(s)), s);
  std::vector<Shipment> many{s, Shipment{"rice", {}, {0, 0}, {}, std::nullopt, {}}};
  EXPECT_EQ(mp::codec::decode<std::vector<Shipment>>(mp::codec::encode(many)), many);
  Report r{7, {8, 9}, "server"};
  Report back = mp::codec::decode<Report>(mp::codec::encode(r));
  EXPECT_EQ(back.daemons[1], 9);
  EXPECT_STREQ(back.name, "server");
  // Truncated field-by-field input is refused like any other.
  std::string bytes = mp::codec::encode(s);
  EXPECT_THROW((void)mp::codec::decode<Shipment>(std::string_view(bytes).substr(0, bytes.size() - 3)),
               mp::CodecError);
}

TEST(Codec, RoundTripsEveryKindOfType) {
  EXPECT_EQ(mp::codec::decode<int>(mp::codec::encode(42)), 42);
  Pod p{1, 2.5, {'a', 'b', 'c', 'd'}};
  EXPECT_EQ(mp::codec::decode<Pod>(mp::codec::encode(p)), p);
  EXPECT_EQ(mp::codec::decode<std::string>(mp::codec::encode(std::string("tea"))), "tea");
  std::vector<int> v{1, 2, 3};
  EXPECT_EQ(mp::codec::decode<std::vector<int>>(mp::codec::encode(v)), v);
  Order o{"tea", 2, {1.5, 2.5}, true};
  EXPECT_EQ(mp::codec::decode<Order>(mp::codec::encode(o)), o);
  Order empty{"", 0, {}, std::nullopt};  // empty vector inside a cereal type: no memcpy(nullptr)
  EXPECT_EQ(mp::codec::decode<Order>(mp::codec::encode(empty)), empty);
  std::map<std::string, std::vector<int>> m{{"a", {1}}, {"b", {}}};
  EXPECT_EQ((mp::codec::decode<std::map<std::string, std::vector<int>>>(mp::codec::encode(m))), m);
}

TEST(Codec, TruncatedInputRaisesCodecError) {
  std::string bytes = mp::codec::encode(Order{"tea", 2, {1.5}, false});
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_THROW(mp::codec::decode<Order>(std::string_view(bytes).substr(0, n)), mp::CodecError) << n;
  EXPECT_THROW(mp::codec::decode<int>("abc"), mp::CodecError);
  EXPECT_THROW(mp::codec::decode<std::vector<int>>("abcde"), mp::CodecError);
}

TEST(Codec, TrailingBytesRaiseCodecError) {
  std::string bytes = mp::codec::encode(Order{"tea", 2, {}, std::nullopt}) + "x";
  EXPECT_THROW(mp::codec::decode<Order>(bytes), mp::CodecError);
}

TEST(Codec, ImpossibleLengthIsRefusedBeforeAllocating) {
  std::string bytes(8, '\0');
  std::uint64_t huge = std::uint64_t(1) << 60;
  std::memcpy(bytes.data(), &huge, 8);
  try {
    mp::codec::decode<std::vector<std::string>>(bytes);
    FAIL() << "a 2^60-element length was accepted";
  } catch (const mp::CodecError& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds"), std::string::npos) << e.what();
  }
}

TEST(Codec, ByteThatIsNotABoolIsRefused) {
  // Inside a cereal type a bool is decoded field by field and checked. (A trivially
  // copyable type is copied byte for byte: its integrity is the transport's job.)
  std::string bytes = mp::codec::encode(Order{"tea", 2, {}, true});
  ASSERT_EQ(bytes.back(), 1);
  bytes.back() = 2;
  EXPECT_THROW(mp::codec::decode<Order>(bytes), mp::CodecError);
}
