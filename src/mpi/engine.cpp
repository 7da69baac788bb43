// Rank 0's engine and the public mp::mpi functions. See include/mp/mpi.hpp.
//
// One communication thread makes every MPI call on rank 0 after MPI_Init (MPI is
// initialized with MPI_THREAD_SERIALIZED; the main thread calls MPI again only in
// finalize(), after that thread has stopped). It loops: hand queued chunks to ranks that
// have room (on-demand dispatch: one chunk per rank, a few more when many are queued), receive
// results, heartbeats and greetings, check for lost ranks, then deliver the finished
// chunks to their sinks (callbacks run here). When nothing happens it waits on a
// condition variable with a growing timeout (50 us .. 1 ms), so a submission wakes it at
// once and an idle pool costs nearly nothing.
//
// Lost ranks. Open MPI reports nothing when a peer dies (a send to a dead rank on the
// shared-memory transport even succeeds), so rank 0 watches: a rank on the same host
// through a pidfd of its pid (sent in its greeting), any other through its heartbeats.
#include <mpi.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "mp/mpi.hpp"
#include "mpi/internal.hpp"
#include "mpi/runtime.hpp"
#include "os/file.hpp"
#include "os/process.hpp"

namespace mp::mpi::internal {
namespace {

struct World {
  std::once_flag once;
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  bool we_initialized = false;
  Engine* engine = nullptr;
  std::once_flag engine_once;
  std::once_flag finalize_once;
};

World& world() {
  static World* w = new World;  // never destroyed: used from the atexit handler
  return *w;
}

void ensure_mpi() {
  World& w = world();
  std::call_once(w.once, [&w] {
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        throw RuntimeError("mp::mpi: MPI_Init_thread failed");
      w.we_initialized = true;
    } else {
      MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_SERIALIZED)
      throw RuntimeError("mp::mpi: the MPI library does not support threads (MPI_THREAD_SERIALIZED); mp::mpi "
                         "needs it for its communication thread");
    // A private communicator: the program's own MPI traffic cannot match ours.
    MPI_Comm_dup(MPI_COMM_WORLD, &w.comm);
    MPI_Comm_set_errhandler(w.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(w.comm, &w.rank);
    MPI_Comm_size(w.comm, &w.size);
  });
}

std::exception_ptr remote_error(std::string_view type, std::string_view msg) {
  if (type == "mp::mpi::NotRegistered") return std::make_exception_ptr(NotRegistered(std::string(msg)));
  return mp::internal::remote_exception(type, msg);
}

std::exception_ptr broken(const char* why) { return std::make_exception_ptr(BrokenPool(why)); }

constexpr auto kShutdownSilence = std::chrono::seconds(10);
constexpr std::size_t kMaxWindow = 64;  // chunks queued on one rank, at most


}  // namespace

Engine* engine() { return world().engine; }

Engine::Engine(MPI_Comm comm, int size) : comm_(comm), size_(size), ranks_(static_cast<std::size_t>(size)) {
  char host[256] = {};
  (void)mp::internal::host_name(host, sizeof host - 1);
  host_ = host;
  for (auto& r : ranks_) r.last_heard = Clock::now();
  auto welcome = std::make_shared<std::string>(identity());
  for (int r = 1; r < size_; ++r) {
    Send s{MPI_REQUEST_NULL, welcome};
    MPI_Isend(welcome->data(), static_cast<int>(welcome->size()), MPI_BYTE, r, kWelcome, comm_, &s.req);
    sends_.push_back(std::move(s));
  }
  thread_ = std::thread([this] { loop(); });  // from here on, only that thread calls MPI
}

std::shared_ptr<PoolCore> Engine::open(const PoolOptions& opts) {
  if (opts.processes < 0) throw ValueError("mp::mpi::Pool: processes must be at least 1 (or 0 for every rank)");
  auto core = std::make_shared<PoolCore>();
  core->max_rank = opts.processes == 0 ? size_ - 1 : std::min(opts.processes, size_ - 1);
  core->lost_after = opts.lost_after;
  std::lock_guard g(mu_);
  if (shut_) throw ValueError("mp::mpi::Pool: MPI was finalized (mp::mpi::finalize() or rank 0 is exiting)");
  return core;
}

void Engine::submit(const std::shared_ptr<PoolCore>& core, std::vector<mp::internal::PoolTask>&& tasks) {
  {
    std::lock_guard g(mu_);
    if (core->closed || core->terminated || shut_)
      throw ValueError(shut_ ? "Pool not running: MPI was finalized"
                             : core->terminated ? "Pool not running: it was terminated"
                                                : "Pool not running: it was closed");
    for (auto& t : tasks) {
      Job j{next_id_++, std::make_shared<std::string>(std::move(t.msg)), std::move(t.sink), t.start, t.count, core};
      std::memcpy(j.msg->data(), &j.id, sizeof j.id);
      pending_.push_back(std::move(j));
    }
    core->outstanding += tasks.size();
  }
  wake_.notify_one();
}

void Engine::close(PoolCore& core) {
  std::lock_guard g(mu_);
  core.closed = true;
}

void Engine::join(PoolCore& core) {
  std::unique_lock lk(mu_);
  if (!core.closed && !core.terminated) throw ValueError("Pool.join(): call close() or terminate() first");
  core.idle.wait(lk, [&] { return core.outstanding == 0; });
}

void Engine::terminate(const std::shared_ptr<PoolCore>& core) noexcept {
  std::lock_guard d(deliver_mu_);  // no delivery of this pool's results is under way
  std::vector<Outcome> outs;
  {
    std::lock_guard g(mu_);
    if (core->terminated) return;
    core->terminated = true;
    auto err = broken("Pool was terminated before this task finished");
    std::deque<Job> keep;
    for (auto& j : pending_) {
      if (j.owner == core) {
        outs.push_back(Outcome{j, {}, err});
      } else {
        keep.push_back(std::move(j));
      }
    }
    pending_.swap(keep);
    // Chunks running on ranks stay there (they cannot be interrupted): they keep their
    // rank busy until their results arrive, which are then dropped.
    for (auto& r : ranks_)
      for (auto& j : r.inflight)
        if (j.owner == core) outs.push_back(Outcome{j, {}, err});
  }
  for (auto& o : outs) {
    try {
      o.job.sink->fail(o.job.start, o.job.count, o.error);
    } catch (...) {
      std::fprintf(stderr, "mp::mpi::Pool: could not fail a task on terminate\n");
    }
  }
  std::lock_guard g(mu_);
  core->outstanding = 0;
  core->idle.notify_all();
}

std::size_t Engine::cancel_pending(PoolCore& core) {
  std::vector<std::shared_ptr<mp::internal::Sink>> cancelled;
  {
    std::lock_guard g(mu_);
    std::deque<Job> keep;
    for (auto& j : pending_) {
      if (j.owner.get() == &core && j.sink->cancellable() && j.sink->try_cancel()) {
        cancelled.push_back(j.sink);
        --core.outstanding;
      } else {
        keep.push_back(std::move(j));
      }
    }
    pending_.swap(keep);
    if (core.outstanding == 0) core.idle.notify_all();
  }
  std::lock_guard d(deliver_mu_);
  for (auto& s : cancelled) s->on_cancel();
  return cancelled.size();
}

std::vector<int> Engine::ranks(const PoolCore& core) const {
  std::lock_guard g(mu_);
  std::vector<int> out;
  if (size_ == 1) return {0};
  for (int r = 1; r <= core.max_rank; ++r)
    if (!ranks_[static_cast<std::size_t>(r)].lost) out.push_back(r);
  return out;
}

std::size_t Engine::workers(const PoolCore& core) const noexcept {
  return size_ == 1 ? 1 : static_cast<std::size_t>(core.max_rank);
}

bool Engine::dispatch_locked(std::vector<Outcome>& outs) {
  bool progress = false;
  if (size_ == 1) {  // a job of one rank: run the chunks here
    while (!pending_.empty()) {
      Job j = std::move(pending_.front());
      pending_.pop_front();
      if (!j.sink->mark_running()) {
        --j.owner->outstanding;
        continue;
      }
      std::string out = run_chunk(*j.msg, 0);
      outs.push_back(Outcome{std::move(j), std::move(out), nullptr});
      progress = true;
    }
    return progress;
  }
  if (lost_any_) fail_unservable_locked(outs);
  while (!pending_.empty()) {
    std::size_t live = 0;
    for (int r = 1; r < size_; ++r) live += !ranks_[static_cast<std::size_t>(r)].lost;
    // Prefetch behind the running chunk only when plenty is queued (mp::Pool's rule): a
    // window that grows with the backlog keeps each rank fed across the network latency,
    // without parking work on a busy rank that an idle one could take.
    std::size_t cap = 1 + std::min(kMaxWindow - 1, pending_.size() / (4 * std::max<std::size_t>(live, 1)));
    int best = -1;
    std::deque<Job>::iterator pick;
    for (auto it = pending_.begin(); it != pending_.end() && best < 0; ++it) {
      std::size_t best_load = cap;
      for (int r = 1; r <= it->owner->max_rank; ++r) {
        auto& rk = ranks_[static_cast<std::size_t>(r)];
        if (rk.lost || rk.inflight.size() >= best_load) continue;
        best = r;
        best_load = rk.inflight.size();
        pick = it;
      }
    }
    if (best < 0) break;
    Job j = std::move(*pick);
    pending_.erase(pick);
    if (!j.sink->mark_running()) {  // cancelled (Future.cancel / shutdown(cancel_futures))
      --j.owner->outstanding;
      if (j.owner->outstanding == 0) j.owner->idle.notify_all();
      continue;
    }
    Send s{MPI_REQUEST_NULL, j.msg};
    if (j.msg->size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
      outs.push_back(Outcome{std::move(j), {}, std::make_exception_ptr(ValueError(
                                                  "mp::mpi::Pool: a chunk of more than 2 GiB cannot be sent; "
                                                  "use a smaller chunksize"))});
      continue;
    }
    auto& rk = ranks_[static_cast<std::size_t>(best)];
    if (rk.inflight.empty()) rk.last_heard = Clock::now();  // the silence that counts starts now
    MPI_Isend(s.buf->data(), static_cast<int>(s.buf->size()), MPI_BYTE, best, kTask, comm_, &s.req);
    sends_.push_back(std::move(s));
    rk.inflight.push_back(std::move(j));
    progress = true;
  }
  return progress;
}

bool Engine::receive_locked(std::vector<Outcome>& outs) {
  bool progress = false;
  for (int budget = 64; budget > 0; --budget) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st);
    if (!flag) break;
    progress = true;
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    std::string msg(static_cast<std::size_t>(n), '\0');
    MPI_Recv(msg.data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, comm_, MPI_STATUS_IGNORE);
    auto& rk = ranks_[static_cast<std::size_t>(st.MPI_SOURCE)];
    rk.last_heard = Clock::now();
    switch (st.MPI_TAG) {
      case kHello: {
        std::int32_t pid = 0;
        if (msg.size() >= sizeof pid) std::memcpy(&pid, msg.data(), sizeof pid);
        rk.pid = pid;
        rk.host = msg.substr(std::min(msg.size(), sizeof pid));
        // Same host: watch the pid itself (immediate). MP_MPI_NO_PIDFD=1 forces the
        // heartbeat path (for testing how a remote rank's loss is detected).
        if (rk.host == host_ && !std::getenv("MP_MPI_NO_PIDFD")) rk.pidfd.reset(pidfd_open(pid));
        break;
      }
      case kResult: {
        std::uint64_t id = 0;
        if (msg.size() < 9) break;
        std::memcpy(&id, msg.data(), sizeof id);
        // Results come back in the order the chunks were sent; a lost-then-late rank's
        // results match nothing any more and are dropped.
        auto it = std::find_if(rk.inflight.begin(), rk.inflight.end(), [id](const Job& j) { return j.id == id; });
        if (it == rk.inflight.end() || rk.lost) break;
        Job j = std::move(*it);
        rk.inflight.erase(it);
        if (j.owner->terminated) break;  // already failed with BrokenPool
        outs.push_back(Outcome{std::move(j), std::move(msg), nullptr});
        break;
      }
      case kBye:
        rk.bye = true;
        break;
      default:  // kBeat: last_heard is all it carries
        break;
    }
  }
  return progress;
}

void Engine::lose_locked(int r, const std::string& why, bool dead, std::vector<Outcome>& outs) {
  auto& rk = ranks_[static_cast<std::size_t>(r)];
  rk.lost = true;
  rk.dead = dead;
  lost_any_ = true;
  rk.pidfd.reset();
  if (!rk.inflight.empty()) {
    Job head = std::move(rk.inflight.front());
    rk.inflight.pop_front();
    std::string what = "mp::mpi::Pool: rank " + std::to_string(r) + " (pid " + std::to_string(rk.pid) + " on " +
                       (rk.host.empty() ? std::string("an unknown host") : rk.host) + ") " + why +
                       " while running this task; its other tasks were given to other ranks";
    if (!head.owner->terminated)
      outs.push_back(Outcome{std::move(head), {}, std::make_exception_ptr(RankLost(r, rk.pid, rk.host, what))});
    for (auto it = rk.inflight.rbegin(); it != rk.inflight.rend(); ++it)
      if (!it->owner->terminated) pending_.push_front(std::move(*it));
    rk.inflight.clear();
  }
  std::fprintf(stderr, "mp::mpi: rank %d (pid %d on %s) %s; it gets no more work\n", r, rk.pid,
               rk.host.empty() ? "an unknown host" : rk.host.c_str(), why.c_str());
}

bool Engine::check_lost_locked(std::vector<Outcome>& outs, bool force_pidfd) {
  bool any = false;
  auto now = Clock::now();
  for (int r = 1; r < size_; ++r) {
    auto& rk = ranks_[static_cast<std::size_t>(r)];
    if (rk.lost || rk.bye) continue;
    if (rk.pidfd && (force_pidfd || !rk.inflight.empty())) {
      pollfd p{rk.pidfd.get(), POLLIN, 0};
      if (mp::internal::poll_fds(&p, 1, 0) > 0) {
        lose_locked(r, "died", true, outs);
        any = true;
        continue;
      }
    }
    if (!rk.inflight.empty() && now - rk.last_heard > rk.inflight.front().owner->lost_after) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - rk.last_heard).count();
      lose_locked(r, "sent nothing for " + std::to_string(ms) + " ms", false, outs);
      any = true;
    }
  }
  if (any) fail_unservable_locked(outs);
  return any;
}

void Engine::fail_unservable_locked(std::vector<Outcome>& outs) {
  std::deque<Job> keep;
  for (auto& j : pending_) {
    bool servable = false;
    for (int r = 1; r <= j.owner->max_rank && !servable; ++r) servable = !ranks_[static_cast<std::size_t>(r)].lost;
    if (servable) {
      keep.push_back(std::move(j));
    } else {
      outs.push_back(Outcome{std::move(j), {}, broken("mp::mpi::Pool: every rank this pool could use was lost")});
    }
  }
  pending_.swap(keep);
}

void Engine::test_sends_locked() {
  std::erase_if(sends_, [](Send& s) {
    int done = 0;
    MPI_Test(&s.req, &done, MPI_STATUS_IGNORE);
    return done != 0;
  });
}

void Engine::deliver(std::vector<Outcome>& outs) noexcept {
  std::lock_guard d(deliver_mu_);
  for (auto& o : outs) {
    auto& j = o.job;
    {
      std::lock_guard g(mu_);
      if (j.owner->terminated) continue;  // terminate() failed it already
    }
    try {
      if (o.error) {
        j.sink->fail(j.start, j.count, o.error);
      } else if (o.result[8] == 0) {
        j.sink->deliver_bytes(j.start, j.count, std::string_view(o.result).substr(9));
      } else {
        std::string_view p = std::string_view(o.result).substr(9);
        auto type = mp::internal::take_field(p);
        auto msg = mp::internal::take_field(p);
        j.sink->fail(j.start, j.count, remote_error(type, msg));
      }
    } catch (...) {
      try {
        j.sink->fail(j.start, j.count, std::current_exception());
      } catch (...) {
        std::fprintf(stderr, "mp::mpi::Pool: could not deliver a result\n");
      }
    }
  }
}

void Engine::finished_locked(const std::vector<Outcome>& outs) {
  for (auto& o : outs) {
    auto& c = *o.job.owner;
    if (c.outstanding > 0 && --c.outstanding == 0) c.idle.notify_all();
  }
}

void Engine::loop() {
  std::unique_lock lk(mu_);
  std::vector<Outcome> outs;
  auto backoff = std::chrono::microseconds(50);
  unsigned iter = 0;
  while (!stopping_) {
    bool progress = dispatch_locked(outs);
    progress |= receive_locked(outs);
    test_sends_locked();
    if ((++iter & 63) == 0 || !progress) progress |= check_lost_locked(outs, (iter & 1023) == 0);
    if (!outs.empty()) {
      lk.unlock();
      deliver(outs);
      lk.lock();
      finished_locked(outs);
      outs.clear();
      progress = true;
    }
    if (progress) {
      backoff = std::chrono::microseconds(50);
      continue;
    }
    wake_.wait_for(lk, backoff);
    backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds(1));
  }
}

void Engine::shutdown() noexcept {
  {
    std::lock_guard g(mu_);
    if (shut_) return;
    shut_ = stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  // Everything unfinished fails; the serving ranks are told to stop.
  std::vector<Outcome> outs;
  {
    std::lock_guard g(mu_);
    auto err = broken("MPI was finalized (rank 0 is exiting) before this task finished");
    for (auto& j : pending_) outs.push_back(Outcome{std::move(j), {}, err});
    pending_.clear();
    for (auto& r : ranks_)
      for (auto& j : r.inflight)
        if (!j.owner->terminated) outs.push_back(Outcome{j, {}, err});
    for (int r = 1; r < size_; ++r) {
      auto& rk = ranks_[static_cast<std::size_t>(r)];
      rk.last_heard = Clock::now();
      if (rk.dead) continue;
      // A rank lost for its silence may still be alive: it is told to stop too. After a
      // loss no rank calls MPI_Finalize: Open MPI 4.1's (under --enable-recovery) can
      // wait forever for the dead rank in its closing fence.
      Send s{MPI_REQUEST_NULL, std::make_shared<std::string>(1, lost_any_ ? '\1' : '\0')};
      MPI_Isend(s.buf->data(), 1, MPI_BYTE, r, kStop, comm_, &s.req);
      sends_.push_back(std::move(s));
    }
  }
  deliver(outs);
  {
    std::lock_guard g(mu_);
    finished_locked(outs);
    outs.clear();
  }
  // Wait for every live rank's goodbye (it finishes the chunk it runs first), still
  // watching for lost ranks; results that arrive now are dropped.
  std::unique_lock lk(mu_);
  for (;;) {
    bool all = true;
    for (int r = 1; r < size_; ++r) all &= ranks_[static_cast<std::size_t>(r)].lost || ranks_[static_cast<std::size_t>(r)].bye;
    if (all) break;
    std::vector<Outcome> late;
    bool progress = receive_locked(late);
    test_sends_locked();
    check_lost_locked(late, true);
    // A rank that holds no work but never says goodbye: alive ranks send heartbeats.
    for (int r = 1; r < size_; ++r) {
      auto& rk = ranks_[static_cast<std::size_t>(r)];
      if (!rk.lost && !rk.bye && Clock::now() - rk.last_heard > kShutdownSilence)
        lose_locked(r, "did not answer the shutdown", false, late);
    }
    if (!progress) {
      lk.unlock();
      ::usleep(200);
      lk.lock();
    }
  }
  // Sends to lost ranks may never complete: let MPI forget them (their buffers stay).
  for (auto& s : sends_) {
    int done = 0;
    MPI_Test(&s.req, &done, MPI_STATUS_IGNORE);
    if (!done) {
      MPI_Request_free(&s.req);
      new std::shared_ptr<std::string>(s.buf);  // intentionally leaked: MPI may still read it
    }
  }
  sends_.clear();
}

bool Engine::lost_any() const {
  std::lock_guard g(mu_);
  return lost_any_;
}

}  // namespace mp::mpi::internal

namespace mp::mpi {

using internal::world;

void init() {
  internal::ensure_mpi();
  auto& w = world();
  if (w.rank != 0) internal::serve(w.comm, w.rank);
  std::call_once(w.engine_once, [&w] {
    w.engine = new internal::Engine(w.comm, w.size);
    std::atexit([] { finalize(); });
  });
}

int rank() {
  internal::ensure_mpi();
  return world().rank;
}

int size() {
  internal::ensure_mpi();
  return world().size;
}

void finalize() noexcept {
  auto& w = world();
  if (w.rank != 0 || !w.engine) return;
  int done = 0;
  MPI_Finalized(&done);
  if (done) return;  // the program finalized MPI itself (too early: see the header)
  std::call_once(w.finalize_once, [&w] {
    w.engine->shutdown();
    std::fflush(nullptr);
    if (w.we_initialized && !w.engine->lost_any()) MPI_Finalize();  // (see Engine::shutdown)
  });
}

std::string Pool::header(const internal::Entry& e, std::uint32_t count) {
  std::string h(sizeof(std::uint64_t), '\0');  // the chunk id, filled in by the engine
  mp::internal::put_field(h, e.name);
  mp::internal::put_field(h, e.signature);
  h.append(reinterpret_cast<const char*>(&count), sizeof count);
  return h;
}

namespace {
internal::Engine& engine_or_throw() {
  init();
  auto* e = internal::engine();
  if (!e) throw RuntimeError("mp::mpi::Pool: no MPI engine on this rank");
  return *e;
}
}  // namespace

Pool::Pool(int processes) : Pool(PoolOptions{.processes = processes}) {}
Pool::Pool(PoolOptions opts) { core_ = engine_or_throw().open(opts); }
Pool::~Pool() {
  if (core_) internal::engine()->terminate(core_);
}
void Pool::close() { internal::engine()->close(*core_); }
void Pool::join() { internal::engine()->join(*core_); }
void Pool::terminate() { internal::engine()->terminate(core_); }
std::size_t Pool::workers() const noexcept { return internal::engine()->workers(*core_); }
std::vector<int> Pool::ranks() const { return internal::engine()->ranks(*core_); }
std::size_t Pool::cancel_pending() { return internal::engine()->cancel_pending(*core_); }
void Pool::submit(std::vector<mp::internal::PoolTask>&& tasks) { internal::engine()->submit(core_, std::move(tasks)); }

}  // namespace mp::mpi
