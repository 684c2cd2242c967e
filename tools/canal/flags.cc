// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/flags.h"

#include <climits>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "canal/version.h"

namespace canal_cli {
namespace {

// --- Help texts
// -----------------------------------------------------------------

constexpr absl::string_view kExitCodes =
    "Exit codes:\n"
    "  0  success\n"
    "  1  any other error\n"
    "  2  bad command line\n"
    "  3  not found: no listener has the name\n"
    "  4  timeout: the time ran out (or the listener stayed busy)\n"
    "  5  permission denied\n";

constexpr absl::string_view kNames =
    "NAME is a portable pipe name ([A-Za-z0-9._-], up to 200 characters:\n"
    "\\\\.\\pipe\\NAME on Windows, <runtime dir>/NAME on POSIX) or a native\n"
    "name (\\\\.\\pipe\\... on Windows, an absolute socket path on POSIX).\n"
    "DURATION is a number with a unit: 500ms, 2s, 1m, inf.\n";

constexpr absl::string_view kFormats =
    "Messages on standard input and output (message mode):\n"
    "  lines     (default) one message per line; a \"\\r\" before the \"\\n\" "
    "is\n"
    "            dropped; not binary-safe\n"
    "  --hex     one message per line in hex (spaces ignored, either case;\n"
    "            an empty line is an empty message); output in lower case\n"
    "  --frames  each message is a 4-byte big-endian length N, then N bytes\n"
    "A message on a stream is at most 64 MiB. Input that ends inside a\n"
    "line is one last message; input that ends inside a frame is an error.\n";

constexpr absl::string_view kUser =
    "USER is a user name or a uid on POSIX, an account name or a SID\n"
    "(S-1-5-...) on Windows, or \"any\" for no check. By default a client\n"
    "refuses a server run by another user (other than root or SYSTEM).\n";

struct CommandText {
  absl::string_view name;
  absl::string_view synopsis;
  absl::string_view summary;  // One line for `canal --help`.
  absl::string_view description;
  bool formats;  // Whether the message formats apply.
  bool user;     // Whether USER is explained.
};

const std::vector<CommandText>& Texts() {
  static const std::vector<CommandText>* texts = new std::vector<CommandText>{
      {"serve", "canal serve NAME [OPTIONS]",
       "listen: relay clients to stdin/stdout, --echo, or --exec CMD",
       "Listens on NAME and serves its clients in one of three ways:\n"
       "  (default)  a two-way relay between the client and this program's\n"
       "             standard input and output, one client at a time\n"
       "             (further clients wait to be accepted). A client is\n"
       "             served until it finishes sending; what standard input\n"
       "             has delivered by then still goes to it. The end of\n"
       "             standard input half-closes the channel on POSIX (the\n"
       "             client reads the end of the stream); later clients get\n"
       "             no input.\n"
       "  --echo     sends every chunk or message back, to many clients at\n"
       "             once.\n"
       "  --exec CMD runs CMD for each client with the connection as its\n"
       "             standard input and output (its stderr is this\n"
       "             program's), like socat EXEC: or nc -e. When the client\n"
       "             finishes, CMD's stdin is closed; when CMD closes its\n"
       "             stdout, the connection is closed. If the connection\n"
       "             breaks or the server stops, CMD is killed. At most\n"
       "             --max-children run at once: at that bound the server\n"
       "             stops accepting, and further clients wait until a child\n"
       "             ends. CMD gets CANAL_PIPE (NAME) and CANAL_PEER_PID (the\n"
       "             client's process id, 0 if unknown) in its environment.\n"
       "             CMD is split into words at spaces; '...' and \"...\"\n"
       "             quote (in \"...\", \\\" and \\\\ stand for \" and \\); a\n"
       "             backslash elsewhere is an ordinary character.\n"
       "Stops on Ctrl-C (SIGINT, SIGTERM, SIGHUP on POSIX; Ctrl-Break and\n"
       "closing the console on Windows), after --count clients have\n"
       "finished, and with --echo or --exec at the end of standard input\n"
       "when it is a terminal.\n",
       true, false},
      {"connect", "canal connect NAME [OPTIONS]",
       "copy stdin to the pipe and the pipe to stdout",
       "Connects to NAME, copies standard input to the pipe and the pipe to\n"
       "standard output. Ends when both are done: the listener has finished\n"
       "sending and the input has ended (or sending failed). At the end of\n"
       "input, connect half-closes the channel on POSIX, so the listener\n"
       "reads the end of the stream and can still reply (Windows pipes\n"
       "cannot half-close); then it waits at most --linger since the last\n"
       "data for the listener to finish.\n",
       true, true},
      {"call", "canal call NAME REQUEST|- [OPTIONS]",
       "one request, one reply (message mode)",
       "One transaction with a message-mode listener (like CallNamedPipe):\n"
       "connects, sends REQUEST as one message, prints the reply, closes.\n"
       "REQUEST \"-\" reads the request from standard input: all of it, less\n"
       "one final line break (lines), all of it as hex with white space\n"
       "ignored (--hex), or exactly one frame (--frames). With --hex a\n"
       "REQUEST argument is hex too. The reply is printed in the same\n"
       "format.\n",
       true, true},
      {"wait", "canal wait NAME [OPTIONS]",
       "wait until NAME can be connected to",
       "Waits until NAME can be connected to (like WaitNamedPipe). Without\n"
       "--poll, fails at once with exit code 3 if no listener has the name.\n",
       false, false},
      {"list", "canal list [DIR] [OPTIONS]", "the live listeners",
       "Lists the live listeners: name, mode, direction, instance limit,\n"
       "owner pid and user.\n"
       "POSIX: the listeners in the runtime directory, or in DIR: each\n"
       "socket whose <socket>.canal~lock file is locked by a live listener\n"
       "(files of listeners that exited are left out); the owner is the\n"
       "lock file's owner. Windows: every pipe in \\\\.\\pipe\\ (canal's "
       "pipes\n"
       "are ordinary named pipes), with the instances in use and the limit.\n"
       "Windows tells a pipe's mode, direction and server only to a client\n"
       "that connects, which would take an instance and reach the server's\n"
       "code, so list shows \"-\" for them. Wine cannot list pipes at all\n"
       "(exit code 1).\n",
       false, false},
      {"bench", "canal bench [OPTIONS]",
       "measure canal against the raw system primitive",
       "Runs a listener and clients inside this process and measures canal\n"
       "and, the same way in the same run, the raw system primitive (a Unix\n"
       "stream socket pair on POSIX, a raw overlapped named pipe pair on\n"
       "Windows): throughput with clients streaming writes, and round-trip\n"
       "latency (median, p99) with clients doing ping-pong. Prints both and\n"
       "their ratio; a live progress line when the output is a terminal\n"
       "(on a Windows console without escape sequences, redrawn with\n"
       "carriage returns). With --transport shm canal's listener offers\n"
       "its clients the shared-memory transport; each channel does one\n"
       "exchange before it is timed (the move to the rings happens there),\n"
       "and the report says which transport the channels actually used\n"
       "(the Windows backend does not offer shared memory yet).\n",
       false, false},
  };
  return *texts;
}

const CommandText* FindText(absl::string_view name) {
  for (const CommandText& t : Texts()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// Help in canal's layout: the synopsis first, then the description, the
// options as CLI11 lists them, and the notes.
class HelpFormatter : public CLI::Formatter {
 public:
  HelpFormatter() { column_width(26); }

  std::string make_help(const CLI::App* app, std::string,
                        CLI::AppFormatMode mode) const override {
    if (app->get_parent() == nullptr) return MainHelp();
    const CommandText* text = FindText(app->get_name());
    if (text == nullptr) return CLI::Formatter::make_help(app, "", mode);
    std::string out =
        absl::StrCat("Usage: ", text->synopsis, "\n\n", text->description);
    absl::StrAppend(&out, make_groups(app, mode), "\n");
    if (text->formats) absl::StrAppend(&out, kFormats, "\n");
    if (text->user) absl::StrAppend(&out, kUser, "\n");
    absl::StrAppend(&out, kNames, "\n", kExitCodes);
    return out;
  }

  // Only the value's name ("N", "DURATION"), never CLI11's notes.
  std::string make_option_opts(const CLI::Option* opt) const override {
    const std::string& text = opt->get_option_text();
    return text.empty() ? std::string() : " " + text;
  }
};

// --- Value checks ------------------------------------------------------------

// Parses a DURATION; "" and *out on success, else why not.
std::string ParseDurationText(const std::string& text, bool positive_finite,
                              absl::Duration* out) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
    return absl::StrCat("\"", text,
                        "\" is not a duration (examples: 500ms, 2s, 1m, inf)");
  }
  if (positive_finite &&
      (d == absl::ZeroDuration() || d == absl::InfiniteDuration())) {
    return absl::StrCat("\"", text, "\" is not a positive, finite duration");
  }
  *out = d;
  return "";
}

// A CLI11 check that a duration parses (the value is converted after the
// parse).
CLI::Validator DurationCheck(bool positive_finite) {
  return CLI::Validator(
      [positive_finite](std::string& text) {
        absl::Duration unused;
        return ParseDurationText(text, positive_finite, &unused);
      },
      "DURATION");
}

// A CLI11 check that a value is one of `choices`.
CLI::Validator OneOf(std::vector<std::string> choices) {
  return CLI::Validator(
      [choices](std::string& text) -> std::string {
        for (const std::string& c : choices) {
          if (text == c) return "";
        }
        return absl::StrCat("\"", text, "\" is not ",
                            absl::StrJoin(choices, " or "));
      },
      absl::StrJoin(choices, "|"));
}

absl::Duration ToDuration(const std::string& text, absl::Duration fallback) {
  absl::Duration d = fallback;
  if (!text.empty()) ParseDurationText(text, false, &d);
  return d;
}

MessageFormat FormatOf(bool hex, bool frames) {
  if (hex) return MessageFormat::kHex;
  if (frames) return MessageFormat::kFrames;
  return MessageFormat::kLines;
}

DumpFormat DumpOf(const std::string& text) {
  if (text == "text") return DumpFormat::kText;
  if (text == "hex") return DumpFormat::kHex;
  return DumpFormat::kNone;
}

// Raw option values that are converted once the parse succeeded.
struct RawValues {
  std::string timeout, linger, duration, dump, exec, mode, transport;
  bool hex = false, frames = false;
  int64_t max_children = 16, max_instances = 0, count = 0, size = 4096,
          clients = 1;
};

void AddFormatFlags(CLI::App* sub, RawValues* raw, CLI::Option* needs) {
  CLI::Option* hex = sub->add_flag(
      "--hex", raw->hex, "messages on stdin/stdout in hex, one a line");
  CLI::Option* frames =
      sub->add_flag("--frames", raw->frames,
                    "messages on stdin/stdout as length-prefixed frames");
  frames->excludes(hex);
  if (needs != nullptr) {
    hex->needs(needs);
    frames->needs(needs);
  }
}

void AddDumpOption(CLI::App* sub, RawValues* raw) {
  sub->add_option("--dump", raw->dump,
                  "the traffic on stderr (\">\" sent, \"<\" received), as\n"
                  "text or as a hex dump")
      ->option_text("text|hex")
      ->check(OneOf({"text", "hex"}));
}

void AddTimeout(CLI::App* sub, RawValues* raw, absl::string_view what) {
  sub->add_option("--timeout", raw->timeout, std::string(what))
      ->option_text("DURATION")
      ->check(DurationCheck(false));
}

void AddExpectUser(CLI::App* sub, std::string* user) {
  sub->add_option("--expect-user", *user,
                  "refuse a server not run by USER (or root / SYSTEM);\n"
                  "\"any\": no check")
      ->option_text("USER");
}

// Builds the CLI11 description of every command, bound to `cl` and `raw`.
void Describe(CLI::App& app, CommandLine* cl, RawValues* raw) {
  app.formatter(std::make_shared<HelpFormatter>());
  app.set_help_flag("-h,--help", "this help");
  app.set_version_flag("--version",
                       absl::StrCat("canal ", CANAL_VERSION_STRING),
                       "print the version");
  app.require_subcommand(1);

  CLI::App* serve = app.add_subcommand("serve");
  ServeFlags& s = cl->serve;
  serve->set_help_flag("-h,--help", "this help");
  serve->add_option("NAME", s.name)->required();
  CLI::Option* message = serve->add_flag("--message", s.message,
                                         "message mode (default: byte mode)");
  CLI::Option* echo = serve->add_flag(
      "--echo", s.echo, "send back what arrives, to many clients at once");
  CLI::Option* exec =
      serve
          ->add_option("--exec", raw->exec,
                       "run CMD for each client, the connection as its\n"
                       "stdin and stdout")
          ->option_text("CMD");
  exec->excludes(echo);
  serve
      ->add_option("--max-children", raw->max_children,
                   "--exec: at most N children at once (1-1024; 16);\n"
                   "at the bound, further clients wait")
      ->option_text("N")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->needs(exec);
  serve
      ->add_option("--max-instances", raw->max_instances,
                   "at most N clients connected at once (1-254;\n"
                   "default unlimited); further clients wait to connect")
      ->option_text("N")
      ->check(CLI::Range(int64_t{1}, int64_t{canal::kMaxInstanceLimit}));
  serve
      ->add_option("--count", raw->count,
                   "serve N clients, then exit once they have finished")
      ->option_text("N")
      ->check(CLI::Range(int64_t{1}, int64_t{INT32_MAX}));
  AddFormatFlags(serve, raw, message);
  AddDumpOption(serve, raw);
  CLI::Option* all =
      serve->add_flag("--allow-local-users", s.allow_local_users,
                      "admit every local user (default: only this user)");
  serve
      ->add_option("--allow-group", s.allow_group,
                   "admit the members of GROUP too (a name, or a gid\n"
                   "on POSIX, a SID on Windows)")
      ->option_text("GROUP")
      ->excludes(all);
  serve->add_flag("-v,--verbose", s.verbose,
                  "report clients and children on stderr");

  CLI::App* connect = app.add_subcommand("connect");
  ConnectFlags& c = cl->connect;
  connect->set_help_flag("-h,--help", "this help");
  connect->add_option("NAME", c.name)->required();
  connect->add_flag("--message", c.message,
                    "require a message-mode listener (--hex and --frames\n"
                    "do too)");
  AddFormatFlags(connect, raw, nullptr);
  AddTimeout(connect, raw, "how long to wait for a busy listener (5s)");
  connect
      ->add_option("--linger", raw->linger,
                   "after the end of input, wait this long for more\n"
                   "data from the listener (500ms; 0s closes at once)")
      ->option_text("DURATION")
      ->check(DurationCheck(false));
  AddDumpOption(connect, raw);
  AddExpectUser(connect, &c.expect_user);

  CLI::App* call = app.add_subcommand("call");
  CallFlags& k = cl->call;
  call->set_help_flag("-h,--help", "this help");
  call->add_option("NAME", k.name)->required();
  call->add_option("REQUEST", k.request)->required();
  AddFormatFlags(call, raw, nullptr);
  AddTimeout(call, raw,
             "for the whole call, including waiting for a busy\n"
             "listener (5s)");
  AddExpectUser(call, &k.expect_user);

  CLI::App* wait = app.add_subcommand("wait");
  WaitFlags& w = cl->wait;
  wait->set_help_flag("-h,--help", "this help");
  wait->add_option("NAME", w.name)->required();
  AddTimeout(wait, raw,
             "how long to wait while the listener is busy (5s);\n"
             "exit code 4 when it runs out");
  wait->add_flag("--poll", w.poll,
                 "while no listener has the name, keep looking until\n"
                 "the timeout instead of failing at once");

  CLI::App* list = app.add_subcommand("list");
  ListFlags& l = cl->list;
  list->set_help_flag("-h,--help", "this help");
  list->add_option("DIR", l.dir);
  list->add_flag("--json", l.json,
                 "print a JSON array of objects with \"name\", \"path\",\n"
                 "\"mode\", \"access\", \"max_instances\" (0: unlimited),\n"
                 "\"instances\" (in use; Windows), \"pid\", \"uid\"\n"
                 "(POSIX) and \"user\"; null where unknown");

  CLI::App* bench = app.add_subcommand("bench");
  BenchFlags& b = cl->bench;
  bench->set_help_flag("-h,--help", "this help");
  bench->add_option("--mode", raw->mode, "byte (default) or message mode")
      ->option_text("byte|message")
      ->check(OneOf({"byte", "message"}));
  bench
      ->add_option("--size", raw->size,
                   "bytes per write and per ping (1-16777216; 4096)")
      ->option_text("BYTES")
      ->check(CLI::Range(int64_t{1}, int64_t{16} << 20));
  bench->add_option("--clients", raw->clients, "concurrent clients (1-64; 1)")
      ->option_text("N")
      ->check(CLI::Range(int64_t{1}, int64_t{64}));
  bench
      ->add_option("--duration", raw->duration,
                   "per measurement; there are four (1s)")
      ->option_text("DURATION")
      ->check(DurationCheck(true));
  bench
      ->add_option("--transport", raw->transport,
                   "canal's listener offers the pipe (default) or\n"
                   "shared-memory rings (ListenerOptions::transport)")
      ->option_text("pipe|shm")
      ->check(OneOf({"pipe", "shm"}));
  bench->add_flag("--json", b.json, "print one JSON object instead of a table");
}

// Fills the typed flags from the raw values of a successful parse.
absl::Status Finish(const CLI::App& app, const RawValues& raw,
                    CommandLine* cl) {
  const std::string name = app.get_subcommands().front()->get_name();
  const MessageFormat format = FormatOf(raw.hex, raw.frames);
  if (name == "serve") {
    cl->command = Command::kServe;
    ServeFlags& s = cl->serve;
    if (!raw.exec.empty() || app.get_subcommand("serve")->count("--exec")) {
      absl::StatusOr<std::vector<std::string>> argv = SplitCommand(raw.exec);
      if (!argv.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--exec: ", argv.status().message()));
      }
      s.exec = *std::move(argv);
    }
    if (s.echo && format != MessageFormat::kLines) {
      return absl::InvalidArgumentError(
          "--hex and --frames say how messages appear on stdin and stdout, "
          "which --echo does not use");
    }
    s.max_children = static_cast<int>(raw.max_children);
    s.max_instances = static_cast<int>(raw.max_instances);
    s.count = raw.count;
    s.format = format;
    s.dump = DumpOf(raw.dump);
  } else if (name == "connect") {
    cl->command = Command::kConnect;
    ConnectFlags& c = cl->connect;
    c.timeout = ToDuration(raw.timeout, c.timeout);
    c.linger = ToDuration(raw.linger, c.linger);
    c.format = format;
    c.dump = DumpOf(raw.dump);
  } else if (name == "call") {
    cl->command = Command::kCall;
    CallFlags& k = cl->call;
    k.timeout = ToDuration(raw.timeout, k.timeout);
    k.format = format;
    k.request_from_input = k.request == "-";
  } else if (name == "wait") {
    cl->command = Command::kWait;
    cl->wait.timeout = ToDuration(raw.timeout, cl->wait.timeout);
  } else if (name == "list") {
    cl->command = Command::kList;
  } else {
    cl->command = Command::kBench;
    BenchFlags& b = cl->bench;
    b.message = raw.mode == "message";
    b.size = static_cast<size_t>(raw.size);
    b.clients = static_cast<int>(raw.clients);
    b.duration = ToDuration(raw.duration, b.duration);
    b.transport = raw.transport == "shm" ? canal::Transport::kSharedMemory
                                         : canal::Transport::kPipe;
  }
  return absl::OkStatus();
}

absl::Status Usage(std::string* failed_command, absl::string_view command,
                   absl::string_view what) {
  if (failed_command != nullptr) *failed_command = std::string(command);
  std::string line(what);
  absl::StrReplaceAll({{"\r", " "}, {"\n", " "}}, &line);
  return absl::InvalidArgumentError(line);
}

}  // namespace

std::string MainHelp() {
  std::string text =
      "canal: talk to canal pipes (Windows named pipes, Unix sockets)\n\n"
      "Usage: canal COMMAND [ARGS...]\n\nCommands:\n";
  for (const CommandText& t : Texts()) {
    const std::string usage(t.synopsis.substr(6));  // without "canal "
    absl::StrAppend(&text, "  ", usage,
                    std::string(usage.size() < 34 ? 34 - usage.size() : 1, ' '),
                    t.summary, "\n");
  }
  absl::StrAppend(&text,
                  "\nOptions:\n"
                  "  -h, --help  this help ('canal COMMAND --help' describes "
                  "a command)\n"
                  "  --version   print the version\n\n",
                  kNames, "\n", kExitCodes);
  return text;
}

absl::StatusOr<std::vector<std::string>> SplitCommand(absl::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      ++i;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      const size_t end = text.find('\'', i + 1);
      if (end == absl::string_view::npos) {
        return absl::InvalidArgumentError("a ' is not closed");
      }
      word.append(text.data() + i + 1, end - i - 1);
      i = end + 1;
    } else if (c == '"') {
      ++i;
      while (i < text.size() && text[i] != '"') {
        if (text[i] == '\\' && i + 1 < text.size() &&
            (text[i + 1] == '"' || text[i + 1] == '\\')) {
          ++i;
        }
        word.push_back(text[i]);
        ++i;
      }
      if (i >= text.size()) {
        return absl::InvalidArgumentError("a \" is not closed");
      }
      ++i;
    } else {
      word.push_back(c);
      ++i;
    }
  }
  if (in_word) words.push_back(std::move(word));
  if (words.empty()) return absl::InvalidArgumentError("no program given");
  return words;
}

absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args, std::string* failed_command) {
  if (failed_command != nullptr) failed_command->clear();
  CommandLine cl;
  if (args.empty()) return Usage(failed_command, "", "missing COMMAND");
  std::vector<std::string> argv = args;
  if (argv[0] == "help") {
    // `canal help [COMMAND]` is `canal [COMMAND] --help`.
    argv.erase(argv.begin());
    if (argv.size() > 1) {
      return Usage(failed_command, "",
                   absl::StrCat("unexpected argument \"", argv[1], "\""));
    }
    argv.push_back("--help");
  }
  const bool known = FindText(argv[0]) != nullptr;
  if (!known && !argv[0].empty() && argv[0][0] != '-') {
    return Usage(failed_command, "",
                 absl::StrCat("unknown command \"", argv[0], "\""));
  }
  const std::string command = known ? argv[0] : "";
  RawValues raw;
  CLI::App app("", "canal");
  try {
    Describe(app, &cl, &raw);
    std::vector<std::string> reversed(argv.rbegin(), argv.rend());
    app.parse(reversed);
    absl::Status finished = Finish(app, raw, &cl);
    if (!finished.ok()) {
      return Usage(failed_command, command, finished.message());
    }
    return cl;
  } catch (const CLI::CallForHelp&) {
    cl.command = Command::kHelp;
    cl.text = app.help();
    return cl;
  } catch (const CLI::CallForVersion& version) {
    cl.command = Command::kVersion;
    cl.text = absl::StrCat(version.what(), "\n");
    return cl;
  } catch (const CLI::ParseError& error) {
    return Usage(failed_command, command, error.what());
  } catch (const std::exception& error) {
    // Allocation failure, in practice.
    return absl::ResourceExhaustedError(
        absl::StrCat("canal: cannot parse the command line: ", error.what()));
  }
}

}  // namespace canal_cli
