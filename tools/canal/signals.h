// SPDX-License-Identifier: Apache-2.0
// Turns the process's stop requests into StopSource::Stop(): SIGINT, SIGTERM
// and SIGHUP on POSIX; Ctrl-C, Ctrl-Break and closing the console window on
// Windows. Only main() installs it; tests call StopSource::Stop() directly.

#ifndef CANAL_TOOLS_CANAL_SIGNALS_H_
#define CANAL_TOOLS_CANAL_SIGNALS_H_

#include "absl/status/status.h"
#include "tools/canal/stop_source.h"

namespace canal_cli {

// Makes the stop requests above call `stop->Stop()`. POSIX: the handler
// writes to a close-on-exec self-pipe that a detached thread watches, so
// the real work happens outside signal context. Windows:
// SetConsoleCtrlHandler, whose handler runs on a thread of its own. `stop`
// must live until the process exits. Returns the system's error if the
// pipe or handler cannot be set up (the tool then still runs, without a
// clean stop).
absl::Status InstallStopHandler(StopSource* stop);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_SIGNALS_H_
