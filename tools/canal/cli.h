// SPDX-License-Identifier: Apache-2.0
// The `canal` command-line tool as a library, so that its command parsing and
// every command can be tested in-process on both backends. `main.cc` only
// wires the process's standard streams and signals to `Run`.
//
//   canal_cli::Io io = ...;           // where input comes from, output goes
//   canal_cli::StopSource stop;       // Ctrl-C handlers call stop.Stop()
//   int code = canal_cli::Run({"call", "echo", "hello"}, io, &stop);
//
// One file per job: flags.cc parses the command line (CLI11), one file per
// command (serve.cc, connect.cc, call.cc, wait.cc, list.cc, bench_command.cc)
// runs it, relay.cc and exec.cc move data between a channel and a local
// stream or child, message_format.cc and dump.cc turn messages and traffic
// into text, stop_source.cc and signals_*.cc stop a running command.
//
// Exit codes are listed in `ExitCode` and printed by `canal --help`.

#ifndef CANAL_TOOLS_CANAL_CLI_H_
#define CANAL_TOOLS_CANAL_CLI_H_

#include <cstddef>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tools/canal/stop_source.h"

namespace canal_cli {

// The process exit codes of `canal`.
enum ExitCode : int {
  kExitOk = 0,        // Success.
  kExitError = 1,     // Any other failure.
  kExitUsage = 2,     // Bad command line.
  kExitNotFound = 3,  // No listener has the name.
  kExitTimeout = 4,   // A timeout expired (or the listener stayed busy).
  kExitPermissionDenied = 5,  // The system or the peer refused access.
};

// The exit code for a failed canal operation: kExitNotFound for NotFound,
// kExitTimeout for DeadlineExceeded, kExitPermissionDenied for
// PermissionDenied, kExitError otherwise (kExitOk for OK). Command-line
// errors are kExitUsage, decided by the parser, not by this.
int ExitCodeFor(const absl::Status& status);

// How a progress line may be drawn on standard output.
enum class ProgressStyle {
  kNone,   // Not a terminal: no progress line.
  kAnsi,   // A terminal that understands "\r\033[K" (erase the line).
  kPlain,  // A terminal without escape sequences: "\r" and spaces.
};

// Where a command reads its input and writes its output.
struct Io {
  // Reads some bytes of standard input into the buffer, blocking until at
  // least one is there; returns 0 at end of input. May be empty: no input.
  // A command may leave a thread blocked in it after `Run` returns (a
  // terminal that never ends), so it must stay callable for as long as it
  // can block.
  std::function<absl::StatusOr<size_t>(absl::Span<char>)> read_input;
  // Standard output and standard error. Both must be set.
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // What standard output can display (bench's progress line).
  ProgressStyle progress = ProgressStyle::kNone;
  // Whether standard input is a terminal: `serve --echo` and `serve --exec`,
  // which do not read it, then stop at its end (Ctrl-D; Ctrl-Z Enter on
  // Windows), reading it on a thread that outlives `Run`.
  bool input_is_terminal = false;
};

// Runs one `canal` command line (without the program name, e.g. {"call",
// "echo", "hi"}) and returns its exit code. Errors are printed as one line
// on `io.err`. `stop` may be null: the command then runs until it ends by
// itself. Never throws.
int Run(const std::vector<std::string>& args, const Io& io,
        StopSource* stop = nullptr);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_CLI_H_
