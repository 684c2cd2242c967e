// SPDX-License-Identifier: Apache-2.0
// The commands of `canal`, one file each (serve.cc, connect.cc, call.cc,
// wait.cc, list.cc, bench_command.cc). Each takes its parsed flags
// (flags.h), prints its errors as one line on io.err and returns the exit
// code (cli.h).

#ifndef CANAL_TOOLS_CANAL_COMMANDS_H_
#define CANAL_TOOLS_CANAL_COMMANDS_H_

#include "tools/canal/cli.h"
#include "tools/canal/flags.h"
#include "tools/canal/stop_source.h"

namespace canal_cli {

// `canal serve`: listens and serves clients until stopped or --count.
int ServeCommand(const ServeFlags& flags, const Io& io, StopSource* stop);

// `canal connect`: relays standard input and output through one channel.
int ConnectCommand(const ConnectFlags& flags, const Io& io, StopSource* stop);

// `canal call`: one request, one reply.
int CallCommand(const CallFlags& flags, const Io& io);

// `canal wait`: waits until the name can be connected to.
int WaitCommand(const WaitFlags& flags, const Io& io);

// `canal list`: the live listeners.
int ListCommand(const ListFlags& flags, const Io& io);

// `canal bench`: canal against the raw primitive.
int BenchCommand(const BenchFlags& flags, const Io& io, StopSource* stop);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_COMMANDS_H_
