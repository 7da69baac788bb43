// A program with modes, exec'd by tests that need a separate binary (not a fork):
//   exit-code N      exit with N
//   echo             copy stdin to stdout
//   sleep-ms N       sleep N ms, then exit 0
//   print ARGS...    print the arguments, one per line
//   list-fds         print the open file descriptors, space-separated ("0 1 2")
//   spew N           write N bytes 'o' to stdout and N bytes 'e' to stderr, alternating 4 KiB chunks
//   wait-fd FD       print "first", block reading FD until end of file, print "second"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <tuple>
#include <dirent.h>
#include <unistd.h>

#include <string>

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
  if (!std::strcmp(mode, "list-fds")) {
    DIR* d = opendir("/proc/self/fd");
    if (!d) return 3;
    std::string out;
    for (int fd = 0; fd < 1024; ++fd) {
      if (fd == dirfd(d)) continue;
      std::string path = "/proc/self/fd/" + std::to_string(fd);
      if (access(path.c_str(), F_OK) == 0) out += (out.empty() ? "" : " ") + std::to_string(fd);
    }
    closedir(d);
    std::printf("%s\n", out.c_str());
    return 0;
  }
  if (!std::strcmp(mode, "spew") && argc > 2) {
    long left_out = std::atol(argv[2]), left_err = left_out;
    char o[4096], e[4096];
    std::memset(o, 'o', sizeof o);
    std::memset(e, 'e', sizeof e);
    while (left_out > 0 || left_err > 0) {
      for (auto [fd, buf, left] : {std::tuple{1, o, &left_out}, std::tuple{2, e, &left_err}}) {
        long n = *left < 4096 ? *left : 4096;
        if (n > 0 && write(fd, buf, n) != n) return 4;
        *left -= n;
      }
    }
    return 0;
  }
  if (!std::strcmp(mode, "wait-fd") && argc > 2) {
    int fd = std::atoi(argv[2]);
    std::printf("first\n");
    std::fflush(stdout);
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    std::printf("second\n");
    return 0;
  }
  std::fprintf(stderr, "mp_test_helper: unknown mode %s\n", mode);
  return 2;
}
