// Result states shared by the pools and executors. See include/mp/internal/pool_state.hpp.
#include "mp/internal/pool_state.hpp"
#include "common/wait_policy.hpp"

#include <cstdio>
#include <cstdlib>
#include <future>
#include <new>

namespace mp::internal {

// ----------------------------------------------------------------------------- Waiter

void Waiter::notify(const void* who) {
  {
    std::lock_guard g(mu_);
    done_.push_back(who);
  }
  cv_.notify_all();
}

std::vector<const void*> Waiter::take(Deadline deadline) {
  std::unique_lock lk(mu_);
  if (deadline) {
    cv_.wait_until(lk, *deadline, [&] { return !done_.empty(); });
  } else {
    cv_.wait(lk, [&] { return !done_.empty(); });
  }
  std::vector<const void*> out(done_.begin(), done_.end());
  done_.clear();
  return out;
}

bool Waiter::has_any() {
  std::lock_guard g(mu_);
  return !done_.empty();
}

// ------------------------------------------------------------------------- Completion
//
// word_: 0 not ready, 2 not ready and a waiter may sleep on the futex, 1 ready. set_ready
// exchanges in 1 and issues the futex wake-up only if it took a 2 (no system call when
// nobody sleeps — the common case of a result collected later).

bool Completion::wait_until(Deadline deadline) const noexcept {
  if (ready()) return true;
  // A short spin: a busy pool answers within microseconds, a futex wake-up costs tens.
  wait_policy::YieldingSpin spin(wait_policy::kResultSpin);
  while (!ready())
    if (!spin.again(deadline)) break;
  for (;;) {
    std::uint32_t v = word_.load(std::memory_order_acquire);
    if (v == 1) return true;
    if (v == 0 && !word_.compare_exchange_weak(v, 2, std::memory_order_acq_rel)) continue;
    if (futex_wait(word_, 2, deadline) == WaitResult::timed_out) return ready();
  }
}

Completion::Phase Completion::phase() const {
  std::lock_guard g(mu_);
  return phase_;
}

bool Completion::mark_running() {
  std::lock_guard g(mu_);
  if (phase_ == Phase::cancelled) return false;
  if (phase_ == Phase::pending) phase_ = Phase::running;
  return true;
}

bool Completion::try_cancel() {
  std::lock_guard g(mu_);
  if (phase_ == Phase::pending) phase_ = Phase::cancelled;
  return phase_ == Phase::cancelled;
}

bool Completion::cancel_running() {
  std::function<void()> stop;
  {
    std::lock_guard g(mu_);
    if (phase_ == Phase::cancelled) return true;
    if (phase_ != Phase::running || finished_ || !stopper_) return false;
    phase_ = Phase::cancelled;
    stop.swap(stopper_);
  }
  stop();
  return true;
}

void Completion::set_stopper(std::function<void()> stop) {
  std::lock_guard g(mu_);
  if (!finished_) stopper_ = std::move(stop);
}

void Completion::add_done_callback(std::function<void()> cb) {
  {
    std::lock_guard g(mu_);
    if (!finished_) {
      done_callbacks_.push_back(std::move(cb));
      return;
    }
  }
  cb();
}

void Completion::add_waiter(std::shared_ptr<Waiter> w) {
  {
    std::lock_guard g(mu_);
    if (!finished_) {
      waiters_.push_back(std::move(w));
      return;
    }
  }
  w->notify(this);
}

void Completion::remove_waiter(const std::shared_ptr<Waiter>& w) {
  std::lock_guard g(mu_);
  std::erase(waiters_, w);
}

void Completion::set_ready() {
  std::vector<std::function<void()>> cbs;
  std::vector<std::shared_ptr<Waiter>> ws;
  {
    std::lock_guard g(mu_);
    if (finished_) return;
    finished_ = true;
    if (phase_ != Phase::cancelled) phase_ = Phase::finished;
    stopper_ = nullptr;
    cbs.swap(done_callbacks_);
    ws.swap(waiters_);
  }
  if (word_.exchange(1, std::memory_order_acq_rel) == 2) futex_wake_all(word_);
  for (auto& w : ws) w->notify(this);
  for (auto& cb : cbs) {
    try {
      cb();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mp: exception in a done callback (ignored): %s\n", e.what());
    }
  }
}

}  // namespace mp::internal
