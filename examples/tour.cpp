// The tour: runs every seed example in turn and says what each one shows.
// The list lives in examples/tour.list ("name<TAB>what it shows" per line, in tour order),
// so adding an example to the tour never means editing this program.
//
//   tour            every example, in tour order
//   tour NAME       only that example
//   tour -h|--help  usage and the example names
//
// Exit status: 0 when every example run exited 0, 1 when one did not, 2 for a usage error
// (an unknown name or option, too many arguments) and for --help. Headings are bold only
// when stdout is a terminal: piped or redirected output carries no escape codes.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/core.h>

namespace {

struct Stop {
  std::string name;
  std::string what;
};

void usage(std::FILE* to, const std::vector<Stop>& stops) {
  fmt::print(to,
             "usage: tour [NAME]\n"
             "Runs the seed examples in turn, each introduced by what it shows; with NAME, only that one.\n"
             "  -h, --help  show this text\n"
             "Examples, in tour order:\n");
  for (const Stop& s : stops) fmt::print(to, "  {}\n", s.name);
}

}  // namespace

int main(int argc, char** argv) {
  std::string self = argv[0];
  std::string dir = self.substr(0, self.rfind('/') + 1);
  std::ifstream list(MP_TOUR_LIST);
  if (!list) {
    std::fprintf(stderr, "tour: cannot read %s; rebuild from the source tree or run ./scripts/tour\n", MP_TOUR_LIST);
    return 2;
  }
  std::vector<Stop> stops;
  for (std::string line; std::getline(list, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto tab = line.find('\t');
    stops.push_back({line.substr(0, tab), tab == std::string::npos ? "" : line.substr(tab + 1)});
  }

  std::string only;
  if (argc > 2) {
    fmt::print(stderr, "tour: too many arguments: give at most one example name\n");
    usage(stderr, stops);
    return 2;
  }
  if (argc == 2) {
    only = argv[1];
    if (only == "-h" || only == "--help") {
      usage(stdout, stops);
      return 2;
    }
    if (!only.empty() && only[0] == '-') {
      fmt::print(stderr, "tour: unknown option '{}'\n", only);
      usage(stderr, stops);
      return 2;
    }
    bool known = false;
    for (const Stop& s : stops) known = known || s.name == only;
    if (!known) {
      fmt::print(stderr, "tour: no example named '{}'; pick one of the names below\n", only);
      usage(stderr, stops);
      return 2;
    }
  }

  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  const char* bold = terminal ? "\033[1m" : "";
  const char* plain = terminal ? "\033[0m" : "";
  int ran = 0, failed = 0;
  for (const Stop& s : stops) {
    if (!only.empty() && s.name != only) continue;
    fmt::print("\n{}== {}{} — {}\n", bold, s.name, plain, s.what);
    std::fflush(stdout);
    int st = std::system((dir + s.name).c_str());
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    ++ran;
    if (code != 0) {
      ++failed;
      fmt::print("!! {} exited with {}\n", s.name, code);
    }
  }
  fmt::print("\ntour: {} example{} run, {} failed\n", ran, ran == 1 ? "" : "s", failed);
  return failed ? 1 : 0;
}
