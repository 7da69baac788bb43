// mp_bench: runs mp's benchmark cases and prints one JSON line per case.
//
//   mp_bench [--quick] [--only GROUP[,GROUP...]] [--list]
//
// Same flags and output as ../shared/bench/python_baseline.py, so bench/compare can run
// both the same way. A group no case file registers is skipped with a note on stderr
// (bench/compare shows it as "n/a (not implemented)"); a case that throws is reported on
// stderr and makes the exit status 1 after the remaining groups have run.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "bench.hpp"

namespace mp_bench {

std::vector<Case>& registry() {
  static std::vector<Case> cases;  // function-local: safe from static-initialisation order
  return cases;
}

Register::Register(Case c) { registry().push_back(std::move(c)); }

void Context::emit(std::string_view case_name, double value, std::string_view unit, Better better, long n) const {
  nlohmann::ordered_json line;
  line["case"] = case_name;
  line["value"] = std::round(value * 1e4) / 1e4;  // python_baseline.py's round(value, 4)
  line["unit"] = unit;
  line["better"] = better == Better::higher ? "higher" : "lower";
  line["n"] = n;
  line["impl"] = "mp";
  std::puts(line.dump().c_str());
  std::fflush(stdout);
}

double median(std::vector<double> s) {
  if (s.empty()) return 0;
  auto mid = s.begin() + static_cast<std::ptrdiff_t>(s.size() / 2);
  std::nth_element(s.begin(), mid, s.end());
  if (s.size() % 2) return *mid;
  double hi = *mid;
  double lo = *std::max_element(s.begin(), mid);
  return (lo + hi) / 2;
}

}  // namespace mp_bench

int main(int argc, char** argv) {
  CLI::App app{"mp's benchmark cases, printed as JSON lines like python_baseline.py"};
  bool quick = false, list = false;
  std::vector<std::string> only;
  app.add_flag("--quick", quick, "a tenth of every workload (python_baseline.py --quick)");
  app.add_option("--only", only, "run only these groups (comma-separated)")->delimiter(',');
  app.add_flag("--list", list, "print each registered group and the cases it emits, then exit");
  CLI11_PARSE(app, argc, argv);

  auto& cases = mp_bench::registry();
  std::sort(cases.begin(), cases.end(), [](const auto& a, const auto& b) { return a.group < b.group; });

  if (list) {
    for (const auto& c : cases) {
      std::string line(c.group);
      for (auto e : c.emits) line.append(" ").append(e);
      std::puts(line.c_str());
    }
    return 0;
  }

  std::vector<const mp_bench::Case*> todo;
  if (only.empty()) {
    for (const auto& c : cases) todo.push_back(&c);
  } else {
    for (const auto& name : only) {
      auto it = std::find_if(cases.begin(), cases.end(), [&](const auto& c) { return c.group == name; });
      if (it == cases.end()) {
        std::fprintf(stderr, "mp_bench: no mp case is registered as '%s' (not implemented yet)\n", name.c_str());
        continue;
      }
      if (std::find(todo.begin(), todo.end(), &*it) == todo.end()) todo.push_back(&*it);
    }
  }

  const mp_bench::Context ctx(quick);
  int status = 0;
  for (const auto* c : todo) {
    try {
      c->run(ctx);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mp_bench: case '%.*s' failed: %s\n", static_cast<int>(c->group.size()), c->group.data(),
                   e.what());
      status = 1;
    }
  }
  return status;
}
