// mp/sharedctypes.hpp — typed values and arrays in shared memory.
//
// Mirrors: multiprocessing.Value / Array (synchronized: each carries an RLock, get_lock())
// and multiprocessing.sharedctypes.RawValue / RawArray (no lock; Python's lock=False).
// T is any trivially copyable type (int, double, a plain struct, std::array...): the bytes
// live in shared memory, so a copy of the object — in this process, or in a child created
// by fork() — refers to the same storage. Copying the handle is cheap; the memory lives
// until the last handle in the last process is gone.
//
//   mp::Value<int> counter(0);
//   mp::Process p([](mp::Value<int> c) { c.update([](int v) { return v + 1; }); }, counter);
//   p.start(); p.join();               // counter.value() == 1
//
// Guarantees:
// - Value::value()/value(v) (and get()/set(), Array::get(i)/set(i, v)) each take the lock:
//   a read never sees a half-written T. A read-modify-write needs the lock held across it,
//   exactly as in Python (`with v.get_lock(): v.value += 1`):
//     { std::scoped_lock g(v.get_lock()); v.value(v.value() + 1); }   // the lock is an RLock
//   or simply v.update(fn), which does that for you.
// - operator[], get_obj(), data() and begin()/end() give direct references: use them while
//   holding get_lock() (or for data no other process touches concurrently).
// - The lock is robust (see mp/synchronize.hpp): a process killed while holding it does not
//   deadlock the others; get_lock().owner_died() tells the next holder.
// - RawValue<T> and RawArray<T> have no lock. For types the CPU can access atomically
//   (int, long, pointer-sized structs...) RawValue's value()/value(v) are single atomic
//   loads/stores (relaxed) and atomic() gives a std::atomic_ref for fetch_add & co.;
//   anything else must be synchronized by the caller.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <new>
#include <ranges>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "mp/errors.hpp"
#include "mp/internal/segment.hpp"
#include "mp/synchronize.hpp"

namespace mp {

/// Types that can live in shared memory: copied as bytes, no destructor to run.
template <class T>
concept SharedCType = std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T> && !std::is_pointer_v<T>;

namespace internal {

/// Layout of a Value/Array segment: the lock state first (so RLock can adopt it), then the
/// elements, aligned for T (and for std::atomic_ref<T>).
template <class T>
struct CTypesLayout {
  static constexpr std::size_t kAlign = std::max({alignof(T), alignof(std::max_align_t),
                                                  std::atomic_ref<std::remove_cv_t<T>>::required_alignment});
  static constexpr std::size_t kDataOffset = (sizeof(RLockState) + kAlign - 1) / kAlign * kAlign;

  static std::shared_ptr<Segment> create(std::size_t n, const char* tag) {
    if (n > (std::numeric_limits<std::size_t>::max() - kDataOffset) / sizeof(T))
      throw ValueError(std::string(tag) + ": " + std::to_string(n) + " elements do not fit in memory");
    auto seg = Segment::create(kDataOffset + n * sizeof(T), tag);
    new (seg->data()) RLockState{};
    T* data = elements(*seg);
    for (std::size_t i = 0; i < n; ++i) new (data + i) T{};
    return seg;
  }
  static T* elements(const Segment& seg) noexcept {
    return std::launder(reinterpret_cast<T*>(static_cast<std::byte*>(seg.data()) + kDataOffset));
  }
};

}  // namespace internal

// ---------------------------------------------------------------------------------- Value

/// multiprocessing.Value: one T in shared memory with its own RLock.
template <SharedCType T>
class Value {
 public:
  /// A new value initialised to `initial`. Throws mp::OSError if shared memory runs out.
  explicit Value(const T& initial = T{})
      : seg_(internal::CTypesLayout<T>::create(1, "mp-value")),
        lock_(RLock::Adopt{}, internal::Shared<internal::RLockState>(seg_)),
        obj_(internal::CTypesLayout<T>::elements(*seg_)) {
    *obj_ = initial;
  }
  /// A value guarded by an existing lock (Python's Value(..., lock=some_rlock)); several
  /// values can share one lock this way.
  Value(const T& initial, RLock lock) : Value(initial) { lock_ = std::move(lock); }

  /// A copy of the value, read under the lock.
  [[nodiscard]] T value() const {
    std::scoped_lock g(lock_);
    return *obj_;
  }
  /// Stores `v` under the lock.
  void value(const T& v) {
    std::scoped_lock g(lock_);
    *obj_ = v;
  }
  [[nodiscard]] T get() const { return value(); }
  void set(const T& v) { value(v); }
  /// Replaces the value with fn(value) under the lock, atomically; returns the new value.
  template <class F>
    requires std::is_invocable_r_v<T, F&, const T&>
  T update(F fn) {
    std::scoped_lock g(lock_);
    *obj_ = fn(static_cast<const T&>(*obj_));
    return *obj_;
  }

  /// The RLock guarding the value (shared by every copy, in every process).
  [[nodiscard]] RLock& get_lock() const noexcept { return lock_; }
  /// The value itself, unguarded: hold get_lock() while using it.
  [[nodiscard]] T* get_obj() const noexcept { return obj_; }

 private:
  std::shared_ptr<internal::Segment> seg_;
  mutable RLock lock_;
  T* obj_;
};

// ---------------------------------------------------------------------------------- Array

/// multiprocessing.Array: a fixed-size array of T in shared memory with its own RLock.
template <SharedCType T>
class Array {
 public:
  /// `n` value-initialised (zero) elements.
  explicit Array(std::size_t n)
      : seg_(internal::CTypesLayout<T>::create(n, "mp-array")),
        lock_(RLock::Adopt{}, internal::Shared<internal::RLockState>(seg_)),
        data_(internal::CTypesLayout<T>::elements(*seg_)),
        size_(n) {}
  /// A copy of `init` (Python's Array('i', [1, 2, 3])).
  Array(std::initializer_list<T> init) : Array(init.size()) { std::ranges::copy(init, data_); }
  template <std::ranges::sized_range R>
    requires std::convertible_to<std::ranges::range_reference_t<R>, T>
  explicit Array(const R& init) : Array(std::ranges::size(init)) {
    std::ranges::copy(init, data_);
  }
  /// Guarded by an existing lock instead of its own.
  Array(std::size_t n, RLock lock) : Array(n) { lock_ = std::move(lock); }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t length() const noexcept { return size_; }

  /// Element i, read under the lock. Throws mp::IndexError if i >= size().
  [[nodiscard]] T get(std::size_t i) const {
    check(i);
    std::scoped_lock g(lock_);
    return data_[i];
  }
  /// Stores `v` at i under the lock. Throws mp::IndexError if i >= size().
  void set(std::size_t i, const T& v) {
    check(i);
    std::scoped_lock g(lock_);
    data_[i] = v;
  }
  /// A snapshot of every element, taken under the lock (Python's arr[:]).
  [[nodiscard]] std::vector<T> to_vector() const {
    std::scoped_lock g(lock_);
    return std::vector<T>(data_, data_ + size_);
  }

  /// Unguarded element access (hold get_lock()); at() checks bounds (mp::IndexError).
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T& at(std::size_t i) const {
    check(i);
    return data_[i];
  }
  [[nodiscard]] T* data() const noexcept { return data_; }
  [[nodiscard]] std::span<T> span() const noexcept { return {data_, size_}; }
  T* begin() const noexcept { return data_; }
  T* end() const noexcept { return data_ + size_; }

  [[nodiscard]] RLock& get_lock() const noexcept { return lock_; }
  [[nodiscard]] T* get_obj() const noexcept { return data_; }

 private:
  void check(std::size_t i) const {
    if (i >= size_)
      throw IndexError("Array index " + std::to_string(i) + " out of range (size " + std::to_string(size_) + ")");
  }
  std::shared_ptr<internal::Segment> seg_;
  mutable RLock lock_;
  T* data_;
  std::size_t size_;
};

// ------------------------------------------------------------------------------- RawValue

/// multiprocessing.sharedctypes.RawValue (= Value(..., lock=False)): one T in shared memory,
/// no lock. value()/value(v) are relaxed atomic accesses when T is lock-free atomic.
template <SharedCType T>
class RawValue {
 public:
  static constexpr bool is_atomic = std::atomic_ref<T>::is_always_lock_free;

  explicit RawValue(const T& initial = T{})
      : seg_(internal::CTypesLayout<T>::create(1, "mp-rawvalue")), obj_(internal::CTypesLayout<T>::elements(*seg_)) {
    *obj_ = initial;
  }
  [[nodiscard]] T value() const noexcept {
    if constexpr (is_atomic)
      return std::atomic_ref<T>(*obj_).load(std::memory_order_relaxed);
    else
      return *obj_;
  }
  void value(const T& v) noexcept {
    if constexpr (is_atomic)
      std::atomic_ref<T>(*obj_).store(v, std::memory_order_relaxed);
    else
      *obj_ = v;
  }
  [[nodiscard]] T get() const noexcept { return value(); }
  void set(const T& v) noexcept { value(v); }
  /// A std::atomic_ref on the shared value: fetch_add, compare_exchange... across processes.
  [[nodiscard]] std::atomic_ref<T> atomic() const noexcept
    requires is_atomic
  {
    return std::atomic_ref<T>(*obj_);
  }
  [[nodiscard]] T* get_obj() const noexcept { return obj_; }

 private:
  std::shared_ptr<internal::Segment> seg_;
  T* obj_;
};

// ------------------------------------------------------------------------------- RawArray

/// multiprocessing.sharedctypes.RawArray (= Array(..., lock=False)): no lock; the caller
/// synchronizes (or uses std::atomic_ref on elements).
template <SharedCType T>
class RawArray {
 public:
  explicit RawArray(std::size_t n)
      : seg_(internal::CTypesLayout<T>::create(n, "mp-rawarray")),
        data_(internal::CTypesLayout<T>::elements(*seg_)),
        size_(n) {}
  RawArray(std::initializer_list<T> init) : RawArray(init.size()) { std::ranges::copy(init, data_); }
  template <std::ranges::sized_range R>
    requires std::convertible_to<std::ranges::range_reference_t<R>, T>
  explicit RawArray(const R& init) : RawArray(std::ranges::size(init)) {
    std::ranges::copy(init, data_);
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T& at(std::size_t i) const {
    if (i >= size_)
      throw IndexError("RawArray index " + std::to_string(i) + " out of range (size " + std::to_string(size_) + ")");
    return data_[i];
  }
  [[nodiscard]] T* data() const noexcept { return data_; }
  [[nodiscard]] std::span<T> span() const noexcept { return {data_, size_}; }
  T* begin() const noexcept { return data_; }
  T* end() const noexcept { return data_ + size_; }

 private:
  std::shared_ptr<internal::Segment> seg_;
  T* data_;
  std::size_t size_;
};

}  // namespace mp
