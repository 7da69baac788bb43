// src/managers/registry.hpp — the objects a manager server holds, for both protocols.
//
// One table: ident -> (object, reference count), behind one mutex. The two protocols count
// references by two policies of it:
// - native (ServerCore): every reference belongs to a Session (one client connection);
//   create and incref add one to the session, decref removes one, and when the session
//   ends — the client closed it, died, or sent garbage — all its references go at once.
// - CPython (PythonCore): one server-wide count per object, raised by create and incref
//   and lowered by decref (pass no session); a client that dies without its decref leaks
//   its reference, as in CPython.
// An object whose count reaches zero leaves the table; it is destroyed outside the lock
// (a referent may block in its destructor), unless someone else still owns it.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mp::internal::manager {

/// The references one client connection holds (the native policy).
struct Session {
  std::unordered_map<std::string, std::uint64_t> refs;
  std::string name;  ///< for diagnostics: the peer's address
};

/// The served objects of one server. Thread-safe. `session` arguments: the connection
/// that holds the reference, or nullptr for the server-wide policy.
template <class Obj>
class ObjectRegistry {
 public:
  /// Adds `obj` with one reference under a fresh ident (hex numbers 1, 2, 3...); returns it.
  std::string add_numbered(std::shared_ptr<Obj> obj, Session* session) {
    std::lock_guard g(mu_);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%" PRIx64, next_id_++);
    std::string ident = buf;
    objects_.emplace(ident, Entry{std::move(obj), 1});
    if (session) ++session->refs[ident];
    return ident;
  }
  /// Adds one reference to the object under `ident`, making `obj` its object (a new entry
  /// when there is none).
  void add(const std::string& ident, std::shared_ptr<Obj> obj, Session* session) {
    std::lock_guard g(mu_);
    Entry& e = objects_[ident];
    e.obj = std::move(obj);
    ++e.refs;
    if (session) ++session->refs[ident];
  }
  /// The object under `ident`, or nullptr.
  [[nodiscard]] std::shared_ptr<Obj> find(const std::string& ident) const {
    std::lock_guard g(mu_);
    auto it = objects_.find(ident);
    return it == objects_.end() ? nullptr : it->second.obj;
  }
  /// One more reference to an existing object; false when there is no such object.
  [[nodiscard]] bool incref(const std::string& ident, Session* session) {
    std::lock_guard g(mu_);
    auto it = objects_.find(ident);
    if (it == objects_.end()) return false;
    ++it->second.refs;
    if (session) ++session->refs[ident];
    return true;
  }
  enum class Decref : std::uint8_t { done, unknown_object, not_held };
  /// One reference fewer. not_held: `session` holds none (nothing changes); unknown_object:
  /// no such object (checked after the session's count).
  [[nodiscard]] Decref decref(const std::string& ident, Session* session) {
    std::shared_ptr<Obj> dying;  // destroyed after the lock is released
    std::lock_guard g(mu_);
    if (session) {
      auto mine = session->refs.find(ident);
      if (mine == session->refs.end()) return Decref::not_held;
      if (--mine->second == 0) session->refs.erase(mine);
    }
    auto it = objects_.find(ident);
    if (it == objects_.end()) return Decref::unknown_object;
    if (--it->second.refs == 0) {
      dying = std::move(it->second.obj);
      objects_.erase(it);
    }
    return Decref::done;
  }
  /// Drops every reference `session` holds (its connection ended).
  void release(Session& session) noexcept {
    std::vector<std::shared_ptr<Obj>> dying;  // destroyed after the lock is released
    std::lock_guard g(mu_);
    for (auto& [ident, n] : session.refs) {
      auto it = objects_.find(ident);
      if (it == objects_.end()) continue;
      it->second.refs = it->second.refs > n ? it->second.refs - n : 0;
      if (it->second.refs == 0) {
        dying.push_back(std::move(it->second.obj));
        objects_.erase(it);
      }
    }
    session.refs.clear();
  }
  [[nodiscard]] std::size_t size() const {
    std::lock_guard g(mu_);
    return objects_.size();
  }
  /// The references held, summed over the objects.
  [[nodiscard]] std::uint64_t references() const {
    std::lock_guard g(mu_);
    std::uint64_t n = 0;
    for (const auto& [ident, e] : objects_) n += e.refs;
    return n;
  }
  /// Calls f(ident, object, refs) for each object in ident order, under the lock.
  template <class F>
  void for_each(F f) const {
    std::lock_guard g(mu_);
    for (const auto& [ident, e] : objects_) f(ident, *e.obj, e.refs);
  }

 private:
  struct Entry {
    std::shared_ptr<Obj> obj;
    std::uint64_t refs = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> objects_;
  std::uint64_t next_id_ = 1;
};

}  // namespace mp::internal::manager
