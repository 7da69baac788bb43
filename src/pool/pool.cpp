// The process Pool's engine. See include/mp/pool.hpp for the contract.
//
// Transport: each worker has its own shared-memory segment holding two single-producer
// single-consumer byte rings (tasks: parent -> worker, results: worker -> parent) and the
// id of the task it is running. A frame is [u32 length][u64 task id][body]; frames of any
// size stream through the rings (a writer waits for room, a reader accumulates).
// Per-worker rings make crash attribution exact: the parent knows which tasks it gave
// each worker, the results come back in order, and `current_task` says which one was
// running when the worker died.
//
// Waiting: the parent's single handler thread (dispatch + results + callbacks) spins
// briefly when idle (src/common/wait_policy.hpp), then sleeps in poll() on an eventfd (rung by workers only when the
// parent has said it is asleep) and on the workers' pidfds (so a death wakes it at once).
// A worker spins briefly, then sleeps on its ring's futex word. The flags are set with
// seq_cst fences on both sides (Dekker): a wake-up can be spurious, never lost.
#include "mp/pool.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "common/exception_table.hpp"
#include "common/wait_policy.hpp"
#include "pool/transport.hpp"
#include "process/internal.hpp"
#include "mp/internal/fd.hpp"
#include "mp/internal/segment.hpp"
#include "mp/process.hpp"
#include "os/cgroup.hpp"
#include "os/file.hpp"

namespace mp::internal {
namespace {

using namespace pool;  // the rings, frames and wake-ups of pool/transport.hpp

struct Task {
  std::uint64_t id;
  PoolTask t;
  std::chrono::steady_clock::time_point deadline{};  // when t.timeout > 0: set as it is sent
};

struct Worker {
  std::shared_ptr<Segment> seg;
  WorkerShm* shm = nullptr;
  std::unique_ptr<Process> proc;
  pid_t pid = 0;
  int pidfd = -1;
  std::deque<Task> inflight;
  std::string out_partial;  // the part of a frame that did not fit in the ring yet
  std::string in_buf;       // result bytes read but not yet a whole frame
  long sent = 0;            // tasks given (for maxtasksperchild)
  bool exiting = false;     // sentinel sent
  std::uint64_t timed_out = 0;  // the task whose timeout made us kill this worker
  std::uint64_t cancelled = 0;  // the task whose cancel() made us kill this worker
};

/// How a worker process starts. Under StartMethod::fork it is a copy of this process and
/// runs worker_main with our pointers. Under forkserver it is a copy of the fork server:
/// its segment, the pool's segment and the eventfd travel as descriptors (mapped anew in
/// the worker), the initializer as a code address.
class WorkerTarget final : public Target {
 public:
  WorkerTarget(const Segment& seg, const Segment& pool_seg, int efd, const Initializer& init, int maxtasks)
      : seg_(seg), pool_seg_(pool_seg), efd_(efd), init_(init), maxtasks_(maxtasks) {}
  void call() override {
    worker_main(static_cast<WorkerShm*>(seg_.data()), static_cast<PoolShm*>(pool_seg_.data()), efd_, init_,
                maxtasks_);
  }
  [[nodiscard]] ServerCall server_call() const override {
    ServerCall c{&served_worker_main, {}, {seg_.fd(), pool_seg_.fd(), efd_}};
    put_raw(c.payload, init_.code());
    put_raw(c.payload, maxtasks_);
    return c;
  }

 private:
  static void served_worker_main(std::string_view payload) {
    CallReader r(payload, kServerCallErrors);
    auto code = r.raw<void (*)()>();
    auto maxtasks = r.raw<int>();
    r.finish();
    const std::vector<int>& fds = server_fds();
    if (fds.size() != 3) throw RuntimeError("Pool worker: the fork server passed the wrong descriptors");
    auto seg = Segment::attach(UniqueFd(fds[0]));
    auto pool_seg = Segment::attach(UniqueFd(fds[1]));
    Initializer init = code ? Initializer(code) : Initializer();
    worker_main(static_cast<WorkerShm*>(seg->data()), static_cast<PoolShm*>(pool_seg->data()), fds[2], init,
                maxtasks);
  }
  const Segment& seg_;
  const Segment& pool_seg_;
  int efd_;
  const Initializer& init_;
  int maxtasks_;
};

struct Outcome {
  std::shared_ptr<Sink> sink;
  std::size_t start;
  std::uint32_t count;
  bool ok;
  std::string_view payload;
  std::exception_ptr error;
};

}  // namespace

class ProcessPoolCore;

/// How a running task's cancel() reaches its pool: the sink holds this (shared), the pool
/// detaches it when it terminates, so a cancel() after that finds no pool and does nothing.
struct StopChannel {
  std::mutex mu;
  ProcessPoolCore* core = nullptr;
  void stop(std::uint64_t task);
};

class ProcessPoolCore {
 public:
  explicit ProcessPoolCore(PoolOptions opts) : opts_(std::move(opts)), pshm_("mp-pool") {
    stop_channel_->core = this;
    if (opts_.processes < 0) throw ValueError("Pool: processes must be at least 1 (or 0 for process_cpu_count())");
    if (opts_.maxtasksperchild < 0)
      throw ValueError("Pool: maxtasksperchild must be a positive int or 0 (never recycle a worker: Python's None), "
                       "not " + std::to_string(opts_.maxtasksperchild));
    if (get_start_method() == StartMethod::forkserver && opts_.initializer && !opts_.initializer.code())
      throw ValueError("Pool: under StartMethod::forkserver the initializer must be a function or a captureless "
                       "lambda: workers are forked by the fork server, not copied from this process, so what it "
                       "captures would not be there. Use a plain function (reading globals set before "
                       "set_start_method()), or StartMethod::fork");
    n_ = opts_.processes ? static_cast<std::size_t>(opts_.processes) : static_cast<std::size_t>(process_cpu_count());
    int efd = internal::make_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) throw OSError(-efd, "Pool: eventfd()");
    efd_.reset(efd);
    workers_.resize(n_);
    try {
      {
        std::lock_guard g(mu_);
        for (std::size_t i = 0; i < n_; ++i) start_worker_locked(i);
      }
      handler_ = std::thread([this] { handler_loop(); });
      handler_id_ = handler_.get_id();
    } catch (...) {
      terminate();  // a constructor that throws leaves no worker behind (the destructor will not run)
      throw;
    }
  }

  ~ProcessPoolCore() { terminate(); }

  std::size_t workers() const noexcept { return n_; }

  std::vector<pid_t> pids() const {
    std::lock_guard g(mu_);
    std::vector<pid_t> out;
    for (auto& w : workers_)
      if (w) out.push_back(w->pid);
    return out;
  }

  void submit(std::vector<PoolTask>&& tasks, Deadline admit) {
    std::unique_lock lk(mu_);
    if (closed_ || terminating_)
      throw ValueError(terminating_ ? "Pool not running: it was terminated" : "Pool not running: it was closed");
    // max_pending: admit tasks as room frees; never block the result thread (a callback
    // that submits), which is what frees the room.
    const bool bounded = opts_.max_pending > 0 && std::this_thread::get_id() != handler_id_;
    for (std::size_t i = 0; i < tasks.size();) {
      if (bounded && pending_.size() >= opts_.max_pending) {
        dispatch_locked();
        if (pending_.size() < opts_.max_pending) continue;
        auto has_room = [&] { return pending_.size() < opts_.max_pending || terminating_; };
        const bool in_time = admit ? room_.wait_until(lk, *admit, has_room) : (room_.wait(lk, has_room), true);
        if (terminating_) throw ValueError("Pool not running: it was terminated while this submission waited for room");
        if (!in_time)
          throw Full("Pool: " + std::to_string(pending_.size()) + " tasks already wait for a worker (max_pending = " +
                     std::to_string(opts_.max_pending) + ") and none started before submit_timeout; try again later, "
                     "or raise max_pending");
        continue;
      }
      any_timeouts_ |= tasks[i].timeout.count() > 0;
      pending_.push_back(Task{next_id_++, std::move(tasks[i])});
      ++outstanding_;
      ++i;
    }
    dispatch_locked();
  }

  void close() {
    std::lock_guard g(mu_);
    closed_ = true;
  }

  /// Future.cancel() of a running task: kills the worker whose current task it is; the
  /// reap then replaces the worker. A task sent behind another one is left to run (its
  /// result is dropped: the future is already cancelled).
  void stop_task(std::uint64_t id) {
    std::lock_guard g(mu_);
    for (auto& w : workers_)
      if (w && !w->inflight.empty() && w->inflight.front().id == id && w->cancelled != id) {
        w->cancelled = id;
        w->proc->kill();
      }
  }

  std::size_t cancel_pending() {
    std::vector<std::shared_ptr<Sink>> cancelled;
    {
      std::lock_guard g(mu_);
      std::deque<Task> keep;
      for (auto& t : pending_) {
        if (t.t.sink->cancellable() && t.t.sink->try_cancel()) {
          cancelled.push_back(t.t.sink);
          --outstanding_;
        } else {
          keep.push_back(std::move(t));
        }
      }
      pending_.swap(keep);
    }
    room_.notify_all();
    for (auto& s : cancelled) s->on_cancel();
    return cancelled.size();
  }

  void join() {
    {
      std::lock_guard g(mu_);
      if (!closed_ && !terminating_) throw ValueError("Pool.join(): call close() or terminate() first");
      joining_ = true;
    }
    ring_handler();
    if (handler_.joinable()) handler_.join();
    std::lock_guard g(mu_);
    for (auto& w : workers_)
      if (w) w->proc->join();
    workers_.clear();
  }

  /// Stops every worker with `signal` (SIGTERM: then SIGKILL after one second); unfinished
  /// tasks fail with BrokenPool.
  void terminate(int signal = SIGTERM) noexcept {
    {
      std::lock_guard g(stop_channel_->mu);
      stop_channel_->core = nullptr;
    }
    {
      std::lock_guard g(mu_);
      if (terminated_) return;
      terminating_ = true;
    }
    room_.notify_all();  // submitters waiting for room give up
    ring_handler();
    if (handler_.joinable()) handler_.join();
    std::vector<Outcome> outs;
    {
      std::lock_guard g(mu_);
      terminated_ = true;
      try {
        for (auto& w : workers_)
          if (w) signal == SIGKILL ? w->proc->kill() : w->proc->terminate();
        for (auto& w : workers_) {
          if (!w) continue;
          if (!w->proc->join(std::chrono::seconds(signal == SIGKILL ? 0 : 1))) {
            w->proc->kill();
            w->proc->join();
          }
          for (auto& t : w->inflight) outs.push_back(broken(t));
        }
        for (auto& t : pending_) outs.push_back(broken(t));
      } catch (...) {
        // join/kill only throw for a process never started: not possible here
      }
      pending_.clear();
      workers_.clear();
      outstanding_ = 0;
    }
    deliver(outs);
  }

 private:
  static Outcome failed(const Task& t, std::exception_ptr e) {
    return Outcome{t.t.sink, t.t.start, t.t.count, false, {}, std::move(e)};
  }
  static Outcome broken(const Task& t) {
    return failed(t, std::make_exception_ptr(BrokenPool("Pool was terminated before this task finished")));
  }

  void ring_handler() noexcept {
    std::uint64_t one = 1;
    (void)internal::write_to(efd_.get(), &one, sizeof one);
  }

  void start_worker_locked(std::size_t slot) {
    auto w = std::make_unique<Worker>();
    w->seg = Segment::create(sizeof(WorkerShm), "mp-pool-worker");
    w->shm = new (w->seg->data()) WorkerShm;  // default-init: the ring bytes stay untouched
    const bool served = get_start_method() == StartMethod::forkserver;
    w->proc = std::make_unique<Process>(
        ProcessOptions{.name = (served ? "ForkServerPoolWorker-" : "ForkPoolWorker-") + std::to_string(++spawned_),
                       .daemon = true},
        std::make_unique<WorkerTarget>(*w->seg, *pshm_.segment(), efd_.get(), opts_.initializer,
                                       opts_.maxtasksperchild));
    w->proc->start();
    w->pid = w->proc->pid();
    w->pidfd = w->proc->sentinel();
    if (w->pidfd < 0) {
      // Out of descriptors for its pidfd: a worker the pool cannot watch would hang its
      // tasks if it died, so it is not kept.
      w->proc->kill();
      w->proc->join();
      throw OSError(EMFILE, "Pool: cannot watch worker " + std::to_string(w->pid) +
                                " (no pidfd: out of file descriptors?); raise RLIMIT_NOFILE or use fewer processes");
    }
    workers_[slot] = std::move(w);
  }

  /// Writes one frame for `t` into w's task ring (the rest waits in out_partial).
  void send_locked(Worker& w, Task&& t) {
    char hdr[kHdr];
    auto len = static_cast<std::uint32_t>(8 + t.t.msg.size());
    std::memcpy(hdr, &len, 4);
    std::memcpy(hdr + 4, &t.id, 8);
    auto& r = w.shm->tasks;
    std::size_t k = ring_write(r, w.shm->task_buf, hdr, kHdr);
    if (k == kHdr) {
      std::size_t k2 = ring_write(r, w.shm->task_buf, t.t.msg.data(), t.t.msg.size());
      if (k2 < t.t.msg.size()) w.out_partial.assign(t.t.msg, k2);
    } else {
      w.out_partial.assign(hdr + k, kHdr - k);
      w.out_partial += t.t.msg;
    }
    wake_worker(r);
    ++w.sent;
    if (t.t.sink->cancellable())
      t.t.sink->set_stopper([ch = stop_channel_, id = t.id] { ch->stop(id); });
    if (t.t.timeout.count() > 0) {
      t.deadline = std::chrono::steady_clock::now() + t.t.timeout;
      ring_handler();  // a handler asleep without a deadline must learn this one
    }
    w.inflight.push_back(std::move(t));
  }

  bool flush_partial_locked(Worker& w) {
    if (w.out_partial.empty()) return false;
    std::size_t k = ring_write(w.shm->tasks, w.shm->task_buf, w.out_partial.data(), w.out_partial.size());
    if (k == 0) return false;
    w.out_partial.erase(0, k);
    wake_worker(w.shm->tasks);
    return true;
  }

  bool dispatch_locked() {
    bool progress = false;
    for (auto& w : workers_)
      if (w) progress |= flush_partial_locked(*w);
    while (!pending_.empty()) {
      // Prefetch behind a busy worker only when plenty is queued (like CPython's call
      // queue, which holds one extra call): keeps pipelines full, keeps dispatch on demand.
      std::size_t cap = 1 + std::min(kMaxWindow - 1, pending_.size() / (4 * n_));
      if (pending_.front().t.timeout.count() > 0) cap = 1;  // a timed task waits for an idle worker
      Worker* best = nullptr;
      for (auto& w : workers_) {
        if (!w || w->exiting || !w->out_partial.empty() || w->inflight.size() >= cap) continue;
        if (!w->inflight.empty() && w->inflight.front().t.timeout.count() > 0) continue;  // nothing behind a timed task
        if (opts_.maxtasksperchild > 0 && w->sent >= opts_.maxtasksperchild) continue;
        if (!best || w->inflight.size() < best->inflight.size()) best = w.get();
      }
      if (!best) break;
      Task t = std::move(pending_.front());
      pending_.pop_front();
      if (opts_.max_pending) room_.notify_all();
      if (!t.t.sink->mark_running()) {  // cancelled (Future.cancel / shutdown(cancel_futures))
        --outstanding_;
        continue;
      }
      send_locked(*best, std::move(t));
      progress = true;
    }
    return progress;
  }

  /// Reads w's results; whole frames become outcomes (viewing into `batches`).
  bool drain_locked(Worker& w, std::vector<Outcome>& outs, std::deque<std::string>& batches) {
    auto& r = w.shm->results;
    std::size_t a = ring_avail(r);
    if (a == 0) return false;
    std::size_t old = w.in_buf.size();
    w.in_buf.resize(old + a);
    ring_read(r, w.shm->result_buf, w.in_buf.data() + old, a);
    wake_worker(r);
    std::size_t pos = 0;
    for (;;) {
      if (w.in_buf.size() - pos < 4) break;
      std::uint32_t len;
      std::memcpy(&len, w.in_buf.data() + pos, 4);
      if (w.in_buf.size() - pos - 4 < len) break;
      pos += 4 + len;
    }
    if (pos == 0) return true;
    batches.emplace_back(std::move(w.in_buf));
    const std::string& b = batches.back();
    w.in_buf.assign(b, pos, std::string::npos);
    for (std::size_t at = 0; at < pos;) {
      std::uint32_t len;
      std::uint64_t id;
      std::memcpy(&len, b.data() + at, 4);
      std::memcpy(&id, b.data() + at + 4, 8);
      bool ok = b[at + kHdr] == 0;
      std::string_view payload(b.data() + at + kHdr + 1, len - 9);
      at += 4 + len;
      auto it = w.inflight.begin();
      while (it != w.inflight.end() && it->id != id) ++it;
      if (it == w.inflight.end()) continue;  // cannot happen: results come back in order
      outs.push_back(Outcome{it->t.sink, it->t.start, it->t.count, ok, payload, nullptr});
      w.inflight.erase(it);
    }
    return true;
  }

  /// Whether the OOM killer has killed in this pool's memory cgroup since the last look,
  /// counting one kill per call (two workers killed together are both told). The kernel
  /// raises the count before it sends SIGKILL, so a reaped victim's kill is already counted.
  bool oom_killed_since_last_look() {
    long long now = internal::cgroup_oom_kills();
    if (now < 0 || oom_kills_seen_ < 0 || now <= oom_kills_seen_) {
      if (now >= 0 && oom_kills_seen_ < 0) oom_kills_seen_ = now;
      return false;
    }
    ++oom_kills_seen_;
    return true;
  }

  /// Why the first task in flight on `w`, which has exited with `st`, failed: killed for its
  /// cancel() or its timeout, or lost with its worker. Null when it had not started (it
  /// goes back to the queue with the rest).
  std::exception_ptr blame_locked(const Worker& w, const ExitStatus& st) {
    const Task& head = w.inflight.front();
    if (w.cancelled == head.id) return std::make_exception_ptr(CancelledError());
    if (w.timed_out == head.id) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(head.t.timeout).count();
      return std::make_exception_ptr(TimeoutError("Pool task ran past its timeout of " + std::to_string(ms) +
                                                  " ms: its worker " + std::to_string(w.pid) +
                                                  " was killed and replaced; the other tasks go on"));
    }
    if (w.shm->current_task.load(std::memory_order_relaxed) != head.id) return nullptr;
    bool oom = st.signal() == SIGKILL && oom_killed_since_last_look();
    std::string what = "Pool worker " + std::to_string(w.pid) + " " + st.describe() +
                       (oom ? " (the kernel's out-of-memory killer ended it)" : "") +
                       " while running this task; the worker was replaced and the other tasks go on";
    return std::make_exception_ptr(WorkerLost(w.pid, st.signal(), what, st.code(), oom));
  }

  /// Handles workers that have exited: blames the task that was running, re-queues the
  /// rest, replaces the worker unless the pool is winding down.
  bool reap_locked(std::vector<Outcome>& outs, std::deque<std::string>& batches) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> slots;
    for (std::size_t i = 0; i < workers_.size(); ++i)
      if (workers_[i]) {
        fds.push_back({workers_[i]->pidfd, POLLIN, 0});
        slots.push_back(i);
      }
    if (fds.empty() || internal::poll_fds(fds.data(), fds.size(), 0) <= 0) return false;
    bool any = false;
    for (std::size_t j = 0; j < fds.size(); ++j) {
      if (!(fds[j].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      any = true;
      auto w = std::move(workers_[slots[j]]);
      drain_locked(*w, outs, batches);
      w->proc->join();
      ExitStatus st = w->proc->status();
      if (!w->inflight.empty()) {
        if (std::exception_ptr why = blame_locked(*w, st)) {
          outs.push_back(failed(w->inflight.front(), std::move(why)));
          w->inflight.pop_front();
        }
        for (auto it = w->inflight.rbegin(); it != w->inflight.rend(); ++it) pending_.push_front(std::move(*it));
      }
      bool work_left = !pending_.empty() || outstanding_ > outs.size();
      if (!terminating_ && (!joining_ || work_left)) {
        try {
          start_worker_locked(slots[j]);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "mp.Pool: cannot replace a lost worker: %s\n", e.what());
        }
      }
    }
    return any;
  }

  void deliver(std::vector<Outcome>& outs) noexcept {
    for (auto& o : outs) {
      try {
        if (o.error) {
          o.sink->fail(o.start, o.count, o.error);
        } else if (o.ok) {
          o.sink->deliver_bytes(o.start, o.count, o.payload);
        } else {
          auto p = o.payload;
          auto type = take_field(p);
          auto msg = take_field(p);
          o.sink->fail(o.start, o.count, remote_exception(type, msg));
        }
      } catch (...) {
        try {
          o.sink->fail(o.start, o.count, std::current_exception());
        } catch (...) {
          std::fprintf(stderr, "mp.Pool: could not deliver a result\n");
        }
      }
    }
  }

  /// Kills (SIGKILL) each worker whose task has run past its timeout; reap_locked then fails
  /// that task with TimeoutError. Returns how long until the next deadline (-1: none), in
  /// milliseconds rounded up, for poll().
  int expire_locked() {
    if (!any_timeouts_) return -1;
    auto now = std::chrono::steady_clock::now();
    int next = -1;
    for (auto& w : workers_) {
      if (!w || w->inflight.empty() || w->inflight.front().t.timeout.count() <= 0) continue;
      const Task& head = w->inflight.front();
      if (w->timed_out == head.id) continue;  // killed; waiting for the reap
      if (now >= head.deadline) {
        w->timed_out = head.id;
        w->proc->kill();
        continue;
      }
      auto left = std::chrono::ceil<std::chrono::milliseconds>(head.deadline - now).count();
      int ms = left > 60000 ? 60000 : static_cast<int>(left);
      if (next < 0 || ms < next) next = ms;
    }
    return next;
  }

  /// Whether sleeping now could miss work: results to read, or room for a held-back frame.
  bool work_waiting_locked() const {
    for (auto& w : workers_)
      if (w && (ring_avail(w->shm->results) || (!w->out_partial.empty() && ring_free(w->shm->tasks))))
        return true;
    return false;
  }

  void handler_loop() {
    std::unique_lock lk(mu_);
    std::vector<Outcome> outs;
    std::deque<std::string> batches;
    wait_policy::YieldingSpin spin(wait_policy::kPoolIdleSpin);
    unsigned iter = 0;
    for (;;) {
      if (terminating_) return;
      bool progress = false;
      for (auto& w : workers_)
        if (w) progress |= drain_locked(*w, outs, batches);
      progress |= dispatch_locked();
      int next_deadline_ms = expire_locked();
      if ((++iter & 127) == 0) progress |= reap_locked(outs, batches);
      if (!outs.empty()) {
        lk.unlock();
        deliver(outs);
        lk.lock();
        outstanding_ -= outs.size();
        outs.clear();
        batches.clear();
        spin.reset();
        continue;
      }
      if (joining_ && pending_.empty() && outstanding_ == 0) {
        bool alive = false;
        for (auto& w : workers_) {
          if (!w) continue;
          alive = true;
          if (!w->exiting) {
            w->exiting = true;
            char frame[kHdr];
            std::uint32_t len = 8;
            std::uint64_t id = 0;
            std::memcpy(frame, &len, 4);
            std::memcpy(frame + 4, &id, 8);
            w->out_partial.append(frame, kHdr);
            flush_partial_locked(*w);
          }
        }
        if (!alive) return;
        if (reap_locked(outs, batches)) continue;
      }
      if (progress) {
        spin.reset();
        continue;
      }
      lk.unlock();
      bool more = spin.again();
      lk.lock();
      if (more) continue;
      // Sleep until a worker rings, a worker dies, or a caller rings (join/terminate).
      pshm_->parent_waiting.store(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (work_waiting_locked()) {
        pshm_->parent_waiting.store(0, std::memory_order_relaxed);
        continue;
      }
      std::vector<pollfd> fds{{efd_.get(), POLLIN, 0}};
      for (auto& w : workers_)
        if (w) fds.push_back({w->pidfd, POLLIN, 0});
      lk.unlock();
      (void)internal::poll_fds(fds.data(), fds.size(), next_deadline_ms);
      std::uint64_t v;
      (void)internal::read_from(efd_.get(), &v, sizeof v);
      lk.lock();
      pshm_->parent_waiting.store(0, std::memory_order_relaxed);
      for (std::size_t i = 1; i < fds.size(); ++i)
        if (fds[i].revents) {
          reap_locked(outs, batches);
          break;
        }
      spin.reset();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable room_;  // max_pending: a task left pending_ (dispatched, cancelled) or terminating
  PoolOptions opts_;
  std::size_t n_ = 0;
  Shared<PoolShm> pshm_;
  UniqueFd efd_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::deque<Task> pending_;
  std::uint64_t next_id_ = 1;
  std::size_t outstanding_ = 0;  // submitted, not yet delivered
  long spawned_ = 0;
  bool closed_ = false;
  bool joining_ = false;
  bool terminating_ = false;
  bool any_timeouts_ = false;  // a task with a timeout was ever submitted
  std::shared_ptr<StopChannel> stop_channel_ = std::make_shared<StopChannel>();
  long long oom_kills_seen_ = internal::cgroup_oom_kills();  // this cgroup's OOM kills already told (-1: unknown)
  bool terminated_ = false;
  ForkSafeThread handler_is_fork_safe_;  // a worker forked beside handler_ never touches it
  std::thread handler_;
  std::thread::id handler_id_;  // set once, before any submit: read without racing join()
};

void StopChannel::stop(std::uint64_t task) {
  std::lock_guard g(mu);
  if (core) core->stop_task(task);
}

}  // namespace mp::internal

namespace mp {

Pool::Pool(int processes, Initializer initializer, int maxtasksperchild)
    : Pool(PoolOptions{processes, std::move(initializer), maxtasksperchild}) {}
Pool::Pool(PoolOptions opts) : core_(std::make_unique<internal::ProcessPoolCore>(std::move(opts))) {}
Pool::~Pool() = default;  // the core's destructor terminates

void Pool::close() { core_->close(); }
std::size_t Pool::cancel_pending() { return core_->cancel_pending(); }
void Pool::join() { core_->join(); }
void Pool::terminate() { core_->terminate(SIGTERM); }
void Pool::kill() { core_->terminate(SIGKILL); }
std::size_t Pool::workers() const noexcept { return core_->workers(); }
std::vector<pid_t> Pool::pids() const { return core_->pids(); }
void Pool::submit(std::vector<internal::PoolTask>&& tasks, internal::Deadline admit) {
  core_->submit(std::move(tasks), admit);
}

}  // namespace mp
