#include "tools/canal/cli.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "tools/canal/bench.h"

namespace canal_cli {

// --- StopSource ---------------------------------------------------------------

void StopSource::Stop() {
  absl::MutexLock lock(&mu_);
  if (stopped_) return;
  stopped_ = true;
  // Callbacks run under the lock, so that Unregister waits for them.
  for (auto& [id, fn] : callbacks_) fn();
  callbacks_.clear();
}

bool StopSource::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

int StopSource::Register(std::function<void()> on_stop) {
  absl::MutexLock lock(&mu_);
  if (stopped_) {
    on_stop();
    return -1;
  }
  const int id = next_id_++;
  callbacks_.emplace_back(id, std::move(on_stop));
  return id;
}

void StopSource::Unregister(int id) {
  absl::MutexLock lock(&mu_);
  callbacks_.erase(
      std::remove_if(callbacks_.begin(), callbacks_.end(),
                     [id](const auto& entry) { return entry.first == id; }),
      callbacks_.end());
}

namespace {

// Registers a callback with a (possibly null) StopSource for one scope.
class StopScope {
 public:
  StopScope(StopSource* stop, std::function<void()> fn) : stop_(stop) {
    if (stop_ != nullptr) id_ = stop_->Register(std::move(fn));
  }
  ~StopScope() {
    if (stop_ != nullptr) stop_->Unregister(id_);
  }
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;

 private:
  StopSource* stop_;
  int id_ = -1;
};

// --- Help texts -----------------------------------------------------------------

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

struct Command {
  absl::string_view name;
  absl::string_view synopsis;
  absl::string_view description;
  // Flags: name (without --) -> whether it takes a value.
  std::map<std::string, bool> flags;
  int min_args;
  int max_args;
};

const std::vector<Command>& Commands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"serve", "canal serve NAME [--message] [--echo] [--max-instances N] "
                "[--count N]",
       "Listens on NAME and serves every client on a thread of its own.\n"
       "Without --echo, prints what arrives (in message mode one message per\n"
       "line); with --echo, sends every message or chunk back.\n"
       "Stops on Ctrl-C (SIGINT, SIGTERM, SIGHUP on POSIX), on end of input\n"
       "when standard input is a terminal, or after --count clients.\n\n"
       "  --message          message mode (default: byte mode)\n"
       "  --echo             send back what arrives instead of printing it\n"
       "  --max-instances N  at most N clients at once (1-254; default\n"
       "                     unlimited); further clients wait\n"
       "  --count N          exit after N clients have finished\n",
       {{"message", false}, {"echo", false}, {"max-instances", true},
        {"count", true}},
       1, 1},
      {"connect", "canal connect NAME [--message] [--timeout DURATION] "
                  "[--linger DURATION]",
       "Connects to NAME, copies standard input to the pipe and the pipe to\n"
       "standard output. On a message-mode listener each input line is one\n"
       "message and each message received is printed as a line. Ends when\n"
       "the listener closes, or when input has ended and nothing arrived\n"
       "for the --linger time.\n\n"
       "  --message           require a message-mode listener\n"
       "  --timeout DURATION  how long to wait for a busy listener (5s)\n"
       "  --linger DURATION   after end of input, wait this long for more\n"
       "                      data from the listener (500ms; 0s closes at\n"
       "                      once)\n",
       {{"message", false}, {"timeout", true}, {"linger", true}},
       1, 1},
      {"call", "canal call NAME REQUEST [--timeout DURATION]",
       "One transaction with a message-mode listener (like CallNamedPipe):\n"
       "connects, sends REQUEST as one message, prints the reply as a line,\n"
       "closes.\n\n"
       "  --timeout DURATION  for the whole call, including waiting for a\n"
       "                      busy listener (5s)\n",
       {{"timeout", true}},
       2, 2},
      {"wait", "canal wait NAME [--timeout DURATION] [--poll]",
       "Waits until NAME can be connected to (like WaitNamedPipe). Without\n"
       "--poll, fails at once with exit code 3 if no listener has the name.\n\n"
       "  --timeout DURATION  how long to wait while the listener is busy\n"
       "                      (5s); exit code 4 when it runs out\n"
       "  --poll              while no listener has the name, keep looking\n"
       "                      until the timeout instead of failing at once\n",
       {{"timeout", true}, {"poll", false}},
       1, 1},
      {"bench", "canal bench [--mode byte|message] [--size BYTES] "
                "[--clients N] [--duration DURATION] [--json]",
       "Runs a listener and clients inside this process and measures canal\n"
       "and, the same way in the same run, the raw system primitive (a Unix\n"
       "stream socket pair on POSIX, a raw overlapped named pipe pair on\n"
       "Windows): throughput with clients streaming writes, and round-trip\n"
       "latency (median, p99) with clients doing ping-pong. Prints both and\n"
       "their ratio; a live progress line when the output is a terminal.\n\n"
       "  --mode byte|message  byte (default) or message mode\n"
       "  --size BYTES         bytes per write and per ping (4096)\n"
       "  --clients N          concurrent clients (1)\n"
       "  --duration DURATION  per measurement; there are four (1s)\n"
       "  --json               print one JSON object instead of a table\n",
       {{"mode", true}, {"size", true}, {"clients", true}, {"duration", true},
        {"json", false}},
       0, 0},
  };
  return *commands;
}

std::string CommandHelp(const Command& c) {
  return absl::StrCat("Usage: ", c.synopsis, "\n\n", c.description,
                      "  -h, --help         this help\n\n", kNames, "\n",
                      kExitCodes);
}

// --- Parsing --------------------------------------------------------------------

struct Parsed {
  std::vector<std::string> args;
  std::map<std::string, std::string> flags;  // name -> value ("" if none)
  bool help = false;
};

absl::StatusOr<Parsed> Parse(const Command& c,
                             const std::vector<std::string>& argv) {
  Parsed parsed;
  bool only_args = false;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (only_args || a.size() < 2 || a[0] != '-') {
      parsed.args.push_back(a);
      continue;
    }
    if (a == "--") {
      only_args = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      parsed.help = true;
      continue;
    }
    if (!absl::StartsWith(a, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", a));
    }
    std::string name = a.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    auto it = c.flags.find(name);
    if (it == c.flags.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    }
    if (it->second && !has_value) {
      if (i + 1 >= argv.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("option --", name, " needs a value"));
      }
      value = argv[++i];
    } else if (!it->second && has_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("option --", name, " takes no value"));
    }
    parsed.flags[name] = value;
  }
  if (parsed.help) return parsed;
  const int n = static_cast<int>(parsed.args.size());
  if (n < c.min_args) {
    return absl::InvalidArgumentError(
        c.min_args == 2 && n == 1 ? "missing REQUEST" : "missing NAME");
  }
  if (n > c.max_args) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", parsed.args[c.max_args], "\""));
  }
  return parsed;
}

absl::StatusOr<absl::Duration> DurationFlag(const Parsed& p,
                                            const std::string& name,
                                            absl::Duration fallback) {
  auto it = p.flags.find(name);
  if (it == p.flags.end()) return fallback;
  absl::Duration d;
  if (!absl::ParseDuration(it->second, &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": \"", it->second,
        "\" is not a duration (examples: 500ms, 2s, 1m, inf)"));
  }
  return d;
}

absl::StatusOr<int64_t> IntFlag(const Parsed& p, const std::string& name,
                                int64_t fallback, int64_t min, int64_t max) {
  auto it = p.flags.find(name);
  if (it == p.flags.end()) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v) || v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", it->second,
                     "\" is not a number from ", min, " to ", max));
  }
  return v;
}

bool Has(const Parsed& p, const std::string& name) {
  return p.flags.count(name) != 0;
}

// --- Output ----------------------------------------------------------------------

// Prints a failed operation as one line.
int Fail(const Io& io, const absl::Status& status) {
  std::string message(status.message());
  absl::StrReplaceAll({{"\r", " "}, {"\n", " "}}, &message);
  if (!absl::StartsWith(message, "canal")) {
    message = absl::StrCat("canal: ", message);
  }
  *io.err << message << "\n" << std::flush;
  return ExitCodeFor(status);
}

int UsageError(const Io& io, absl::string_view command,
               absl::string_view what) {
  *io.err << "canal" << (command.empty() ? "" : " ") << command << ": " << what
          << " (see 'canal" << (command.empty() ? "" : " ") << command
          << " --help')\n"
          << std::flush;
  return kExitUsage;
}

// Serialises writes of whole lines or chunks to one stream.
class Printer {
 public:
  explicit Printer(std::ostream* out) : out_(out) {}
  void Write(absl::string_view data, bool newline) {
    absl::MutexLock lock(&mu_);
    out_->write(data.data(), static_cast<std::streamsize>(data.size()));
    if (newline) out_->put('\n');
    out_->flush();
  }

 private:
  absl::Mutex mu_;
  std::ostream* out_;
};

// --- serve ---------------------------------------------------------------------

void ServeClient(canal::Channel& ch, bool echo, Printer& printer) {
  const bool message = ch.mode() == canal::PipeMode::kMessage;
  if (message) {
    while (true) {
      absl::StatusOr<std::string> msg = ch.ReadMessage();
      if (!msg.ok()) return;
      if (echo) {
        if (!ch.WriteMessage(*msg).ok()) return;
      } else {
        printer.Write(*msg, true);
      }
    }
  }
  std::vector<char> buffer(64 * 1024);
  while (true) {
    absl::StatusOr<canal::ReadResult> r = ch.Read(absl::MakeSpan(buffer));
    if (!r.ok()) return;
    const absl::string_view data(buffer.data(), r->size);
    if (echo) {
      if (!ch.Write(data).ok()) return;
    } else {
      printer.Write(data, false);
    }
  }
}

int Serve(const Parsed& p, const Io& io, StopSource* stop) {
  absl::StatusOr<int64_t> max_instances =
      IntFlag(p, "max-instances", canal::kUnlimitedInstances, 1,
              canal::kMaxInstanceLimit);
  if (!max_instances.ok()) {
    return UsageError(io, "serve", max_instances.status().message());
  }
  absl::StatusOr<int64_t> count = IntFlag(p, "count", 0, 1, INT32_MAX);
  if (!count.ok()) return UsageError(io, "serve", count.status().message());

  canal::ListenerOptions options;
  options.mode = Has(p, "message") ? canal::PipeMode::kMessage
                                   : canal::PipeMode::kByte;
  options.max_instances = static_cast<int>(*max_instances);
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(p.args[0], options);
  if (!listener.ok()) return Fail(io, listener.status());

  const bool echo = Has(p, "echo");
  Printer printer(io.out);
  std::atomic<int64_t> finished{0};
  std::vector<std::thread> threads;
  {
    StopScope stop_listener(stop, [&listener] { listener->Close(); });
    while (true) {
      absl::StatusOr<canal::Channel> ch = listener->Accept();
      if (!ch.ok()) break;  // Cancelled: stopped, or --count reached.
      threads.emplace_back([c = std::move(*ch), echo, stop, &printer,
                            &finished, &listener, &count]() mutable {
        {
          StopScope stop_client(stop, [&c] { c.Close(); });
          ServeClient(c, echo, printer);
          c.Close();
        }
        if (finished.fetch_add(1) + 1 == *count) listener->Close();
      });
    }
  }
  for (std::thread& t : threads) t.join();
  return kExitOk;
}

// --- connect ---------------------------------------------------------------------

// State shared by `connect`'s threads. The input thread may outlive the
// command (it can be blocked reading a terminal), so it is reference-counted.
struct ConnectState {
  explicit ConnectState(canal::Channel c) : channel(std::move(c)) {}
  canal::Channel channel;
  absl::Mutex mu;
  bool input_done = false;     // end of input (or failure to send)
  bool peer_done = false;      // the listener closed (or the channel broke)
  bool input_exited = false;   // the input thread has returned
  bool stop_requested = false;  // Ctrl-C
  absl::Time last_activity;    // last data from the peer, or end of input
  absl::Status input_status;   // why sending stopped, if it failed
};

void CopyInput(std::shared_ptr<ConnectState> state,
               std::function<absl::StatusOr<size_t>(absl::Span<char>)> read) {
  const bool message = state->channel.mode() == canal::PipeMode::kMessage;
  absl::Status status;
  std::string pending;  // message mode: an incomplete line
  std::vector<char> buffer(64 * 1024);
  while (read) {
    absl::StatusOr<size_t> n = read(absl::MakeSpan(buffer));
    if (!n.ok()) {
      status = n.status();
      break;
    }
    if (*n == 0) break;
    const absl::string_view data(buffer.data(), *n);
    if (!message) {
      status = state->channel.Write(data);
      if (!status.ok()) break;
      continue;
    }
    pending.append(data.data(), data.size());
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      absl::string_view line(pending.data() + start, nl - start);
      if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
      status = state->channel.WriteMessage(line);
      if (!status.ok()) break;
    }
    if (!status.ok()) break;
    pending.erase(0, start);
  }
  if (status.ok() && message && !pending.empty()) {
    status = state->channel.WriteMessage(pending);
  }
  absl::MutexLock lock(&state->mu);
  state->input_done = true;
  state->input_exited = true;
  state->input_status = status;
  state->last_activity = absl::Now();
}

int Connect(const Parsed& p, const Io& io, StopSource* stop) {
  absl::StatusOr<absl::Duration> timeout =
      DurationFlag(p, "timeout", absl::Seconds(5));
  if (!timeout.ok()) return UsageError(io, "connect", timeout.status().message());
  absl::StatusOr<absl::Duration> linger =
      DurationFlag(p, "linger", absl::Milliseconds(500));
  if (!linger.ok()) return UsageError(io, "connect", linger.status().message());

  canal::ConnectOptions options;
  options.timeout = *timeout;
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(p.args[0], options);
  if (!ch.ok()) return Fail(io, ch.status());
  const bool message = ch->mode() == canal::PipeMode::kMessage;
  if (Has(p, "message") && !message) {
    return Fail(io, absl::FailedPreconditionError(absl::StrCat(
                        "canal connect \"", p.args[0],
                        "\": the listener is in byte mode, not message mode")));
  }
  auto state = std::make_shared<ConnectState>(std::move(*ch));
  state->last_activity = absl::Now();

  // The pipe to standard output, on a thread of its own.
  absl::Status output_status;
  std::thread output([state, message, &io, &output_status] {
    std::vector<char> buffer(64 * 1024);
    absl::Status status;
    while (true) {
      if (message) {
        absl::StatusOr<std::string> msg = state->channel.ReadMessage();
        if (!msg.ok()) {
          status = msg.status();
          break;
        }
        io.out->write(msg->data(), static_cast<std::streamsize>(msg->size()));
        io.out->put('\n');
      } else {
        absl::StatusOr<canal::ReadResult> r =
            state->channel.Read(absl::MakeSpan(buffer));
        if (!r.ok()) {
          status = r.status();
          break;
        }
        io.out->write(buffer.data(), static_cast<std::streamsize>(r->size));
      }
      io.out->flush();
      absl::MutexLock lock(&state->mu);
      state->last_activity = absl::Now();
    }
    absl::MutexLock lock(&state->mu);
    state->peer_done = true;
    output_status = status;
  });
  std::thread input(CopyInput, state, io.read_input);

  {
    StopScope stop_scope(stop, [state] {
      absl::MutexLock lock(&state->mu);
      state->stop_requested = true;
    });
    absl::MutexLock lock(&state->mu);
    while (!state->peer_done && !state->stop_requested) {
      if (state->input_done) {
        const absl::Time deadline = state->last_activity + *linger;
        if (absl::Now() >= deadline) break;
        state->mu.AwaitWithDeadline(
            absl::Condition(+[](ConnectState* s) {
              return s->peer_done || s->stop_requested;
            }, state.get()),
            deadline);
      } else {
        state->mu.Await(absl::Condition(
            +[](ConnectState* s) {
              return s->peer_done || s->input_done || s->stop_requested;
            },
            state.get()));
      }
    }
  }
  state->channel.Close();  // wakes the output thread (and a blocked write)
  output.join();
  bool input_exited;
  absl::Status input_status;
  {
    absl::MutexLock lock(&state->mu);
    input_exited = state->input_exited;
    input_status = state->input_status;
  }
  if (input_exited) {
    input.join();
  } else {
    input.detach();  // blocked reading a terminal; it holds `state`.
  }
  // The listener closing is the normal end; a broken channel is not.
  if (!output_status.ok() && !absl::IsOutOfRange(output_status) &&
      !absl::IsCancelled(output_status)) {
    return Fail(io, output_status);
  }
  if (!input_status.ok() && !absl::IsCancelled(input_status) &&
      !absl::IsUnavailable(input_status)) {
    return Fail(io, input_status);
  }
  return kExitOk;
}

// --- call, wait ----------------------------------------------------------------------

int CallCommand(const Parsed& p, const Io& io) {
  absl::StatusOr<absl::Duration> timeout =
      DurationFlag(p, "timeout", absl::Seconds(5));
  if (!timeout.ok()) return UsageError(io, "call", timeout.status().message());
  absl::StatusOr<std::string> reply = canal::Call(p.args[0], p.args[1], *timeout);
  if (!reply.ok()) return Fail(io, reply.status());
  *io.out << *reply << "\n" << std::flush;
  return kExitOk;
}

int Wait(const Parsed& p, const Io& io) {
  absl::StatusOr<absl::Duration> timeout =
      DurationFlag(p, "timeout", absl::Seconds(5));
  if (!timeout.ok()) return UsageError(io, "wait", timeout.status().message());
  const absl::Time deadline = absl::Now() + *timeout;
  while (true) {
    const absl::Duration left = std::max(deadline - absl::Now(),
                                         absl::ZeroDuration());
    absl::Status status = canal::WaitForListener(p.args[0], left);
    if (status.ok()) return kExitOk;
    if (!absl::IsNotFound(status) || !Has(p, "poll")) return Fail(io, status);
    if (left == absl::ZeroDuration()) {
      return Fail(io, absl::DeadlineExceededError(absl::StrCat(
                          "canal wait \"", p.args[0],
                          "\": no listener appeared within ",
                          absl::FormatDuration(*timeout))));
    }
    // No notification exists for "a name appeared": look again shortly.
    absl::SleepFor(std::min(left, absl::Milliseconds(10)));
  }
}

// --- bench ----------------------------------------------------------------------------

int Bench(const Parsed& p, const Io& io, StopSource* stop) {
  BenchOptions options;
  if (Has(p, "mode")) {
    const std::string& mode = p.flags.at("mode");
    if (mode != "byte" && mode != "message") {
      return UsageError(io, "bench",
                        absl::StrCat("--mode: \"", mode,
                                     "\" is neither byte nor message"));
    }
    options.message_mode = mode == "message";
  }
  absl::StatusOr<int64_t> size = IntFlag(p, "size", 4096, 1, 16 << 20);
  if (!size.ok()) return UsageError(io, "bench", size.status().message());
  absl::StatusOr<int64_t> clients = IntFlag(p, "clients", 1, 1, 64);
  if (!clients.ok()) return UsageError(io, "bench", clients.status().message());
  absl::StatusOr<absl::Duration> duration =
      DurationFlag(p, "duration", absl::Seconds(1));
  if (!duration.ok() || *duration <= absl::ZeroDuration() ||
      *duration == absl::InfiniteDuration()) {
    return UsageError(io, "bench",
                      "--duration: needs a positive, finite duration");
  }
  options.size = static_cast<size_t>(*size);
  options.clients = static_cast<int>(*clients);
  options.duration = *duration;

  std::function<void(absl::string_view)> progress;
  if (io.out_is_terminal) {
    progress = [&io](absl::string_view line) {
      *io.out << "\r\033[K" << line << std::flush;
    };
  }
  absl::StatusOr<BenchReport> report = RunBench(options, progress, stop);
  if (io.out_is_terminal) *io.out << "\r\033[K" << std::flush;
  if (!report.ok()) return Fail(io, report.status());
  *io.out << (Has(p, "json") ? ReportJson(*report) + "\n" : ReportText(*report))
          << std::flush;
  return kExitOk;
}

}  // namespace

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kDeadlineExceeded:
      return kExitTimeout;
    case absl::StatusCode::kPermissionDenied:
      return kExitPermissionDenied;
    default:
      return kExitError;
  }
}

std::string MainHelp() {
  std::string text =
      "canal: talk to canal pipes (Windows named pipes, Unix sockets)\n\n"
      "Usage: canal COMMAND [ARGS...]\n\nCommands:\n";
  for (const Command& c : Commands()) absl::StrAppend(&text, "  ", c.synopsis, "\n");
  absl::StrAppend(&text,
                  "\n'canal COMMAND --help' describes a command.\n\n", kNames,
                  "\n", kExitCodes);
  return text;
}

int Run(const std::vector<std::string>& args, const Io& io, StopSource* stop) {
  if (args.empty()) return UsageError(io, "", "missing COMMAND");
  if (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    *io.out << MainHelp() << std::flush;
    return kExitOk;
  }
  const Command* command = nullptr;
  for (const Command& c : Commands()) {
    if (c.name == args[0]) command = &c;
  }
  if (command == nullptr) {
    return UsageError(io, "", absl::StrCat("unknown command \"", args[0], "\""));
  }
  absl::StatusOr<Parsed> parsed = Parse(*command, args);
  if (!parsed.ok()) {
    return UsageError(io, command->name, parsed.status().message());
  }
  if (parsed->help) {
    *io.out << CommandHelp(*command) << std::flush;
    return kExitOk;
  }
  if (command->name == "serve") return Serve(*parsed, io, stop);
  if (command->name == "connect") return Connect(*parsed, io, stop);
  if (command->name == "call") return CallCommand(*parsed, io);
  if (command->name == "wait") return Wait(*parsed, io);
  return Bench(*parsed, io, stop);
}

}  // namespace canal_cli
