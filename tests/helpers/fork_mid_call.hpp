// Issue 19's regression, shared by both manager protocols' tests: children forked while a
// thread of the parent is inside a call on a proxy must be able to use that proxy. (They
// used to inherit the proxy's mutex locked and hang on their first call for good.)
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "helpers/relay.hpp"
#include "mp/process.hpp"
#include "mp/synchronize.hpp"

namespace mp_test {

/// Waits until thread `tid` of this process sleeps in the kernel waiting for input (read,
/// recv, poll...), as /proc/self/task/<tid>/syscall shows (it names the system call only
/// while the thread sleeps in it). From then until that input comes, the thread runs no
/// code and holds no allocator lock. That matters under ASan: glibc's malloc takes its
/// locks around fork, GCC 12's ASan allocator does not, so a child forked while another
/// thread is inside malloc can inherit an allocator lock held and hang on its first
/// allocation (seen in CI: 19 of 20 children finished). Needed after Relay::wait_held():
/// the held thread's connect() has returned then, but it may still be allocating (its
/// Connection's receive buffer) before it sleeps reading the handshake.
/// False if /proc does not tell (no such file, or an unexpected answer).
inline bool wait_until_asleep_on_input(pid_t tid) {
  const long waits[] = {SYS_read, SYS_readv, SYS_recvfrom, SYS_recvmsg, SYS_ppoll, SYS_pselect6, SYS_epoll_pwait,
#ifdef SYS_poll
                        SYS_poll, SYS_select, SYS_epoll_wait,
#endif
  };
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/syscall";
  for (;;) {
    std::ifstream f(path);
    std::string first;
    if (!(f >> first)) return false;
    if (first != "running") {  // else on a CPU: try again
      long nr = 0;
      try {
        nr = std::stol(first);  // -1: asleep outside a system call (a page fault, say)
      } catch (const std::exception&) {
        return false;
      }
      if (std::find(std::begin(waits), std::end(waits), nr) != std::end(waits)) return true;
    }
    std::this_thread::yield();
  }
}

/// A thread makes its first call on `q` (q.get()), held inside it by `relay` (whose held
/// connection must be that call's), while 20 children are forked; then each child puts its
/// number on `q`, and must finish within a shared deadline. Checks that every child
/// finished and that all the values (the thread's and the children's) came back.
template <class QueueProxy>
void children_forked_mid_call_put(QueueProxy& q, Relay& relay) {
  using namespace std::chrono_literals;
  int got = -1;
  std::atomic<pid_t> inside_tid{0};
  std::thread inside([&] {  // stuck connecting until release()
    inside_tid.store(::gettid(), std::memory_order_release);
    try {
      got = q.get();
    } catch (const mp::Error& e) {  // without the fix: the handshake times out meanwhile
      ADD_FAILURE() << e.what();
    }
  });
  relay.wait_held();
  pid_t tid;
  while ((tid = inside_tid.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
  if (!wait_until_asleep_on_input(tid))
    ADD_FAILURE() << "cannot read /proc/self/task/" << tid << "/syscall: the test cannot make sure the held "
                  << "thread sleeps (and so holds no allocator lock) while this thread forks";
  constexpr int kChildren = 20;
  // From here until the children are joined, the held thread sleeps in its read (the
  // relay runs in a process of its own) and the children call only once all are forked:
  // nothing but this thread runs in the parent while it forks, so no child can inherit a
  // lock held by another thread (see wait_until_asleep_on_input).
  mp::Event go;
  std::vector<mp::Process> ps;
  for (int i = 0; i < kChildren; ++i) {
    ps.emplace_back([&q, &go, i] {
      go.wait();
      q.put(i);
    });
    ps.back().start();
  }
  go.set();
  auto deadline = std::chrono::steady_clock::now() + 60s;
  int finished = 0;
  for (auto& p : ps) {
    if (p.join_until(deadline) && p.exitcode() == 0)
      ++finished;
    else
      p.kill();
  }
  EXPECT_EQ(finished, kChildren) << "children hung on a lock copied from the parent";
  relay.release();
  inside.join();
  std::set<int> all{got};
  for (int i = 1; i < finished; ++i) all.insert(q.get(60s));
  if (finished == kChildren) {
    EXPECT_EQ(all.size(), std::size_t{kChildren});
    EXPECT_EQ(*all.rbegin(), kChildren - 1);
  }
}

}  // namespace mp_test
