// mp::Timer: Python's threading.Timer, a thread that waits on a futex word until its
// interval passes or cancel() wakes it. See include/mp/threading.hpp for the contract.
#include "mp/threading.hpp"

namespace mp {

Timer::Timer(std::chrono::nanoseconds interval, std::function<void()> fn, std::shared_ptr<Shared> shared)
    : Thread(ThreadOptions{}, [sh = shared, interval, f = std::move(fn)]() mutable { body(*sh, interval, f); }),
      shared_(std::move(shared)) {}

void Timer::body(Shared& sh, std::chrono::nanoseconds interval, std::function<void()>& fn) {
  auto deadline = internal::deadline_after(interval);
  for (;;) {
    if (sh.state.load(std::memory_order_acquire) != 0) return;  // cancelled
    if (internal::futex_wait(sh.state, 0, deadline) == internal::WaitResult::timed_out &&
        internal::Clock::now() >= deadline) {
      std::uint32_t pending = 0;
      if (sh.state.compare_exchange_strong(pending, 2, std::memory_order_acq_rel)) fn();
      return;
    }
  }
}

void Timer::cancel() noexcept {
  std::uint32_t pending = 0;
  if (shared_->state.compare_exchange_strong(pending, 1, std::memory_order_acq_rel))
    internal::futex_wake_all(shared_->state);
}

bool Timer::finished() const noexcept { return shared_->state.load(std::memory_order_acquire) != 0; }

}  // namespace mp
