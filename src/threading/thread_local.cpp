// mp::ThreadLocal's storage: per ThreadLocal a map from thread to value, per thread a map
// from ThreadLocal to value, so a value dies with whichever of the two ends first.
#include "mp/threading.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace mp {
namespace internal {

struct LocalControl {
  std::mutex mu;
  std::unordered_map<const ThreadRecord*, std::unique_ptr<LocalValue>> values;
};

/// One per thread that ever used a ThreadLocal: its values by ThreadLocal id. Only the
/// owning thread touches `entries`; entries of destroyed ThreadLocals go stale (ids are
/// never reused) and are pruned as the map grows.
struct ThreadRecord {
  struct Entry {
    LocalValue* value;
    std::weak_ptr<LocalControl> ctrl;
  };
  std::unordered_map<std::uint64_t, Entry> entries;
  std::size_t prune_at = 16;

  void prune() {
    if (entries.size() < prune_at) return;
    std::erase_if(entries, [](auto& kv) { return kv.second.ctrl.expired(); });
    prune_at = 2 * entries.size() + 16;
  }
  /// Destroys this thread's values (they may create new ones: repeat a few times, as
  /// pthread keys do).
  void clear() noexcept {
    for (int round = 0; round < 4 && !entries.empty(); ++round) {
      auto old = std::move(entries);
      entries.clear();
      for (auto& [id, e] : old) {
        if (auto c = e.ctrl.lock()) {
          std::unique_ptr<LocalValue> doomed;
          {
            std::lock_guard g(c->mu);
            auto it = c->values.find(this);
            if (it != c->values.end()) {
              doomed = std::move(it->second);
              c->values.erase(it);
            }
          }
        }
      }
    }
  }
  ~ThreadRecord() { clear(); }
};

namespace {
thread_local bool tl_record_used = false;
thread_local ThreadRecord tl_record;
std::atomic<std::uint64_t> next_local_id{1};

ThreadRecord& record() {
  tl_record_used = true;
  return tl_record;
}
}  // namespace

void finish_thread_locals() noexcept {
  if (tl_record_used) tl_record.clear();
}

ThreadLocalBase::ThreadLocalBase() : ctrl_(std::make_shared<LocalControl>()), id_(next_local_id.fetch_add(1)) {}

ThreadLocalBase::~ThreadLocalBase() {
  decltype(LocalControl::values) doomed;
  {
    std::lock_guard g(ctrl_->mu);
    doomed = std::move(ctrl_->values);
    ctrl_->values.clear();
  }
  if (tl_record_used) tl_record.entries.erase(id_);
}

LocalValue* ThreadLocalBase::find() const noexcept {
  if (!tl_record_used) return nullptr;
  auto& e = tl_record.entries;
  auto it = e.find(id_);
  return it == e.end() ? nullptr : it->second.value;
}

LocalValue* ThreadLocalBase::store(std::unique_ptr<LocalValue> v) const {
  ThreadRecord& rec = record();
  LocalValue* raw = v.get();
  std::unique_ptr<LocalValue> old;
  rec.prune();
  rec.entries[id_] = ThreadRecord::Entry{raw, ctrl_};
  {
    std::lock_guard g(ctrl_->mu);
    auto& slot = ctrl_->values[&rec];
    old = std::move(slot);
    slot = std::move(v);
  }
  return raw;  // `old` is destroyed here, outside the lock
}

void ThreadLocalBase::erase() const {
  if (!tl_record_used) return;
  std::unique_ptr<LocalValue> doomed;
  tl_record.entries.erase(id_);
  std::lock_guard g(ctrl_->mu);
  auto it = ctrl_->values.find(&tl_record);
  if (it != ctrl_->values.end()) {
    doomed = std::move(it->second);
    ctrl_->values.erase(it);
  }
}

}  // namespace internal
}  // namespace mp
