// mp/internal/segment.hpp — one block of memory shared by a family of processes.
//
// Every process-shared object in mp (locks, events, queues, Values) lives in a Segment:
// a memfd mapped MAP_SHARED. A child made by fork() inherits the mapping, so the object
// it sees *is* the parent's object. The memfd stays open (close-on-exec) so the segment
// can also be handed to an unrelated process as a file descriptor (SCM_RIGHTS) and
// attached there. The kernel keeps the memory alive while any process maps it: there is
// no name to leak and nothing to clean up after a crash.
#pragma once

#include <cstddef>
#include <memory>

#include "mp/internal/fd.hpp"

namespace mp::internal {

class Segment {
 public:
  /// A new zero-filled segment of at least `size` bytes. `tag` names it in /proc/<pid>/maps.
  /// Throws mp::OSError if memory or file descriptors run out.
  static std::shared_ptr<Segment> create(std::size_t size, const char* tag);
  /// Maps a segment received as a file descriptor (takes ownership of `fd`).
  static std::shared_ptr<Segment> attach(UniqueFd fd);

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  [[nodiscard]] void* data() const noexcept { return addr_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

 private:
  Segment(UniqueFd fd, void* addr, std::size_t size) noexcept : fd_(std::move(fd)), addr_(addr), size_(size) {}
  UniqueFd fd_;
  void* addr_;
  std::size_t size_;
};

/// A T constructed in its own Segment, shared by copy (in-process) and by fork (across
/// processes). T must be usable from several processes at once: atomics and plain data.
template <class T>
class Shared {
 public:
  template <class... Args>
  explicit Shared(const char* tag, Args&&... args)
      : seg_(Segment::create(sizeof(T), tag)), obj_(new (seg_->data()) T(std::forward<Args>(args)...)) {}
  explicit Shared(std::shared_ptr<Segment> seg) : seg_(std::move(seg)), obj_(static_cast<T*>(seg_->data())) {}

  [[nodiscard]] T* get() const noexcept { return obj_; }
  T* operator->() const noexcept { return obj_; }
  T& operator*() const noexcept { return *obj_; }
  [[nodiscard]] const std::shared_ptr<Segment>& segment() const noexcept { return seg_; }

 private:
  std::shared_ptr<Segment> seg_;
  T* obj_;
};

}  // namespace mp::internal
