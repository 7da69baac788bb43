// libFuzzer target for mp::pickle::loads: any input either decodes or raises an
// mp::pickle::PickleError, and whatever decodes re-encodes stably: for every protocol,
// dumps(v) decodes again and re-encodes to the same bytes (dumps(loads(dumps(v))) == dumps(v);
// at protocol 2 after one pass of Python 2 name normalization).
// Any other exception, crash, sanitizer report, hang or unbounded allocation is a bug.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mp/pickle.hpp"

namespace pk = mp::pickle;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  pk::Value v;
  try {
    v = pk::loads(in);
  } catch (const pk::PickleError&) {
    return 0;
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
