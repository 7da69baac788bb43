// A program with modes, exec'd by tests that need a separate binary (not a fork):
//   exit-code N      exit with N
//   echo             copy stdin to stdout
//   sleep-ms N       sleep N ms, then exit 0
//   print ARGS...    print the arguments, one per line
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: mp_test_helper MODE [ARGS]\n");
    return 2;
  }
  const char* mode = argv[1];
  if (!std::strcmp(mode, "exit-code") && argc > 2) return std::atoi(argv[2]);
  if (!std::strcmp(mode, "echo")) {
    char buf[65536];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0)
      for (ssize_t off = 0; off < n;) off += write(1, buf + off, n - off);
    return 0;
  }
  if (!std::strcmp(mode, "sleep-ms") && argc > 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(argv[2])));
    return 0;
  }
  if (!std::strcmp(mode, "print")) {
    for (int i = 2; i < argc; ++i) std::printf("%s\n", argv[i]);
    return 0;
  }
  std::fprintf(stderr, "mp_test_helper: unknown mode %s\n", mode);
  return 2;
}
