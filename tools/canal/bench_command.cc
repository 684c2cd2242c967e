// SPDX-License-Identifier: Apache-2.0
// `canal bench [--mode byte|message] [--size BYTES] [--clients N]
// [--duration DURATION] [--transport pipe|shm] [--json]`.

#include <algorithm>
#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "tools/canal/bench.h"
#include "tools/canal/commands.h"
#include "tools/canal/output.h"

namespace canal_cli {
namespace {

// Redraws one line in place on a terminal.
class ProgressLine {
 public:
  ProgressLine(std::ostream* out, ProgressStyle style)
      : out_(out), style_(style) {}

  void Show(absl::string_view line) {
    absl::MutexLock lock(&mu_);
    if (style_ == ProgressStyle::kAnsi) {
      *out_ << "\r\033[K" << line << std::flush;
    } else {
      // No escape sequences: overwrite the previous line with spaces.
      *out_ << "\r" << line
            << std::string(shown_ > line.size() ? shown_ - line.size() : 0, ' ')
            << std::flush;
    }
    shown_ = line.size();
  }

  void Clear() {
    absl::MutexLock lock(&mu_);
    if (style_ == ProgressStyle::kAnsi) {
      *out_ << "\r\033[K" << std::flush;
    } else if (shown_ > 0) {
      *out_ << "\r" << std::string(shown_, ' ') << "\r" << std::flush;
    }
    shown_ = 0;
  }

 private:
  absl::Mutex mu_;
  std::ostream* out_;
  const ProgressStyle style_;
  size_t shown_ = 0;  // characters of the line on screen
};

}  // namespace

int BenchCommand(const BenchFlags& flags, const Io& io, StopSource* stop) {
  BenchOptions options;
  options.message_mode = flags.message;
  options.size = flags.size;
  options.clients = flags.clients;
  options.duration = flags.duration;
  options.transport = flags.transport;

  std::unique_ptr<ProgressLine> line;
  std::function<void(absl::string_view)> progress;
  if (io.progress != ProgressStyle::kNone) {
    line = std::make_unique<ProgressLine>(io.out, io.progress);
    progress = [&line](absl::string_view text) { line->Show(text); };
  }
  absl::StatusOr<BenchReport> report = RunBench(options, progress, stop);
  if (line != nullptr) line->Clear();
  if (!report.ok()) return Fail(io, report.status());
  *io.out << (flags.json ? ReportJson(*report) + "\n" : ReportText(*report))
          << std::flush;
  return kExitOk;
}

}  // namespace canal_cli
