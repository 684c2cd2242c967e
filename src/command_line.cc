// SPDX-License-Identifier: Apache-2.0
#include "src/internal/command_line.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"

namespace canal {
namespace internal {

void AppendQuotedWindowsArgument(absl::string_view arg, std::string* out) {
  if (!arg.empty() &&
      arg.find_first_of(" \t\n\v\"") == absl::string_view::npos) {
    out->append(arg.data(), arg.size());
    return;
  }
  out->push_back('"');
  size_t backslashes = 0;
  for (char c : arg) {
    if (c == '\\') {
      ++backslashes;
      continue;
    }
    if (c == '"') {
      // Escape the backslashes and the quote itself.
      out->append(backslashes * 2 + 1, '\\');
    } else {
      out->append(backslashes, '\\');
    }
    backslashes = 0;
    out->push_back(c);
  }
  // Backslashes before the closing quote must be doubled, or the last one
  // would escape it.
  out->append(backslashes * 2, '\\');
  out->push_back('"');
}

absl::StatusOr<std::string> BuildWindowsCommandLine(
    const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0].empty()) {
    return MakeError(absl::StatusCode::kInvalidArgument, "Start", "",
                     "the program name (argv[0]) is empty");
  }
  for (const std::string& arg : argv) {
    if (arg.find('\0') != std::string::npos) {
      return MakeError(absl::StatusCode::kInvalidArgument, "Start", argv[0],
                       "an argument contains a NUL byte");
    }
  }
  const std::string& program = argv[0];
  if (absl::StrContains(program, "\"")) {
    return MakeError(absl::StatusCode::kInvalidArgument, "Start", program,
                     "a Windows program name cannot contain a double quote");
  }
  std::string line;
  // The program name: backslashes are literal in it, so quoting it is just
  // surrounding it with quotes.
  if (program.find_first_of(" \t\n\v") != std::string::npos) {
    absl::StrAppend(&line, "\"", program, "\"");
  } else {
    line = program;
  }
  for (size_t i = 1; i < argv.size(); ++i) {
    line.push_back(' ');
    AppendQuotedWindowsArgument(argv[i], &line);
  }
  return line;
}

}  // namespace internal
}  // namespace canal
