// The name table behind MP_REMOTE. See include/mp/mpi.hpp.
//
// Registrations run during static initialization, in an unspecified order across
// translation units, so the table is a function-local static (constructed on first use)
// and register_function never throws: a conflict (one name, two different functions) is
// remembered and reported when that name is used.
#include <dlfcn.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <typeindex>

#include "mp/mpi.hpp"
#include "mpi/internal.hpp"

namespace mp::mpi::internal {
namespace {

struct Table {
  std::mutex mu;
  std::map<std::string, Entry, std::less<>> by_name;
  std::map<const void*, std::string> by_fn;
  std::map<std::type_index, std::string> by_type;
  std::map<std::string, std::string, std::less<>> conflicts;  // name -> what clashed
};

Table& table() {
  static Table* t = new Table;  // never destroyed: tasks may run during static destruction
  return *t;
}

std::string describe_fn(const void* fn) {
  Dl_info info{};
  if (::dladdr(fn, &info) && info.dli_sname) return demangle(info.dli_sname);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", fn);
  return std::string("the function at ") + buf;
}

}  // namespace

void register_function(Entry e, const void* fn_key, const std::type_info* type_key) noexcept {
  try {
    Table& t = table();
    std::lock_guard g(t.mu);
    auto it = t.by_name.find(e.name);
    if (it != t.by_name.end()) {
      bool same = it->second.signature == e.signature &&
                  (fn_key ? it->second.fn == e.fn : t.by_type.count(std::type_index(*type_key)) != 0);
      if (!same)
        t.conflicts.emplace(e.name, "two different functions are registered as '" + e.name +
                                        "'; register them under qualified names (MP_REMOTE(ns::" + e.name + "))");
      if (fn_key) t.by_fn.emplace(fn_key, e.name);
      if (type_key) t.by_type.emplace(std::type_index(*type_key), e.name);
      return;  // the same function registered again (a header included twice): fine
    }
    if (fn_key) t.by_fn.emplace(fn_key, e.name);
    if (type_key) t.by_type.emplace(std::type_index(*type_key), e.name);
    std::string name = e.name;
    t.by_name.emplace(std::move(name), std::move(e));
  } catch (...) {
    std::fprintf(stderr, "mp::mpi: out of memory while registering '%s'\n", e.name.c_str());
  }
}

namespace {
const Entry& checked(Table& t, const std::string& name) {
  if (auto c = t.conflicts.find(name); c != t.conflicts.end()) throw NotRegistered("mp::mpi: " + c->second);
  return t.by_name.find(name)->second;
}
}  // namespace

const Entry& entry_for_function(const void* fn) {
  Table& t = table();
  std::lock_guard g(t.mu);
  auto it = t.by_fn.find(fn);
  if (it == t.by_fn.end())
    throw NotRegistered("mp::mpi::Pool: " + describe_fn(fn) +
                        " is not registered, so other ranks cannot call it: add MP_REMOTE(<its name>) at namespace "
                        "scope after its definition");
  return checked(t, it->second);
}

const Entry& entry_for_type(const std::type_info& type) {
  Table& t = table();
  std::lock_guard g(t.mu);
  auto it = t.by_type.find(std::type_index(type));
  if (it == t.by_type.end())
    throw NotRegistered("mp::mpi::Pool: the function object " + demangle(type.name()) +
                        " is not registered: add MP_REMOTE(<its name>) at namespace scope");
  return checked(t, it->second);
}

const Entry* entry_for_name(std::string_view name) {
  Table& t = table();
  std::lock_guard g(t.mu);
  if (t.conflicts.count(name)) return nullptr;
  auto it = t.by_name.find(name);
  return it == t.by_name.end() ? nullptr : &it->second;
}

}  // namespace mp::mpi::internal
