// Tests for imap / imap_unordered / Executor.map with buffersize (Python 3.15's
// Pool.imap(..., buffersize=N), 3.14's Executor.map(..., buffersize=N)): the input is
// pulled lazily, in this process, at most buffersize chunks ahead of the results taken.
#include <gtest/gtest.h>

#include <mp/futures.hpp>
#include <mp/pool.hpp>

#include <cstddef>
#include <iterator>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

int square(int x) { return x * x; }
int fail_on_seven(int x) {
  if (x == 7) throw std::invalid_argument("seven");
  return x;
}

/// A single-pass input range of 0, 1, 2, ... (endless unless `limit`) that counts how many
/// items were pulled from it — the count lives in this process, where imap pulls.
class CountingInput {
 public:
  explicit CountingInput(std::optional<int> limit = std::nullopt) : limit_(limit) {}
  class iterator {
   public:
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(CountingInput* in) : in_(in) {}
    iterator(iterator&&) = default;  // move-only: single pass, like a generator's
    iterator& operator=(iterator&&) = default;
    int operator*() const { return in_->next_; }
    iterator& operator++() {
      ++in_->next_;
      ++in_->pulled_;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return in_->limit_ && in_->next_ >= *in_->limit_; }

   private:
    CountingInput* in_ = nullptr;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }
  [[nodiscard]] int pulled() const { return pulled_; }

 private:
  std::optional<int> limit_;
  int next_ = 0;
  int pulled_ = 0;
};
static_assert(std::ranges::input_range<CountingInput>);

constexpr int kBuffersize = 4;
constexpr int kChunksize = 3;
constexpr int kWindow = kBuffersize * kChunksize;

/// Takes the first 100 results of `it`, checking after each that the input was pulled no
/// further than the window allows; returns them.
template <class It>
std::vector<int> take_100_within_window(It& it, const CountingInput& in) {
  EXPECT_LE(in.pulled(), kWindow) << "pulled at the call";
  std::vector<int> got;
  for (int taken = 1; taken <= 100; ++taken) {
    auto v = it.next();
    EXPECT_TRUE(v.has_value());
    if (!v) break;
    got.push_back(*v);
    EXPECT_LE(in.pulled(), taken + kWindow) << "after " << taken << " results";
  }
  return got;
}

void expect_squares_in_order(const std::vector<int>& got) {
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i * i);
}

TEST(PoolBuffersize, ImapPullsTheInputLazilyWithinTheWindow) {
  mp::Pool pool(2);
  CountingInput in(100000);  // finite, so that an eager pull fails instead of never returning
  auto it = pool.imap(square, in, {.chunksize = kChunksize, .buffersize = kBuffersize});
  expect_squares_in_order(take_100_within_window(it, in));
}

TEST(PoolBuffersize, ImapOfAnEndlessIotaReturnsItsFirstResultsInOrder) {
  mp::Pool pool(2);
  auto it = pool.imap(square, std::views::iota(0), {.buffersize = kBuffersize});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(it.next(), i * i);
}

TEST(PoolBuffersize, ImapUnorderedPullsTheInputLazilyWithinTheWindow) {
  mp::Pool pool(2);
  CountingInput in;
  auto it = pool.imap_unordered(square, in, {.chunksize = kChunksize, .buffersize = kBuffersize});
  auto got = take_100_within_window(it, in);
  std::set<int> distinct(got.begin(), got.end());
  EXPECT_EQ(distinct.size(), 100u);
  for (int v : got) {  // each a square of an item that was pulled
    int root = 0;
    while (root * root < v) ++root;
    EXPECT_EQ(root * root, v);
    EXPECT_LT(root, in.pulled());
  }
}

TEST(PoolBuffersize, ThreadPoolImapPullsTheInputLazilyWithinTheWindow) {
  mp::ThreadPool pool(2);
  CountingInput in;
  auto it = pool.imap(square, in, {.chunksize = kChunksize, .buffersize = kBuffersize});
  expect_squares_in_order(take_100_within_window(it, in));
}

TEST(PoolBuffersize, ProcessPoolExecutorMapPullsTheInputLazilyWithinTheWindow) {
  mp::ProcessPoolExecutor ex(2);
  CountingInput in;
  auto it = ex.map(square, in, {.chunksize = kChunksize, .buffersize = kBuffersize});
  expect_squares_in_order(take_100_within_window(it, in));
}

TEST(PoolBuffersize, ThreadPoolExecutorMapPullsTheInputLazilyWithinTheWindow) {
  mp::ThreadPoolExecutor ex(2);
  CountingInput in;
  auto it = ex.map(square, in, {.chunksize = kChunksize, .buffersize = kBuffersize});
  expect_squares_in_order(take_100_within_window(it, in));
}

TEST(PoolBuffersize, ZeroOrNegativeBuffersizeRaisesValueError) {
  mp::Pool pool(1);
  mp::ThreadPoolExecutor ex(1);
  std::vector<int> items{1, 2, 3};
  for (long bad : {0L, -1L}) {
    try {
      pool.imap(square, items, {.buffersize = bad});
      ADD_FAILURE() << "no ValueError for buffersize " << bad;
    } catch (const mp::ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("buffersize must be None or > 0"), std::string::npos) << e.what();
    }
    EXPECT_THROW(pool.imap_unordered(square, items, {.buffersize = bad}), mp::ValueError);
    EXPECT_THROW(ex.map(square, items, {.buffersize = bad}), mp::ValueError);
  }
}

TEST(PoolBuffersize, ATasksExceptionComesOutAtItsPosition) {
  mp::Pool pool(2);
  auto it = pool.imap(fail_on_seven, std::views::iota(0), {.buffersize = 2});
  for (int i = 0; i < 7; ++i) EXPECT_EQ(it.next(), i);
  EXPECT_THROW(it.next(), std::invalid_argument);
  for (int i = 8; i < 20; ++i) EXPECT_EQ(it.next(), i);  // and the input goes on being pulled
}

TEST(PoolBuffersize, AFiniteInputEndsTheIteration) {
  mp::Pool pool(2);
  CountingInput in(10);
  std::vector<int> got;
  for (int v : pool.imap(square, in, {.chunksize = kChunksize, .buffersize = 2})) got.push_back(v);
  ASSERT_EQ(got.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i * i);
}

// Regression guard: dropping the iterator of an endless input must neither hang (waiting
// for an input that never ends) nor leave the pool unable to finish its work.
TEST(PoolBuffersize, DroppingTheIteratorEarlyLeavesThePoolUsable) {
  mp::Pool pool(2);
  {
    auto it = pool.imap(square, std::views::iota(0), {.chunksize = 2, .buffersize = kBuffersize});
    for (int i = 0; i < 10; ++i) EXPECT_EQ(it.next(), i * i);
  }
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
  pool.close();
  pool.join();
}

TEST(PoolBuffersize, DroppingAnExecutorsMapEarlyLeavesItUsable) {
  mp::ProcessPoolExecutor ex(2);
  {
    auto it = ex.map(square, std::views::iota(0), {.buffersize = kBuffersize});
    for (int i = 0; i < 10; ++i) EXPECT_EQ(it.next(), i * i);
  }
  EXPECT_EQ(ex.submit(square, 5).result(), 25);
  ex.shutdown(true);
}

}  // namespace
