// Tests for mp/queue.hpp across real processes and threads.
//
// Kill tests reach their kill point deterministically through mp::internal::ring_fault_hook
// (a child raises SIGKILL at an exact protocol step), and loop, plus a randomized variant
// where busy children are SIGKILLed wherever they happen to be. Waiting is on flags in
// shared memory or on the queue itself; timeouts are only safety nets.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "helpers/fd_exhaustion.hpp"
#include "helpers/pid_reuse.hpp"
#include "helpers/support.hpp"
#include "mp/connection.hpp"
#include "mp/internal/os.hpp"
#include "mp/process.hpp"
#include "mp/queue.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

namespace {

/// An array in MAP_SHARED memory: written by children, read by the parent.
template <class T>
class SharedArray {
 public:
  explicit SharedArray(std::size_t n) : n_(n) {
    void* p = mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    p_ = static_cast<T*>(p);
    for (std::size_t i = 0; i < n; ++i) new (p_ + i) T{};
  }
  SharedArray(const SharedArray&) = delete;
  ~SharedArray() { munmap(p_, bytes()); }
  T& operator[](std::size_t i) const { return p_[i]; }

 private:
  std::size_t bytes() const { return std::max<std::size_t>(n_ * sizeof(T), 1); }
  T* p_;
  std::size_t n_;
};

/// Marks which of n items arrived; counts duplicates. Shared by processes and threads.
class SharedBitmap {
 public:
  explicit SharedBitmap(std::size_t n) : n_(n), words_((n + 63) / 64 + 1) {}
  /// Returns false if `i` was already marked (a duplicate delivery).
  bool mark(std::size_t i) const {
    std::uint64_t bit = std::uint64_t{1} << (i % 64);
    return !(words_[i / 64].fetch_or(bit) & bit);
  }
  bool test(std::size_t i) const { return words_[i / 64].load() & (std::uint64_t{1} << (i % 64)); }
  std::size_t count() const {
    std::size_t c = 0;
    for (std::size_t i = 0; i < n_; ++i) c += test(i);
    return c;
  }

 private:
  std::size_t n_;
  SharedArray<std::atomic<std::uint64_t>> words_;
};

/// Spins politely until `cond` holds; false after `limit` (a safety net, not a sync tool).
template <class F>
bool wait_for(F cond, std::chrono::seconds limit = 60s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

/// A payload whose every byte depends on its sequence number, so a torn or mixed-up
/// message is detected: [u64 seq][bytes (seq * 131 + i) & 0xff].
std::string make_payload(std::uint64_t seq, std::size_t size) {
  std::string s(std::max<std::size_t>(size, 8), '\0');
  std::memcpy(s.data(), &seq, 8);
  for (std::size_t i = 8; i < s.size(); ++i) s[i] = static_cast<char>((seq * 131 + i) & 0xff);
  return s;
}
/// The sequence number of an intact payload, or nullopt if any byte is wrong.
std::optional<std::uint64_t> check_payload(const std::string& s) {
  if (s.size() < 8) return std::nullopt;
  std::uint64_t seq;
  std::memcpy(&seq, s.data(), 8);
  for (std::size_t i = 8; i < s.size(); ++i)
    if (s[i] != static_cast<char>((seq * 131 + i) & 0xff)) return std::nullopt;
  return seq;
}
std::size_t size_for(std::uint64_t seq, std::size_t big_every, std::size_t big_size) {
  if (big_every && seq % big_every == big_every - 1) return big_size;
  return 8 + (seq * 7919) % 3000;
}

// Fault injection in a child: SIGKILL self at the `countdown`-th time `point` is reached.
mp::internal::RingPoint g_kill_point;
std::atomic<int> g_kill_countdown{0};
void arm_kill(mp::internal::RingPoint point, int countdown) {
  g_kill_point = point;
  g_kill_countdown = countdown;
  mp::internal::ring_fault_hook.store(+[](mp::internal::RingPoint p) {
    if (p == g_kill_point && --g_kill_countdown == 0) ::raise(SIGKILL);
  });
}

struct Tagged {
  std::uint32_t producer;
  std::uint32_t seq;
};
constexpr std::uint32_t kStop = 0xffffffffu;

}  // namespace

// ---------------------------------------------------------------- single-process semantics

TEST(Queue, PutGetKeepsFifoOrder) {
  mp::Queue<int> q;
  for (int i = 0; i < 100; ++i) q.put(i);
  EXPECT_EQ(q.qsize(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(q.get(), i);
  EXPECT_TRUE(q.empty());
}

TEST(Queue, BoundedQueueReportsFullAndEmpty) {
  mp::Queue<std::string> q(3);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  q.put("鲁照山");
  q.put("[1, 2, 4]");
  EXPECT_FALSE(q.full());
  q.put("2");
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 3u);
  EXPECT_EQ(q.maxsize(), 3u);
  EXPECT_EQ(q.get(), "鲁照山");
  EXPECT_FALSE(q.full());
  EXPECT_FALSE(q.empty());
}

TEST(Queue, PutWithTimeoutOnFullQueueRaisesFull) {
  mp::Queue<int> q(3);
  for (int i = 0; i < 3; ++i) q.put(i, 2s);
  EXPECT_THROW(q.put(111, 20ms), mp::Full);
  EXPECT_THROW(q.put(111, -5s), mp::Full);  // negative timeout: one immediate try
  EXPECT_EQ(q.qsize(), 3u) << "a failed put must leave nothing behind";
  EXPECT_EQ(q.get(), 0);
  q.put(3, 0ms);  // room again: an immediate try succeeds
}

TEST(Queue, PutNowaitOnFullQueueRaisesFull) {
  mp::Queue<std::string> q(1);
  q.put("yyy");
  try {
    q.put_nowait("666");
    FAIL() << "put_nowait on a full queue must raise";
  } catch (const mp::Full& e) {
    EXPECT_NE(std::string(e.what()).find("put_nowait"), std::string::npos) << e.what();
  }
  EXPECT_EQ(q.get(), "yyy");
}

TEST(Queue, GetNowaitAndTimedGetOnEmptyQueueRaiseEmpty) {
  mp::Queue<int> q;
  EXPECT_THROW(q.get_nowait(), mp::Empty);
  EXPECT_THROW(q.get(20ms), mp::Empty);
  EXPECT_THROW(q.get(-1s), mp::Empty);
  q.put(1);
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_THROW(q.get_nowait(), mp::Empty);
}

TEST(Queue, UnboundedQueueIsStillBoundedByRingBytes) {
  mp::Queue<std::string> q({.capacity_bytes = 4096});
  EXPECT_EQ(q.capacity_bytes(), 4096u);
  int n = 0;
  try {
    for (;; ++n) q.put_nowait(std::string(100, char('a' + n % 26)));
  } catch (const mp::Full&) {
  }
  EXPECT_GT(n, 10);
  EXPECT_FALSE(q.full()) << "full() counts items, like Python; maxsize 0 is never full";
  for (int i = 0; i < n; ++i) EXPECT_EQ(q.get_nowait(), std::string(100, char('a' + i % 26)));
  EXPECT_TRUE(q.empty());
}

struct Order {
  std::string item;
  int qty = 0;
  std::vector<double> prices;
  template <class A>
  void serialize(A& ar) {
    ar(item, qty, prices);
  }
  bool operator==(const Order&) const = default;
};
struct NotSerializable {
  std::string_view name;  // an address into this process: refused (issue 17)
};
struct Point {
  int x, y;
  bool operator==(const Point&) const = default;
};

TEST(Queue, CarriesEveryKindOfTransferableValue) {
  mp::Queue<Point> qp;
  qp.put({1, 2});
  EXPECT_EQ(qp.get(), (Point{1, 2}));
  mp::Queue<std::vector<double>> qv;
  qv.put({1.5, 2.5});
  qv.put({});
  EXPECT_EQ(qv.get(), (std::vector<double>{1.5, 2.5}));
  EXPECT_TRUE(qv.get().empty());
  mp::Queue<Order> qo;
  qo.put({"tea", 2, {1.25}});
  EXPECT_EQ(qo.get(), (Order{"tea", 2, {1.25}}));
  mp::Queue<std::map<std::string, int>> qm;
  qm.put({{"a", 1}, {"b", 2}});
  EXPECT_EQ(qm.get().at("b"), 2);
  mp::Queue<std::string> qs;
  qs.put("");
  EXPECT_EQ(qs.get(), "");
  static_assert(!mp::Transferable<NotSerializable>);  // mp::Queue<NotSerializable> does not compile
}

// Issue 17: a plain struct of a string, a vector and a nested struct crosses processes
// without a serialize() function.
namespace {
struct Reading {
  std::string sensor;
  std::vector<double> values;
  Point where;
  bool operator==(const Reading&) const = default;
};
}  // namespace

TEST(Queue, PlainStructsCrossProcessesWithoutSerialize) {
  mp::Queue<Reading> q;
  mp::Process child([q]() mutable {
    for (int i = 0; i < 3; ++i) q.put(Reading{"s" + std::to_string(i), std::vector<double>(i, 0.5), {i, -i}});
  });
  child.start();
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(q.get(60s), (Reading{"s" + std::to_string(i), std::vector<double>(i, 0.5), {i, -i}}));
  child.join();
  EXPECT_EQ(child.exitcode(), 0);
}

TEST(Queue, CopiesAreTheSameQueue) {
  mp::Queue<int> a;
  mp::Queue<int> b = a;
  a.put(7);
  EXPECT_EQ(b.qsize(), 1u);
  EXPECT_EQ(b.get(), 7);
}

TEST(Queue, CloseMakesThisProcessRefusePutAndGetButNotOthers) {
  mp::Queue<int> q;
  mp::Queue<int> copy = q;
  EXPECT_THROW(q.join_thread(), mp::RuntimeError);
  q.close();
  EXPECT_THROW(copy.put(1), mp::ValueError);
  EXPECT_THROW((void)copy.get_nowait(), mp::ValueError);
  q.join_thread();  // closed: nothing to wait for
  q.cancel_join_thread();
  // Other processes are unaffected, including a child forked after close() (Python resets
  // the flag in a forked child too):
  mp::Queue<int> back;
  mp::Process p2([](mp::Queue<int> q, mp::Queue<int> back) { back.put(q.get() + 1); }, q, back);
  p2.start();
  mp::Process p3([](mp::Queue<int> q) { q.put(42); }, q);
  p3.start();
  p3.join();
  EXPECT_EQ(back.get(60s), 43);
  p2.join();
}

// ---------------------------------------------------------------- across processes

TEST(Queue, ChildPutsAnotherChildGets) {
  mp::Queue<std::string> q;
  mp::Queue<std::string> result;
  mp::Process producer([](mp::Queue<std::string> q) { q.put("hello baby"); }, q);
  mp::Process consumer([](mp::Queue<std::string> q, mp::Queue<std::string> r) { r.put(q.get()); }, q, result);
  producer.start();
  consumer.start();
  EXPECT_EQ(result.get(60s), "hello baby");
  producer.join();
  consumer.join();
  EXPECT_EQ(producer.exitcode(), 0);
  EXPECT_EQ(consumer.exitcode(), 0);
}

TEST(Queue, BlockedGetSleepsWithoutBurningCpuAndIsWokenByAnotherProcess) {
  mp::Queue<int> q, back;
  mp::Process consumer([](mp::Queue<int> q, mp::Queue<int> back) { back.put(q.get() + 1); }, q, back);
  consumer.start();
  // The consumer spins a few µs, then sleeps on the futex: its state becomes S.
  ASSERT_TRUE(wait_for([&] { return mp_test::proc_state(consumer.pid()) == 'S'; }));
  q.put(41);
  EXPECT_EQ(back.get(60s), 42);
  consumer.join();
}

TEST(Queue, BlockedPutSleepsAndIsWokenWhenAConsumerMakesRoom) {
  mp::Queue<int> q(2);
  q.put(1);
  q.put(2);
  mp::Process producer([](mp::Queue<int> q) { q.put(3); }, q);
  producer.start();
  ASSERT_TRUE(wait_for([&] { return mp_test::proc_state(producer.pid()) == 'S'; }));
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.get(), 1);
  ASSERT_TRUE(producer.join(60s));
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
}

TEST(Queue, FifoPerProducerWithThreeProducerProcesses) {
  constexpr std::uint32_t kEach = 20000;
  mp::Queue<Tagged> q(64);
  std::vector<mp::Process> ps;
  for (std::uint32_t p = 0; p < 3; ++p)
    ps.emplace_back(
        [p](mp::Queue<Tagged> q) {
          for (std::uint32_t i = 0; i < kEach; ++i) q.put({p, i});
        },
        q);
  for (auto& p : ps) p.start();
  std::uint32_t next[3] = {0, 0, 0};
  for (std::uint32_t n = 0; n < 3 * kEach; ++n) {
    Tagged t = q.get(60s);
    ASSERT_LT(t.producer, 3u);
    ASSERT_EQ(t.seq, next[t.producer]) << "producer " << t.producer << " out of order";
    ++next[t.producer];
  }
  for (auto& p : ps) p.join();
  EXPECT_TRUE(q.empty());
}

TEST(Queue, FourProducersFourConsumersMoveOneMillionMessages) {
  constexpr std::uint32_t kProducers = 4, kConsumers = 4, kEach = 250'000;
  mp::Queue<Tagged> q;
  SharedBitmap seen(std::size_t{kProducers} * kEach);
  SharedArray<std::atomic<long>> dups(1), disorder(1), received(kConsumers);
  std::vector<mp::Process> consumers, producers;
  for (std::uint32_t c = 0; c < kConsumers; ++c)
    consumers.emplace_back(
        [&, c](mp::Queue<Tagged> q) {
          std::int64_t last[kProducers];
          std::fill(std::begin(last), std::end(last), -1);
          for (;;) {
            Tagged t = q.get();
            if (t.producer == kStop) return;
            if (t.producer >= kProducers || !seen.mark(std::size_t{t.producer} * kEach + t.seq)) ++dups[0];
            // Global FIFO means each consumer sees any one producer's messages in order.
            if (static_cast<std::int64_t>(t.seq) <= last[t.producer]) ++disorder[0];
            last[t.producer] = t.seq;
            ++received[c];
          }
        },
        q);
  for (std::uint32_t p = 0; p < kProducers; ++p)
    producers.emplace_back(
        [p](mp::Queue<Tagged> q) {
          for (std::uint32_t i = 0; i < kEach; ++i) q.put({p, i});
        },
        q);
  for (auto& c : consumers) c.start();
  for (auto& p : producers) p.start();
  for (auto& p : producers) {
    ASSERT_TRUE(p.join(300s));
    EXPECT_EQ(p.exitcode(), 0);
  }
  for (std::uint32_t c = 0; c < kConsumers; ++c) q.put({kStop, 0});
  for (auto& c : consumers) {
    ASSERT_TRUE(c.join(300s));
    EXPECT_EQ(c.exitcode(), 0);
  }
  long total = 0;
  for (std::uint32_t c = 0; c < kConsumers; ++c) total += received[c];
  EXPECT_EQ(total, long{kProducers} * kEach);
  EXPECT_EQ(seen.count(), std::size_t{kProducers} * kEach) << "messages lost";
  EXPECT_EQ(dups[0], 0) << "messages delivered twice";
  EXPECT_EQ(disorder[0], 0) << "a producer's messages overtook each other";
  EXPECT_TRUE(q.empty());
}

TEST(Queue, ThreadsAndProcessesMixed) {
  constexpr std::uint32_t kProducers = 4, kEach = 20000;  // producers 0,1: processes; 2,3: threads
  mp::Queue<Tagged> q(100);
  SharedBitmap seen(std::size_t{kProducers} * kEach);
  SharedArray<std::atomic<long>> dups(1), received(1);
  auto consume = [&](mp::Queue<Tagged> q) {
    for (;;) {
      Tagged t = q.get();
      if (t.producer == kStop) return;
      if (t.producer >= kProducers || !seen.mark(std::size_t{t.producer} * kEach + t.seq)) ++dups[0];
      ++received[0];
    }
  };
  auto produce = [](mp::Queue<Tagged> q, std::uint32_t p) {
    for (std::uint32_t i = 0; i < kEach; ++i) q.put({p, i});
  };
  // Processes first, so that no thread exists when fork() runs.
  std::vector<mp::Process> procs;
  procs.emplace_back(consume, q);
  procs.emplace_back(consume, q);
  procs.emplace_back(produce, q, 0u);
  procs.emplace_back(produce, q, 1u);
  for (auto& p : procs) p.start();
  std::vector<std::thread> threads;
  threads.emplace_back(consume, q);
  threads.emplace_back(consume, q);
  threads.emplace_back(produce, q, 2u);
  threads.emplace_back(produce, q, 3u);
  threads[2].join();
  threads[3].join();
  ASSERT_TRUE(procs[2].join(300s));
  ASSERT_TRUE(procs[3].join(300s));
  for (int i = 0; i < 4; ++i) q.put({kStop, 0});
  threads[0].join();
  threads[1].join();
  ASSERT_TRUE(procs[0].join(300s));
  ASSERT_TRUE(procs[1].join(300s));
  EXPECT_EQ(received[0], long{kProducers} * kEach);
  EXPECT_EQ(seen.count(), std::size_t{kProducers} * kEach);
  EXPECT_EQ(dups[0], 0);
}

// ---------------------------------------------------------------- messages larger than the ring

TEST(Queue, MessagesLargerThanTheRingArriveWholeAndInOrder) {
  mp::Queue<std::string> q({.capacity_bytes = 4096});
  ASSERT_EQ(q.capacity_bytes(), 4096u);
  constexpr int kEach = 30;
  std::vector<mp::Process> ps;
  for (int p = 0; p < 2; ++p)
    ps.emplace_back(
        [p](mp::Queue<std::string> q) {
          for (std::uint64_t i = 0; i < kEach; ++i) {
            std::uint64_t seq = p * 1000 + i;
            q.put(make_payload(seq, i % 3 == 0 ? 100'000 + i : 8 + i * 50));  // mixes big and small
          }
        },
        q);
  for (auto& p : ps) p.start();
  std::uint64_t next[2] = {0, 1000};
  for (int n = 0; n < 2 * kEach; ++n) {
    auto seq = check_payload(q.get(60s));
    ASSERT_TRUE(seq.has_value()) << "a large message arrived torn";
    int p = *seq >= 1000;
    EXPECT_EQ(*seq, next[p]++);
  }
  for (auto& p : ps) p.join();
  EXPECT_TRUE(q.empty());
}

TEST(Queue, LargeTrivialValuesAndVectorsTravelInFragments) {
  using Big = std::array<std::uint32_t, 5000>;  // 20000 bytes, ring 4096
  mp::Queue<Big> q({.capacity_bytes = 4096});
  mp::Queue<std::vector<int>> qv({.capacity_bytes = 4096});
  mp::Process p(
      [](mp::Queue<Big> q, mp::Queue<std::vector<int>> qv) {
        Big b;
        for (std::uint32_t i = 0; i < b.size(); ++i) b[i] = i * 3;
        q.put(b);
        std::vector<int> v(50'000);
        for (int i = 0; i < 50'000; ++i) v[i] = -i;
        qv.put(v);
      },
      q, qv);
  p.start();
  Big b = q.get(60s);
  for (std::uint32_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], i * 3);
  auto v = qv.get(60s);
  ASSERT_EQ(v.size(), 50'000u);
  for (int i = 0; i < 50'000; ++i) ASSERT_EQ(v[i], -i);
  p.join();
}

TEST(Queue, LargePutNowaitWithoutRoomRaisesFullAndLeavesNoTrace) {
  mp::Queue<std::string> q({.capacity_bytes = 4096});
  EXPECT_THROW(q.put_nowait(std::string(10'000, 'x')), mp::Full);
  EXPECT_TRUE(q.empty());
  q.put("small");
  EXPECT_EQ(q.get_nowait(), "small");
  EXPECT_THROW(q.get_nowait(), mp::Empty);
}

TEST(Queue, LargePutTimingOutMidMessageIsWithdrawn) {
  mp::Queue<std::string> q({.capacity_bytes = 4096});
  // Nobody consumes: the first fragments fill the ring, the rest cannot follow in time.
  EXPECT_THROW(q.put(std::string(10'000, 'x'), 30ms), mp::Full);
  EXPECT_EQ(q.qsize(), 0u);
  mp::Process p([](mp::Queue<std::string> q) { q.put("after"); }, q);
  p.start();
  EXPECT_EQ(q.get(60s), "after") << "the withdrawn fragments must be skipped, not delivered";
  p.join();
  EXPECT_THROW(q.get_nowait(), mp::Empty);
}

// ---------------------------------------------------------------- processes killed mid-operation

TEST(QueueKill, ProducerKilledBeforePublishingDeliversNothingAndOthersCarryOn) {
  for (int round = 0; round < 30; ++round) {
    mp::Queue<std::string> q;
    const int k = 1 + round % 7;  // messages published before the fatal one
    mp::Process p(
        [k](mp::Queue<std::string> q) {
          arm_kill(mp::internal::RingPoint::put_before_publish, k + 1);
          for (std::uint64_t i = 0;; ++i) q.put(make_payload(i, 500));
        },
        q);
    p.start();
    p.join();
    ASSERT_EQ(p.exitcode(), -SIGKILL);
    for (int i = 0; i < k; ++i) EXPECT_EQ(check_payload(q.get(60s)), std::optional<std::uint64_t>(i));
    EXPECT_THROW(q.get_nowait(), mp::Empty) << "the half-written message must never be delivered";
    EXPECT_EQ(q.qsize(), 0u);
    q.put_nowait("next");  // even a no-wait put takes over the dead producer's lock
    EXPECT_EQ(q.get(60s), "next");
  }
}

TEST(QueueKill, ConsumerKilledBeforeReleasingLeavesTheMessageForTheNext) {
  for (int round = 0; round < 30; ++round) {
    mp::Queue<std::string> q;
    for (std::uint64_t i = 0; i < 10; ++i) q.put(make_payload(i, 700));
    const int k = round % 9;  // messages taken before the fatal get
    SharedArray<std::atomic<int>> taken(1);
    mp::Process c(
        [&, k](mp::Queue<std::string> q) {
          arm_kill(mp::internal::RingPoint::get_before_release, k + 1);
          for (;;) {
            (void)q.get();
            ++taken[0];
          }
        },
        q);
    c.start();
    c.join();
    ASSERT_EQ(c.exitcode(), -SIGKILL);
    EXPECT_EQ(taken[0], k);
    EXPECT_EQ(q.qsize(), 10u - k);
    // Even a no-wait get takes over the dead consumer's lock and finds message k intact.
    EXPECT_EQ(check_payload(q.get_nowait()), std::optional<std::uint64_t>(k));
    for (int i = k + 1; i < 10; ++i) EXPECT_EQ(check_payload(q.get(60s)), std::optional<std::uint64_t>(i));
    EXPECT_THROW(q.get_nowait(), mp::Empty);
  }
}

// ------------------------------------------------------------- shutdown (Python 3.13)

namespace {
/// Waits until process `pid` sleeps (state S): blocked in the call it announced.
void wait_until_asleep(pid_t pid) {
  while (mp_test::proc_state(pid) != 'S') std::this_thread::yield();
}

/// In a child: sends 1 on `wr` just before blocking in q.get(), then exits 0 when that get()
/// raises mp::ShutDown, 1 when it returns an item.
void get_until_shutdown(mp::Queue<int>& q, mp::Connection& wr) {
  wr.send(1);
  try {
    (void)q.get();
    mp::exit(1);
  } catch (const mp::ShutDown&) {
    mp::exit(0);
  }
}
}  // namespace

TEST(QueueShutdown, ABlockedGetterInAnotherProcessWakesWithShutDown) {
  mp::Queue<int> q;
  auto [rd, wr] = mp::Pipe(false);
  mp::Process getter([&] { get_until_shutdown(q, wr); });
  getter.start();
  ASSERT_EQ(rd.recv<int>(), 1);
  wait_until_asleep(getter.pid());
  EXPECT_FALSE(q.is_shutdown());
  q.shutdown();
  EXPECT_TRUE(q.is_shutdown());
  getter.join();
  EXPECT_EQ(getter.exitcode(), 0) << "1: get() returned an item";
}

TEST(QueueShutdown, ABlockedPutterOfAFullQueueWakesAndPutsRaiseInEveryProcess) {
  mp::Queue<int> q(1);
  q.put(1);
  auto [rd, wr] = mp::Pipe(false);
  mp::Process putter([&] {
    wr.send(1);  // about to block: the queue is full
    try {
      q.put(2);
      mp::exit(1);
    } catch (const mp::ShutDown&) {
    }
    try {
      q.put_nowait(3);
      mp::exit(2);
    } catch (const mp::ShutDown&) {
      mp::exit(0);
    }
  });
  putter.start();
  ASSERT_EQ(rd.recv<int>(), 1);
  wait_until_asleep(putter.pid());
  q.shutdown();
  putter.join();
  EXPECT_EQ(putter.exitcode(), 0);
  // Not immediate: what was put before is still delivered, then get raises.
  EXPECT_EQ(q.get(60s), 1);
  EXPECT_THROW(q.get(60s), mp::ShutDown);
  EXPECT_THROW(q.get_nowait(), mp::ShutDown);
  EXPECT_THROW(q.put(4), mp::ShutDown);
}

TEST(QueueShutdown, AGetterFindingTheHalfMessageOfADeadProducerStillEndsWithShutDown) {
  mp::Queue<std::string> q({.capacity_bytes = 64 << 10});
  mp::Process producer(
      [](mp::Queue<std::string> q) {
        arm_kill(mp::internal::RingPoint::put_between_fragments, 1);  // dies after its first fragment
        q.put(std::string(200 << 10, 'x'));
      },
      q);
  producer.start();
  producer.join();
  ASSERT_EQ(producer.exitcode(), -SIGKILL);
  q.shutdown();
  // The getter reads the orphaned first fragment, waits for the rest, finds its writer dead
  // (a shutdown must not turn that wait into a spin that never looks), drops it, and then
  // the empty, shut-down queue raises.
  EXPECT_THROW(q.get(60s), mp::ShutDown);
}

TEST(QueueShutdown, ImmediateDropsTheItemsAndJoinWaitsOnlyForThoseTaken) {
  mp::JoinableQueue<std::string> q;
  for (int i = 0; i < 5; ++i) q.put(std::string(3000 * (i + 1), 'x'));
  std::string taken = q.get();  // a consumer holds one, not yet done
  EXPECT_EQ(taken.size(), 3000u);
  q.shutdown(true);
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_THROW(q.get_nowait(), mp::ShutDown);
  EXPECT_EQ(q.unfinished_tasks(), 1u) << "the dropped items count as done";
  EXPECT_FALSE(q.join(0s));
  mp::Process consumer([&] { q.task_done(); });
  consumer.start();
  consumer.join();
  EXPECT_TRUE(q.join(60s));
}

// ------------------------------------------- shutdown_when_producers_exit (issue 18)

namespace {
constexpr mp::QueueOptions kWatched{.shutdown_when_producers_exit = true};

/// Gets until ShutDown; the 60 s guard only turns a hang into a failure (Empty).
std::vector<int> drain_until_shutdown(mp::Queue<int>& q) {
  std::vector<int> got;
  for (;;) {
    try {
      got.push_back(q.get(60s));
    } catch (const mp::ShutDown&) {
      return got;
    }
  }
}
}  // namespace

TEST(QueueProducersExit, TwoProducersPutAndExitThenTheConsumerGetsEverythingAndShutDown) {
  mp::Queue<int> q(kWatched);
  constexpr int kN = 500;
  // Both are producers before either can end (a first put after every recorded producer
  // has ended meets a queue that already shut itself down: docs/queue.md).
  mp::Barrier both_recorded(2);
  std::vector<mp::Process> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([p, &both_recorded](mp::Queue<int> q) {
      q.put(p * kN);
      both_recorded.wait();
      for (int i = 1; i < kN; ++i) q.put(p * kN + i);
    }, q);
    producers.back().start();
  }
  std::vector<int> got = drain_until_shutdown(q);
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_EQ(got.size(), 2u * kN);
  EXPECT_EQ(std::set<int>(got.begin(), got.end()).size(), 2u * kN);
  EXPECT_THROW(q.put(1), mp::ShutDown);
  for (auto& p : producers) {
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
  }
}

TEST(QueueProducersExit, AProducerKilledMidPutLeavesWhatItPutThenShutDown) {
  mp::Queue<int> q(kWatched);
  mp::Process producer([](mp::Queue<int> q) {
    for (int i = 0; i < 10; ++i) q.put(i);
    arm_kill(mp::internal::RingPoint::put_before_publish, 1);  // dies with -1 half-written
    q.put(-1);
  }, q);
  producer.start();
  std::vector<int> got = drain_until_shutdown(q);
  producer.join();
  EXPECT_EQ(producer.exitcode(), -SIGKILL);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})) << "the half-written -1 is never delivered";
  EXPECT_THROW(q.put(1), mp::ShutDown) << "the dead producer's lock is no obstacle either";
}

TEST(QueueProducersExit, AGetterBlockedInAnotherProcessWakesWithShutDownWhenTheLastProducerEnds) {
  mp::Queue<int> q(kWatched);
  mp::Event may_exit;
  auto [rd, wr] = mp::Pipe(false);
  mp::Process producer([&] {
    q.put(7);
    may_exit.wait();
  });
  producer.start();
  mp::Process getter([&] {
    if (q.get() != 7) mp::exit(2);
    get_until_shutdown(q, wr);  // blocks: the producer lives
  });
  getter.start();
  ASSERT_EQ(rd.recv<int>(), 1);
  wait_until_asleep(getter.pid());
  EXPECT_FALSE(q.is_shutdown());
  may_exit.set();
  producer.join();
  getter.join();
  EXPECT_EQ(getter.exitcode(), 0) << "1: get() returned an item; 2: not the item put";
  EXPECT_TRUE(q.is_shutdown());
}

TEST(QueueProducersExit, WithoutTheOptionAQueueWhoseProducersEndedStaysOpen) {
  mp::Queue<int> q;
  mp::Process producer([](mp::Queue<int> q) { q.put(1); }, q);
  producer.start();
  producer.join();
  EXPECT_EQ(q.get(60s), 1);
  EXPECT_THROW(q.get(10ms), mp::Empty);
  EXPECT_FALSE(q.is_shutdown());
  q.put(2);
  EXPECT_EQ(q.get_nowait(), 2);
}

TEST(QueueProducersExit, BeforeAnyProducerAndWhileOneLivesInThisProcessGettersWait) {
  mp::Queue<int> q(kWatched);
  EXPECT_THROW(q.get_nowait(), mp::Empty) << "nobody has produced yet";
  q.put(1);  // this process is a producer now, and lives
  mp::Process producer([](mp::Queue<int> q) { q.put(2); }, q);
  producer.start();
  producer.join();
  EXPECT_EQ(q.get(60s), 1);
  EXPECT_EQ(q.get(60s), 2);
  EXPECT_THROW(q.get_nowait(), mp::Empty);
  EXPECT_FALSE(q.is_shutdown());
}

TEST(QueueProducersExit, ADeadProducerWhosePidWasReusedStillCountsAsEnded) {
  mp::Queue<int> q(kWatched);
  mp::Process producer([](mp::Queue<int> q) { q.put(1); }, q);
  producer.start();
  const std::uint64_t start = mp::internal::process_start_time(producer.pid());
  producer.join();
  auto squatter = mp_test::ProcessAtPid::start(producer.pid(), start);
  if (!squatter) GTEST_SKIP() << "cannot start a process at a chosen pid here (clone3 set_tid needs root)";
  ASSERT_NE(mp_test::proc_state(producer.pid()), 0) << "a live process holds the dead producer's pid";
  EXPECT_EQ(q.get(60s), 1);
  EXPECT_THROW(q.get_nowait(), mp::ShutDown);
}

TEST(QueueProducersExit, ATableOfLiveProducersThatIsFullRefusesTheNextProducerWithAnError) {
  mp::Queue<int> q(kWatched);
  mp::Event may_exit;
  auto [rd, wr] = mp::Pipe(false);
  std::vector<mp::Process> producers;
  for (std::size_t p = 0; p < mp::internal::kMaxProducers; ++p) {
    producers.emplace_back([&, p] {
      q.put(static_cast<int>(p));
      wr.send(1);
      may_exit.wait();
    });
    producers.back().start();
  }
  for (std::size_t p = 0; p < producers.size(); ++p) ASSERT_EQ(rd.recv<int>(), 1);
  mp::Process extra([&] {
    try {
      q.put(-1);
      mp::exit(1);
    } catch (const mp::RuntimeError&) {
      mp::exit(0);
    }
  });
  extra.start();
  extra.join();
  EXPECT_EQ(extra.exitcode(), 0) << "1: the put went through unrecorded";
  may_exit.set();
  for (auto& p : producers) p.join();
  // The slots of ended producers are taken again (no getter has looked since they ended,
  // so the queue is still open).
  mp::Process late([](mp::Queue<int> q) { q.put(100); }, q);
  late.start();
  late.join();
  EXPECT_EQ(late.exitcode(), 0);
  std::vector<int> got = drain_until_shutdown(q);
  EXPECT_EQ(got.size(), mp::internal::kMaxProducers + 1) << "the refused put left nothing";
  EXPECT_EQ(got.back(), 100);
}

// Issue 20: a dead lock holder whose pid the kernel gave to a new process is still dead.
// The new process (started at that pid with clone3 set_tid) lives on; the queue must not
// take it for the holder.
TEST(QueueKill, ADeadConsumerAndProducerWhosePidsWereReusedDoNotBlockTheQueue) {
  mp::Queue<int> q;
  for (int i = 0; i < 10; ++i) q.put(i);
  mp::Process consumer([](mp::Queue<int> q) {
    arm_kill(mp::internal::RingPoint::get_before_release, 1);  // dies holding the consumers' lock
    (void)q.get();
  }, q);
  consumer.start();
  const std::uint64_t consumer_start = mp::internal::process_start_time(consumer.pid());
  consumer.join();
  ASSERT_EQ(consumer.exitcode(), -SIGKILL);
  auto squatter = mp_test::ProcessAtPid::start(consumer.pid(), consumer_start);
  if (!squatter) GTEST_SKIP() << "cannot start a process at a chosen pid here (clone3 set_tid needs root)";
  ASSERT_NE(mp_test::proc_state(consumer.pid()), 0) << "a live process holds the dead consumer's pid";
  for (int i = 0; i < 10; ++i) ASSERT_EQ(q.get(30s), i) << "the dead consumer loses nothing it did not take";

  mp::Process producer([](mp::Queue<int> q) {
    arm_kill(mp::internal::RingPoint::put_before_publish, 1);  // dies holding the producers' lock
    q.put(-1);
  }, q);
  producer.start();
  const std::uint64_t producer_start = mp::internal::process_start_time(producer.pid());
  producer.join();
  ASSERT_EQ(producer.exitcode(), -SIGKILL);
  auto squatter2 = mp_test::ProcessAtPid::start(producer.pid(), producer_start);
  ASSERT_TRUE(squatter2);
  q.put(42, 30s);
  EXPECT_EQ(q.get(30s), 42) << "the half-written -1 is never delivered";
}

TEST(QueueKill, ProducerKilledMidFragmentedMessageIsDiscarded) {
  for (int round = 0; round < 10; ++round) {
    mp::Queue<std::string> q({.capacity_bytes = 4096});
    mp::Process writer(
        [round](mp::Queue<std::string> q) {
          arm_kill(mp::internal::RingPoint::put_between_fragments, 1 + round % 4);
          q.put(make_payload(1, 50'000));
        },
        q);
    writer.start();
    pid_t dead = writer.pid();
    // A second producer that starts once the first is gone: it must take over the lock,
    // and its message must reach the consumer that was assembling the dead one's message.
    mp::Process next(
        [dead](mp::Queue<std::string> q) {
          while (!mp::internal::process_has_exited(dead)) std::this_thread::yield();
          q.put(make_payload(2, 100));
        },
        q);
    next.start();
    EXPECT_EQ(check_payload(q.get(60s)), std::optional<std::uint64_t>(2));
    writer.join();
    next.join();
    EXPECT_EQ(writer.exitcode(), -SIGKILL);
    EXPECT_THROW(q.get_nowait(), mp::Empty);
    EXPECT_EQ(q.qsize(), 0u);
  }
}

TEST(QueueKill, ConsumerKilledMidFragmentedMessageLosesOnlyThatMessage) {
  for (int round = 0; round < 10; ++round) {
    mp::Queue<std::string> q({.capacity_bytes = 4096});
    mp::Process writer(
        [](mp::Queue<std::string> q) {
          q.put(make_payload(1, 60'000));
          q.put(make_payload(2, 60'000));
          q.put(make_payload(3, 100));
        },
        q);
    mp::Process reader(
        [round](mp::Queue<std::string> q) {
          arm_kill(mp::internal::RingPoint::get_between_fragments, 1 + round % 5);
          (void)q.get();
        },
        q);
    writer.start();
    reader.start();
    reader.join();
    ASSERT_EQ(reader.exitcode(), -SIGKILL);
    // The next consumer skips what is left of message 1 and receives the rest intact.
    EXPECT_EQ(check_payload(q.get(60s)), std::optional<std::uint64_t>(2));
    EXPECT_EQ(check_payload(q.get(60s)), std::optional<std::uint64_t>(3));
    writer.join();
    EXPECT_EQ(writer.exitcode(), 0);
    EXPECT_THROW(q.get_nowait(), mp::Empty);
  }
}

// Busy children SIGKILLed wherever they are. Afterwards the parent (which takes over any
// lock they held) must see only intact messages, in order, none twice, and at most one
// lost (the one the consumer had taken when it died, before it could record it).
TEST(QueueKill, RandomlyKilledProducerAndConsumerNeverCorruptOrHang) {
  for (int round = 0; round < 20; ++round) {
    mp::Queue<std::string> q({.capacity_bytes = 1 << 16});
    constexpr std::size_t kMax = 1 << 20;
    SharedBitmap got(kMax);
    SharedArray<std::atomic<long>> progress(3);  // [0] last put done + 1, [1] received, [2] corrupt
    mp::Process producer(
        [&](mp::Queue<std::string> q) {
          for (std::uint64_t i = 0; i < kMax; ++i) {
            q.put(make_payload(i, size_for(i, 40, 40'000)));
            progress[0] = static_cast<long>(i + 1);
          }
        },
        q);
    mp::Process consumer(
        [&](mp::Queue<std::string> q) {
          for (;;) {
            auto seq = check_payload(q.get());
            if (!seq || !got.mark(*seq)) ++progress[2];
            ++progress[1];
          }
        },
        q);
    producer.start();
    consumer.start();
    const long target = 50 + round * 13;
    ASSERT_TRUE(wait_for([&] { return progress[1] >= target; }));
    if (round % 2) {
      producer.kill();
      consumer.kill();
    } else {
      consumer.kill();
      producer.kill();
    }
    producer.join();
    consumer.join();
    // A fresh producer appends a marker (taking over the put lock if the dead one held it)
    // while the parent drains (taking over the get lock likewise).
    mp::Process closer([](mp::Queue<std::string> q) { q.put("END"); }, q);
    closer.start();
    std::int64_t last = -1;
    for (;;) {
      std::string s = q.get(60s);
      if (s == "END") break;
      auto seq = check_payload(s);
      ASSERT_TRUE(seq.has_value()) << "torn message delivered";
      EXPECT_GT(static_cast<std::int64_t>(*seq), last);
      last = static_cast<std::int64_t>(*seq);
      EXPECT_TRUE(got.mark(*seq)) << "message " << *seq << " delivered twice";
    }
    ASSERT_TRUE(closer.join(60s));
    EXPECT_EQ(progress[2], 0) << "the consumer saw a torn or duplicated message";
    long published = progress[0];
    long missing = 0;
    for (long i = 0; i < published; ++i) missing += !got.test(i);
    EXPECT_LE(missing, 1) << "round " << round << ": more than the consumer's in-flight message was lost";
    EXPECT_TRUE(q.empty());
  }
}

// ---------------------------------------------------------------- SimpleQueue, JoinableQueue

TEST(SimpleQueue, PutGetEmptyAcrossProcesses) {
  mp::SimpleQueue<std::string> q;
  EXPECT_TRUE(q.empty());
  mp::Process p([](mp::SimpleQueue<std::string> q) { q.put("from child"); }, q);
  p.start();
  EXPECT_EQ(q.get(), "from child");
  p.join();
  EXPECT_TRUE(q.empty());
  q.close();
  EXPECT_THROW(q.put("x"), mp::ValueError);
}

TEST(JoinableQueue, JoinReturnsOnceEveryItemIsDone) {
  mp::JoinableQueue<std::string> q;
  q.put("zhao");
  q.put("qian");
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  EXPECT_EQ(q.get(), "zhao");
  q.task_done();
  EXPECT_FALSE(q.join(10ms));
  EXPECT_EQ(q.get(), "qian");
  q.task_done();
  q.join();
  EXPECT_TRUE(q.join(0ms));
}

TEST(JoinableQueue, TaskDoneCalledTooManyTimesRaisesValueError) {
  mp::JoinableQueue<int> q;
  EXPECT_THROW(q.task_done(), mp::ValueError);
  q.put(1);
  (void)q.get();
  q.task_done();
  EXPECT_THROW(q.task_done(), mp::ValueError);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

TEST(JoinableQueue, JoinWaitsForDaemonConsumersInOtherProcesses) {
  mp::JoinableQueue<int> q;
  SharedArray<std::atomic<long>> sum(1);
  std::vector<mp::Process> consumers;
  for (int c = 0; c < 2; ++c) {
    consumers.emplace_back(
        mp::ProcessOptions{.daemon = true},
        [&](mp::JoinableQueue<int> q) {
          for (;;) {
            int v = q.get();
            sum[0] += v;  // the work is done before task_done(): join() must see it
            q.task_done();
          }
        },
        q);
    consumers.back().start();
  }
  mp::Process producer(
      [](mp::JoinableQueue<int> q) {
        for (int i = 1; i <= 1000; ++i) q.put(i);
      },
      q);
  producer.start();
  producer.join();
  q.join();
  EXPECT_EQ(sum[0], 1000 * 1001 / 2);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  for (auto& c : consumers) {
    c.terminate();
    c.join();
  }
}

TEST(JoinableQueue, KilledProducerLeavesNoPhantomUnfinishedItem) {
  mp::JoinableQueue<int> q;
  mp::Process p(
      [](mp::JoinableQueue<int> q) {
        arm_kill(mp::internal::RingPoint::put_before_publish, 3);
        for (int i = 0;; ++i) q.put(i);
      },
      q);
  p.start();
  p.join();
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(q.get(60s), i);
    q.task_done();
  }
  EXPECT_TRUE(q.join(60s));
}

// ---------------------------------------------------------------- the seed examples

TEST(QueueExamples, QueueBasicsWalkThrough) {
  auto r = mp_test::run(mp_test::example("queue_basics"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("full() after 5 puts: true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("put(111, timeout=50ms) raised Full"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("get_nowait() raised Empty"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("put_nowait('666') raised Full"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("get() -> 1\nget() -> 2\nempty(): false"), std::string::npos) << r.out;
}

TEST(QueueExamples, ProducerConsumerSentinelConsumesEveryItemOnce) {
  auto r = mp_test::run(mp_test::example("producer_consumer_sentinel"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  for (const char* food : {"baozi", "jiucai", "dasuan"})
    for (int i = 0; i < 3; ++i) EXPECT_EQ(mp_test::count(r.out, std::string(" ate ") + food + std::to_string(i) + "\n"), 1)
        << food << i << "\n" << r.out;
  EXPECT_EQ(mp_test::count(r.out, " ate "), 9);
  EXPECT_EQ(mp_test::count(r.out, " got the sentinel"), 2);
}

TEST(QueueExamples, ProducerConsumerJoinableReturnsAfterJoin) {
  auto r = mp_test::run(mp_test::example("producer_consumer_joinable"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(mp_test::count(r.out, " ate "), 9) << r.out;
  EXPECT_NE(r.out.find("q.join() returned: all 9 items done"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.rfind("main exits"), r.out.size() - std::string("main exits\n").size()) << r.out;
}

TEST(QueueExamples, QueueIpcWriterAndTerminatedReader) {
  auto r = mp_test::run(mp_test::example("queue_ipc"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  for (const char* v : {"W", "I", "L", "A", "R", "D"}) {
    EXPECT_NE(r.out.find(std::string("Put ") + v + " to queue..."), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(std::string("Get ") + v + " from queue."), std::string::npos) << r.out;
  }
  EXPECT_EQ(mp_test::count(r.out, "Get L from queue."), 2);
  EXPECT_NE(r.out.find("reader terminated: exitcode -15"), std::string::npos) << r.out;
}

TEST(QueueExamples, QueueHelloOneProcessPutsAnotherGets) {
  auto r = mp_test::run(mp_test::example("queue_hello"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("consumer got: hello baby"), std::string::npos) << r.out;
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(Queue, AConstructorOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  auto r = mp_test::construct_out_of_descriptors([] {
    mp::Queue<int> q;
    q.put(1);
    (void)q.get();
  });
  EXPECT_EQ(r.problem, "");
  EXPECT_TRUE(r.succeeded);
  EXPECT_GE(r.failures, 1);
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(JoinableQueue, AConstructorOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  auto r = mp_test::construct_out_of_descriptors([] {
    mp::JoinableQueue<int> q;
    q.put(1);
    (void)q.get();
    q.task_done();
    q.join();
  });
  EXPECT_EQ(r.problem, "");
  EXPECT_TRUE(r.succeeded);
  EXPECT_GE(r.failures, 1);
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(SimpleQueue, AConstructorOutOfDescriptorsAtAnyStepLeavesNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  auto r = mp_test::construct_out_of_descriptors([] {
    mp::SimpleQueue<int> q;
    q.put(1);
    (void)q.get();
  });
  EXPECT_EQ(r.problem, "");
  EXPECT_TRUE(r.succeeded);
  EXPECT_GE(r.failures, 1);
}
