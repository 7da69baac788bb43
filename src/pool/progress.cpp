// Terminal progress bar. See include/mp/progress.hpp.
#include "mp/progress.hpp"

#include <unistd.h>

#include <chrono>
#include <memory>
#include <mutex>

namespace mp {

std::string render_progress(const std::string& label, std::size_t done, std::size_t total, double elapsed,
                            int width) {
  std::string s;
  if (!label.empty()) s += label + " ";
  int filled = total ? static_cast<int>(static_cast<double>(width) * static_cast<double>(done) / static_cast<double>(total)) : width;
  if (filled > width) filled = width;
  s += "[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '.') + "]";
  char buf[128];
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  std::snprintf(buf, sizeof buf, "  %zu/%zu  %.1f/s", done, total, rate);
  s += buf;
  if (done < total && rate > 0) {
    std::snprintf(buf, sizeof buf, "  ETA %.1fs", static_cast<double>(total - done) / rate);
    s += buf;
  } else if (done >= total) {
    std::snprintf(buf, sizeof buf, "  in %.2fs", elapsed);
    s += buf;
  }
  return s;
}

ProgressFn progress(std::string label, ProgressOptions opts) {
  struct State {
    std::mutex mu;
    std::string label;
    ProgressOptions opts;
    bool enabled;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last{};
  };
  auto st = std::make_shared<State>();
  st->label = std::move(label);
  st->opts = opts;
  st->enabled = opts.force || (opts.stream && ::isatty(::fileno(opts.stream)));
  return [st](std::size_t done, std::size_t total) {
    if (!st->enabled) return;
    std::lock_guard g(st->mu);
    auto now = std::chrono::steady_clock::now();
    bool end = done >= total;
    if (!end && now - st->last < std::chrono::milliseconds(50)) return;
    st->last = now;
    double elapsed = std::chrono::duration<double>(now - st->start).count();
    std::string line = render_progress(st->label, done, total, elapsed, st->opts.width);
    std::fprintf(st->opts.stream, "\r%s\033[K%s", line.c_str(), end ? "\n" : "");
    std::fflush(st->opts.stream);
  };
}

}  // namespace mp
