// mp/mpi.hpp — mp::Pool's interface over the ranks of an MPI job (Open MPI), for work
// that outgrows one machine.
//
// Mirrors: multiprocessing.Pool (map, imap, imap_unordered, starmap, apply_async with
// callbacks, AsyncResult, chunksize) and concurrent.futures.Executor (as mpi4py.futures'
// MPIPoolExecutor does for Python). Link mp::mpi (CMake target mp_mpi, built when CMake
// finds MPI; option MP_WITH_MPI). Not part of <mp/mp.hpp>.
//
//   int square(int x) { return x * x; }
//   MP_REMOTE(square);                                     // at namespace scope
//   int main() {
//     mp::mpi::Pool pool;                                  // ranks 1..N-1 serve from here
//     std::vector<int> sq = pool.map(square, std::views::iota(0, 100));
//   }
//   $ mpirun -n 4 ./app                   # or: mpirun --hostfile hosts -n 16 ./app
//
// The launch model. Every rank runs the same program. Rank 0 runs it as usual. Any other
// rank stops at its first mp::mpi::Pool / Executor (or mp::mpi::init()) and serves tasks
// from there until rank 0 exits; then it calls MPI_Finalize and exits with status 0,
// never returning into the program. Code before that point runs on every rank (as in
// any MPI program): call mp::mpi::init() first thing in main to keep it on rank 0 only.
// Without mpirun the program is a job of one rank: pools run their tasks on rank 0.
//
// How functions reach the other ranks. Each rank is a separate execution of the binary
// (on other hosts, with other address-space layouts), so a function is sent by *name*:
// register it once at namespace scope with MP_REMOTE(fn) (a plain function, or a
// namespace-scope capture-less lambda / function object). Registration is static: the
// name table is the same in every execution of the same binary. Checks:
// - compile time: a lambda or function object that is not registered, or captures, or
//   whose argument or result types mp::codec cannot move, does not compile;
// - run time, on rank 0 before anything is sent: an unregistered plain function raises
//   mp::mpi::NotRegistered (a function pointer's identity is a run-time value);
// - on the serving rank: a name or signature it does not know (a different build of the
//   program) fails that task with mp::mpi::NotRegistered.
// Arguments are converted to the function's parameter types on rank 0 and travel through
// mp::codec (see codec.hpp), like results.
//
// Guarantees
// - Dynamic load balancing: a rank is given a chunk only when it has none (or, when many
//   are queued, a few more behind the one it runs: 1 + queued / (4 * ranks), at most 64,
//   as mp::Pool), so fast ranks take more chunks and one slow task never holds up work
//   another rank could do.
// - Callbacks, error callbacks and progress run on rank 0, on the single communication
//   thread, one at a time (as mp::Pool's result handler); they must not block on the
//   pool's other results. A callback that throws is reported on stderr and ignored.
// - A task that throws: get() rethrows it on rank 0 — as the same type for the standard
//   exceptions and mp's own, as mp::RemoteError(type name, message) for anything else
//   (exactly mp::Pool's rule). In map, the first failing chunk fails the map.
// - A rank that dies while it holds work: the chunk it was running fails with
//   mp::mpi::RankLost (an mp::WorkerLost naming the rank, its pid and host); chunks queued
//   behind it go to other ranks and the rank is not used again. This needs the job to
//   survive the death: Open MPI's mpirun aborts the whole job when a rank dies unless it
//   is started with `--enable-recovery` (Open MPI 4; `--with-ft ulfm` on Open MPI 5).
//   Detection: a rank on rank 0's host is watched through a pidfd (immediate); a rank on
//   another host sends a heartbeat every second (MP_MPI_HEARTBEAT_MS) and is declared lost
//   after PoolOptions::lost_after without any message from it (a rank only frozen that
//   long is treated the same; a late answer is then ignored). After a loss no rank calls
//   MPI_Finalize at shutdown (Open MPI 4.1's can hang waiting for the dead rank). If rank 0
//   dies, serving ranks on its host exit; those on other hosts are not told.
// - close()/join()/terminate() act on this pool's tasks only; the ranks keep serving
//   other pools. terminate() (and the destructor) fails unfinished tasks with
//   mp::BrokenPool at once; chunks already running on a rank finish there (a remote rank
//   cannot be interrupted) and their results are dropped.
// - Shutdown: when rank 0 exits (return from main, std::exit) — or at mp::mpi::finalize()
//   — every serving rank is told to stop, leaves its serve loop after its current chunk,
//   and all ranks call MPI_Finalize. No pool may be used after that.
// - All Pool methods are thread-safe. Pools are created on rank 0's main thread (MPI is
//   initialized there) and never from a task.
//
// Differs from mp::Pool: no initializer and no maxtasksperchild (ranks are not processes
// of ours to restart); Pool(n) uses at most n serving ranks (0: all of them, and never
// more than the job has); pids() is replaced by ranks().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "mp/futures.hpp"
#include "mp/pool.hpp"

namespace mp::mpi {

/// A function sent to another rank was never registered with MP_REMOTE, or the serving
/// rank's build does not have it with the same signature.
class NotRegistered : public ValueError {
 public:
  using ValueError::ValueError;
};

/// A rank died (or stopped answering) while it held a task. Its pid() is the rank's pid
/// on its own host; signal() is 0 (a remote death's cause is unknown to rank 0).
class RankLost : public WorkerLost {
 public:
  RankLost(int rank, int pid, std::string host, const std::string& what)
      : WorkerLost(pid, 0, what), rank_(rank), host_(std::move(host)) {}
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] const std::string& host() const noexcept { return host_; }

 private:
  int rank_;
  std::string host_;
};

/// Initializes MPI (MPI_THREAD_SERIALIZED or better) if nobody has yet. On a serving rank
/// (rank != 0) it serves tasks until rank 0 shuts the job down, then finalizes MPI and
/// exits the process with status 0 — it never returns there. On rank 0 it returns.
/// Idempotent. Throws mp::RuntimeError when MPI cannot be initialized with threads.
void init();
/// This process's rank in MPI_COMM_WORLD (initializes MPI).
[[nodiscard]] int rank();
/// The number of ranks in the job (initializes MPI).
[[nodiscard]] int size();
/// Rank 0 only: stops the serving ranks and calls MPI_Finalize (what rank 0's exit does
/// anyway). Pending tasks of live pools fail with mp::BrokenPool. Idempotent.
void finalize() noexcept;

/// Options of an MPI Pool, as keyword arguments: `mp::mpi::Pool pool({.processes = 4})`.
struct PoolOptions {
  int processes = 0;  ///< serving ranks to use (ranks 1..processes); 0 = every serving rank
  /// A rank on another host that sends nothing for this long while it holds this pool's
  /// work is lost. Serving ranks send a heartbeat every MP_MPI_HEARTBEAT_MS milliseconds
  /// (environment of the serving ranks, default 1000): keep lost_after several times that.
  std::chrono::milliseconds lost_after{10000};
};

namespace internal {

using mp::internal::Stored;

/// Runs `count` items of a chunk: decodes each item's arguments, calls the function,
/// appends each result as a field to `out` (the encoding of mp/internal/call.hpp).
using Runner = void (*)(const void* fn, std::string_view items, std::uint32_t count, std::string& out);

/// One registered function.
struct Entry {
  std::string name;
  std::string signature;  // typeid(Result(*)(Params...)).name(): equal in identical builds
  Runner run = nullptr;
  const void* fn = nullptr;  // the function pointer, or the address of the function object
};

/// The name table (src/mpi/registry.cpp). `key` identifies the callable on rank 0: the
/// function pointer, or the type of the function object.
void register_function(Entry e, const void* fn_key, const std::type_info* type_key) noexcept;
/// The entry for a function pointer / function object type; throws NotRegistered.
const Entry& entry_for_function(const void* fn);
const Entry& entry_for_type(const std::type_info& type);
/// The entry for a name sent by rank 0 (nullptr if absent).
const Entry* entry_for_name(std::string_view name);

/// Return and (decayed) parameter types of a function pointer or function object.
template <class F>
struct Signature : Signature<decltype(&F::operator())> {};
template <class R, class... P>
struct Signature<R (*)(P...)> {
  using result = R;
  using params = std::tuple<std::decay_t<P>...>;
  static std::string id() { return typeid(Stored<R> (*)(std::decay_t<P>...)).name(); }
};
template <class R, class... P>
struct Signature<R (*)(P...) noexcept> : Signature<R (*)(P...)> {};
template <class C, class R, class... P>
struct Signature<R (C::*)(P...) const> : Signature<R (*)(P...)> {};
template <class C, class R, class... P>
struct Signature<R (C::*)(P...) const noexcept> : Signature<R (*)(P...)> {};
template <class C, class R, class... P>
struct Signature<R (C::*)(P...)> : Signature<R (*)(P...)> {};
template <class C, class R, class... P>
struct Signature<R (C::*)(P...) noexcept> : Signature<R (*)(P...)> {};

template <class Fn, class R, class... P>
void run_items_impl(const void* fn, std::string_view in, std::uint32_t count, std::string& out, std::tuple<P...>*) {
  mp::internal::CallReader r(in, mp::internal::kPoolCallErrors);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::tuple<P...> args = r.template args<P...>();
    auto call = [&]() -> decltype(auto) {
      if constexpr (std::is_pointer_v<Fn>) {
        return std::apply(reinterpret_cast<Fn>(const_cast<void*>(fn)), std::move(args));
      } else {
        return std::apply(*static_cast<const Fn*>(fn), std::move(args));
      }
    };
    if constexpr (std::is_void_v<R>) {
      call();
      mp::internal::put_bytes(out, {});
    } else {
      mp::internal::put_field(out, call());
    }
  }
}
template <class Fn>
void run_items(const void* fn, std::string_view in, std::uint32_t count, std::string& out) {
  using S = Signature<Fn>;
  run_items_impl<Fn, typename S::result>(fn, in, count, out, static_cast<typename S::params*>(nullptr));
}

template <class T>
struct all_transferable;
template <class... P>
struct all_transferable<std::tuple<P...>> : std::bool_constant<(Transferable<P> && ...)> {};

/// What the compiler can check about a callable sent to other ranks.
template <class Fn>
constexpr bool check_callable() {
  if constexpr (std::is_pointer_v<Fn>) {
    static_assert(std::is_function_v<std::remove_pointer_t<Fn>>,
                  "mp::mpi::Pool: only functions and function objects can be sent to other ranks");
  } else {
    static_assert(std::is_empty_v<Fn> && std::is_trivially_copyable_v<Fn>,
                  "mp::mpi::Pool: this callable has state (a lambda with captures?). Other ranks are separate "
                  "executions of the program: send a registered function (MP_REMOTE(fn)) and pass the captured "
                  "values as arguments instead.");
    static_assert(requires { &Fn::operator(); },
                  "mp::mpi::Pool: the function object's operator() must not be overloaded or a template "
                  "(no `auto` parameters): its signature decides how arguments are encoded");
  }
  using S = Signature<Fn>;
  static_assert(all_transferable<typename S::params>::value,
                "mp::mpi::Pool: a parameter type cannot be sent to other ranks through mp::codec (see mp/codec.hpp: "
                "make it trivially copyable or give it a cereal serialize())");
  static_assert(std::is_void_v<typename S::result> || Transferable<typename S::result>,
                "mp::mpi::Pool: the result type cannot be sent back through mp::codec (see mp/codec.hpp)");
  return true;
}

/// Returned by the declarations MP_REMOTE makes, so that registration of a function
/// object can be checked at compile time (found by argument-dependent lookup).
struct RemoteTag {};

template <class Fn>
concept RegisteredObject = requires(Fn* p) {
  { mp_remote_tag(p, nullptr) } -> std::same_as<RemoteTag>;
};

/// A static object made by MP_REMOTE: adds one callable to the name table.
struct Registrar {
  template <class F>
  Registrar(const char* name, const F& f) noexcept {
    if constexpr (std::is_function_v<F>) {
      using Fn = F*;
      check_callable<Fn>();
      auto* p = reinterpret_cast<const void*>(&f);
      register_function(Entry{name, Signature<Fn>::id(), &run_items<Fn>, p}, p, nullptr);
    } else {
      check_callable<F>();
      register_function(Entry{name, Signature<F>::id(), &run_items<F>, &f}, nullptr, &typeid(F));
    }
  }
};

class Engine;
class PoolCore;

}  // namespace internal

#define MP_MPI_CONCAT2(a, b) a##b
#define MP_MPI_CONCAT(a, b) MP_MPI_CONCAT2(a, b)

/// MP_REMOTE(fn): makes `fn` callable on other ranks under the name "fn" (write a qualified
/// name, MP_REMOTE(ns::fn), to register a function of another namespace). Use at
/// namespace scope, in the namespace of a function object; `fn` is a function (not an
/// overload set), or a namespace-scope capture-less lambda / function object.
#define MP_REMOTE(fn) MP_MPI_REMOTE_IMPL(fn, __COUNTER__)
#define MP_MPI_REMOTE_IMPL(fn, id)                                                                         \
  struct MP_MPI_CONCAT(mp_remote_unique_, id);                                                              \
  [[maybe_unused]] constexpr ::mp::mpi::internal::RemoteTag mp_remote_tag(                                   \
      std::remove_reference_t<decltype(fn)>*, MP_MPI_CONCAT(mp_remote_unique_, id)*) {                      \
    return {};                                                                                               \
  }                                                                                                          \
  [[maybe_unused]] static const ::mp::mpi::internal::Registrar MP_MPI_CONCAT(mp_remote_registrar_, id)(#fn, fn)

/// A pool over the serving ranks of the MPI job, with mp::Pool's interface. See the header
/// comment for the launch model and the guarantees.
class Pool : public mp::internal::PoolApi<Pool> {
 public:
  /// Uses up to `processes` serving ranks (0: all). On a serving rank this never returns
  /// (see init()). Throws mp::ValueError for a negative count.
  explicit Pool(int processes = 0);
  explicit Pool(PoolOptions opts);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  /// terminate(): unfinished tasks fail with mp::BrokenPool. The ranks keep serving.
  ~Pool();

  /// No more tasks may be submitted.
  void close();
  /// Waits until every task submitted has finished and its callbacks have run. Throws
  /// mp::ValueError unless close() or terminate() was called first.
  void join();
  /// Fails every unfinished task of this pool with mp::BrokenPool now.
  void terminate();

  /// The number of ranks this pool uses (1 when the job has a single rank: tasks then run
  /// on rank 0).
  [[nodiscard]] std::size_t workers() const noexcept;
  /// The ranks this pool sends work to, minus those lost.
  [[nodiscard]] std::vector<int> ranks() const;
  /// As mp::Pool::cancel_pending(): cancels queued single-result tasks.
  std::size_t cancel_pending();

  /// Internal: PoolApi's hook for checks made before any state is created; this pool
  /// makes its checks in submit_items.
  template <class F, class R, class... A>
  static constexpr bool task_ok() {
    return true;
  }
  /// Internal: encodes and queues chunks (used by PoolApi).
  template <class F, class R, class... A>
  void submit_items(F fn, std::vector<std::tuple<A...>>&& items, std::size_t chunksize,
                    std::shared_ptr<mp::internal::Sink> sink, std::size_t base = 0) {
    using Fn = std::conditional_t<std::is_function_v<F>, F*, F>;
    internal::check_callable<Fn>();
    if constexpr (!std::is_pointer_v<Fn>)
      static_assert(internal::RegisteredObject<Fn>,
                    "mp::mpi::Pool: this lambda / function object is not registered: add MP_REMOTE(name) after its "
                    "definition, at namespace scope, in the namespace where it is defined");
    using S = internal::Signature<Fn>;
    static_assert(std::is_same_v<Stored<R>, Stored<typename S::result>>,
                  "mp::mpi::Pool: the call's result type differs from the registered function's");
    const internal::Entry* e;
    if constexpr (std::is_pointer_v<Fn>) {
      e = &internal::entry_for_function(reinterpret_cast<const void*>(fn));
    } else {
      e = &internal::entry_for_type(typeid(Fn));
    }
    std::vector<mp::internal::PoolTask> tasks;
    tasks.reserve(items.size() / chunksize + 1);
    for (std::size_t start = 0; start < items.size(); start += chunksize) {
      auto n = static_cast<std::uint32_t>(std::min(chunksize, items.size() - start));
      mp::internal::PoolTask t{header(*e, n), sink, base + start, n};  // base: imap's buffersize batches
      for (std::size_t i = start; i < start + n; ++i) append_args<typename S::params>(t.msg, items[i]);
      tasks.push_back(std::move(t));
    }
    submit(std::move(tasks));
  }

 private:
  template <class T>
  using Stored = mp::internal::Stored<T>;

  template <class Params, class... A>
  static void append_args(std::string& out, const std::tuple<A...>& item) {
    static_assert(std::tuple_size_v<Params> == sizeof...(A),
                  "mp::mpi::Pool: the number of arguments differs from the function's parameters");
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (mp::internal::put_field(out, static_cast<std::tuple_element_t<I, Params>>(std::get<I>(item))), ...);
    }(std::index_sequence_for<A...>{});
  }
  static std::string header(const internal::Entry& e, std::uint32_t count);
  void submit(std::vector<mp::internal::PoolTask>&& tasks);
  std::shared_ptr<internal::PoolCore> core_;
};

/// concurrent.futures.Executor over an mp::mpi::Pool (what mpi4py.futures.MPIPoolExecutor
/// is to Python): submit, map, shutdown, Future; the destructor shuts down with wait=true.
/// max_workers 0: every serving rank.
class Executor : public mp::internal::Executor<Pool> {
 public:
  explicit Executor(int max_workers = 0) : mp::internal::Executor<Pool>(PoolOptions{.processes = max_workers}) {}
  explicit Executor(PoolOptions opts) : mp::internal::Executor<Pool>(opts) {}
};

}  // namespace mp::mpi
