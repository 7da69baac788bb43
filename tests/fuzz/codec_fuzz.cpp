// libFuzzer target for mp::codec::decode: the first input byte picks a representative type,
// the rest is decoded as that type. Any input either decodes or raises mp::CodecError, and
// whatever decodes re-encodes to a value that decodes equal. Anything else is a bug.
// Types 8 and 9 cover two bugs the fuzzer found (an empty arithmetic vector inside a
// cereal type made load_binary call memcpy(nullptr, p, 0); a byte other than 0/1 was
// copied into a bool); their reproducers are in corpus/codec/.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

#include "mp/codec.hpp"

namespace {

struct Task {
  std::string name;
  std::int32_t priority = 0;
  std::vector<std::string> tags;
  std::map<std::string, double> weights;
  template <class A>
  void serialize(A& ar) {
    ar(name, priority, tags, weights);
  }
};

struct Sample {
  std::string label;
  std::vector<double> values;  // empty ones were the memcpy(nullptr) bug
  std::optional<bool> flag;    // a non-0/1 byte was copied into a bool
  template <class A>
  void serialize(A& ar) {
    ar(label, values, flag);
  }
};

template <class T>
void check(std::string_view bytes) {
  T v;
  try {
    v = mp::codec::decode<T>(bytes);
  } catch (const mp::CodecError&) {
    return;
  }
  // Compare encodings, not values: doubles may be NaN. An unordered container may iterate
  // in another order after rebuilding, so there compare values (they hold no doubles).
  std::string once = mp::codec::encode(v);
  T again = mp::codec::decode<T>(once);
  bool same;
  if constexpr (requires { typename T::hasher; }) same = again == v;
  else same = mp::codec::encode(again) == once;
  if (!same) {
    std::fprintf(stderr, "codec: decode(encode(decode(x))) differs from decode(x)\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 10) {
    case 0: check<std::string>(bytes); break;
    case 1: check<std::vector<std::int32_t>>(bytes); break;
    case 2: check<std::map<std::string, std::list<double>>>(bytes); break;
    case 3: check<Task>(bytes); break;
    case 4: check<std::variant<std::int32_t, std::string, std::list<std::int64_t>>>(bytes); break;
    case 5: check<std::tuple<std::int64_t, std::string, std::set<std::int32_t>>>(bytes); break;
    case 6: check<std::unordered_map<std::int32_t, std::list<std::string>>>(bytes); break;
    case 7: check<std::vector<std::vector<std::string>>>(bytes); break;
    case 8: check<Sample>(bytes); break;
    default: check<std::list<std::optional<bool>>>(bytes); break;
  }
  return 0;
}
