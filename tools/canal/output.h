// SPDX-License-Identifier: Apache-2.0
// How commands print: errors as one line on stderr with the exit code that
// goes with them, and data written whole from several threads.

#ifndef CANAL_TOOLS_CANAL_OUTPUT_H_
#define CANAL_TOOLS_CANAL_OUTPUT_H_

#include <ostream>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "tools/canal/cli.h"

namespace canal_cli {

// Prints `status` as one line on `io.err` ("canal ..." first, line breaks
// replaced by spaces) and returns ExitCodeFor(status).
int Fail(const Io& io, const absl::Status& status);

// Prints a command-line error as one line, pointing at `--help`, and
// returns kExitUsage. `command` may be empty (the main command).
int UsageError(const Io& io, absl::string_view command, absl::string_view what);

// Writes whole chunks to one stream from any thread, each flushed at once
// (a relay's output must not wait in a buffer).
class SyncWriter {
 public:
  explicit SyncWriter(std::ostream* out) : out_(out) {}
  SyncWriter(const SyncWriter&) = delete;
  SyncWriter& operator=(const SyncWriter&) = delete;

  // Writes `data` and flushes. Returns Unavailable if the stream has failed
  // (for instance standard output was closed).
  absl::Status Write(absl::string_view data);

 private:
  absl::Mutex mu_;
  std::ostream* out_ ABSL_GUARDED_BY(mu_);
};

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_OUTPUT_H_
