// SPDX-License-Identifier: Apache-2.0
// POSIX standard streams.

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "tools/canal/console.h"

namespace canal_cli {

std::vector<std::string> ProgramArguments(int argc, char** argv) {
  return std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc);
}

void PrepareStdio() { ::signal(SIGPIPE, SIG_IGN); }

absl::StatusOr<size_t> ReadStdin(absl::Span<char> buffer) {
  while (true) {
    const ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR)
      return absl::ErrnoToStatus(errno, "canal: reading stdin");
  }
}

bool StdinIsTerminal() { return ::isatty(STDIN_FILENO) == 1; }

ProgressStyle StdoutProgressStyle() {
  if (::isatty(STDOUT_FILENO) != 1) return ProgressStyle::kNone;
  const char* term = std::getenv("TERM");
  if (term != nullptr && std::strcmp(term, "dumb") == 0) {
    return ProgressStyle::kPlain;
  }
  return ProgressStyle::kAnsi;
}

}  // namespace canal_cli
