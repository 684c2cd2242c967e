// `canal`: the command-line tool. Everything but the process wiring lives in
// cli.cc (see cli.h).

#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "tools/canal/cli.h"
#include "tools/canal/platform.h"

int main(int argc, char** argv) {
  canal_cli::PrepareStdio();
  std::ios::sync_with_stdio(false);
  // Lives until exit: the signal watcher and console handler refer to it.
  static canal_cli::StopSource* stop = new canal_cli::StopSource();
  canal_cli::InstallStopHandler(stop);

  std::vector<std::string> args(argv + 1, argv + argc);
  canal_cli::Io io;
  io.read_input = canal_cli::ReadStdin;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.out_is_terminal = canal_cli::StdoutIsTerminal();
  if (!args.empty() && args[0] == "serve" && canal_cli::StdinIsTerminal()) {
    // Ctrl-D (Ctrl-Z Enter on Windows) at a terminal stops the server too.
    std::thread([] {
      char buffer[256];
      while (true) {
        absl::StatusOr<size_t> n = canal_cli::ReadStdin(absl::MakeSpan(buffer));
        if (!n.ok() || *n == 0) break;
      }
      stop->Stop();
    }).detach();
  }
  return canal_cli::Run(args, io, stop);
}
