// SPDX-License-Identifier: Apache-2.0
// A child process with redirected input and output (Microsoft's "Creating a
// Child Process with Redirected Input and Output"): the parent writes to the
// child's stdin through a pipe and reads its stdout through another.
//
//   child_process --self-test   start this program again as the child
//   child_process --child       (the child) upper-case stdin to stdout

#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "canal/canal.h"

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#include <windows.h>
#endif

namespace {

// This program's own path, to start it again as the child.
std::string SelfPath(const char* argv0) {
#ifdef _WIN32
  wchar_t path[MAX_PATH];
  DWORD n = GetModuleFileNameW(nullptr, path, MAX_PATH);
  if (n == 0 || n >= MAX_PATH) return argv0;
  int size = WideCharToMultiByte(CP_UTF8, 0, path, static_cast<int>(n), nullptr,
                                 0, nullptr, nullptr);
  std::string utf8(static_cast<size_t>(size), '\0');
  WideCharToMultiByte(CP_UTF8, 0, path, static_cast<int>(n), &utf8[0], size,
                      nullptr, nullptr);
  return utf8;
#else
  return argv0;
#endif
}

int Child() {
#ifdef _WIN32
  // Byte for byte, without the C runtime's "\n" -> "\r\n" translation.
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
#endif
  int c;
  while ((c = std::getchar()) != EOF) {
    std::putchar(std::toupper(static_cast<unsigned char>(c)));
  }
  std::fflush(stdout);
  return 7;  // A recognisable exit code for the parent.
}

int Parent(const std::string& self) {
  canal::SubprocessOptions options;
  options.stdin_mode = canal::StdioMode::kPipe;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.stderr_mode = canal::StdioMode::kInherit;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start({self, "--child"}, options);
  if (!child.ok()) {
    std::fprintf(stderr, "%s\n", child.status().ToString().c_str());
    return 1;
  }
  const std::string text = "hello from the parent process\n";
  absl::Status wrote = child->stdin_channel().Write(text, absl::Seconds(10));
  child->stdin_channel().Close();  // The child sees end of file.
  std::string output;
  char buffer[4096];
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        child->stdout_channel().Read(absl::MakeSpan(buffer), absl::Seconds(10));
    if (!r.ok()) break;  // OutOfRange: the child closed its stdout.
    output.append(buffer, r->size);
  }
  absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(10));
  std::printf("child said: %s", output.c_str());
  const bool ok = wrote.ok() && output == absl::AsciiStrToUpper(text) &&
                  status.ok() && status->exited && status->exit_code == 7;
  std::printf("child exited with %d; child_process self-test: %s\n",
              status.ok() ? status->exit_code : -1, ok ? "ok" : "FAILED");

  // The same in one call: feed stdin, collect stdout and stderr at once.
  canal::RunOptions run;
  run.timeout = absl::Seconds(10);
  absl::StatusOr<canal::RunResult> result =
      canal::Run({self, "--child"}, "run() works too\n", run);
  const bool run_ok = result.ok() && result->stdout_data == "RUN() WORKS TOO\n";
  std::printf("Run: %s",
              result.ok() ? result->stdout_data.c_str() : "failed\n");
  return ok && run_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--child") return Child();
  if (argc == 2 && std::string(argv[1]) == "--self-test") {
    return Parent(SelfPath(argv[0]));
  }
  std::fprintf(stderr, "usage: child_process --self-test\n");
  return 2;
}
