// Seed: "子进程" — subprocess.call() runs a program, lets it print to our stdout, and
// returns its exit code. (The seed used `nslookup www.python.org`; this box has no
// network, so local programs stand in.)
#include <cstdio>
#include <iostream>

#include "mp/subprocess.hpp"

namespace sp = mp::subprocess;

int main() {
  std::puts("$ seq 3");
  std::fflush(stdout);  // our buffered output must come before the child's
  int r = sp::call({"seq", "3"});
  std::printf("Exit code: %d\n", r);

  std::puts("$ echo hello from the shell | tr a-z A-Z");
  std::fflush(stdout);
  r = sp::call("echo hello from the shell | tr a-z A-Z", {.shell = true});
  std::printf("Exit code: %d\n", r);

  std::puts("$ ls /no/such/dir   (stderr silenced)");
  std::fflush(stdout);
  r = sp::call({"ls", "/no/such/dir"}, {.stderr = sp::DEVNULL});
  std::printf("Exit code: %d\n", r);

  std::puts("$ no-such-program");
  try {
    sp::call({"no-such-program"});
  } catch (const sp::FileNotFoundError& e) {
    std::printf("FileNotFoundError: %s\n", e.what());
  }
}
