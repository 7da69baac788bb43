// The exception table: each exception type that crosses a process boundary, with its
// name on each wire and which receivers rebuild it. See exception_table.hpp.
#include "common/exception_table.hpp"

#include <cxxabi.h>

#include <new>
#include <stdexcept>
#include <typeinfo>

#include "common/type_name.hpp"
#include "mp/errors.hpp"

namespace mp::internal {
namespace {

/// Which boundaries a row takes part in.
enum : unsigned {
  kPool = 1,         // pool and mp::mpi results rebuild it from `cpp`
  kManagers = 2,     // manager replies (native and CPython) rebuild it from `name`
  kNativeSends = 4,  // the native manager wire sends it as `name`
};

struct Row {
  bool (*is)(const std::exception&);
  std::exception_ptr (*make)(std::string_view message);  // nullptr: not rebuilt from a message
  std::string_view cpp;                                  // pool wire
  std::string_view name;                                 // native manager wire, tracebacks
  std::string_view py_module, py_name;                   // CPython manager wire
  unsigned flags;
};

template <class E>
bool is(const std::exception& e) {
  return dynamic_cast<const E*>(&e) != nullptr;
}
template <class E>
std::exception_ptr make(std::string_view message) {
  return std::make_exception_ptr(E(std::string(message)));
}
std::exception_ptr make_bad_alloc(std::string_view) { return std::make_exception_ptr(std::bad_alloc()); }

template <class E>
constexpr Row row(std::string_view cpp, std::string_view name, std::string_view py_module, std::string_view py_name,
                  unsigned flags) {
  return Row{is<E>, make<E>, cpp, name, py_module, py_name, flags};
}
constexpr unsigned kEverywhere = kPool | kManagers | kNativeSends;
constexpr unsigned kManagersOnly = kManagers | kNativeSends;

// Senders take the first row whose type matches, so a derived type comes before its base
// (AuthenticationError before ProcessError, TypeError before CodecError). A row without
// kNativeSends is skipped by the native wire, which then finds the base's row: mp::TypeError
// goes out as "CodecError", as it always has. Rows without a name exist for the pool alone.
constexpr Row kTable[] = {
    // mp's exceptions, named after Python's.
    row<KeyError>("mp::KeyError", "KeyError", "builtins", "KeyError", kManagersOnly),
    row<IndexError>("mp::IndexError", "IndexError", "builtins", "IndexError", kManagersOnly),
    row<AttributeError>("mp::AttributeError", "AttributeError", "builtins", "AttributeError", kManagersOnly),
    row<Empty>("mp::Empty", "Empty", "_queue", "Empty", kEverywhere),
    row<Full>("mp::Full", "Full", "queue", "Full", kEverywhere),
    row<TimeoutError>("mp::TimeoutError", "TimeoutError", "builtins", "TimeoutError", kEverywhere),
    row<EOFError>("mp::EOFError", "EOFError", "builtins", "EOFError", kEverywhere),
    row<ValueError>("mp::ValueError", "ValueError", "builtins", "ValueError", kEverywhere),
    row<BrokenBarrierError>("mp::BrokenBarrierError", "BrokenBarrierError", "threading", "BrokenBarrierError",
                            kManagersOnly),
    row<TypeError>("mp::TypeError", "TypeError", "builtins", "TypeError", 0),
    row<CodecError>("mp::CodecError", "CodecError", "builtins", "ValueError", kEverywhere),
    row<AuthenticationError>("mp::AuthenticationError", "AuthenticationError", "multiprocessing.context",
                             "AuthenticationError", kManagersOnly),
    row<ProcessError>("mp::ProcessError", "ProcessError", "multiprocessing.context", "ProcessError", kEverywhere),
    // An OSError needs its errno: it is named, never rebuilt.
    Row{is<OSError>, nullptr, "mp::OSError", "OSError", "builtins", "OSError", kNativeSends},
    row<std::out_of_range>("std::out_of_range", "IndexError", "builtins", "IndexError", kPool | kNativeSends),
    Row{is<std::bad_alloc>, make_bad_alloc, "std::bad_alloc", "MemoryError", "builtins", "MemoryError",
        kPool | kNativeSends},
    row<RuntimeError>("mp::RuntimeError", "RuntimeError", "builtins", "RuntimeError", kEverywhere),
    row<BrokenPool>("mp::BrokenPool", "", "", "", kPool),
    row<Error>("mp::Error", "", "", "", kPool),
    // The standard exceptions a task may throw.
    row<std::runtime_error>("std::runtime_error", "", "", "", kPool),
    row<std::logic_error>("std::logic_error", "", "", "", kPool),
    row<std::invalid_argument>("std::invalid_argument", "", "", "", kPool),
    row<std::domain_error>("std::domain_error", "", "", "", kPool),
    row<std::length_error>("std::length_error", "", "", "", kPool),
    row<std::range_error>("std::range_error", "", "", "", kPool),
    row<std::overflow_error>("std::overflow_error", "", "", "", kPool),
    row<std::underflow_error>("std::underflow_error", "", "", "", kPool),
};

/// What a sender says about an exception no row names.
constexpr std::string_view kUnknown = "RuntimeError";

/// The first row for `e` that has a name (with kNativeSends: that the native wire sends).
const Row* row_for(const std::exception& e, bool native) {
  for (const Row& r : kTable)
    if (!r.name.empty() && (!native || (r.flags & kNativeSends)) && r.is(e)) return &r;
  return nullptr;
}

/// The row a receiver rebuilds from `name` in column `col`, or nullptr.
const Row* rebuilt_from(std::string_view Row::*col, std::string_view name, unsigned boundary) {
  for (const Row& r : kTable)
    if ((r.flags & boundary) && r.make && r.*col == name) return &r;
  return nullptr;
}

}  // namespace

std::exception_ptr remote_exception(std::string_view type, std::string_view msg) {
  if (const Row* r = rebuilt_from(&Row::cpp, type, kPool)) return r->make(msg);
  return std::make_exception_ptr(RemoteError(std::string(type), std::string(msg)));
}

void describe_current_exception(std::string& type, std::string& msg) {
  try {
    throw;
  } catch (const RemoteError& e) {
    type = e.type_name();
    msg = e.message();
  } catch (const std::exception& e) {
    type = demangle(typeid(e).name());
    msg = e.what();
  } catch (...) {
    auto* t = abi::__cxa_current_exception_type();
    type = t ? demangle(t->name()) : "unknown exception";
    msg = "(not a std::exception)";
  }
}

namespace exceptions {

std::string native_name(const std::exception& e) {
  if (auto* r = dynamic_cast<const RemoteError*>(&e)) return r->type_name();
  const Row* r = row_for(e, true);
  return std::string(r ? r->name : kUnknown);
}

void raise_native(const std::string& name, const std::string& message) {
  if (const Row* r = rebuilt_from(&Row::name, name, kManagers)) std::rethrow_exception(r->make(message));
  throw RemoteError(name, message);
}

PythonException to_python(const std::exception& e) {
  std::string message = e.what();
  const Row* r = nullptr;
  if (auto* remote = dynamic_cast<const RemoteError*>(&e)) {
    // Another process's exception: the Python class of its name, if the native wire has one.
    for (const Row& x : kTable)
      if ((x.flags & kNativeSends) && x.name == remote->type_name()) {
        r = &x;
        break;
      }
    if (!r) return {"builtins", std::string(kUnknown), remote->type_name() + ": " + message};
  } else {
    r = row_for(e, false);
  }
  if (!r) return {"builtins", std::string(kUnknown), std::move(message)};
  return {std::string(r->py_module), std::string(r->py_name), std::move(message)};
}

std::string traceback_name(const std::exception& e) {
  if (auto* r = dynamic_cast<const RemoteError*>(&e)) return r->type_name();
  const Row* r = row_for(e, false);
  return std::string(r ? r->name : kUnknown);
}

void raise_python(const std::string& module, const std::string& name, const std::string& dotted,
                  const std::string& message) {
  static constexpr std::string_view kModelled[] = {"builtins",  "_queue",          "queue",
                                                   "threading", "multiprocessing", "multiprocessing.context"};
  for (std::string_view m : kModelled)
    if (m == module) raise_native(name, message);
  throw RemoteError(dotted, message);
}

}  // namespace exceptions
}  // namespace mp::internal
