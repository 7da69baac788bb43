// src/os/memory.hpp — mappings and POSIX shared-memory names: mmap, mremap, munmap,
// shm_open, shm_unlink, one thin inline wrapper each.
//
// Convention (include/mp/internal/os.hpp): 0 (or a descriptor) on success, -errno on
// failure, noexcept. Inline so that the resource tracker, which runs after fork() with only
// async-signal-safe calls, can use them too.
#pragma once

#include <sys/mman.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>

namespace mp::internal {

/// mmap(2) at an address of the kernel's choosing: stores the mapping in `out`; 0 or -errno.
[[nodiscard]] inline int map_memory(void*& out, std::size_t len, int prot, int flags, int fd, off_t offset) noexcept {
  void* p = ::mmap(nullptr, len, prot, flags, fd, offset);
  if (p == MAP_FAILED) return -errno;
  out = p;
  return 0;
}
/// mremap(2): resizes the mapping at `addr` (updated when it moves); 0 or -errno.
[[nodiscard]] inline int remap_memory(void*& addr, std::size_t old_len, std::size_t new_len, int flags) noexcept {
  void* p = ::mremap(addr, old_len, new_len, flags);
  if (p == MAP_FAILED) return -errno;
  addr = p;
  return 0;
}
/// munmap(2): 0 or -errno (only for a range that was never mapped).
[[nodiscard]] inline int unmap_memory(void* addr, std::size_t len) noexcept {
  return ::munmap(addr, len) == 0 ? 0 : -errno;
}
/// shm_open(3) of `name` ("/x"): a descriptor or -errno.
[[nodiscard]] inline int shm_open_name(const char* name, int flags, mode_t mode) noexcept {
  int fd = ::shm_open(name, flags, mode);
  return fd < 0 ? -errno : fd;
}
/// shm_unlink(3): 0 or -errno.
[[nodiscard]] inline int shm_unlink_name(const char* name) noexcept { return ::shm_unlink(name) == 0 ? 0 : -errno; }

}  // namespace mp::internal
