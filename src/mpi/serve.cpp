// Running chunks, and the serve loop of ranks other than 0. See include/mp/mpi.hpp.
//
// A serving rank makes every MPI call from its main thread between chunks, except the
// heartbeat, which a second thread sends while a chunk runs; one mutex serializes the two
// (MPI is initialized with MPI_THREAD_SERIALIZED). Waiting for work is MPI_Iprobe with a
// backoff (spin, then sleeps growing to 1 ms) instead of a blocking MPI_Recv, because Open
// MPI's blocking receive busy-polls a core: on an oversubscribed host the idle ranks would
// steal the CPU from the ones computing.
#include <mpi.h>
#include <poll.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "common/wait_policy.hpp"
#include "mp/internal/fd.hpp"
#include "mp/mpi.hpp"
#include "mpi/internal.hpp"
#include "mpi/runtime.hpp"
#include "os/file.hpp"
#include "os/process.hpp"

namespace mp::mpi::internal {

std::string identity() {
  char host[256] = {};
  (void)mp::internal::host_name(host, sizeof host - 1);  // on failure: "" (ranks then count as remote)
  std::string out(sizeof(std::int32_t), '\0');
  std::int32_t pid = mp::internal::kernel_pid();
  std::memcpy(out.data(), &pid, sizeof pid);
  return out + host;
}

int pidfd_open(int pid) noexcept { return std::max(mp::internal::open_pidfd(pid), -1); }

namespace {

template <class T>
T take(std::string_view& in) {
  T v;
  if (in.size() < sizeof v) throw CodecError("mp::mpi: truncated task message");
  std::memcpy(&v, in.data(), sizeof v);
  in.remove_prefix(sizeof v);
  return v;
}

}  // namespace

std::string run_chunk(std::string_view m, int rank) {
  std::string out(9, '\0');
  std::memcpy(out.data(), m.data(), 8);
  try {
    m.remove_prefix(8);
    auto name = mp::internal::take_field(m);
    auto sig = mp::internal::take_field(m);
    auto count = take<std::uint32_t>(m);
    const Entry* e = entry_for_name(name);
    if (!e)
      throw NotRegistered("mp::mpi: rank " + std::to_string(rank) + " has no function registered as '" +
                          std::string(name) + "' (is every rank running the same build of the program?)");
    if (e->signature != sig)
      throw NotRegistered("mp::mpi: rank " + std::to_string(rank) + " has '" + std::string(name) +
                          "' registered with a different signature (is every rank running the same build?)");
    e->run(e->fn, m, count, out);
  } catch (...) {
    std::string type, msg;
    mp::internal::describe_current_exception(type, msg);
    out.resize(9);
    out[8] = 1;
    mp::internal::put_field(out, type);
    mp::internal::put_field(out, msg);
  }
  return out;
}

namespace {

class Heartbeat {
 public:
  Heartbeat(MPI_Comm comm, std::mutex& mpi_mu, std::chrono::milliseconds every)
      : comm_(comm), mpi_mu_(mpi_mu), every_(every), t_([this] { loop(); }) {}
  ~Heartbeat() {
    {
      std::lock_guard g(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    t_.join();
  }

 private:
  void loop() {
    std::unique_lock lk(mu_);
    while (!cv_.wait_for(lk, every_, [this] { return stop_; })) {
      std::lock_guard g(mpi_mu_);
      MPI_Send(nullptr, 0, MPI_BYTE, 0, kBeat, comm_);
    }
  }
  MPI_Comm comm_;
  std::mutex& mpi_mu_;
  std::chrono::milliseconds every_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread t_;
};

std::chrono::milliseconds heartbeat_interval() {
  const char* s = std::getenv("MP_MPI_HEARTBEAT_MS");
  long ms = s ? std::strtol(s, nullptr, 10) : 0;
  return std::chrono::milliseconds(ms > 0 ? ms : 1000);
}

}  // namespace

[[noreturn]] void serve(MPI_Comm comm, int rank) {
  std::mutex mpi_mu;
  const std::string me = identity();
  MPI_Send(me.data(), static_cast<int>(me.size()), MPI_BYTE, 0, kHello, comm);
  // Rank 0 on this host: watch it, so that a job run with --enable-recovery does not
  // leave this rank serving forever when rank 0 dies.
  mp::internal::UniqueFd rank0;
  bool finalize = true;
  {
    auto beat = std::make_unique<Heartbeat>(comm, mpi_mu, heartbeat_interval());
    std::string msg;
    unsigned idle = 0;
    for (;;) {
      std::unique_lock lk(mpi_mu);
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(0, MPI_ANY_TAG, comm, &flag, &st);
      if (!flag) {
        lk.unlock();
        // Yield for a while (a chunk prefetched behind the current one usually arrives
        // within microseconds), then nap, up to 1 ms (src/common/wait_policy.hpp).
        mp::internal::wait_policy::poll_backoff(++idle);
        if (rank0 && (idle & 127) == 0) {
          pollfd p{rank0.get(), POLLIN, 0};
          if (mp::internal::poll_fds(&p, 1, 0) > 0) {
            std::fprintf(stderr, "mp::mpi: rank 0 died; rank %d stops serving\n", rank);
            std::fflush(nullptr);
            std::_Exit(1);  // no MPI_Finalize: it would wait for rank 0
          }
        }
        continue;
      }
      idle = 0;
      int n = 0;
      MPI_Get_count(&st, MPI_BYTE, &n);
      msg.resize(static_cast<std::size_t>(n));
      MPI_Recv(msg.data(), n, MPI_BYTE, 0, st.MPI_TAG, comm, MPI_STATUS_IGNORE);
      if (st.MPI_TAG == kStop) {
        lk.unlock();
        beat.reset();  // no heartbeat may follow the goodbye
        MPI_Send(nullptr, 0, MPI_BYTE, 0, kBye, comm);
        finalize = msg.empty() || msg[0] == 0;
        break;
      }
      if (st.MPI_TAG == kWelcome) {
        std::int32_t pid = 0;
        if (msg.size() >= sizeof pid) std::memcpy(&pid, msg.data(), sizeof pid);
        if (msg.substr(std::min(msg.size(), sizeof pid)) == me.substr(sizeof(std::int32_t)) &&
            !std::getenv("MP_MPI_NO_PIDFD"))
          rank0.reset(pidfd_open(pid));
        continue;
      }
      if (st.MPI_TAG != kTask) continue;
      lk.unlock();
      std::string out = run_chunk(msg, rank);
      lk.lock();
      MPI_Send(out.data(), static_cast<int>(out.size()), MPI_BYTE, 0, kResult, comm);
    }
  }
  std::fflush(nullptr);
  if (finalize) MPI_Finalize();  // skipped after a rank was lost: see Engine::shutdown
  std::exit(0);
}

}  // namespace mp::mpi::internal
