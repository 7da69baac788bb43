// Seed: "守护线程" (daemon threads) and its "小例子", one after the other.
// The main thread ends when main returns, but the process waits for every non-daemon
// thread first; a daemon thread is not waited for and vanishes with the process.
//
// Each scenario is about how a process ends, so each runs in a process of its own (an
// mp::Process: when its function returns, the child waits for its non-daemon threads and
// exits, as a Python program does when its main thread is done). The parent runs them in
// turn and says what happened:
//
//   1. t1, t2 and daemon t3 print their names, nap, then print "GG". Only two "GG" appear:
//      the process ends once t1 and t2 are done, and the daemon is cut off mid-nap. (In the
//      seed all three nap for 1 s, so t3 losing is likely; here its nap is made longer than
//      the process's life — it waits for an Event nobody sets — so it loses every run.)
//   2. daemon foo prints 123 ... end123; non-daemon bar prints 456 ... end456. Both last
//      lines appear: the process waits for bar, and bar outlives foo, so the daemon gets to
//      finish too. (The seed's naps are 1 s for foo and 3 s for bar; here bar's longer nap
//      is made certain: bar waits for foo to be done before its last line.)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "mp/process.hpp"
#include "mp/synchronize.hpp"
#include "mp/threading.hpp"

using namespace std::chrono_literals;

namespace {

/// One line straight to fd 1 with one write(): nothing sits in a stdio buffer when a
/// process ends with a daemon thread still running, or when the parent forks.
void say(const std::string& line) {
  std::string out = line + "\n";
  [[maybe_unused]] auto n = ::write(STDOUT_FILENO, out.data(), out.size());
}

// Scenario 1, the seed's 守护线程.
void task(mp::Event until) {
  say(mp::current_thread().name());
  if (mp::current_thread().daemon())
    until.wait();  // nobody sets it: the nap lasts longer than the process
  else
    std::this_thread::sleep_for(100ms);  // the seed's time.sleep(1)
  say("GG");
}

void daemon_cut_off() {
  mp::Event never;
  mp::Thread t1(task, never);
  mp::Thread t2(task, never);
  mp::Thread t3(task, never);
  t3.daemon(true);  // the seed's t3.daemon = True
  t1.start();
  t2.start();
  t3.start();
  say("zhu");
}  // the process waits for t1 and t2 here, not for t3

// Scenario 2, the seed's 小例子.
void foo(mp::Event done) {
  say("123");
  std::this_thread::sleep_for(100ms);  // the seed's time.sleep(1)
  say("end123");
  done.set();
}

void bar(mp::Event foo_done) {
  say("456");
  foo_done.wait();  // the seed's time.sleep(3): longer than foo's nap
  say("end456");
}

void daemon_finishes_anyway() {
  mp::Event foo_done;
  mp::Thread t1(foo, foo_done);
  mp::Thread t2(bar, foo_done);
  t1.daemon(true);  // the seed's t1.daemon = True
  t1.start();
  t2.start();
  say("main-------");
}  // the process waits for t2 (bar); foo finishes before it

bool run_in_own_process(void (*scenario)()) {
  mp::Process p(scenario);
  p.start();
  p.join();
  return p.exitcode() == 0;
}

}  // namespace

int main() {
  say("-- 1. t1, t2 and daemon t3 each print their name, nap, then print GG");
  bool ok = run_in_own_process(daemon_cut_off);
  say("-> two GG, not three: the process ended when t1 and t2 were done; daemon t3 was cut off mid-nap");
  say("");
  say("-- 2. daemon foo prints 123 ... end123; non-daemon bar prints 456 ... end456, after foo");
  ok = run_in_own_process(daemon_finishes_anyway) && ok;
  say("-> end123 and end456: the process waited for bar, which outlived foo, so daemon foo finished too");
  return ok ? 0 : 1;
}
