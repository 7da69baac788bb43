// Tests for mp/sharedctypes.hpp: Value, Array, RawValue, RawArray across real processes.
#include <gtest/gtest.h>

#include <array>
#include <csignal>
#include <mutex>
#include <thread>
#include <vector>

#include "mp/process.hpp"
#include "helpers/fd_exhaustion.hpp"
#include "mp/sharedctypes.hpp"

using namespace std::chrono_literals;

namespace {
void join_all(std::vector<mp::Process>& ps) {
  for (auto& p : ps) {
    if (!p.join(60s)) {
      ADD_FAILURE() << "child " << p.pid() << " still running after 60 s: killing it";
      p.kill();
      p.join();
    }
    EXPECT_EQ(p.exitcode(), 0);
  }
}

struct Point {
  double x, y;
  int tag;
};
}  // namespace

TEST(Value, HoldsTheInitialValueAndSetsIt) {
  mp::Value<int> v(7);
  EXPECT_EQ(v.value(), 7);
  v.value(8);
  EXPECT_EQ(v.get(), 8);
  v.set(9);
  EXPECT_EQ(v.value(), 9);
  EXPECT_EQ(v.update([](int x) { return x * 2; }), 18);
  mp::Value<double> d;
  EXPECT_EQ(d.value(), 0.0);
}

TEST(Value, StructsAreCopiedWhole) {
  mp::Value<Point> p(Point{1.5, 2.5, 3});
  Point q = p.value();
  EXPECT_EQ(q.x, 1.5);
  EXPECT_EQ(q.tag, 3);
  p.update([](Point v) { return Point{v.x + 1, v.y, v.tag + 1}; });
  EXPECT_EQ(p.value().tag, 4);
}

TEST(Value, ChildWritesAreSeenByTheParent) {
  mp::Value<long> v(0);
  mp::Process p([](mp::Value<long> c) { c.value(1234); }, v);
  p.start();
  ASSERT_TRUE(p.join(60s));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(v.value(), 1234);
}

TEST(Value, IncrementsUnderTheLockAreNotLostAcrossProcesses) {
  constexpr int kProcs = 4, kIters = 5000;
  mp::Value<int> counter(0);
  std::vector<mp::Process> ps;
  for (int i = 0; i < kProcs; ++i)
    ps.emplace_back([&] {
      for (int j = 0; j < kIters; ++j) {
        if (j % 2) {
          counter.update([](int x) { return x + 1; });
        } else {  // Python's `with v.get_lock(): v.value += 1`
          std::scoped_lock g(counter.get_lock());
          counter.value(counter.value() + 1);
        }
      }
    });
  for (auto& p : ps) p.start();
  join_all(ps);
  EXPECT_EQ(counter.value(), kProcs * kIters);
}

TEST(Value, GetLockIsARecursiveLockSharedByCopies) {
  mp::Value<int> v(1);
  mp::Value<int> copy = v;
  std::scoped_lock g(v.get_lock());
  EXPECT_TRUE(copy.get_lock().is_owned());
  copy.value(5);  // re-enters the RLock
  EXPECT_EQ(*v.get_obj(), 5);
  EXPECT_EQ(v.get_lock().recursion_count(), 1u);
}

TEST(Value, SeveralValuesCanShareOneLock) {
  mp::RLock lock;
  mp::Value<int> a(1, lock), b(2, lock);
  std::scoped_lock g(a.get_lock());
  EXPECT_TRUE(b.get_lock().is_owned());
  EXPECT_TRUE(lock.is_owned());
}

TEST(Value, ReadersNeverSeeAHalfWrittenStruct) {
  struct Pair {
    long a, b;  // invariant: a == b
  };
  mp::Value<Pair> v(Pair{0, 0});
  mp::Process writer([&] {
    for (long i = 1; i <= 20000; ++i) v.value(Pair{i, i});
  });
  writer.start();
  bool torn = false;
  for (int i = 0; i < 20000 && !torn; ++i) {
    Pair p = v.value();
    torn = p.a != p.b;
  }
  ASSERT_TRUE(writer.join(60s));
  EXPECT_FALSE(torn);
  EXPECT_EQ(v.value().a, 20000);
}

TEST(Array, ZeroInitialisedIndexedAndSized) {
  mp::Array<int> a(5);
  EXPECT_EQ(a.size(), 5u);
  for (int x : a) EXPECT_EQ(x, 0);
  a.set(2, 7);
  a[3] = 9;
  EXPECT_EQ(a.get(2), 7);
  EXPECT_EQ(a.at(3), 9);
  EXPECT_EQ(a.to_vector(), (std::vector<int>{0, 0, 7, 9, 0}));
  EXPECT_THROW((void)a.get(5), mp::IndexError);
  EXPECT_THROW(a.set(99, 1), mp::IndexError);
  EXPECT_THROW((void)a.at(5), mp::IndexError);
}

TEST(Array, InitialisedFromAListOrRange) {
  mp::Array<double> a{1.0, 2.0, 3.0};
  EXPECT_EQ(a.size(), 3u);
  EXPECT_EQ(a.get(1), 2.0);
  std::vector<char> src{'a', 'b'};
  mp::Array<char> b(src);
  EXPECT_EQ(b.to_vector(), src);
  mp::Array<int> empty(0);
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.to_vector().empty());
}

TEST(Array, ChildrenFillTheirOwnSlots) {
  constexpr int kProcs = 4;
  mp::Array<int> squares(kProcs);
  std::vector<mp::Process> ps;
  for (int i = 0; i < kProcs; ++i) ps.emplace_back([&, i] { squares.set(static_cast<std::size_t>(i), i * i); });
  for (auto& p : ps) p.start();
  join_all(ps);
  EXPECT_EQ(squares.to_vector(), (std::vector<int>{0, 1, 4, 9}));
}

TEST(Array, WholeArrayUpdatesUnderTheLockAreAtomic) {
  mp::Array<int> a(8);
  std::vector<mp::Process> ps;
  for (int i = 0; i < 3; ++i)
    ps.emplace_back([&] {
      for (int k = 0; k < 2000; ++k) {
        std::scoped_lock g(a.get_lock());
        for (auto& x : a) ++x;
      }
    });
  for (auto& p : ps) p.start();
  join_all(ps);
  for (int x : a.to_vector()) EXPECT_EQ(x, 6000);
}

TEST(Array, KilledLockHolderDoesNotDeadlockOthers) {
  mp::Array<int> a(1);
  mp::Event holding;
  mp::Process p([&] {
    a.get_lock().acquire();
    holding.set();
    for (;;) pause();
  });
  p.start();
  ASSERT_TRUE(holding.wait(60s));
  p.kill();
  p.join();
  a.set(0, 1);  // takes the lock over
  EXPECT_EQ(a.get(0), 1);
}

TEST(RawValue, AtomicAccessWithoutALock) {
  mp::RawValue<long> v(5);
  static_assert(mp::RawValue<long>::is_atomic);
  EXPECT_EQ(v.value(), 5);
  std::vector<mp::Process> ps;
  for (int i = 0; i < 4; ++i)
    ps.emplace_back([&] {
      for (int k = 0; k < 10000; ++k) v.atomic().fetch_add(1);
    });
  for (auto& p : ps) p.start();
  join_all(ps);
  EXPECT_EQ(v.value(), 5 + 40000);
  v.set(1);
  EXPECT_EQ(v.get(), 1);
}

TEST(RawValue, NonAtomicTypesStillShared) {
  struct Big {
    std::array<int, 16> xs;
  };
  static_assert(!mp::RawValue<Big>::is_atomic);
  mp::RawValue<Big> v;
  mp::Process p([&] {
    Big b{};
    b.xs[15] = 3;
    v.value(b);
  });
  p.start();
  ASSERT_TRUE(p.join(60s));
  EXPECT_EQ(v.value().xs[15], 3);
}

TEST(RawArray, SharedWithoutALock) {
  mp::RawArray<int> a{1, 2, 3};
  mp::Process p([&] {
    for (auto& x : a) x *= 10;
  });
  p.start();
  ASSERT_TRUE(p.join(60s));
  EXPECT_EQ(a[0] + a[1] + a[2], 60);
  EXPECT_EQ(a.size(), 3u);
  EXPECT_THROW((void)a.at(3), mp::IndexError);
}

// Issue 20: a constructor that fails partway leaves no process, descriptor or file behind.
// Every descriptor it takes is made to fail once (tests/helpers/fd_exhaustion.hpp).
TEST(Sharedctypes, ConstructorsOutOfDescriptorsAtAnyStepLeaveNothingBehind) {
  if (mp_test::kSanitizerNeedsDescriptors) GTEST_SKIP() << mp_test::kSanitizerSkipReason;
  struct Case {
    const char* name;
    void (*make)();
  };
  const Case cases[] = {
      {"Value", [] { mp::Value<int> v(7); }},
      {"Array", [] { mp::Array<double> a(5); }},
      {"RawValue", [] { mp::RawValue<int> v(7); }},
      {"RawArray", [] { mp::RawArray<int> a(5); }},
  };
  for (const Case& c : cases) {
    auto r = mp_test::construct_out_of_descriptors(c.make);
    EXPECT_EQ(r.problem, "") << c.name;
    EXPECT_TRUE(r.succeeded) << c.name;
  }
}
