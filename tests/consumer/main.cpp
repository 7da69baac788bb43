// The consumer project's program: prints mp's version (<mp/version.hpp>, through
// <mp/mp.hpp>) starts a Process that takes a Lock shared with main, and checks an
// authkey over a Pipe.
#include <cstdio>
#include <mutex>
#include <thread>

#include <mp/mp.hpp>

void work(mp::Lock lock, int n) {
  std::scoped_lock g(lock);  // the same lock as main's
  std::printf("consumer: child %d holds the lock\n", n);
}

int main() {
  std::printf("consumer: mp version %s (%d.%d.%d)\n", MP_VERSION_STRING, MP_VERSION_MAJOR, MP_VERSION_MINOR,
              MP_VERSION_PATCH);
  mp::Lock lock;
  mp::Process p(work, lock, 1);
  {
    std::scoped_lock g(lock);  // the child waits until main lets go
    p.start();
    std::printf("consumer: main holds the lock\n");
  }
  p.join();
  std::printf("consumer: child exitcode %d\n", p.exitcode().value_or(-1));

  // The authkey handshake is HMAC from OpenSSL's libcrypto, a private dependency of mp
  // that a static libmp still needs on the link line.
  auto pipe = mp::Pipe();
  std::thread responder([&pipe] { mp::connection::answer_challenge(pipe.second, "consumer key"); });
  mp::connection::deliver_challenge(pipe.first, "consumer key");  // mp::AuthenticationError on a mismatch
  responder.join();
  std::printf("consumer: authkey challenge answered\n");
  return p.exitcode() == 0 ? 0 : 1;
}
