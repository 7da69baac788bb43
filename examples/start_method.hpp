// The pool examples take `--forkserver` to run the way Python 3.14 runs them on Linux by
// default: mp::set_start_method(mp::StartMethod::forkserver) first thing in main(), while
// the program is still single-threaded. Their output is the same either way (the suite
// runs both: tests/examples_pool_test.cpp).
#pragma once

#include <string_view>

#include <mp/process.hpp>

namespace mp_example {

inline void start_method_from_args(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--forkserver") mp::set_start_method(mp::StartMethod::forkserver);
}

}  // namespace mp_example
