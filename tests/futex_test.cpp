// Tests for the internal futex layer: deadlines and wake-ups.
#include <gtest/gtest.h>

#include <thread>

#include "mp/internal/futex.hpp"

using namespace std::chrono_literals;
using mp::internal::Clock;
using mp::internal::deadline_after;

TEST(Deadline, HugeTimeoutsSaturateInsteadOfOverflowing) {
  EXPECT_EQ(deadline_after(std::chrono::seconds::max()), Clock::time_point::max());
  EXPECT_EQ(deadline_after(std::chrono::seconds::max() / 2), Clock::time_point::max());
  EXPECT_EQ(deadline_after(std::chrono::hours::max()), Clock::time_point::max());
  EXPECT_EQ(deadline_after(std::chrono::duration<double>(1e300)), Clock::time_point::max());
}

TEST(Deadline, NegativeAndZeroAreImmediate) {
  auto before = Clock::now();
  auto negative = deadline_after(-5s);
  auto zero = deadline_after(0s);
  auto after = Clock::now();
  EXPECT_GE(negative, before);
  EXPECT_LE(negative, after);
  EXPECT_GE(zero, before);
  EXPECT_LE(zero, after);
}

TEST(Futex, WaitOnChangedValueReturnsAndPastDeadlineTimesOut) {
  std::atomic<std::uint32_t> w{1};
  EXPECT_EQ(mp::internal::futex_wait(w, 0, std::nullopt), mp::internal::WaitResult::woken);  // value differs
  EXPECT_EQ(mp::internal::futex_wait(w, 1, Clock::now() - 1s), mp::internal::WaitResult::timed_out);
}

TEST(Futex, WakeReachesASleeper) {
  std::atomic<std::uint32_t> w{0};
  std::thread t([&] {
    while (w.load() == 0) mp::internal::futex_wait(w, 0, deadline_after(std::chrono::seconds::max()));
  });
  w.store(1);
  mp::internal::futex_wake_all(w);
  t.join();
  EXPECT_EQ(w.load(), 1u);
}
