// The pool's transport between the parent and one worker: the shared segment with its two
// single-producer single-consumer byte rings, the frame header, and the wake-ups. Shared by
// the parent's engine (pool.cpp) and the worker's loop (worker.cpp); the protocol is
// described at the top of pool.cpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>

#include "common/wait_policy.hpp"
#include "mp/internal/futex.hpp"
#include "mp/pool.hpp"
#include "os/file.hpp"

namespace mp::internal::pool {

constexpr std::size_t kRingBytes = std::size_t{1} << 20;  // per direction per worker
constexpr std::size_t kMaxWindow = 64;                     // tasks prefetched per worker, at most

struct RingCtl {
  alignas(64) std::atomic<std::uint64_t> head{0};  // bytes ever written (producer)
  alignas(64) std::atomic<std::uint64_t> tail{0};  // bytes ever read (consumer)
  alignas(64) std::atomic<std::uint32_t> seq{0};   // futex word the worker side sleeps on
  std::atomic<std::uint32_t> waiting{0};           // the worker side is (about to be) asleep
};

struct WorkerShm {
  RingCtl tasks;    // parent writes, worker reads
  RingCtl results;  // worker writes, parent reads
  alignas(64) std::atomic<std::uint64_t> current_task{0};
  alignas(64) char task_buf[kRingBytes];
  char result_buf[kRingBytes];
};

struct PoolShm {
  alignas(64) std::atomic<std::uint32_t> parent_waiting{0};
};

inline std::size_t ring_avail(const RingCtl& r) noexcept {
  return r.head.load(std::memory_order_acquire) - r.tail.load(std::memory_order_relaxed);
}
inline std::size_t ring_free(const RingCtl& r) noexcept {
  return kRingBytes - (r.head.load(std::memory_order_relaxed) - r.tail.load(std::memory_order_acquire));
}

inline std::size_t ring_write(RingCtl& r, char* buf, const char* p, std::size_t n) noexcept {
  std::uint64_t h = r.head.load(std::memory_order_relaxed);
  std::size_t k = std::min(n, kRingBytes - (h - r.tail.load(std::memory_order_acquire)));
  if (k == 0) return 0;
  std::size_t off = h & (kRingBytes - 1);
  std::size_t first = std::min(k, kRingBytes - off);
  std::memcpy(buf + off, p, first);
  std::memcpy(buf, p + first, k - first);
  r.head.store(h + k, std::memory_order_release);
  return k;
}

inline void ring_read(RingCtl& r, const char* buf, char* dst, std::size_t k) noexcept {
  std::uint64_t t = r.tail.load(std::memory_order_relaxed);
  std::size_t off = t & (kRingBytes - 1);
  std::size_t first = std::min(k, kRingBytes - off);
  std::memcpy(dst, buf + off, first);
  std::memcpy(dst + first, buf, k - first);
  r.tail.store(t + k, std::memory_order_release);
}

/// Parent side: after changing a ring, wake the worker if it sleeps on it.
inline void wake_worker(RingCtl& r) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (r.waiting.load(std::memory_order_relaxed)) {
    r.seq.fetch_add(1, std::memory_order_release);
    futex_wake(r.seq, 1);
  }
}

/// Worker side: wake the parent's handler if it said it is going to sleep.
inline void wake_parent(PoolShm& p, int efd) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (p.parent_waiting.load(std::memory_order_relaxed) && p.parent_waiting.exchange(0)) {
    std::uint64_t one = 1;
    (void)internal::write_to(efd, &one, sizeof one);
  }
}

constexpr std::size_t kHdr = sizeof(std::uint32_t) + sizeof(std::uint64_t);


/// The worker's loop: runs `init`, then the tasks the parent streams into `w`, until the
/// sentinel or `maxtasks` tasks (> 0). Returns to end the worker process normally.
void worker_main(WorkerShm* w, PoolShm* p, int efd, const Initializer& init, int maxtasks);

}  // namespace mp::internal::pool
