// The few things `canal`'s main() needs from the operating system: raw
// standard input, whether standard output is a terminal, and Ctrl-C.

#ifndef CANAL_TOOLS_CANAL_PLATFORM_H_
#define CANAL_TOOLS_CANAL_PLATFORM_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tools/canal/cli.h"

namespace canal_cli {

// Puts standard input and output in binary mode (Windows) and ignores
// SIGPIPE (POSIX), so that byte-mode data passes through unchanged.
void PrepareStdio();

// Reads what is available of standard input (at least one byte, blocking);
// 0 at end of input.
absl::StatusOr<size_t> ReadStdin(absl::Span<char> buffer);

// Whether standard output is a terminal (isatty / GetConsoleMode).
bool StdoutIsTerminal();

// Whether standard input is a terminal.
bool StdinIsTerminal();

// Makes SIGINT, SIGTERM and SIGHUP (POSIX, through a self-pipe watched by a
// thread) or Ctrl-C, Ctrl-Break and console close (Windows,
// SetConsoleCtrlHandler) call `stop->Stop()`. `stop` must outlive the
// process's use of it.
void InstallStopHandler(StopSource* stop);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_PLATFORM_H_
