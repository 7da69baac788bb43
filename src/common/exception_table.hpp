// How an exception crosses a process boundary: the one table behind every boundary that
// sends an exception as a name and a message and raises it again on the other side.
//
// Three boundaries, three wire spellings, one table (exception_table.cpp) whose columns
// are the C++ type and its names on each wire:
//   - pool results (mp::Pool's workers, mp::mpi's ranks): the C++ name, as demangled from
//     the thrown type ("mp::ValueError", "std::out_of_range");
//   - native manager replies: a short Python-style name ("KeyError", "Empty", "CodecError");
//   - CPython manager replies: the Python class (module and name: "_queue.Empty").
// A receiver rebuilds the mp type of that name when the table says so for its boundary,
// else an mp::RemoteError carrying the name and message. The spellings and the rebuilt
// sets are those each protocol has always used: peers and tests rely on them.
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace mp::internal {

// ----------------------------------------------------------------- pool and mp::mpi results

/// Rebuilds an exception that a task threw in another process from its C++ name and
/// message: the same type for the standard exceptions (std::runtime_error,
/// std::invalid_argument, std::out_of_range, ...) and mp's own (mp::ValueError, ...),
/// mp::RemoteError(type, message) for anything else.
std::exception_ptr remote_exception(std::string_view type_name, std::string_view message);
/// The C++ name (demangled; an mp::RemoteError's own type name) and message of the
/// exception being handled (call inside catch).
void describe_current_exception(std::string& type_name, std::string& message);

// ----------------------------------------------------------------- manager replies

namespace exceptions {

/// The native manager wire's name for `e` ("KeyError", "Empty", "CodecError"...); an
/// mp::RemoteError's own type name; "RuntimeError" for an unknown std::exception.
[[nodiscard]] std::string native_name(const std::exception& e);
/// Throws what a native reply of type `name` stands for: the mp type of that name when
/// managers rebuild it (mp::KeyError, mp::Empty, ...), else mp::RemoteError(name, message).
[[noreturn]] void raise_native(const std::string& name, const std::string& message);

/// The Python class that stands for `e` on CPython's wire, and the message it carries.
struct PythonException {
  std::string module;  // "builtins", "_queue", "queue", "threading", "multiprocessing.context"
  std::string name;    // "KeyError", "Empty", ...
  std::string message;
};
[[nodiscard]] PythonException to_python(const std::exception& e);
/// The type name a CPython-protocol traceback shows for `e`: native_name(), except that
/// an mp::TypeError shows as "TypeError" (which the native wire sends as "CodecError").
[[nodiscard]] std::string traceback_name(const std::exception& e);
/// Throws what a Python exception `module`.`name` (`dotted`) stands for: for the modules
/// whose exceptions mp models (builtins, queue, threading, multiprocessing), as
/// raise_native(name, message); anything else mp::RemoteError(dotted, message).
[[noreturn]] void raise_python(const std::string& module, const std::string& name, const std::string& dotted,
                               const std::string& message);

}  // namespace exceptions
}  // namespace mp::internal
