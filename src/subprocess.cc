// SPDX-License-Identifier: Apache-2.0
// The platform-independent half of canal::Subprocess: argument checks, the
// object itself, and Run. Starting, waiting and killing are the backend's
// (src/internal/backend.h).

#include "canal/subprocess.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/internal/status_macros.h"

namespace canal {
namespace {

absl::Status Invalid(absl::string_view op) {
  return absl::FailedPreconditionError(absl::StrCat(
      "canal: ", op, ": no process (default-constructed or moved from)"));
}

absl::Status CheckArguments(const std::vector<std::string>& argv,
                            const SubprocessOptions& options) {
  if (argv.empty() || argv[0].empty()) {
    return internal::MakeError(absl::StatusCode::kInvalidArgument, "Start", "",
                               "argv is empty or the program name is empty");
  }
  for (const std::string& arg : argv) {
    if (arg.find('\0') != std::string::npos) {
      return internal::MakeError(absl::StatusCode::kInvalidArgument, "Start",
                                 argv[0], "an argument contains a NUL byte");
    }
  }
  for (StdioMode m :
       {options.stdin_mode, options.stdout_mode, options.stderr_mode}) {
    if (m != StdioMode::kInherit && m != StdioMode::kPipe &&
        m != StdioMode::kNull && m != StdioMode::kStdout) {
      return internal::MakeError(absl::StatusCode::kInvalidArgument, "Start",
                                 argv[0], "unknown StdioMode");
    }
  }
  if (options.stdin_mode == StdioMode::kStdout ||
      options.stdout_mode == StdioMode::kStdout) {
    return internal::MakeError(
        absl::StatusCode::kInvalidArgument, "Start", argv[0],
        "StdioMode::kStdout is only valid for stderr_mode");
  }
  for (const auto& [name, value] : options.environment) {
    if (name.empty() ||
        name.find('=', name[0] == '=' ? 1 : 0) != std::string::npos ||
        name.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return internal::MakeError(
          absl::StatusCode::kInvalidArgument, "Start", argv[0],
          absl::StrCat("invalid environment variable name or value \"", name,
                       "\""));
    }
  }
  if (options.extra.channel != nullptr) {
    if (!options.extra.channel->is_open()) {
      return internal::MakeError(absl::StatusCode::kFailedPrecondition, "Start",
                                 argv[0], "the extra channel is not open");
    }
    if (options.extra.posix_fd < 3) {
      return internal::MakeError(
          absl::StatusCode::kInvalidArgument, "Start", argv[0],
          "ExtraChannel::posix_fd must be 3 or more (0-2 are stdio)");
    }
    if (options.extra.env_var.find('=') != std::string::npos) {
      return internal::MakeError(absl::StatusCode::kInvalidArgument, "Start",
                                 argv[0], "ExtraChannel::env_var contains '='");
    }
  }
  return absl::OkStatus();
}

}  // namespace

Subprocess::Subprocess() = default;
Subprocess::~Subprocess() {
  // The pipes first, so a child blocked on them sees EOF / EPIPE; then the
  // process object applies kill_on_destroy and reaps.
  stdin_.Close();
  stdout_.Close();
  stderr_.Close();
  impl_.reset();
}
Subprocess::Subprocess(Subprocess&& other) noexcept = default;
Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    stdin_ = std::move(other.stdin_);
    stdout_ = std::move(other.stdout_);
    stderr_ = std::move(other.stderr_);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

absl::StatusOr<Subprocess> Subprocess::Start(
    const std::vector<std::string>& argv, const SubprocessOptions& options) {
  const absl::string_view program =
      argv.empty() ? absl::string_view() : absl::string_view(argv[0]);
  return internal::GuardResources(
      "Start", program, [&]() -> absl::StatusOr<Subprocess> {
        CANAL_RETURN_IF_ERROR(CheckArguments(argv, options));
        CANAL_ASSIGN_OR_RETURN(internal::StartedProcess started,
                               internal::BackendStartProcess(argv, options));
        Subprocess process;
        process.impl_ = std::move(started.process);
        process.stdin_ = std::move(started.stdin_channel);
        process.stdout_ = std::move(started.stdout_channel);
        process.stderr_ = std::move(started.stderr_channel);
        return process;
      });
}

int64_t Subprocess::pid() const { return impl_ ? impl_->pid() : 0; }

Channel Subprocess::TakeStdin() { return std::move(stdin_); }
Channel Subprocess::TakeStdout() { return std::move(stdout_); }
Channel Subprocess::TakeStderr() { return std::move(stderr_); }

absl::StatusOr<ExitStatus> Subprocess::Wait(absl::Duration timeout) {
  if (!impl_) return Invalid("Wait");
  return internal::GuardResources("Wait", "",
                                  [&] { return impl_->Wait(timeout); });
}

absl::Status Subprocess::Kill() {
  if (!impl_) return Invalid("Kill");
  return internal::GuardResources("Kill", "", [&] { return impl_->Kill(); });
}

namespace {

// Reads `channel` to its end into `out`. OK at end of stream. Never throws
// (it runs on threads of its own, where an exception would terminate).
absl::Status Drain(Channel& channel, const internal::Deadline& deadline,
                   absl::string_view program, std::string* out) {
  char buf[64 * 1024];
  while (true) {
    absl::StatusOr<ReadResult> r =
        channel.Read(absl::MakeSpan(buf), deadline.remaining());
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kOutOfRange) {
        return absl::OkStatus();
      }
      return r.status();
    }
    absl::Status appended = internal::GuardResources("Run", program, [&] {
      out->append(buf, r->size);
      return absl::OkStatus();
    });
    if (!appended.ok()) return appended;
  }
}

// Starts `body` on `*thread`; ResourceExhausted if no thread can be made.
template <typename Body>
absl::Status StartThread(absl::string_view program, std::thread* thread,
                         Body&& body) {
  return internal::GuardResources("Run", program, [&] {
    *thread = std::thread(std::forward<Body>(body));
    return absl::OkStatus();
  });
}

// Run, with allocation failures in this thread left to the caller's guard;
// the threads it starts never throw.
absl::StatusOr<RunResult> RunUnguarded(const std::vector<std::string>& argv,
                                       absl::string_view stdin_data,
                                       const RunOptions& options) {
  const internal::Deadline deadline(options.timeout);
  SubprocessOptions process_options = options.process;
  process_options.stdin_mode = StdioMode::kPipe;
  process_options.stdout_mode = StdioMode::kPipe;
  process_options.stderr_mode = options.stderr_mode;
  CANAL_ASSIGN_OR_RETURN(Subprocess child,
                         Subprocess::Start(argv, process_options));
  const absl::string_view program = argv[0];

  RunResult result;
  Channel in = child.TakeStdin();
  Channel out = child.TakeStdout();
  Channel err = child.TakeStderr();

  // One thread per stream that needs one, so a child that fills one pipe
  // while we wait on another never deadlocks. The first failure (a timeout
  // above all) closes every channel, which wakes the other threads.
  absl::Mutex mu;
  absl::Status first_error;
  auto fail = [&](absl::Status status) {
    absl::MutexLock lock(&mu);
    if (first_error.ok()) first_error = std::move(status);
    in.Close();
    out.Close();
    err.Close();
  };
  // Nothing below may throw while a thread runs: the threads use this
  // frame's variables, and a joinable std::thread must not be destroyed.
  std::thread writer;
  absl::Status started = StartThread(program, &writer, [&] {
    absl::Status s = in.Write(stdin_data, deadline.remaining());
    // A child that exits without reading everything is not an error.
    if (!s.ok() && s.code() != absl::StatusCode::kUnavailable &&
        s.code() != absl::StatusCode::kCancelled) {
      fail(s);
    }
    in.Close();
  });
  std::thread err_reader;
  if (started.ok() && err.is_open()) {
    started = StartThread(program, &err_reader, [&] {
      absl::Status s = Drain(err, deadline, program, &result.stderr_data);
      if (!s.ok()) fail(s);
    });
  }
  if (started.ok()) {
    absl::Status s = Drain(out, deadline, program, &result.stdout_data);
    if (!s.ok()) fail(s);
  } else {
    fail(started);
  }
  if (err_reader.joinable()) err_reader.join();
  if (writer.joinable()) writer.join();

  absl::Status error;
  {
    absl::MutexLock lock(&mu);
    error = first_error;
  }
  if (error.ok()) {
    absl::StatusOr<ExitStatus> status = child.Wait(deadline.remaining());
    if (status.ok()) {
      result.status = *status;
      return result;
    }
    error = status.status();
  }
  // Timed out or failed: do not leave the child running.
  (void)child.Kill();
  (void)child.Wait(absl::Seconds(10));
  if (error.code() == absl::StatusCode::kDeadlineExceeded) {
    return internal::MakeError(
        absl::StatusCode::kDeadlineExceeded, "Run", argv[0],
        absl::StrCat("the child ran past the timeout of ",
                     absl::FormatDuration(options.timeout), " and was killed"));
  }
  return error;
}

}  // namespace

absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv,
                              absl::string_view stdin_data,
                              const RunOptions& options) {
  const absl::string_view program =
      argv.empty() ? absl::string_view() : absl::string_view(argv[0]);
  return internal::GuardResources(
      "Run", program, [&]() -> absl::StatusOr<RunResult> {
        return RunUnguarded(argv, stdin_data, options);
      });
}

}  // namespace canal
