// mp/shared_memory.hpp — named blocks of shared memory.
//
// Mirrors: multiprocessing.shared_memory.SharedMemory. A block is a POSIX shared-memory
// object (/dev/shm/<name>) mapped into each process that creates or attaches to it; any
// process that knows the name can attach, including unrelated programs.
//
//   mp::SharedMemory shm({.create = true, .size = 1024});   // a fresh "mp-..." name
//   std::memcpy(shm.buf().data(), "hi", 2);
//   mp::Process p([name = shm.name()] {
//     mp::SharedMemory other(name);                          // attach by name
//     std::printf("%.2s\n", reinterpret_cast<char*>(other.buf().data()));
//   });
//   p.start(); p.join();
//   shm.unlink();                                            // remove the name
//
// Guarantees:
// - Blocks are created with mode 0600 (owner only), atomically (O_EXCL: creating an
//   existing name fails with mp::OSError, code EEXIST). Auto-generated names are
//   "mp-" + 16 random hex digits.
// - Lifetime, as in Python: close() unmaps this process's view; unlink() removes the name
//   (processes still attached keep their mapping; the memory is freed when the last one
//   closes). The destructor closes, it never unlinks.
// - Cleanup after crashes: a created block is registered with a small resource tracker
//   process (started lazily on the first create, shared with children forked afterwards).
//   When every process of the creating family has exited — normally or killed, even by
//   SIGKILL — the tracker unlinks the blocks that were created but never unlink()ed, and
//   says so on stderr ("mp.resource_tracker: removed leaked shared memory ..."). Only the
//   creator registers a block: a process that merely attaches never causes it to be
//   unlinked and never produces a warning (Python before 3.13 did both). unlink() from any
//   process of the family unregisters it, so no warning follows. Pass `.track = false` to
//   manage a block's lifetime yourself (it then outlives the family until unlink()).
//   The tracker removes only the block the family created: if the name was unlinked and
//   then reused for a new block (by any program) before the family exited, that new block
//   is left alone (Python's tracker unlinks by name and would remove it).
// - SharedMemory is a move-only handle; a child forked while it is open inherits the
//   mapping, so buf() is valid there too. It is not internally synchronized: use an
//   mp::Lock (or atomics placed in the block) to coordinate access to the bytes.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include <sys/types.h>

#include "mp/errors.hpp"
#include "mp/internal/fd.hpp"

namespace mp {

/// Arguments of SharedMemory, as keyword arguments.
struct SharedMemoryOptions {
  std::string name;      ///< block name without the leading '/'; "" (create only): "mp-<random>"
  bool create = false;   ///< true: make a new block (fails if the name exists); false: attach
  std::size_t size = 0;  ///< bytes; must be > 0 when creating; ignored when attaching
  bool track = true;     ///< when creating: unlink automatically once the creating family has exited
};

class SharedMemory {
 public:
  /// Creates or attaches to a block (Python's SharedMemory(name, create, size)).
  /// Throws mp::ValueError for a bad name or a zero size on create, mp::OSError if the
  /// system refuses (EEXIST: name taken; ENOENT: no such block to attach; EACCES...).
  explicit SharedMemory(SharedMemoryOptions opts);
  /// Attaches to the existing block `name` (with or without the leading '/').
  /// (A template so that a braced `{.create = true, ...}` never matches it.)
  template <class S>
    requires std::convertible_to<S, std::string>
  explicit SharedMemory(S&& name) : SharedMemory(SharedMemoryOptions{.name = std::string(std::forward<S>(name))}) {}

  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  /// Closes (unmaps) this view. Never unlinks.
  ~SharedMemory();

  /// The mapped bytes; empty after close().
  [[nodiscard]] std::span<std::byte> buf() const noexcept { return {static_cast<std::byte*>(addr_), addr_ ? size_ : 0}; }
  /// The block's name, without the leading '/' (pass it to another process to attach).
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// The block's size in bytes (for an attached block, the size it was created with).
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// Unmaps the block from this process and closes its descriptor. Idempotent; buf() is
  /// empty afterwards. Other processes are unaffected.
  void close() noexcept;
  /// Removes the name so no new process can attach (Python's unlink()); the memory lives
  /// on while mapped. Call it once, from any one process. Throws mp::OSError (ENOENT) if
  /// the name is already gone.
  void unlink();

 private:
  std::string name_;
  internal::UniqueFd fd_;
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

namespace internal {
/// Resource tracker (src/shared_memory/resource_tracker.cpp). `name` is without the leading '/'.
/// Starts the tracker if needed; returns false if it cannot run (the block is then simply
/// not cleaned up automatically).
bool ensure_resource_tracker() noexcept;
/// Registers a block the caller created, with the device and inode of the object it made:
/// at cleanup the tracker unlinks the name only if it still refers to that object.
void track_shared_memory(const std::string& name, std::uint64_t dev, std::uint64_t ino) noexcept;
void untrack_shared_memory(const std::string& name) noexcept;
/// The tracker serving this process, or 0 if none was started (for tests).
pid_t resource_tracker_pid() noexcept;
}  // namespace internal

}  // namespace mp
