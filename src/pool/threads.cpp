// ThreadPool's engine: N threads taking closures from one queue. See include/mp/pool.hpp.
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "mp/pool.hpp"
#include "mp/process.hpp"

namespace mp::internal {

class ThreadPoolCore {
 public:
  explicit ThreadPoolCore(ThreadPoolOptions opts) : init_(std::move(opts.initializer)) {
    if (opts.processes < 0) throw ValueError("ThreadPool: processes must be at least 1 (or 0 for process_cpu_count())");
    n_ = opts.processes ? static_cast<std::size_t>(opts.processes) : static_cast<std::size_t>(process_cpu_count());
    try {
      for (std::size_t i = 0; i < n_; ++i) threads_.emplace_back([this] { run(); });
    } catch (const std::system_error& e) {  // the threads already started would be destroyed joinable
      const std::size_t started = threads_.size();
      terminate();
      throw OSError(e.code().value(), "ThreadPool: could not start thread " + std::to_string(started + 1) + " of " +
                                          std::to_string(n_) +
                                          " (the others were stopped); ask for fewer threads or raise the limit "
                                          "on threads/memory (RLIMIT_NPROC, RLIMIT_AS)");
    }
  }
  ~ThreadPoolCore() { terminate(); }

  std::size_t workers() const noexcept { return n_; }

  void submit(std::vector<ThreadTask>&& tasks, const std::shared_ptr<Sink>& sink) {
    bool wake;
    {
      std::lock_guard g(mu_);
      if (closed_ || terminating_)
        throw ValueError(terminating_ ? "ThreadPool not running: it was terminated"
                                      : "ThreadPool not running: it was closed");
      for (auto& t : tasks) queue_.push_back(Item{std::move(t), sink});
      wake = idle_ > 0;
    }
    if (wake) cv_.notify_all();
  }

  void close() {
    {
      std::lock_guard g(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  std::size_t cancel_pending() {
    std::vector<std::shared_ptr<Sink>> cancelled;
    {
      std::lock_guard g(mu_);
      std::deque<Item> keep;
      for (auto& it : queue_) {
        if (it.sink->cancellable() && it.sink->try_cancel()) {
          cancelled.push_back(it.sink);
        } else {
          keep.push_back(std::move(it));
        }
      }
      queue_.swap(keep);
    }
    for (auto& s : cancelled) {
      std::lock_guard g(deliver_mu_);
      s->on_cancel();
    }
    return cancelled.size();
  }

  void join() {
    {
      std::lock_guard g(mu_);
      if (!closed_ && !terminating_) throw ValueError("ThreadPool.join(): call close() or terminate() first");
    }
    join_threads();
  }

  void terminate() noexcept {
    std::deque<Item> dropped;
    {
      std::lock_guard g(mu_);
      terminating_ = true;
      dropped.swap(queue_);
    }
    cv_.notify_all();
    for (auto& it : dropped) {
      std::lock_guard g(deliver_mu_);
      try {
        it.sink->fail(it.task.start, it.task.count, std::make_exception_ptr(BrokenPool("ThreadPool was terminated before this task started")));
      } catch (...) {
        std::fprintf(stderr, "mp.ThreadPool: could not fail a dropped task\n");
      }
    }
    join_threads();  // running tasks cannot be interrupted: wait for them
  }

  void deliver(const std::function<void()>& fn) {
    std::lock_guard g(deliver_mu_);
    fn();
  }

 private:
  struct Item {
    ThreadTask task;
    std::shared_ptr<Sink> sink;
  };

  void join_threads() noexcept {
    std::lock_guard g(join_mu_);
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

  void run() {
    if (init_) {
      try {
        init_();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "mp.ThreadPool: the initializer raised: %s (the thread goes on)\n", e.what());
      }
    }
    std::unique_lock lk(mu_);
    for (;;) {
      if (terminating_) return;
      if (queue_.empty()) {
        if (closed_) return;
        ++idle_;
        cv_.wait(lk);
        --idle_;
        continue;
      }
      Item it = std::move(queue_.front());
      queue_.pop_front();
      if (!it.sink->mark_running()) continue;  // cancelled
      lk.unlock();
      it.task.fn();
      lk.lock();
    }
  }

  std::function<void()> init_;
  std::size_t n_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  std::size_t idle_ = 0;
  bool closed_ = false;
  bool terminating_ = false;
  std::mutex deliver_mu_;  // one delivery (and its callbacks) at a time, like CPython's result handler
  std::mutex join_mu_;
  std::vector<std::thread> threads_;
};

}  // namespace mp::internal

namespace mp {

ThreadPool::ThreadPool(int processes, std::function<void()> initializer)
    : ThreadPool(ThreadPoolOptions{processes, std::move(initializer)}) {}
ThreadPool::ThreadPool(ThreadPoolOptions opts) : core_(std::make_unique<internal::ThreadPoolCore>(std::move(opts))) {}
ThreadPool::~ThreadPool() = default;
void ThreadPool::close() { core_->close(); }
std::size_t ThreadPool::cancel_pending() { return core_->cancel_pending(); }
void ThreadPool::join() { core_->join(); }
void ThreadPool::terminate() { core_->terminate(); }
std::size_t ThreadPool::workers() const noexcept { return core_->workers(); }
void ThreadPool::submit(std::vector<internal::ThreadTask>&& tasks, std::shared_ptr<internal::Sink> sink) {
  core_->submit(std::move(tasks), sink);
}
void ThreadPool::deliver(const std::function<void()>& fn) { core_->deliver(fn); }

}  // namespace mp
