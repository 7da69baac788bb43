// process_forkserver — starting processes safely from a program that runs threads.
//
// fork() copies only the calling thread: a mutex another thread holds at that instant is
// locked forever in the child. StartMethod::forkserver avoids it: set_start_method() forks
// a server while the program is still single-threaded, and every child is forked from that
// clean server. Here a thread holds `log_mutex` while main starts three children that
// lock it too: with plain fork they would deadlock; with the fork server they do not.
// Targets must then be plain functions (or captureless lambdas) with transferable args.
#include <unistd.h>

#include <cstdio>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <mp/process.hpp>

std::mutex log_mutex;

void square(int n) {
  std::lock_guard g(log_mutex);  // the child's copy of the mutex, as the server saw it: free
  std::printf("square(%d) = %d in pid %d, started for %d\n", n, n * n, ::getpid(), mp::parent_process()->pid);
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::set_start_method(mp::StartMethod::forkserver);  // first thing in main: still single-threaded
  std::printf("main: pid %d, fork server running\n", ::getpid());

  std::promise<void> locked, release;
  std::thread busy([&] {
    std::lock_guard g(log_mutex);  // held while the children start
    locked.set_value();
    release.get_future().wait();
  });
  locked.get_future().wait();

  std::vector<mp::Process> ps;
  for (int n : {2, 3, 4}) ps.emplace_back(square, n);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  std::printf("main: exitcodes %d %d %d\n", *ps[0].exitcode(), *ps[1].exitcode(), *ps[2].exitcode());

  int secret = 42;
  mp::Process capturing([secret] { std::printf("%d\n", secret); });
  try {
    capturing.start();
  } catch (const mp::ProcessError& e) {
    std::printf("main: refused: %s\n", e.what());
  }
  release.set_value();
  busy.join();
}
