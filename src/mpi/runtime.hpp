// Internal to mp_mpi: rank 0's engine (one per process, shared by every Pool) and the
// per-pool bookkeeping. See include/mp/mpi.hpp for the contract and src/mpi/engine.cpp
// for how it works.
#pragma once

#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mp/internal/fd.hpp"
#include "mp/mpi.hpp"

namespace mp::mpi::internal {

using Clock = std::chrono::steady_clock;

/// One pool's share of the engine. Guarded by Engine::mu_.
class PoolCore {
 public:
  int max_rank = 0;  // ranks 1..max_rank serve this pool
  std::chrono::milliseconds lost_after{10000};
  bool closed = false;
  bool terminated = false;
  std::size_t outstanding = 0;  // chunks submitted, not yet delivered or failed
  std::condition_variable idle;  // notified when outstanding drops to 0
};

/// One chunk on its way.
struct Job {
  std::uint64_t id = 0;
  std::shared_ptr<std::string> msg;  // kTask bytes; shared with a send that may still be in progress
  std::shared_ptr<mp::internal::Sink> sink;
  std::size_t start = 0;
  std::uint32_t count = 0;
  std::shared_ptr<PoolCore> owner;
};

/// What the communication thread hands to a sink.
struct Outcome {
  Job job;
  std::string result;  // kResult bytes, or empty with `error`
  std::exception_ptr error;
};

class Engine {
 public:
  Engine(MPI_Comm comm, int size);
  ~Engine() = delete;  // lives until the process ends (tasks may finish during exit)

  std::shared_ptr<PoolCore> open(const PoolOptions& opts);
  void submit(const std::shared_ptr<PoolCore>& core, std::vector<mp::internal::PoolTask>&& tasks);
  void close(PoolCore& core);
  void join(PoolCore& core);
  void terminate(const std::shared_ptr<PoolCore>& core) noexcept;
  std::size_t cancel_pending(PoolCore& core);
  std::vector<int> ranks(const PoolCore& core) const;
  std::size_t workers(const PoolCore& core) const noexcept;
  [[nodiscard]] int size() const noexcept { return size_; }
  /// Whether any rank was lost (then MPI_Finalize is skipped everywhere; see shutdown()).
  [[nodiscard]] bool lost_any() const;

  /// Rank 0's exit: fails what is unfinished, stops the serving ranks (waiting for the
  /// chunks they run), returns when each has said goodbye or been lost.
  void shutdown() noexcept;

 private:
  struct Rank {
    std::deque<Job> inflight;  // the front one is running (or about to)
    bool lost = false;  // gets no more work
    bool dead = false;  // known to have exited (pidfd), not just silent
    bool bye = false;
    int pid = 0;
    std::string host;
    mp::internal::UniqueFd pidfd;  // when the rank shares rank 0's host
    Clock::time_point last_heard;
  };
  struct Send {
    MPI_Request req;
    std::shared_ptr<std::string> buf;
  };

  void loop();
  bool dispatch_locked(std::vector<Outcome>& outs);
  bool receive_locked(std::vector<Outcome>& outs);
  bool check_lost_locked(std::vector<Outcome>& outs, bool force_pidfd);
  void lose_locked(int r, const std::string& why, bool dead, std::vector<Outcome>& outs);
  void fail_unservable_locked(std::vector<Outcome>& outs);
  void test_sends_locked();
  void deliver(std::vector<Outcome>& outs) noexcept;
  void finished_locked(const std::vector<Outcome>& outs);

  MPI_Comm comm_;
  int size_;
  std::string host_;
  mutable std::mutex mu_;
  std::condition_variable wake_;  // new work for the communication thread
  std::recursive_mutex deliver_mu_;  // one delivery at a time (a callback may call terminate)
  std::deque<Job> pending_;
  std::vector<Rank> ranks_;  // index = rank; ranks_[0] unused
  std::vector<Send> sends_;
  std::uint64_t next_id_ = 1;
  bool lost_any_ = false;
  bool stopping_ = false;
  bool shut_ = false;
  std::thread thread_;
};

/// The engine on rank 0 (nullptr on serving ranks, which never get past init()).
Engine* engine();

[[noreturn]] void serve(MPI_Comm comm, int rank);

}  // namespace mp::mpi::internal
