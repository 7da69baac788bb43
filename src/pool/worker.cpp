// The pool worker's loop: reads task frames from its ring, runs them, writes the result
// frames back. See pool.cpp for the protocol and transport.hpp for the rings.
#include <cstdio>
#include <string>

#include "common/exception_table.hpp"
#include "common/type_name.hpp"
#include "mp/internal/call.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"
#include "pool/transport.hpp"

namespace mp::internal::pool {
namespace {

/// Worker side: waits until `ready()` (data to read / room to write) on ring `r`.
template <class Pred>
void worker_wait(RingCtl& r, Pred ready) noexcept {
  wait_policy::YieldingSpin s(wait_policy::kPoolIdleSpin);
  while (!ready())
    if (!s.again()) break;
  while (!ready()) {
    std::uint32_t key = r.seq.load(std::memory_order_acquire);
    r.waiting.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!ready()) futex_wait(r.seq, key, std::nullopt);
    r.waiting.store(0, std::memory_order_relaxed);
  }
}

/// Reads exactly n bytes of the task stream. A worker left waiting in the middle of a
/// frame means the parent still holds the rest of it: it rings the parent (if asleep)
/// before waiting, and the parent re-checks for room before it sleeps.
void worker_read(WorkerShm& w, PoolShm& p, int efd, char* dst, std::size_t n, bool mid_frame) {
  while (n) {
    std::size_t a = ring_avail(w.tasks);
    if (a == 0) {
      if (mid_frame) wake_parent(p, efd);
      worker_wait(w.tasks, [&] { return ring_avail(w.tasks) > 0; });
      continue;
    }
    std::size_t k = std::min(a, n);
    ring_read(w.tasks, w.task_buf, dst, k);
    dst += k;
    n -= k;
    mid_frame = true;
  }
}

void worker_write(WorkerShm& w, PoolShm& p, int efd, const char* src, std::size_t n) {
  while (n) {
    std::size_t k = ring_write(w.results, w.result_buf, src, n);
    src += k;
    n -= k;
    if (k) wake_parent(p, efd);
    if (n) worker_wait(w.results, [&] { return ring_free(w.results) > 0; });
  }
}

}  // namespace

void worker_main(WorkerShm* w, PoolShm* p, int efd, const Initializer& init, int maxtasks) {
  if (init) {
    try {
      init();
    } catch (const SystemExit&) {
      throw;
    } catch (...) {
      std::string t, m;
      describe_current_exception(t, m);
      std::fprintf(stderr, "mp.Pool: the worker initializer raised %s: %s (the worker goes on)\n", t.c_str(),
                   m.c_str());
    }
  }
  std::string msg, out;
  long done = 0;
  for (;;) {
    char hdr[kHdr];
    worker_read(*w, *p, efd, hdr, kHdr, false);
    std::uint32_t len;
    std::uint64_t id;
    std::memcpy(&len, hdr, 4);
    std::memcpy(&id, hdr + 4, 8);
    msg.resize(len - 8);
    worker_read(*w, *p, efd, msg.data(), msg.size(), true);
    if (id == 0) return;  // sentinel: close()/join()
    w->current_task.store(id, std::memory_order_relaxed);
    out.assign(kHdr + 1, '\0');
    char status = 0;
    try {
      CallReader in(msg, kPoolCallErrors);  // what task_header() and submit_encoded() wrote
      in.raw<Runner>()(in, out);
    } catch (const SystemExit&) {
      throw;  // mp::exit() in a task ends the worker (the parent reports WorkerLost)
    } catch (const ResultNotSent& e) {
      status = 1;
      out.resize(kHdr + 1);
      put_field(out, std::string("mp::CodecError"));
      put_field(out, "Error sending result: a " + demangle(e.type->name()) +
                         (e.count > 1 ? " (item " + std::to_string(e.item + 1) + " of a chunk of " +
                                            std::to_string(e.count) + ")"
                                      : std::string()) +
                         " could not be encoded. Reason: " + e.reason +
                         " (Python's MaybeEncodingError: the task ran and returned; only its result could not be sent)");
    } catch (...) {
      status = 1;
      std::string t, s;
      describe_current_exception(t, s);
      out.resize(kHdr + 1);
      put_field(out, t);
      put_field(out, s);
    }
    auto flen = static_cast<std::uint32_t>(out.size() - 4);
    std::memcpy(out.data(), &flen, 4);
    std::memcpy(out.data() + 4, &id, 8);
    out[kHdr] = status;
    worker_write(*w, *p, efd, out.data(), out.size());
    w->current_task.store(0, std::memory_order_relaxed);
    if (maxtasks > 0 && ++done >= maxtasks) return;
  }
}

}  // namespace mp::internal::pool
