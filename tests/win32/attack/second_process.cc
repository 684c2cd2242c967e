// SPDX-License-Identifier: Apache-2.0
#include "win32/attack/second_process.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "test_util.h"

namespace canal_win32_test {

std::string AttackChildPath() {
  const char* path = std::getenv("CANAL_ATTACK_CHILD");
  return path != nullptr ? path : "";
}

std::string TestChildPath() {
  const char* path = std::getenv("CANAL_TEST_CHILD");
  return path != nullptr ? path : "";
}

absl::StatusOr<std::unique_ptr<Child>> Child::Start(
    const std::string& program, const std::vector<std::string>& args,
    absl::string_view ready_line) {
  if (program.empty()) {
    return absl::FailedPreconditionError("the child program's path is unset");
  }
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), args.begin(), args.end());
  canal::SubprocessOptions options;
  options.stdin_mode = canal::StdioMode::kPipe;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.kill_on_destroy = true;
  absl::StatusOr<canal::Subprocess> process =
      canal::Subprocess::Start(argv, options);
  if (!process.ok()) return process.status();
  std::unique_ptr<Child> child(new Child(*std::move(process)));
  std::string line;
  char c = 0;
  while (true) {
    absl::StatusOr<canal::ReadResult> read =
        child->process_.stdout_channel().Read(absl::MakeSpan(&c, 1),
                                              canal_test::kHangGuard);
    if (!read.ok()) {
      return absl::Status(read.status().code(),
                          absl::StrCat("child said \"", line, "\", then ",
                                       read.status().ToString()));
    }
    if (c == '\n') break;
    if (c != '\r') line.push_back(c);
  }
  if (line != ready_line) {
    return absl::UnknownError(absl::StrCat("child said \"", line, "\""));
  }
  return child;
}

absl::Status Child::Release() {
  process_.stdin_channel().Close();
  absl::StatusOr<canal::ExitStatus> status =
      process_.Wait(canal_test::kHangGuard);
  if (!status.ok()) return status.status();
  if (!status->success()) {
    return absl::UnknownError(
        absl::StrCat("child exited with ", status->exit_code));
  }
  return absl::OkStatus();
}

absl::Status Child::Kill() {
  absl::Status killed = process_.Kill();
  if (!killed.ok()) return killed;
  return process_.Wait(canal_test::kHangGuard).status();
}

}  // namespace canal_win32_test
