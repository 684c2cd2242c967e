// SPDX-License-Identifier: Apache-2.0
// `serve --exec`: one child process per client, the connection as its
// standard input and output. End of stream travels both ways: the client
// finishing closes the child's stdin; the child closing its stdout closes
// the connection. A connection that breaks, or a stop, kills the child.

#ifndef CANAL_TOOLS_CANAL_EXEC_H_
#define CANAL_TOOLS_CANAL_EXEC_H_

#include <string>
#include <vector>

#include "canal/canal.h"
#include "tools/canal/output.h"
#include "tools/canal/relay.h"
#include "tools/canal/stop_source.h"

namespace canal_cli {

// What every session of one server shares.
struct ExecContext {
  std::vector<std::string> argv;  // The program and its arguments.
  std::string pipe_name;          // For CANAL_PIPE and the reports.
  RelayOptions relay;             // Format and dump; `client` is per session.
  StopSource* stop = nullptr;     // May be null.
  SyncWriter* err = nullptr;      // Reports; never null.
  bool verbose = false;           // Also report how each child ended.
};

// Serves one client: starts the child with CANAL_PIPE and CANAL_PEER_PID
// in its environment, relays until both directions are done, and waits for
// the child to end. Problems (the program cannot start, a relay fails) are
// reported as one line on `context.err`; the server goes on either way.
void RunExecSession(canal::Channel& channel, int client,
                    const ExecContext& context);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_EXEC_H_
