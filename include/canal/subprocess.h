// SPDX-License-Identifier: Apache-2.0
// canal::Subprocess: start a program with redirected standard I/O.
//
//   canal::SubprocessOptions options;
//   options.stdin_mode = canal::StdioMode::kPipe;
//   options.stdout_mode = canal::StdioMode::kPipe;
//   absl::StatusOr<canal::Subprocess> child =
//       canal::Subprocess::Start({"sort"}, options);
//   if (!child.ok()) return child.status();
//   child->stdin_channel().Write("b\na\n");
//   child->stdin_channel().Close();               // the child sees EOF
//   ... read child->stdout_channel() until OutOfRange ...
//   absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(5));
//
// Or, for the common case, `Run` feeds stdin and collects stdout and stderr
// concurrently (no deadlock however much the child writes to both):
//
//   absl::StatusOr<canal::RunResult> r = canal::Run({"git", "status"}, "");
//
// Only the intended descriptors/handles reach the child. POSIX: posix_spawn
// with file actions; every descriptor canal creates is close-on-exec and,
// where the C library can (glibc >= 2.34), every other descriptor above the
// ones passed is closed in the child too. Windows: CreateProcessW with
// PROC_THREAD_ATTRIBUTE_HANDLE_LIST listing exactly the child's standard
// handles and the extra handle (inheritable duplicates that exist only during
// the call). This holds while other threads create pipes or start children.
//
// Windows command lines are built from `argv` by the rules that
// CommandLineToArgvW and the Microsoft C runtime use to split them, so every
// argument (spaces, quotes, backslashes, empty, non-ASCII) arrives intact in
// programs that follow those rules. Strings are UTF-8 and converted to
// UTF-16.

#ifndef CANAL_SUBPROCESS_H_
#define CANAL_SUBPROCESS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/channel.h"

namespace canal {

namespace internal {
class ProcessImpl;
}  // namespace internal

// What a standard stream of the child is connected to.
enum class StdioMode {
  kInherit,  // The parent's own stream.
  kPipe,     // A pipe; the parent gets a Channel for its end.
  kNull,     // /dev/null or NUL: reads see end of file, writes vanish.
  kStdout,   // stderr only: the same pipe or file as stdout.
};

// One pipe end handed to the child besides the standard streams.
struct ExtraChannel {
  // The end to pass (for instance one end of `CreatePipe()`), or nullptr for
  // none. `Start` does not take it; close the parent's copy after `Start` so
  // that the child sees end of stream when it should.
  const Channel* channel = nullptr;
  // POSIX: the descriptor number the child gets it as (>= 3). Ignored on
  // Windows, where the child gets an inheritable duplicate whose numeric
  // value is only known at start.
  int posix_fd = 3;
  // The environment variable that tells the child where it is: the decimal
  // descriptor number (POSIX) or handle value (Windows). Empty: not set.
  // `AdoptPipeEnd` (canal/pipe.h) turns it back into a Channel in the child.
  std::string env_var = "CANAL_EXTRA_HANDLE";
};

// Options for `Subprocess::Start`.
struct SubprocessOptions {
  StdioMode stdin_mode = StdioMode::kInherit;   // kStdout is invalid.
  StdioMode stdout_mode = StdioMode::kInherit;  // kStdout is invalid.
  StdioMode stderr_mode = StdioMode::kInherit;
  // Start from an empty environment instead of a copy of the parent's.
  bool clear_environment = false;
  // Variables to set (or replace) in the child's environment. Names are
  // case-insensitive on Windows, as there.
  std::map<std::string, std::string> environment;
  // The child's working directory; empty: the parent's.
  std::string working_dir;
  ExtraChannel extra;
  // What the destructor does with a child that is still running: false
  // (default) leaves it running and reaps it in the background when it ends,
  // so no zombie remains; true kills it (and reaps it).
  bool kill_on_destroy = false;
};

// How a child ended.
struct ExitStatus {
  // True if the child exited (`exit_code` is valid); false if a signal ended
  // it (POSIX only; `signal` is valid). On Windows always true, and a child
  // ended by `Kill()` has exit code 1.
  bool exited = true;
  int exit_code = 0;
  int signal = 0;
  // exited && exit_code == 0.
  bool success() const { return exited && exit_code == 0; }
};

// A started child process. Move-only. See the destructor for what happens to
// a child that is still running.
class Subprocess {
 public:
  // Starts `argv[0]` with arguments `argv[1...]`. A program name without a
  // path separator is searched for in PATH (POSIX: the parent's PATH;
  // Windows: CreateProcess's search order, which appends ".exe"). Returns
  // InvalidArgument for an empty argv, an argument with a NUL byte (or on
  // Windows a quote in argv[0], malformed UTF-8), bad options; NotFound if the
  // program or working directory does not exist; PermissionDenied;
  // ResourceExhausted when out of processes or descriptors; Unimplemented
  // for `working_dir` on a C library without posix_spawn chdir support.
  static absl::StatusOr<Subprocess> Start(
      const std::vector<std::string>& argv,
      const SubprocessOptions& options = {});

  // An invalid object: Wait and Kill return FailedPrecondition.
  Subprocess();
  // Closes the parent's pipe ends. A child that already exited is reaped.
  // One still running is killed if `kill_on_destroy` was set; otherwise it
  // keeps running and is reaped by a background thread when it exits.
  ~Subprocess();
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // The child's process id; 0 for an invalid object.
  int64_t pid() const;

  // The parent's ends of the pipes asked for with kPipe; an invalid Channel
  // (every operation FailedPrecondition) otherwise or once taken. The
  // stdin channel writes; stdout and stderr channels read.
  Channel& stdin_channel() { return stdin_; }
  Channel& stdout_channel() { return stdout_; }
  Channel& stderr_channel() { return stderr_; }
  // Move the channel out (e.g. to a thread); it leaves an invalid Channel.
  Channel TakeStdin();
  Channel TakeStdout();
  Channel TakeStderr();

  // Waits up to `timeout` for the child to end and returns how it ended (the
  // same status again on later calls). Returns DeadlineExceeded if it is
  // still running, FailedPrecondition for an invalid object.
  absl::StatusOr<ExitStatus> Wait(
      absl::Duration timeout = absl::InfiniteDuration());

  // Ends the child at once (SIGKILL / TerminateProcess with exit code 1).
  // OK if it had already ended. FailedPrecondition for an invalid object.
  absl::Status Kill();

 private:
  std::unique_ptr<internal::ProcessImpl> impl_;
  Channel stdin_;
  Channel stdout_;
  Channel stderr_;
};

// Options for `Run`.
struct RunOptions {
  // For the whole run. When it passes the child is killed and Run returns
  // DeadlineExceeded.
  absl::Duration timeout = absl::InfiniteDuration();
  // Where the child's stderr goes: kPipe (collected into
  // `RunResult::stderr_data`), kStdout (merged into `stdout_data`), kNull or
  // kInherit.
  StdioMode stderr_mode = StdioMode::kPipe;
  // Environment, working directory, extra channel. Its stdio modes are
  // ignored: stdin and stdout are always pipes in `Run`.
  SubprocessOptions process;
};

// What `Run` collected.
struct RunResult {
  ExitStatus status;
  std::string stdout_data;
  std::string stderr_data;
};

// Starts `argv`, writes `stdin_data` to its stdin and closes it, collects
// stdout and stderr at the same time, and waits for it to end. Returns the
// errors of `Subprocess::Start`, DeadlineExceeded (after killing the child)
// if it runs past `options.timeout`, or a read error. A child that exits
// without reading all of its stdin is not an error.
absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv,
                              absl::string_view stdin_data,
                              const RunOptions& options = {});

}  // namespace canal

#endif  // CANAL_SUBPROCESS_H_
