#include "common/type_name.hpp"

#include <cxxabi.h>

#include <cstdlib>

namespace mp::internal {

std::string demangle(const char* mangled) {
  int status = 0;
  char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && s ? s : mangled;
  std::free(s);
  for (auto p = out.find("__cxx11::"); p != std::string::npos; p = out.find("__cxx11::")) out.erase(p, 9);
  return out;
}

}  // namespace mp::internal
