// Readable C++ type names for the messages that report an exception's type
// ("Process <name>:", "Exception in thread <name>:", mp::RemoteError's type).
#pragma once

#include <string>

namespace mp::internal {

/// The demangled form of `mangled` (a std::type_info::name()), without libstdc++'s ABI
/// namespace ("std::__cxx11::basic_string" reads "std::basic_string"); `mangled` itself
/// when it does not demangle.
std::string demangle(const char* mangled);

}  // namespace mp::internal
