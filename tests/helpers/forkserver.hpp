// Shared by the tests that run under StartMethod::forkserver (process, pool, managers).
#pragma once

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <thread>

#include <mp/process.hpp>

#include "helpers/support.hpp"

namespace mp_test {

/// A test under StartMethod::forkserver: the start method is per process, so each test
/// starts the server and puts fork back, and no child may be left unreaped.
class ForkserverTest : public ::testing::Test {
 protected:
  void SetUp() override { mp::set_start_method(mp::StartMethod::forkserver, true); }
  void TearDown() override {
    mp::set_start_method(mp::StartMethod::fork, true);
    (void)mp::active_children();
    EXPECT_EQ(mp_test::zombie_children(), 0);
  }
};

/// Holds `mu` on another thread for as long as it lives: the fork hazard forkserver avoids
/// (a forked copy of `mu` would stay locked for good).
class HeldLock {
 public:
  explicit HeldLock(std::mutex& mu) {
    std::promise<void> locked;
    auto f = locked.get_future();
    t_ = std::thread([this, &mu, &locked] {
      std::lock_guard g(mu);
      locked.set_value();
      release_.get_future().wait();
    });
    f.wait();
  }
  HeldLock(const HeldLock&) = delete;
  HeldLock& operator=(const HeldLock&) = delete;
  ~HeldLock() {
    release_.set_value();
    t_.join();
  }

 private:
  std::promise<void> release_;
  std::thread t_;
};

}  // namespace mp_test
