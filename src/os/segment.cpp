// Segments: memfd + mmap(MAP_SHARED). See include/mp/internal/segment.hpp.
#include "mp/internal/segment.hpp"

#include <cerrno>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mp/errors.hpp"

namespace mp::internal {

namespace {
std::size_t round_to_page(std::size_t n) {
  static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

void* map_shared(int fd, std::size_t size) {
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) throw OSError(errno, "mmap of a shared segment");
  return addr;
}
}  // namespace

std::shared_ptr<Segment> Segment::create(std::size_t size, const char* tag) {
  size = round_to_page(size == 0 ? 1 : size);
  UniqueFd fd(::memfd_create(tag, MFD_CLOEXEC));
  if (!fd) throw OSError(errno, "memfd_create for a shared segment (out of file descriptors?)");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw OSError(errno, "ftruncate of a shared segment");
  void* addr = map_shared(fd.get(), size);
  return std::shared_ptr<Segment>(new Segment(std::move(fd), addr, size));
}

std::shared_ptr<Segment> Segment::attach(UniqueFd fd) {
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) throw OSError(errno, "fstat of a received shared segment");
  if (st.st_size <= 0) throw ValueError("attach: the received file descriptor is not a shared segment (size 0)");
  auto size = static_cast<std::size_t>(st.st_size);
  void* addr = map_shared(fd.get(), size);
  return std::shared_ptr<Segment>(new Segment(std::move(fd), addr, size));
}

Segment::~Segment() { ::munmap(addr_, size_); }

}  // namespace mp::internal
