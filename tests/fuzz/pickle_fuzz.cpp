// libFuzzer target for mp::pickle::loads: any input either decodes or raises an
// mp::pickle::PickleError, and whatever decodes re-encodes stably: for every protocol,
// dumps(v) decodes again and re-encodes to the same bytes (dumps(loads(dumps(v))) == dumps(v);
// at protocol 2 after one pass of Python 2 name normalization).
// Any other exception, crash, sanitizer report, hang or unbounded allocation is a bug, and
// so is a comparison of decoded keys that takes more than O(size^2) steps.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mp/pickle.hpp"
#include "pickle/value_access.hpp"

namespace pk = mp::pickle;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  pk::Value v;
  pk::equality_stats() = {};
  try {
    v = pk::loads(in);
  } catch (const pk::PickleError&) {
    return 0;
  }
  // Decoding time stays polynomial: no comparison of set elements or dict keys made while
  // decoding takes more steps than O(size^2) (value.cpp); a count, so no timing noise.
  const std::uint64_t bound = 4 * (size + 16) * (size + 16);
  if (pk::equality_stats().largest > bound) {
    std::fprintf(stderr, "a comparison took %llu steps on a %zu-byte input (bound %llu)\n",
                 static_cast<unsigned long long>(pk::equality_stats().largest), size,
                 static_cast<unsigned long long>(bound));
    std::abort();
  }
  for (int proto = 2; proto <= pk::highest_protocol; ++proto) {
    std::string once;
    try {
      once = pk::dumps(v, proto);
    } catch (const pk::PicklingError&) {
      continue;  // e.g. a global name with a newline cannot be written at protocol < 4
    }
    // Protocol 2-3 spell sets and bytes as REDUCE calls, one or two levels deeper.
    pk::Value w = pk::loads(once, {.max_depth = 4000});
    std::string twice = pk::dumps(w, proto);
    // At protocol 2 the first pass may normalize Python 2 module names (__builtin__ ->
    // builtins), as CPython's fix_imports does; from then on the encoding must be stable.
    std::string thrice = pk::dumps(pk::loads(twice, {.max_depth = 4000}), proto);
    if ((proto >= 3 && twice != once) || thrice != twice) {
      std::fprintf(stderr, "protocol %d: re-encoding differs\nvalue: %s\nagain: %s\n", proto, v.repr(2000).c_str(),
                   w.repr(2000).c_str());
      std::abort();
    }
  }
  return 0;
}
