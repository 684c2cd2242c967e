// SPDX-License-Identifier: Apache-2.0
// `canal`: the command-line tool. Everything but the process wiring lives in
// the canal_cli library (see cli.h).

#include <iostream>
#include <string>
#include <vector>

#include "tools/canal/cli.h"
#include "tools/canal/signals.h"
#include "tools/canal/console.h"

int main(int argc, char** argv) {
  canal_cli::PrepareStdio();
  std::ios::sync_with_stdio(false);
  // Lives until exit: the signal watcher and console handler refer to it.
  static canal_cli::StopSource* stop = new canal_cli::StopSource();
  // Without it Ctrl-C still ends the process, only less cleanly.
  (void)canal_cli::InstallStopHandler(stop);

  const std::vector<std::string> args = canal_cli::ProgramArguments(argc, argv);
  canal_cli::Io io;
  io.read_input = canal_cli::ReadStdin;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.input_is_terminal = canal_cli::StdinIsTerminal();
  // Only bench draws a progress line; asking the console for escape
  // sequences changes its mode, so only then.
  if (!args.empty() && args[0] == "bench") {
    io.progress = canal_cli::StdoutProgressStyle();
  }
  return canal_cli::Run(args, io, stop);
}
