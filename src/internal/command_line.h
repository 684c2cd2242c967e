// SPDX-License-Identifier: Apache-2.0
// Building a Windows command line from an argv vector. Windows passes a
// program one string; the program (through CommandLineToArgvW or the
// Microsoft C runtime) splits it by these rules:
//   - arguments are separated by spaces or tabs outside double quotes;
//   - 2n backslashes followed by a quote give n backslashes, and the quote
//     starts or ends a quoted part; 2n+1 backslashes followed by a quote give
//     n backslashes and a literal quote; backslashes not followed by a quote
//     are literal;
//   - the program name (argv[0]) is special: it ends at the next space or tab
//     unless quoted, and backslashes in it are always literal, so it cannot
//     contain a quote.
// This code is platform-independent (and unit-tested natively); only the
// Win32 backend calls it. Programs that split their command line otherwise
// (cmd.exe, batch files) need their own quoting.

#ifndef CANAL_SRC_INTERNAL_COMMAND_LINE_H_
#define CANAL_SRC_INTERNAL_COMMAND_LINE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {

// Appends `arg` (an argument after the program name) to `out`, quoted only
// if it must be: empty, or containing a space, tab, newline, vertical tab or
// quote.
void AppendQuotedWindowsArgument(absl::string_view arg, std::string* out);

// The whole command line for `argv` (UTF-8 in, UTF-8 out). Returns
// InvalidArgument for an empty argv, an empty program name, a program name
// containing a quote, or an argument containing a NUL byte.
absl::StatusOr<std::string> BuildWindowsCommandLine(
    const std::vector<std::string>& argv);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_COMMAND_LINE_H_
