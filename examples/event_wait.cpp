// event_wait — the seeds' Event program: the parent blocks on an Event until its child,
// having finished its work, sets it.
//
// What it shows: Event.wait() blocks while the flag is false and returns once another
// process calls set(); everything the child did before set() has happened by then, so
// "child: work done" is always printed before "parent: got the event".
#include <chrono>
#include <cstdio>
#include <thread>

#include "mp/process.hpp"
#include "mp/synchronize.hpp"

using namespace std::chrono_literals;

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  mp::Event e;  // starts false
  mp::Process p([](mp::Event done) {
    std::printf("child: started\n");
    std::this_thread::sleep_for(30ms);  // simulated work
    std::printf("child: work done, setting the event\n");
    done.set();  // e.clear() would make it false again
  }, e);
  p.start();
  std::printf("parent: waiting for the child's event\n");
  e.wait();  // blocks while false
  std::printf("parent: got the event (is_set=%s), carrying on\n", e.is_set() ? "true" : "false");
  p.join();
  std::printf("parent: finished\n");
  return 0;
}
