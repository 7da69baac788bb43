// The shared-memory ring under mp::Queue. Protocol and layout: include/mp/internal/ring.hpp.
#include "mp/queue.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "common/wait_policy.hpp"
#include "os/membarrier.hpp"
#include "sync/robust_lock.hpp"
#include "mp/internal/os.hpp"

namespace mp::internal {

namespace {

// Each side caches the other side's word (a lower bound, valid across lock takeovers). A
// thread that learns of a record through a cache filled by *another process* is ordered by
// that process's acquire and lock release, which ThreadSanitizer cannot see; under TSan the
// caches are bypassed so that every ordering goes through atomics it can see.
#if defined(__SANITIZE_THREAD__)
constexpr bool kUseCaches = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kUseCaches = false;
#else
constexpr bool kUseCaches = true;
#endif
#else
constexpr bool kUseCaches = true;
#endif

// Record kinds (low 3 bits of a record's tag; the writer's pid sits above them).
constexpr std::uint32_t kWhole = 1;   // a complete message
constexpr std::uint32_t kFirst = 2;   // first fragment: payload = [u64 total size][bytes]
constexpr std::uint32_t kMiddle = 3;  // a further fragment
constexpr std::uint32_t kLast = 4;    // the final fragment: completes (and counts) the message
constexpr std::uint32_t kAbort = 5;   // the writer withdrew the fragmented message (timeout)
constexpr std::uint32_t kHeader = 8;

// How often a consumer assembling a fragmented message checks that its writer still lives.
constexpr auto kWriterProbe = std::chrono::milliseconds(50);
// How a blocked side spins before it sleeps: src/common/wait_policy.hpp.
constexpr int kDataPauses = wait_policy::kPausesWaitingForData;
constexpr int kSpacePauses = wait_policy::kPausesWaitingForRoom;
constexpr std::size_t kMinCapacity = 4096;
constexpr std::size_t kMaxCapacity = std::size_t{1} << 30;
constexpr std::size_t kMaxMaxsize = 0x7fffffff;

constexpr std::uint32_t pos_of(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w); }
constexpr std::uint32_t cnt_of(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w >> 32); }
constexpr std::uint64_t make_word(std::uint32_t pos, std::uint32_t cnt) noexcept {
  return (std::uint64_t{cnt} << 32) | pos;
}
// Messages published and not yet taken, and bytes they occupy, between a head and a tail word.
constexpr std::uint32_t items_between(std::uint64_t head, std::uint64_t tail) noexcept {
  return cnt_of(head) - cnt_of(tail);
}
constexpr std::uint32_t bytes_between(std::uint64_t head, std::uint64_t tail) noexcept {
  return pos_of(head) - pos_of(tail);
}
constexpr std::uint32_t record_size(std::size_t payload) noexcept {
  return static_cast<std::uint32_t>(kHeader + ((payload + 7) & ~std::size_t{7}));
}

// Publishing is a release store; a sleeper is only woken if the publisher then sees its
// bit, so the store must be globally visible before the WaitWord is read (the Dekker
// pattern). A locked instruction there would cost ~20 ns per put and per get, so the fence
// is asymmetric (src/os/membarrier.hpp): a process registered for membarrier uses a
// compiler-only fence, and a sleeper, after setting its bit and before re-checking the
// index, runs heavy_fence(): then either the publisher's store is visible to the re-check
// or the publisher's load comes after the barrier and sees the bit. A process that could
// not register uses a real fence (SideLock::unlock issues it before these run).
void notify_after_unlock(WaitWord& w) noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  w.notify();
}
void notify_now(WaitWord& w) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  w.notify();
}

// The sleeper's half of the asymmetric fence: call after WaitWord::prepare() and before
// re-checking the condition. Returns the deadline to sleep until: `deadline` itself, or,
// where membarrier is unavailable (a registered peer might then never see the bit), at
// most 1 ms, after which the caller re-checks.
Deadline sleep_deadline_after_fence(Deadline deadline) noexcept {
  if (heavy_fence()) return deadline;
  auto cap = Clock::now() + std::chrono::milliseconds(1);
  return deadline && *deadline < cap ? deadline : Deadline(cap);
}

void fault_point(RingPoint p) noexcept {
  if (auto hook = ring_fault_hook.load(std::memory_order_relaxed)) hook(p);
}

}  // namespace

std::atomic<RingFaultHook> ring_fault_hook{nullptr};

// The robust lock of one side (producers or consumers): the holder's pid, 0 when free.
// Taking it is one compare-exchange; releasing it is a plain release store (no locked
// instruction) followed by a look at `sleepers`, made safe by the asymmetric fence above:
// a waiter announces itself in `sleepers`, runs heavy_fence(), and only then re-reads the
// word and sleeps. A waiter that finds the holder dead (a SIGKILLed process) takes the
// lock over (the takeover and its probe schedule: src/sync/robust_lock.hpp): no repair is
// needed (see ring.hpp).
struct SideLock {
  std::atomic<std::uint32_t> word{0};
  WaitWord sleepers;
  // The holder's identity (pid and start time), published after taking the word, cleared
  // before releasing it: tells a dead holder from a new process given its pid.
  std::atomic<std::uint64_t> holder_id{0};

  bool lock(std::uint32_t me, Deadline deadline) noexcept { return try_lock(me) || lock_slow(me, deadline); }
  // `light`: this process is registered for the asymmetric fence.
  void unlock(bool light) noexcept {
    holder_id.store(0, std::memory_order_relaxed);
    word.store(0, std::memory_order_release);
    if (light) std::atomic_signal_fence(std::memory_order_seq_cst);
    else std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleepers.word.load(std::memory_order_relaxed) & 1u) [[unlikely]]
      sleepers.notify();
  }

 private:
  bool try_lock(std::uint32_t me) noexcept {
    std::uint32_t free = 0;
    if (!word.compare_exchange_strong(free, me, std::memory_order_acquire, std::memory_order_relaxed)) return false;
    holder_id.store(self_identity(), std::memory_order_relaxed);
    return true;
  }
  // The holder recorded in the word has exited: take the lock from it (sync/robust_lock.hpp).
  bool take_over_if_holder_dead(std::uint32_t me) noexcept {
    return internal::take_over_if_holder_dead(word, holder_id, ~std::uint32_t{0}, me);
  }
  [[gnu::noinline]] bool lock_slow(std::uint32_t me, Deadline deadline) noexcept {
    for (int i = 0; i < wait_policy::kLockSpins; ++i) {
      if (word.load(std::memory_order_relaxed) == 0 && try_lock(me)) return true;
      cpu_relax();
    }
    if (deadline && *deadline <= Clock::now()) return try_lock(me) || take_over_if_holder_dead(me);
    HolderProbe probe;
    for (;;) {
      std::uint32_t v = sleepers.prepare();
      const Deadline until = sleep_deadline_after_fence(probe.sleep_until(deadline));
      if (word.load(std::memory_order_acquire) == 0) {
        if (try_lock(me)) return true;
        continue;
      }
      if (futex_wait(sleepers.word, v, until) == WaitResult::woken) continue;
      const auto now = Clock::now();
      if (deadline && *deadline <= now) return try_lock(me) || take_over_if_holder_dead(me);
      if (probe.due(now)) {
        if (take_over_if_holder_dead(me)) return true;
        probe.probed(now);
      }
    }
  }
};

// Fields written by producers, by consumers, and by sleepers sit on separate cache lines.
// Each lock line is touched by one side only (while it runs alone), and `head` / `tail`
// each bounce between just the two sides, as in a bare SPSC ring.
struct RingHeader {
  std::uint32_t capacity = 0;  // bytes in the ring, a power of two; immutable
  std::uint32_t maxsize = 0;   // messages; 0 = bounded by bytes only; immutable
  std::atomic<std::uint32_t> shut{0};  // Queue.shutdown: 0 open, kShut, kShutNow; set once, read-mostly

  alignas(64) SideLock put_lock;
  std::atomic<std::uint64_t> tail_cache{0};  // producers' last view of `tail`: a lower bound
  alignas(64) std::atomic<std::uint64_t> head{0};  // (position | published count << 32)

  alignas(64) SideLock get_lock;
  std::atomic<std::uint64_t> head_cache{0};  // consumers' last view of `head`: a lower bound
  alignas(64) std::atomic<std::uint64_t> tail{0};  // (position | taken count << 32)

  alignas(64) WaitWord data;   // consumers sleep here until `head` moves
  alignas(64) WaitWord space;  // producers sleep here until `tail` moves
  alignas(64) std::atomic<std::uint32_t> done{0};  // JoinableQueue: task_done() calls
  WaitWord tasks;                                  // JoinableQueue: join() sleeps here

  // shutdown_when_producers_exit: the identities (self_identity(), or pid << 32 alone when
  // the start time could not be read) of the processes that put; 0 = free slot. Written
  // once per producer process, read by getters that find the ring empty.
  alignas(64) std::array<std::atomic<std::uint64_t>, kMaxProducers> producers{};
};
static_assert(sizeof(RingHeader) % 64 == 0);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

Ring::Local::Local() : spin_get_ns(wait_policy::kSpinInitialNs), spin_put_ns(wait_policy::kSpinInitialNs) {}

Ring::Ring(RingOptions opts) {
  if (opts.capacity > kMaxCapacity)
    throw ValueError("Queue: capacity_bytes=" + std::to_string(opts.capacity) + " is larger than the 1 GiB limit");
  std::size_t cap = kMinCapacity;
  while (cap < opts.capacity) cap <<= 1;
  seg_ = Segment::create(sizeof(RingHeader) + cap, "mp-queue");
  h_ = new (seg_->data()) RingHeader;
  h_->capacity = static_cast<std::uint32_t>(cap);
  h_->maxsize = static_cast<std::uint32_t>(std::min(opts.maxsize, kMaxMaxsize));
  watch_producers_ = opts.shutdown_when_producers_exit;
  data_ = static_cast<unsigned char*>(seg_->data()) + sizeof(RingHeader);
  cap_ = static_cast<std::uint32_t>(cap);
  mask_ = cap_ - 1;
  local_ = std::make_shared<Local>();
}

void Ring::set_closed() noexcept { local_->closed_by.store(self_pid(), std::memory_order_relaxed); }

std::size_t Ring::maxsize() const noexcept { return h_->maxsize; }
std::size_t Ring::capacity() const noexcept { return cap_; }
std::size_t Ring::max_whole_message() const noexcept { return cap_ / 2 - kHeader; }

namespace {
constexpr std::uint32_t kShut = 1;     // shutdown(): puts fail, gets drain what is left
constexpr std::uint32_t kShutNow = 2;  // shutdown(immediate=true): gets fail at once too
}  // namespace

bool Ring::is_shut_down() const noexcept { return h_->shut.load(std::memory_order_acquire) != 0; }

void Ring::shutdown(bool immediate) {
  std::uint32_t open = 0;
  h_->shut.compare_exchange_strong(open, kShut, std::memory_order_seq_cst);
  if (immediate) {
    // Take every waiting message out and drop it: once shut down, get() returns false as
    // soon as the ring is empty. Each one counts as done (Python calls task_done for them),
    // so join() waits only for messages consumers already took. Then gets fail at once.
    struct Discard final : RingSink {
      std::string buf;
      void* reserve(std::size_t n) override {
        buf.resize(n);
        return buf.data();
      }
      void accept(const void*, std::size_t) override {}
    } discard;
    std::uint32_t dropped = 0;
    for (bool more = true; more; dropped += more) {
      try {
        more = get(discard, std::nullopt);
      } catch (...) {  // a message that cannot be taken (no memory for it) is dropped all the same
        more = true;
      }
    }
    h_->shut.store(kShutNow, std::memory_order_seq_cst);
    if (dropped) h_->done.fetch_add(dropped, std::memory_order_seq_cst);
    h_->tasks.notify();
  }
  // Sleepers re-check their condition, which includes `shut` (await_change).
  h_->data.notify();
  h_->space.notify();
}

namespace {
// A producer slot's pid, and the identity to check it by (0: its start time is unknown, so
// the pid alone decides; robust_lock.hpp's holder_gone).
std::uint32_t producer_pid(std::uint64_t slot) noexcept { return static_cast<std::uint32_t>(slot >> 32); }
std::uint64_t producer_id(std::uint64_t slot) noexcept { return (slot & 0xffffffffu) != 0 ? slot : 0; }
}  // namespace

// Once per process (and again in a forked child, whose pid differs): record this process in
// the producers table before its first put. Ordered before the put's shutdown check, so a
// getter that finds every producer gone either saw this slot or shut the ring before the
// put looked (which then fails with ShutDown).
void Ring::register_producer() {
  const pid_t me = self_pid();
  const std::uint64_t identity = self_identity();
  const std::uint64_t id = identity != 0 ? identity : std::uint64_t(static_cast<std::uint32_t>(me)) << 32;
  auto& slots = h_->producers;
  bool done = false;
  for (auto& s : slots)  // already there (another thread of this process registered)
    if (s.load(std::memory_order_acquire) == id) done = true;
  for (auto& s : slots) {  // a free slot
    if (done) break;
    std::uint64_t free = 0;
    done = s.compare_exchange_strong(free, id, std::memory_order_seq_cst);
  }
  for (auto& s : slots) {  // the table is full: reuse the slot of a producer that has ended
    if (done) break;
    std::uint64_t old = s.load(std::memory_order_acquire);
    done = holder_gone(producer_pid(old), producer_id(old)) &&
           s.compare_exchange_strong(old, id, std::memory_order_seq_cst);
  }
  if (!done)
    throw RuntimeError("Queue.put(): " + std::to_string(kMaxProducers) +
                       " live processes already put into this queue, the most a queue created with "
                       "shutdown_when_producers_exit records; put from fewer processes (e.g. through one "
                       "process that forwards), or create the queue without that option");
  local_->producer_pid.store(me, std::memory_order_relaxed);
}

bool Ring::producers_gone() const noexcept {
  bool any = false;
  for (const auto& s : h_->producers) {
    const std::uint64_t slot = s.load(std::memory_order_seq_cst);
    if (slot == 0) continue;
    if (!holder_gone(producer_pid(slot), producer_id(slot))) return false;
    any = true;
  }
  return any;  // nobody ever registered: nobody has produced yet, keep waiting
}

std::size_t Ring::qsize() const noexcept {
  std::uint64_t tail = h_->tail.load(std::memory_order_acquire);  // tail first: never ahead of head
  std::uint64_t head = h_->head.load(std::memory_order_acquire);
  return items_between(head, tail);
}

std::uint32_t Ring::free_bytes(std::uint64_t head, std::uint64_t tail) const noexcept {
  return cap_ - bytes_between(head, tail);
}
bool Ring::below_maxsize(std::uint64_t head, std::uint64_t tail) const noexcept {
  return h_->maxsize == 0 || items_between(head, tail) < h_->maxsize;
}

// SideLock::lock takes over from a dead holder even when `deadline` is immediate, so
// get_nowait()/put_nowait() recover a side abandoned by a killed process too.
inline bool Ring::lock_put(Deadline deadline) noexcept { return h_->put_lock.lock(static_cast<std::uint32_t>(self_pid()), deadline); }
inline bool Ring::lock_get(Deadline deadline) noexcept { return h_->get_lock.lock(static_cast<std::uint32_t>(self_pid()), deadline); }
// A takeover from a dead holder needs no repair (see ring.hpp).
inline void Ring::unlock_put() noexcept { h_->put_lock.unlock(light_fences_registered()); }
inline void Ring::unlock_get() noexcept { h_->get_lock.unlock(light_fences_registered()); }

void Ring::copy_in(std::uint32_t pos, const void* src, std::size_t n) noexcept {
  if (n == 0) return;  // src may be null (an empty vector's data())
  std::uint32_t idx = pos & mask_;
  std::size_t first = std::min<std::size_t>(n, cap_ - idx);
  std::memcpy(data_ + idx, src, first);
  if (n > first) std::memcpy(data_, static_cast<const unsigned char*>(src) + first, n - first);
}

void Ring::copy_out(std::uint32_t pos, void* dst, std::size_t n) const noexcept {
  if (n == 0) return;
  std::uint32_t idx = pos & mask_;
  std::size_t first = std::min<std::size_t>(n, cap_ - idx);
  std::memcpy(dst, data_ + idx, first);
  if (n > first) std::memcpy(static_cast<unsigned char*>(dst) + first, data_, n - first);
}

// Writes a record at the head and publishes it with one store (the commit point).
// Caller holds put_lock and has checked there is room.
void Ring::publish_head(std::uint64_t head, std::uint32_t pos, std::uint32_t len, std::uint32_t kind, const void* a,
                        std::size_t an, const void* b, std::size_t bn, bool counts) noexcept {
  std::uint32_t hdr[2] = {len, kind | (static_cast<std::uint32_t>(self_pid()) << 3)};
  std::memcpy(data_ + (pos & mask_), hdr, kHeader);  // never wraps: positions are multiples of 8
  if (an) copy_in(pos + kHeader, a, an);
  if (bn) copy_in(static_cast<std::uint32_t>(pos + kHeader + an), b, bn);
  fault_point(RingPoint::put_before_publish);
  h_->head.store(make_word(pos + record_size(len), cnt_of(head) + (counts ? 1 : 0)), std::memory_order_release);
}

// How far the tail must move before a producer that found no room for an n-byte message at
// `seen_tail` stops spinning: until an eighth of the ring (and of maxsize) is free beyond
// its record. (Once the spin is over, any room will do.)
RingProgress Ring::room_worth_waiting_for(std::uint64_t seen_tail, std::size_t n) const noexcept {
  const std::uint64_t head = h_->head.load(std::memory_order_relaxed);
  auto shortfall = [](std::uint32_t want, std::uint32_t have) { return want > have ? want - have : 0u; };
  RingProgress p;
  p.bytes = shortfall(std::min(cap_, record_size(n) + cap_ / 8), free_bytes(head, seen_tail));
  if (h_->maxsize != 0) {
    const std::uint32_t used = items_between(head, seen_tail);
    const std::uint32_t free_items = used < h_->maxsize ? h_->maxsize - used : 0;
    p.count = shortfall(std::max<std::uint32_t>(1, h_->maxsize / 8), free_items);
  }
  return p;
}

bool Ring::try_write_whole(const void* data, std::size_t n, std::uint64_t& seen_tail) noexcept {
  std::uint64_t head = h_->head.load(std::memory_order_acquire);  // only put_lock holders change it
  std::uint32_t rec = record_size(n);
  auto room = [&](std::uint64_t tail) {
    return bytes_between(head, tail) + std::uint64_t{rec} <= cap_ && below_maxsize(head, tail);
  };
  std::uint64_t tail =
      kUseCaches ? h_->tail_cache.load(std::memory_order_relaxed) : h_->tail.load(std::memory_order_acquire);
  if (!room(tail)) {
    tail = h_->tail.load(std::memory_order_acquire);  // consumers finished reading what we overwrite
    h_->tail_cache.store(tail, std::memory_order_relaxed);
    if (!room(tail)) {
      seen_tail = tail;
      return false;
    }
  }
  publish_head(head, pos_of(head), static_cast<std::uint32_t>(n), kWhole, data, n, nullptr, 0, true);
  return true;
}

bool Ring::put(const void* data, std::size_t n, Deadline deadline) {
  if (watch_producers_ && local_->producer_pid.load(std::memory_order_relaxed) != self_pid()) [[unlikely]]
    register_producer();
  if (n > max_whole_message()) return put_fragmented(data, n, deadline);
  for (;;) {
    if (is_shut_down()) return false;
    if (!lock_put(deadline)) return false;
    std::uint64_t seen_tail = 0;
    bool ok = try_write_whole(data, n, seen_tail);
    unlock_put();
    if (ok) {
      notify_after_unlock(h_->data);
      return true;
    }
    // Full: wait (without the lock) until a consumer moves the tail, then try again. While
    // spinning, wait for room for a batch of messages rather than for one: a producer that
    // tracks a busy consumer message by message pulls the consumer's `tail` line on every
    // message, which stalls the consumer (its next locked instruction waits for the line).
    if (!await_change(h_->tail, seen_tail, h_->space, deadline, local_->spin_put_ns, kSpacePauses,
                      room_worth_waiting_for(seen_tail, n)))
      return false;
  }
}

// A message larger than half the ring: fragments written while holding put_lock throughout,
// always keeping 8 bytes free so that an ABORT record can be written on timeout.
bool Ring::put_fragmented(const void* data, std::size_t n, Deadline deadline) {
  const auto* src = static_cast<const unsigned char*>(data);
  const std::size_t frag_max = cap_ / 2 - 2 * kHeader;
  for (;;) {
    if (is_shut_down()) return false;
    if (!lock_put(deadline)) return false;
    std::uint64_t head = h_->head.load(std::memory_order_relaxed);
    std::uint64_t tail = h_->tail.load(std::memory_order_acquire);
    h_->tail_cache.store(tail, std::memory_order_relaxed);
    bool count_ok = below_maxsize(head, tail);
    bool expired = deadline && *deadline <= Clock::now();
    // With no time left, start only if the whole message fits now (never half-send and abort).
    std::size_t worst = n + 2 * kHeader * (n / frag_max + 3);
    if (count_ok && (!expired || free_bytes(head, tail) >= worst)) break;
    unlock_put();
    if (count_ok) return false;
    if (!await_change(h_->tail, tail, h_->space, deadline, local_->spin_put_ns, kSpacePauses)) return false;
  }
  std::size_t sent = 0;
  bool first = true;
  for (;;) {
    std::uint64_t head = h_->head.load(std::memory_order_relaxed);
    std::size_t remaining = n - sent;
    std::size_t extra = first ? 8 : 0;
    std::size_t wanted = record_size(std::min(remaining, frag_max) + extra) + kHeader;  // + ABORT reserve
    std::size_t threshold = std::min<std::size_t>(wanted, cap_ / 8);
    std::uint64_t tail =
        kUseCaches ? h_->tail_cache.load(std::memory_order_relaxed) : h_->tail.load(std::memory_order_acquire);
    if (free_bytes(head, tail) < threshold) {
      tail = h_->tail.load(std::memory_order_acquire);
      h_->tail_cache.store(tail, std::memory_order_relaxed);
    }
    if (free_bytes(head, tail) < threshold) {
      if (!await_change(h_->tail, tail, h_->space, deadline, local_->spin_put_ns, kSpacePauses) ||
          is_shut_down()) {
        if (!first) publish_head(head, pos_of(head), 0, kAbort, nullptr, 0, nullptr, 0, false);
        unlock_put();
        notify_after_unlock(h_->data);
        return false;
      }
      continue;
    }
    std::size_t fit = ((std::size_t{free_bytes(head, tail)} - 2 * kHeader) & ~std::size_t{7}) - extra;
    std::size_t take = std::min({remaining, frag_max, fit});
    std::uint32_t kind = first ? kFirst : (sent + take == n ? kLast : kMiddle);
    if (first) {
      std::uint64_t total = n;
      publish_head(head, pos_of(head), static_cast<std::uint32_t>(take + 8), kFirst, &total, 8, src, take, false);
    } else {
      publish_head(head, pos_of(head), static_cast<std::uint32_t>(take), kind, src + sent, take, nullptr, 0,
                   kind == kLast);
    }
    sent += take;
    first = false;
    if (kind == kLast) break;
    notify_now(h_->data);
    fault_point(RingPoint::put_between_fragments);
  }
  unlock_put();
  notify_after_unlock(h_->data);
  return true;
}

bool Ring::get(RingSink& sink, Deadline deadline) {
  std::optional<HolderProbe> probe;  // shutdown_when_producers_exit: when to look at the producers
  for (;;) {
    if (h_->shut.load(std::memory_order_acquire) == kShutNow) return false;
    if (!lock_get(deadline)) return false;
    std::uint64_t seen_head = 0;
    bool released = false;
    Read r;
    try {
      r = try_read(sink, seen_head, released);
    } catch (...) {
      unlock_get();
      if (released) notify_after_unlock(h_->space);
      throw;
    }
    unlock_get();
    if (released) notify_after_unlock(h_->space);
    if (r == Read::got) return true;
    if (is_shut_down()) return false;  // empty and shut down: nothing more will come
    // Empty, and every producer has ended: shut down, then drain what they published
    // before they ended (the next round) before returning false.
    if (watch_producers_ && producers_gone()) {
      shutdown(false);
      continue;
    }
    // Empty: wait (without the lock) until a producer moves the head, then try again. When
    // watching producers, wake at the probe intervals to look at them again: a producer
    // that dies leaves no trace in the ring.
    Deadline until = deadline;
    if (watch_producers_) {
      if (!probe) probe.emplace();
      until = probe->sleep_until(deadline);
    }
    if (!await_change(h_->head, seen_head, h_->data, until, local_->spin_get_ns, kDataPauses)) {
      if (until != deadline) {
        probe->probed(Clock::now());
        continue;
      }
      if (watch_producers_ && producers_gone()) continue;  // last look: ShutDown rather than Empty
      return false;
    }
  }
}

// Caller holds get_lock. Skips orphaned fragments; returns got after one whole message.
Ring::Read Ring::try_read(RingSink& sink, std::uint64_t& seen_head, bool& released) {
  std::uint64_t tail = h_->tail.load(std::memory_order_acquire);  // only get_lock holders change it
  std::uint64_t head =
      kUseCaches ? h_->head_cache.load(std::memory_order_relaxed) : h_->head.load(std::memory_order_acquire);
  auto advance = [&](std::uint32_t rec, bool counts) {
    tail = make_word(pos_of(tail) + rec, cnt_of(tail) + (counts ? 1 : 0));
    h_->tail.store(tail, std::memory_order_release);  // the record is gone (see notify_after_unlock)
    released = true;
  };
  for (;;) {
    if (pos_of(tail) == pos_of(head)) {
      head = h_->head.load(std::memory_order_acquire);
      h_->head_cache.store(head, std::memory_order_relaxed);
      if (pos_of(tail) == pos_of(head)) {
        seen_head = head;
        return Read::empty;
      }
    }
    std::uint32_t hdr[2];
    std::memcpy(hdr, data_ + (pos_of(tail) & mask_), kHeader);
    std::uint32_t len = hdr[0], kind = hdr[1] & 7u, rec = record_size(hdr[0]);
    if (rec > bytes_between(head, tail))
      throw RuntimeError("mp::Queue: the shared ring is corrupt (a record runs past the published head); "
                         "something outside mp wrote into the queue's memory");
    if (kind == kWhole) {
      const std::uint32_t at = (pos_of(tail) + kHeader) & mask_;
      try {
        if (at + len <= cap_) sink.accept(data_ + at, len);  // most messages: one piece
        else copy_out(pos_of(tail) + kHeader, sink.reserve(len), len);
      } catch (...) {
        advance(rec, true);  // drop it rather than leave a message nobody can take
        throw;
      }
      fault_point(RingPoint::get_before_release);
      advance(rec, true);
      return Read::got;
    }
    if (kind == kFirst) {
      released = true;
      if (assemble(sink, tail, len, hdr[1])) return Read::got;
      head = kUseCaches ? h_->head_cache.load(std::memory_order_relaxed) : h_->head.load(std::memory_order_acquire);
      continue;
    }
    // A MIDDLE/LAST whose FIRST went to a consumer that died, or an ABORT: skip it.
    advance(rec, kind == kLast);
  }
}

// Caller holds get_lock; `tail` points at a FIRST record. Collects the fragments into the
// sink, releasing each as soon as it is copied (the writer needs the room). The caller's
// deadline does not apply: once a message has started it is finished, or discarded when
// its writer dies or withdraws it. Returns false when discarded.
bool Ring::assemble(RingSink& sink, std::uint64_t& tail, std::uint32_t len, std::uint32_t tag) {
  auto writer = static_cast<pid_t>(tag >> 3);
  auto advance = [&](std::uint32_t rec, bool counts) {
    tail = make_word(pos_of(tail) + rec, cnt_of(tail) + (counts ? 1 : 0));
    h_->tail.store(tail, std::memory_order_release);
    notify_now(h_->space);  // the writer may be waiting for exactly this room
  };
  std::uint64_t total = 0;
  copy_out(pos_of(tail) + kHeader, &total, 8);
  std::size_t got = len - 8;
  if (len < 8 || got > total) {
    advance(record_size(len), false);
    return false;
  }
  unsigned char* dst;
  try {
    dst = static_cast<unsigned char*>(sink.reserve(total));
  } catch (...) {
    advance(record_size(len), false);  // the rest of the message becomes orphans, skipped later
    throw;
  }
  copy_out(pos_of(tail) + kHeader + 8, dst, got);
  advance(record_size(len), false);
  for (;;) {
    std::uint64_t head = h_->head.load(std::memory_order_acquire);
    h_->head_cache.store(head, std::memory_order_relaxed);
    if (pos_of(head) == pos_of(tail)) {
      const bool changed =
          await_change(h_->head, head, h_->data, Clock::now() + kWriterProbe, local_->spin_get_ns, kDataPauses);
      if (changed && !is_shut_down()) continue;
      if (h_->head.load(std::memory_order_acquire) == head) {
        if (process_has_exited(writer)) return false;  // the writer died mid-message: what arrived is discarded
        // Shut down: await_change no longer sleeps, and the live writer is aborting its
        // message (it sees the shutdown too). Let it run.
        if (changed) std::this_thread::yield();
      }
      continue;
    }
    std::uint32_t hdr[2];
    std::memcpy(hdr, data_ + (pos_of(tail) & mask_), kHeader);
    std::uint32_t kind = hdr[1] & 7u;
    if (kind == kMiddle || kind == kLast) {
      if (got + hdr[0] > total) return false;  // not ours (cannot happen): leave it to be skipped
      copy_out(pos_of(tail) + kHeader, dst + got, hdr[0]);
      got += hdr[0];
      if (kind == kLast) fault_point(RingPoint::get_before_release);
      advance(record_size(hdr[0]), kind == kLast);
      if (kind == kLast) return got == total;
      fault_point(RingPoint::get_between_fragments);
      continue;
    }
    if (kind == kAbort) advance(record_size(hdr[0]), false);
    return false;  // ABORT, or a new FIRST/WHOLE: the writer gave up on this message
  }
}

// Spin for the adaptive budget, then sleep (src/common/wait_policy.hpp). The evidence that
// the peer ran on our CPU: the waker's CPU, which WaitWord::notify records.
bool Ring::await_change(const std::atomic<std::uint64_t>& w, std::uint64_t seen, WaitWord& sig, Deadline deadline,
                        std::atomic<std::int64_t>& budget, int max_pauses, RingProgress enough) noexcept {
  // A shutdown wakes every waiter: it counts as a change (the caller checks which).
  auto moved_enough = [&](std::uint64_t now) {
    return (now != seen && static_cast<std::uint32_t>(cnt_of(now) - cnt_of(seen)) >= enough.count &&
            static_cast<std::uint32_t>(pos_of(now) - pos_of(seen)) >= enough.bytes) ||
           h_->shut.load(std::memory_order_relaxed) != 0;
  };
  if (moved_enough(w.load(std::memory_order_acquire))) return true;
  const auto start = Clock::now();
  if (deadline && *deadline <= start) return w.load(std::memory_order_acquire) != seen;
  const std::int64_t spin = budget.load(std::memory_order_relaxed);
  auto spin_end = start + std::chrono::nanoseconds(spin);
  if (deadline && *deadline < spin_end) spin_end = *deadline;
  // Poll with back-off (wait_policy::Backoff). While spinning, wait for `enough` progress
  // (any change once the spin is over).
  wait_policy::Backoff backoff(max_pauses);
  for (int polls = 1; spin > 0; ++polls) {
    if (moved_enough(w.load(std::memory_order_acquire))) return true;
    backoff.pause();
    if (polls % 4 == 0 && Clock::now() >= spin_end) break;
  }
  if (w.load(std::memory_order_acquire) != seen) return true;
  // Where we spun, not where we wake: the scheduler tends to wake us on the waker's CPU.
  const std::int32_t spin_cpu = current_cpu();
  auto adapt = [&](bool slept) {
    auto waited = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    std::int64_t next =
        wait_policy::next_spin_ns(spin, waited, slept && sig.waker_cpu.load(std::memory_order_relaxed) == spin_cpu);
    if (next != spin) budget.store(next, std::memory_order_relaxed);
  };
  for (;;) {
    std::uint32_t v = sig.prepare();
    const Deadline until = sleep_deadline_after_fence(deadline);
    if (w.load(std::memory_order_seq_cst) != seen || h_->shut.load(std::memory_order_seq_cst) != 0) {
      adapt(false);
      return true;
    }
    if (futex_wait(sig.word, v, until) == WaitResult::timed_out) {
      if (until != deadline && (!deadline || Clock::now() < *deadline)) continue;  // only the 1 ms cap passed
      adapt(false);
      return w.load(std::memory_order_acquire) != seen;
    }
    if (w.load(std::memory_order_acquire) != seen || h_->shut.load(std::memory_order_acquire) != 0) {
      adapt(true);
      return true;
    }
  }
}

void Ring::task_done() {
  std::uint32_t d = h_->done.load(std::memory_order_relaxed);
  for (;;) {
    if (cnt_of(h_->head.load(std::memory_order_seq_cst)) == d)
      throw ValueError("JoinableQueue.task_done() called too many times: more calls than items were put");
    if (h_->done.compare_exchange_weak(d, d + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) break;
  }
  if (cnt_of(h_->head.load(std::memory_order_seq_cst)) == d + 1) h_->tasks.notify();
}

bool Ring::join(Deadline deadline) {
  auto all_done = [&] {
    return cnt_of(h_->head.load(std::memory_order_seq_cst)) == h_->done.load(std::memory_order_seq_cst);
  };
  for (;;) {
    if (all_done()) return true;
    std::uint32_t v = h_->tasks.prepare();
    if (all_done()) return true;
    if (futex_wait(h_->tasks.word, v, deadline) == WaitResult::timed_out) return all_done();
  }
}

std::size_t Ring::unfinished() const noexcept {
  std::uint32_t d = h_->done.load(std::memory_order_acquire);
  return static_cast<std::uint32_t>(cnt_of(h_->head.load(std::memory_order_acquire)) - d);
}

}  // namespace mp::internal

namespace mp::internal {

std::string& codec_scratch() {
  thread_local std::string buf;
  return buf;
}

}  // namespace mp::internal
