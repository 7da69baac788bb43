// mp::subprocess cases (python_baseline.py's "subprocess / threads" section).
#include "bench.hpp"

#include <stdexcept>
#include <string>

#include <mp/subprocess.hpp>

namespace {

namespace sp = mp::subprocess;

// n × `subprocess.run(["true"], check=True)`: spawn, wait, check — the whole cost of a
// short-lived child with inherited stdio.
void subprocess_run_true(const mp_bench::Context& ctx) {
  const long n = ctx.scale(500);
  mp_bench::Stopwatch sw;
  for (long i = 0; i < n; ++i) sp::run({"true"}, {.check = true});
  ctx.emit("subprocess_run_true", sw.micros() / static_cast<double>(n), "us", mp_bench::lower, n);
}

// n × `subprocess.run(["cat"], input=data, capture_output=True, check=True).stdout`, 1 MiB
// through the child and back, the length checked: communicate()'s bulk path (three pipes,
// poll loop, reading the output).
void subprocess_cat_1MiB(const mp_bench::Context& ctx) {
  const long n = ctx.scale(200);
  const std::string data(std::size_t{1} << 20, 'y');
  mp_bench::Stopwatch sw;
  for (long i = 0; i < n; ++i) {
    std::string out = sp::run({"cat"}, {.input = data, .capture_output = true, .check = true}).stdout;
    if (out.size() != data.size())
      throw std::runtime_error("subprocess_cat_1MiB: got " + std::to_string(out.size()) + " bytes back, sent " +
                               std::to_string(data.size()));
  }
  ctx.emit("subprocess_cat_1MiB", sw.micros() / static_cast<double>(n), "us", mp_bench::lower, n);
}

const mp_bench::Register reg_subprocess_run_true{
    {.group = "subprocess_run_true", .emits = {"subprocess_run_true"}, .run = subprocess_run_true}};
const mp_bench::Register reg_subprocess_cat_1MiB{
    {.group = "subprocess_cat_1MiB", .emits = {"subprocess_cat_1MiB"}, .run = subprocess_cat_1MiB}};

}  // namespace
