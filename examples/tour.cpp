// The tour: runs every seed example in turn and says what each one shows.
// The list lives in examples/tour.list ("name<TAB>what it shows" per line, in tour order),
// so adding an example to the tour never means editing this program.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/core.h>

int main(int argc, char** argv) {
  std::string self = argv[0];
  std::string dir = self.substr(0, self.rfind('/') + 1);
  std::ifstream list(MP_TOUR_LIST);
  if (!list) {
    std::fprintf(stderr, "tour: cannot read %s\n", MP_TOUR_LIST);
    return 2;
  }
  std::string only = argc > 1 ? argv[1] : "";
  int ran = 0, failed = 0;
  for (std::string line; std::getline(list, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto tab = line.find('\t');
    std::string name = line.substr(0, tab);
    std::string what = tab == std::string::npos ? "" : line.substr(tab + 1);
    if (!only.empty() && name != only) continue;
    fmt::print("\n\033[1m== {}\033[0m — {}\n", name, what);
    std::fflush(stdout);
    int st = std::system((dir + name).c_str());
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    ++ran;
    if (code != 0) {
      ++failed;
      fmt::print("!! {} exited with {}\n", name, code);
    }
  }
  fmt::print("\ntour: {} examples run, {} failed\n", ran, failed);
  return failed ? 1 : 0;
}
