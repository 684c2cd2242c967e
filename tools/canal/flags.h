// SPDX-License-Identifier: Apache-2.0
// The command line of `canal`, parsed with CLI11 into one struct per
// command, and the help texts. Nothing here touches a pipe.
//
//   absl::StatusOr<canal_cli::CommandLine> cl =
//       canal_cli::ParseCommandLine({"serve", "echo", "--message", "--echo"});
//   if (cl.ok() && cl->command == canal_cli::Command::kServe) ...

#ifndef CANAL_TOOLS_CANAL_FLAGS_H_
#define CANAL_TOOLS_CANAL_FLAGS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/types.h"
#include "tools/canal/dump.h"
#include "tools/canal/message_format.h"

namespace canal_cli {

// What the command line asks for.
enum class Command {
  kHelp,     // Print CommandLine::text (--help anywhere, or `canal help`).
  kVersion,  // Print CommandLine::text (--version).
  kServe,
  kConnect,
  kCall,
  kWait,
  kList,
  kBench,
};

// `canal serve`.
struct ServeFlags {
  std::string name;
  bool message = false;  // Message mode instead of byte mode.
  bool echo = false;     // Send back what arrives.
  // --exec: the program and its arguments, split from the flag's text by
  // SplitCommand (empty: no --exec).
  std::vector<std::string> exec;
  int max_children = 16;  // --exec: children running at once.
  int max_instances = canal::kUnlimitedInstances;
  int64_t count = 0;  // Serve this many clients, then exit; 0: no limit.
  MessageFormat format = MessageFormat::kLines;
  DumpFormat dump = DumpFormat::kNone;
  bool allow_local_users = false;  // AccessPolicy::Scope::kAllLocalUsers.
  std::string allow_group;         // Also admit this group (empty: none).
  bool verbose = false;            // Report clients and children on stderr.
};

// `canal connect`.
struct ConnectFlags {
  std::string name;
  bool message = false;  // Require a message-mode listener.
  absl::Duration timeout = absl::Seconds(5);
  absl::Duration linger = absl::Milliseconds(500);
  MessageFormat format = MessageFormat::kLines;
  DumpFormat dump = DumpFormat::kNone;
  std::string expect_user;  // Empty: the default check.
};

// `canal call`.
struct CallFlags {
  std::string name;
  std::string request;              // Unless request_from_input.
  bool request_from_input = false;  // REQUEST was "-".
  absl::Duration timeout = absl::Seconds(5);
  MessageFormat format = MessageFormat::kLines;
  std::string expect_user;
};

// `canal wait`.
struct WaitFlags {
  std::string name;
  absl::Duration timeout = absl::Seconds(5);
  bool poll = false;
};

// `canal list`.
struct ListFlags {
  std::string dir;  // Empty: the runtime directory.
  bool json = false;
};

// `canal bench`.
struct BenchFlags {
  bool message = false;
  size_t size = 4096;
  int clients = 1;
  absl::Duration duration = absl::Seconds(1);
  // --transport: ListenerOptions::transport of canal's listener.
  canal::Transport transport = canal::Transport::kPipe;
  bool json = false;
};

// A parsed command line: `command` and the flags of that command.
struct CommandLine {
  Command command = Command::kHelp;
  std::string text;  // kHelp, kVersion: what to print.
  ServeFlags serve;
  ConnectFlags connect;
  CallFlags call;
  WaitFlags wait;
  ListFlags list;
  BenchFlags bench;
};

// Parses `args` (without the program name). On a bad command line returns
// InvalidArgument with a one-line message, and sets `*failed_command` to
// the command it belongs to ("" for the main command) if it is not null.
absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args,
    std::string* failed_command = nullptr);

// Splits the text of --exec into a program and its arguments: words are
// separated by spaces or tabs; '...' keeps everything up to the next ' as
// it is; "..." does too, except that \" and \\ stand for " and \; a
// backslash anywhere else is an ordinary character (so Windows paths need
// no quoting). InvalidArgument for an unterminated quote or no word.
absl::StatusOr<std::vector<std::string>> SplitCommand(absl::string_view text);

// The text of `canal --help`.
std::string MainHelp();

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_FLAGS_H_
