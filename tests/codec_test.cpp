// Tests for mp/codec.hpp: round trips and refusal of corrupt input.
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <optional>
#include <string>
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
