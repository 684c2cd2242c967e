// The `canal` command-line tool as a library, so that its command parsing and
// every command can be tested in-process on both backends. `main.cc` only
// wires the process's standard streams and signals to `Run`.
//
//   canal_cli::Io io = ...;           // where input comes from, output goes
//   canal_cli::StopSource stop;       // Ctrl-C handlers call stop.Stop()
//   int code = canal_cli::Run({"call", "echo", "hello"}, io, &stop);
//
// Exit codes are listed in `ExitCode` and printed by `canal --help`.

#ifndef CANAL_TOOLS_CANAL_CLI_H_
#define CANAL_TOOLS_CANAL_CLI_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace canal_cli {

// The process exit codes of `canal`.
enum ExitCode : int {
  kExitOk = 0,                // Success.
  kExitError = 1,             // Any other failure.
  kExitUsage = 2,             // Bad command line.
  kExitNotFound = 3,          // No listener has the name.
  kExitTimeout = 4,           // A timeout expired (or the listener stayed busy).
  kExitPermissionDenied = 5,  // The system or the peer refused access.
};

// The exit code for a failed canal operation: kExitNotFound for NotFound,
// kExitTimeout for DeadlineExceeded, kExitPermissionDenied for
// PermissionDenied, kExitError otherwise (kExitOk for OK).
int ExitCodeFor(const absl::Status& status);

// Where a command reads its input and writes its output.
struct Io {
  // Reads some bytes of standard input into the buffer, blocking until at
  // least one is there; returns 0 at end of input. May be empty: no input.
  std::function<absl::StatusOr<size_t>(absl::Span<char>)> read_input;
  // Standard output and standard error. Both must be set.
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Whether standard output is a terminal (enables bench's progress line).
  bool out_is_terminal = false;
};

// Asks a running command (`serve`, `connect`, `bench`) to stop, from any
// thread (a signal watcher, a console control handler or a test). Commands
// register what to close while they run; `Stop` closes it and every later
// registration is closed at once.
class StopSource {
 public:
  StopSource() = default;
  StopSource(const StopSource&) = delete;
  StopSource& operator=(const StopSource&) = delete;

  // Requests the stop: runs every registered callback once. Idempotent.
  void Stop();

  // Whether `Stop` has been called.
  bool stopped() const;

  // Registers `on_stop` to run when `Stop` is called (at once if it already
  // was). Returns an id for `Unregister`.
  int Register(std::function<void()> on_stop);

  // Forgets a callback registered by `Register`; after it returns the
  // callback is not running and will not run.
  void Unregister(int id);

 private:
  mutable absl::Mutex mu_;
  bool stopped_ = false;
  int next_id_ = 0;
  std::vector<std::pair<int, std::function<void()>>> callbacks_;
};

// Runs one `canal` command line (without the program name, e.g. {"call",
// "echo", "hi"}) and returns its exit code. Errors are printed as one line
// on `io.err`. `stop` may be null: the command then runs until it ends by
// itself.
int Run(const std::vector<std::string>& args, const Io& io,
        StopSource* stop = nullptr);

// The text of `canal --help`.
std::string MainHelp();

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_CLI_H_
