// pipe_duplex — the seeds' Pipe chapter (九、管道) with mp::Pipe.
//
// A Pipe has two ends, conn1 and conn2; a message sent on one end is received on the
// other, exactly once, whichever process holds that end. Both ends are inherited by the
// child. Once every copy of conn1 (in every process) is closed, conn2 can neither
// receive (EOFError) nor send (broken pipe) any more.
#include <cstdio>
#include <string>
#include <thread>

#include "mp/connection.hpp"
#include "mp/process.hpp"

using namespace std::chrono_literals;

namespace {
// Each line goes out at once, so the lines of parent and child appear in causal order.
template <class... A>
void say(const char* fmt, A... args) {
  std::printf(fmt, args...);
  std::fflush(stdout);
}
}  // namespace

int main() {
  auto pipe = mp::Pipe();  // duplex, as in Python
  // Named references, not a structured binding: Clang 14 cannot capture bindings in lambdas.
  mp::Connection& conn1 = pipe.first;
  mp::Connection& conn2 = pipe.second;

  mp::Process child([&] {  // fork: the child has its own copies of conn1 and conn2
    conn1.close();         // the child's conn1 — the parent still holds one
    std::this_thread::sleep_for(20ms);  // the seed sleeps 2 s to "work"
    auto msg = conn2.recv<std::string>();
    say("child: conn2.recv() -> '%s' (sent by the parent on conn1)\n", msg.c_str());
    conn2.send(std::string("got '" + msg + "'"));  // duplex: answer on the same end

    try {
      (void)conn2.recv<std::string>();  // blocks until the parent closes the last conn1
    } catch (const mp::EOFError&) {
      say("child: conn2.recv() raised EOFError: every conn1 is closed\n");
    }
    try {
      conn2.send(std::string("anyone?"));
    } catch (const mp::OSError& e) {
      say("child: conn2.send() raised OSError (%s): nobody can read it any more\n", e.code().message().c_str());
    }
  });
  child.start();

  say("parent: sending 'eeeee' on conn1\n");
  conn1.send(std::string("eeeee"));
  auto reply = conn1.recv<std::string>();
  say("parent: conn1.recv() -> \"%s\" (sent by the child on conn2)\n", reply.c_str());

  say("parent: closing conn1\n");
  conn1.close();  // the last conn1: the child's conn2 now sees the end of the stream
  child.join();

  try {
    (void)conn2.recv<std::string>();  // the parent's own conn2 sees it too
  } catch (const mp::EOFError&) {
    say("parent: conn2.recv() raised EOFError as well\n");
  }
  say("child exit code %d\n", child.exitcode().value_or(-1));
}
