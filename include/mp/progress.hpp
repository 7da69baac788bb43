// mp/progress.hpp — a terminal progress bar for long pool work.
//
// Not in Python's standard library (the role tqdm plays there): Pool/ThreadPool map,
// imap and imap_unordered accept a progress callback `(done, total)`, and mp::progress()
// makes one that draws a bar with the count, the rate and the time left on stderr:
//
//   auto out = pool.map(work, items, 1, mp::progress("crunching"));
//   // crunching [##########..........]  250/500  812.3/s  ETA 0.3s
//
// Guarantees: nothing is written unless the stream is a terminal (or `.force = true`),
// so piped output and logs stay clean; redraws are rate-limited (at most every 50 ms, and
// always at the end, which ends the line). The callback is thread-safe and cheap when
// nothing is drawn.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

#include "mp/internal/pool_state.hpp"

namespace mp {

struct ProgressOptions {
  std::FILE* stream = stderr;  ///< where to draw; default stderr
  bool force = false;          ///< draw even if `stream` is not a terminal
  int width = 30;              ///< characters in the bar itself
};

/// A progress callback (`ProgressFn`) that draws a bar labelled `label`.
[[nodiscard]] ProgressFn progress(std::string label = {}, ProgressOptions opts = {});

/// Renders one bar line (no terminal control characters), e.g. for logs or tests:
/// "label [#####.....]  5/10  2.0/s  ETA 2.5s".
[[nodiscard]] std::string render_progress(const std::string& label, std::size_t done, std::size_t total,
                                          double elapsed_seconds, int width = 30);

}  // namespace mp
