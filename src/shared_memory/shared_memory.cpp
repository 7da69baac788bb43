// Named shared memory blocks. See include/mp/shared_memory.hpp for the contract.
#include "mp/shared_memory.hpp"

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "os/file.hpp"
#include "os/memory.hpp"

namespace mp {

namespace {

std::string random_name() {
  unsigned char bytes[8];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = internal::get_random(bytes + got, sizeof bytes - got);
    if (n < 0) {
      if (n == -EINTR) continue;
      throw OSError(static_cast<int>(-n), "getrandom for a shared memory name");
    }
    got += static_cast<std::size_t>(n);
  }
  char hex[2 * sizeof bytes + 1];
  for (std::size_t i = 0; i < sizeof bytes; ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return std::string("mp-") + hex;
}

/// "name" or "/name" -> "name"; rejects what shm_open cannot take.
std::string normalized(std::string name) {
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  if (name.empty()) throw ValueError("SharedMemory: a name is required to attach to an existing block");
  if (name.size() > NAME_MAX - 1 || name.find('/') != std::string::npos || name == "." || name == "..")
    throw ValueError("SharedMemory: invalid name '" + name + "' (at most 254 characters, no '/')");
  return name;
}

void* map(int fd, std::size_t size, const std::string& name) {
  void* addr = nullptr;
  if (int e = internal::map_memory(addr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
    throw OSError(-e, "SharedMemory: mmap of '" + name + "'");
  return addr;
}

}  // namespace

SharedMemory::SharedMemory(SharedMemoryOptions opts) {
  if (!opts.create) {
    name_ = normalized(std::move(opts.name));
    std::string path = "/" + name_;
    int fd = internal::shm_open_name(path.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) throw OSError(-fd, "SharedMemory: cannot attach to '" + name_ + "'");
    fd_.reset(fd);
    struct stat st{};
    if (int e = internal::stat_fd(fd_.get(), st)) throw OSError(-e, "SharedMemory: fstat of '" + name_ + "'");
    if (st.st_size <= 0)
      throw ValueError("SharedMemory: '" + name_ + "' has size 0 (its creator has not sized it yet?)");
    size_ = static_cast<std::size_t>(st.st_size);
    addr_ = map(fd_.get(), size_, name_);
    return;
  }

  if (opts.size == 0) throw ValueError("SharedMemory: 'size' must be a positive number when creating a block");
  // Start the tracker *before* the block exists: it is forked from this process and must
  // not inherit (and so pin) the new mapping.
  bool tracked = opts.track && internal::ensure_resource_tracker();
  bool auto_name = opts.name.empty();
  for (int attempt = 0;; ++attempt) {
    name_ = auto_name ? random_name() : normalized(std::move(opts.name));
    std::string path = "/" + name_;
    int fd = internal::shm_open_name(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      fd_.reset(fd);
      break;
    }
    if (fd == -EEXIST && auto_name && attempt < 16) continue;  // a random name collided
    throw OSError(-fd, "SharedMemory: cannot create '" + name_ + "'");
  }
  struct stat created{};
  try {
    if (int e = internal::stat_fd(fd_.get(), created)) throw OSError(-e, "SharedMemory: fstat of '" + name_ + "'");
    // The umask may have removed bits but never adds any; make the mode exactly 0600.
    if (int e = internal::chmod_fd(fd_.get(), 0600)) throw OSError(-e, "SharedMemory: fchmod of '" + name_ + "'");
    if (int e = internal::truncate_fd(fd_.get(), static_cast<off_t>(opts.size)))
      throw OSError(-e, "SharedMemory: cannot size '" + name_ + "' to " + std::to_string(opts.size) + " bytes");
    size_ = opts.size;
    addr_ = map(fd_.get(), size_, name_);
  } catch (...) {
    (void)internal::shm_unlink_name(("/" + name_).c_str());
    throw;
  }
  if (tracked)
    internal::track_shared_memory(name_, static_cast<std::uint64_t>(created.st_dev),
                                  static_cast<std::uint64_t>(created.st_ino));
}

SharedMemory::SharedMemory(SharedMemory&& o) noexcept
    : name_(std::move(o.name_)), fd_(std::move(o.fd_)), addr_(std::exchange(o.addr_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
  if (this != &o) {
    close();
    name_ = std::move(o.name_);
    fd_ = std::move(o.fd_);
    addr_ = std::exchange(o.addr_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

SharedMemory::~SharedMemory() { close(); }

void SharedMemory::close() noexcept {
  if (addr_) (void)internal::unmap_memory(addr_, size_);
  addr_ = nullptr;
  fd_.reset();
}

void SharedMemory::unlink() {
  if (name_.empty()) throw ValueError("SharedMemory.unlink(): this handle has no block (moved from)");
  if (int e = internal::shm_unlink_name(("/" + name_).c_str()))
    throw OSError(-e, "SharedMemory: cannot unlink '" + name_ + "'");
  internal::untrack_shared_memory(name_);
}

}  // namespace mp
