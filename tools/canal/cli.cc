// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/cli.h"

#include <exception>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tools/canal/commands.h"
#include "tools/canal/flags.h"
#include "tools/canal/output.h"

namespace canal_cli {
namespace {

int Dispatch(const std::vector<std::string>& args, const Io& io,
             StopSource* stop) {
  std::string failed_command;
  absl::StatusOr<CommandLine> cl = ParseCommandLine(args, &failed_command);
  if (!cl.ok()) {
    if (absl::IsInvalidArgument(cl.status())) {
      return UsageError(io, failed_command, cl.status().message());
    }
    return Fail(io, cl.status());
  }
  switch (cl->command) {
    case Command::kHelp:
    case Command::kVersion:
      *io.out << cl->text << std::flush;
      return kExitOk;
    case Command::kServe:
      return ServeCommand(cl->serve, io, stop);
    case Command::kConnect:
      return ConnectCommand(cl->connect, io, stop);
    case Command::kCall:
      return CallCommand(cl->call, io);
    case Command::kWait:
      return WaitCommand(cl->wait, io);
    case Command::kList:
      return ListCommand(cl->list, io);
    case Command::kBench:
      return BenchCommand(cl->bench, io, stop);
  }
  return kExitError;
}

}  // namespace

int Run(const std::vector<std::string>& args, const Io& io, StopSource* stop) {
  // canal itself never throws; the standard library and the parser may
  // (allocation failure), and nothing may escape a command.
  try {
    return Dispatch(args, io, stop);
  } catch (const std::exception& error) {
    return Fail(io, absl::ResourceExhaustedError(
                        absl::StrCat("canal: ", error.what())));
  }
}

}  // namespace canal_cli
