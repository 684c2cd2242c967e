// SPDX-License-Identifier: Apache-2.0
// The process's standard streams as `canal`'s main() hands them to commands
// (canal_cli::Io): raw binary input, and what standard output can display.

#ifndef CANAL_TOOLS_CANAL_CONSOLE_H_
#define CANAL_TOOLS_CANAL_CONSOLE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tools/canal/cli.h"

namespace canal_cli {

// The program's arguments after its name, in UTF-8: argv on POSIX; on
// Windows the wide command line split by CommandLineToArgvW (argv holds
// them in the ANSI code page, which loses characters).
std::vector<std::string> ProgramArguments(int argc, char** argv);

// Puts standard input and output in binary mode (Windows) and ignores
// SIGPIPE (POSIX; children started by `serve --exec` get the default back),
// so that data passes through unchanged and a closed output is an error
// rather than death.
void PrepareStdio();

// Reads what is available of standard input (at least one byte, blocking);
// 0 at end of input. Returns the system's error otherwise.
absl::StatusOr<size_t> ReadStdin(absl::Span<char> buffer);

// Whether standard input is a terminal (isatty / GetConsoleMode).
bool StdinIsTerminal();

// How `canal bench` may draw its progress line on standard output: kNone if
// it is not a terminal; on Windows kAnsi after turning on virtual-terminal
// processing for the console, kPlain if the console refuses it; on POSIX
// kAnsi, or kPlain when TERM is "dumb".
ProgressStyle StdoutProgressStyle();

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_CONSOLE_H_
