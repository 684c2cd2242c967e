// Tests of the `canal` command-line tool, run in-process through the cli
// library (tools/canal/cli.h) so that they run unchanged on both backends.
// tools_process_test.sh drives the real binary on POSIX.

#include "tools/canal/cli.h"

#include <algorithm>
#include <memory>
#include <sstream>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::UniqueName;

// An output stream that threads may write to while a test waits for text.
class SyncBuf : public std::streambuf {
 public:
  std::string Text() const {
    absl::MutexLock lock(&mu_);
    return text_;
  }

  // Waits until the text contains `what`; false after `timeout`.
  bool WaitFor(absl::string_view what, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto has = [this, what] { return absl::StrContains(text_, what); };
    return mu_.AwaitWithTimeout(absl::Condition(&has), timeout);
  }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      absl::MutexLock lock(&mu_);
      text_.push_back(static_cast<char>(c));
    }
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, static_cast<size_t>(n));
    return n;
  }

 private:
  mutable absl::Mutex mu_;
  std::string text_;
};

// One command's streams.
struct Capture {
  SyncBuf out_buf;
  SyncBuf err_buf;
  std::ostream out{&out_buf};
  std::ostream err{&err_buf};
  canal_cli::Io io;

  Capture() {
    io.out = &out;
    io.err = &err;
  }
  // Input that is `text`, then end of input.
  void SetInput(std::string text) {
    auto state = std::make_shared<std::pair<std::string, size_t>>(
        std::move(text), 0);
    io.read_input = [state](absl::Span<char> buffer) -> absl::StatusOr<size_t> {
      const size_t n =
          std::min(buffer.size(), state->first.size() - state->second);
      state->first.copy(buffer.data(), n, state->second);
      state->second += n;
      return n;
    };
  }
};

int RunCli(std::vector<std::string> args, Capture& c,
           canal_cli::StopSource* stop = nullptr) {
  return canal_cli::Run(args, c.io, stop);
}

// A `canal serve` running on a thread until Stop().
class Server {
 public:
  explicit Server(std::vector<std::string> args)
      : thread_([this, args] { code_ = canal_cli::Run(args, capture_.io, &stop_); }) {}
  ~Server() {
    stop_.Stop();
    if (thread_.joinable()) thread_.join();
  }
  // Stops and returns the exit code.
  int Stop() {
    stop_.Stop();
    thread_.join();
    return code_;
  }
  // Waits for the server to end by itself and returns the exit code.
  int Join() {
    thread_.join();
    return code_;
  }
  Capture& capture() { return capture_; }

 private:
  Capture capture_;
  canal_cli::StopSource stop_;
  int code_ = -1;
  std::thread thread_;
};

// Waits (polling, bounded) until `name` has a listener.
void AwaitListener(const std::string& name) {
  Capture c;
  ASSERT_EQ(RunCli({"wait", name, "--poll", "--timeout", "10s"}, c), 0)
      << c.err_buf.Text();
}

int LineCount(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST(CliTest, HelpListsCommandsAndExitCodes) {
  Capture c;
  EXPECT_EQ(RunCli({"--help"}, c), 0);
  const std::string out = c.out_buf.Text();
  for (const char* word : {"serve", "connect", "call", "wait", "bench",
                           "Exit codes", "not found", "timeout",
                           "permission denied"}) {
    EXPECT_TRUE(absl::StrContains(out, word)) << word << "\n" << out;
  }
}

TEST(CliTest, EveryCommandHasHelp) {
  for (const char* command : {"serve", "connect", "call", "wait", "bench"}) {
    Capture c;
    EXPECT_EQ(RunCli({command, "--help"}, c), 0) << command;
    EXPECT_TRUE(absl::StartsWith(c.out_buf.Text(),
                                 std::string("Usage: canal ") + command))
        << c.out_buf.Text();
    EXPECT_TRUE(absl::StrContains(c.out_buf.Text(), "Exit codes"));
    EXPECT_EQ(c.err_buf.Text(), "");
  }
}

TEST(CliTest, UsageErrorsExit2WithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"call", "x"},
      {"call"},
      {"serve", "x", "--no-such-flag"},
      {"serve", "x", "--max-instances", "0"},
      {"wait", "x", "--timeout", "soon"},
      {"wait", "x", "--timeout"},
      {"bench", "--mode", "stream"},
      {"bench", "--size", "-3"},
      {"connect", "a", "b"},
  };
  for (const auto& args : cases) {
    Capture c;
    EXPECT_EQ(RunCli(args, c), canal_cli::kExitUsage)
        << absl::StrJoin(args, " ");
    EXPECT_EQ(LineCount(c.err_buf.Text()), 1) << c.err_buf.Text();
    EXPECT_TRUE(absl::StartsWith(c.err_buf.Text(), "canal"));
    EXPECT_EQ(c.out_buf.Text(), "");
  }
}

TEST(CliTest, ExitCodesForStatus) {
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::NotFoundError("")), 3);
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::DeadlineExceededError("")), 4);
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::PermissionDeniedError("")), 5);
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::UnavailableError("")), 1);
}

TEST(CliTest, WaitWithoutListenerIsNotFound) {
  Capture c;
  EXPECT_EQ(RunCli({"wait", UniqueName("cli-nf")}, c), canal_cli::kExitNotFound);
  EXPECT_EQ(LineCount(c.err_buf.Text()), 1) << c.err_buf.Text();
}

TEST(CliTest, CallWithoutListenerIsNotFound) {
  Capture c;
  EXPECT_EQ(RunCli({"call", UniqueName("cli-nf"), "x"}, c),
            canal_cli::kExitNotFound);
}

TEST(CliTest, WaitPollTimesOut) {
  Capture c;
  EXPECT_EQ(RunCli({"wait", UniqueName("cli-poll"), "--poll", "--timeout",
                    "100ms"}, c),
            canal_cli::kExitTimeout);
  EXPECT_TRUE(absl::StrContains(c.err_buf.Text(), "no listener appeared"));
}

TEST(CliTest, WaitOnBusyListenerTimesOut) {
  const std::string name = UniqueName("cli-busy");
  Server server({"serve", name, "--max-instances", "1"});
  AwaitListener(name);
  absl::StatusOr<canal::Channel> holder = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(holder);
  Capture c;
  EXPECT_EQ(RunCli({"wait", name, "--timeout", "200ms"}, c),
            canal_cli::kExitTimeout)
      << c.err_buf.Text();
  holder->Close();
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CliTest, ServeEchoAndCall) {
  const std::string name = UniqueName("cli-echo");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
  for (const char* request : {"hello", "second call", ""}) {
    Capture c;
    EXPECT_EQ(RunCli({"call", name, request, "--timeout", "10s"}, c), 0)
        << c.err_buf.Text();
    EXPECT_EQ(c.out_buf.Text(), std::string(request) + "\n");
  }
  EXPECT_EQ(server.Stop(), 0);  // Ctrl-C
  EXPECT_EQ(server.capture().err_buf.Text(), "");
}

TEST(CliTest, ServeHandlesClientsConcurrently) {
  const std::string name = UniqueName("cli-multi");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
  // Two clients connected at once are both served.
  absl::StatusOr<canal::Channel> a = canal::Channel::Connect(name);
  absl::StatusOr<canal::Channel> b = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(a);
  CANAL_ASSERT_OK(b);
  absl::StatusOr<std::string> rb = b->Transact("from b", absl::Seconds(10));
  absl::StatusOr<std::string> ra = a->Transact("from a", absl::Seconds(10));
  CANAL_ASSERT_OK(ra);
  CANAL_ASSERT_OK(rb);
  EXPECT_EQ(*ra, "from a");
  EXPECT_EQ(*rb, "from b");
  // Stopping closes the connected clients' channels too.
  EXPECT_EQ(server.Stop(), 0);
  CANAL_EXPECT_CODE(a->ReadMessage(absl::Seconds(10)), kOutOfRange);
}

TEST(CliTest, ConnectCopiesStdinToServe) {
  const std::string name = UniqueName("cli-pipe");
  Server server({"serve", name, "--count", "1"});
  AwaitListener(name);
  Capture c;
  c.SetInput("line one\nline two\nno newline");
  EXPECT_EQ(RunCli({"connect", name, "--linger", "0s"}, c), 0)
      << c.err_buf.Text();
  EXPECT_EQ(server.Join(), 0);  // --count 1: ends after this client
  EXPECT_EQ(server.capture().out_buf.Text(),
            "line one\nline two\nno newline");
}

TEST(CliTest, ConnectMessageModeLinesAreMessages) {
  const std::string name = UniqueName("cli-lines");
  Server server({"serve", name, "--message", "--count", "1"});
  AwaitListener(name);
  Capture c;
  c.SetInput("alpha\r\nbeta\n\ngamma");
  EXPECT_EQ(RunCli({"connect", name, "--message", "--linger", "0s"}, c), 0)
      << c.err_buf.Text();
  EXPECT_EQ(server.Join(), 0);
  // One message per line, printed one per line by serve; the empty line is
  // an empty message.
  EXPECT_EQ(server.capture().out_buf.Text(), "alpha\nbeta\n\ngamma\n");
}

TEST(CliTest, ConnectPrintsEchoedMessages) {
  const std::string name = UniqueName("cli-conn-echo");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
  Capture c;
  // Input ends only once both echoes are printed, so no timing is involved.
  auto sent = std::make_shared<bool>(false);
  SyncBuf* out = &c.out_buf;
  c.io.read_input = [sent, out](absl::Span<char> buffer)
      -> absl::StatusOr<size_t> {
    if (!*sent) {
      *sent = true;
      const std::string text = "ping\npong\n";
      text.copy(buffer.data(), text.size());
      return text.size();
    }
    if (!out->WaitFor("ping\npong\n", absl::Seconds(20))) {
      return absl::DeadlineExceededError("echo never arrived");
    }
    return 0;
  };
  EXPECT_EQ(RunCli({"connect", name, "--linger", "0s"}, c), 0)
      << c.err_buf.Text();
  EXPECT_EQ(c.out_buf.Text(), "ping\npong\n");
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CliTest, ConnectMessageFlagRefusesByteListener) {
  const std::string name = UniqueName("cli-bytes");
  Server server({"serve", name});
  AwaitListener(name);
  Capture c;
  c.SetInput("");
  EXPECT_EQ(RunCli({"connect", name, "--message"}, c), canal_cli::kExitError);
  EXPECT_TRUE(absl::StrContains(c.err_buf.Text(), "byte mode"))
      << c.err_buf.Text();
  EXPECT_EQ(server.Stop(), 0);
}

void ExpectBenchJson(const std::string& json, const char* mode) {
  EXPECT_TRUE(absl::StartsWith(json, "{")) << json;
  EXPECT_TRUE(absl::EndsWith(json, "}\n")) << json;
  EXPECT_EQ(LineCount(json), 1);
  EXPECT_TRUE(absl::StrContains(json, std::string("\"mode\": \"") + mode));
  for (const char* key :
       {"\"canal\": {", "\"raw\": {", "\"ratio\": {", "\"primitive\"",
        "\"bytes_per_second\"", "\"messages_per_second\"",
        "\"latency_median_us\"", "\"latency_p99_us\"", "\"throughput\"",
        "\"latency_median\""}) {
    EXPECT_TRUE(absl::StrContains(json, key)) << key << " in " << json;
  }
}

TEST(CliTest, BenchJsonHasBothFigures) {
  Capture c;
  ASSERT_EQ(RunCli({"bench", "--duration", "100ms", "--size", "1024",
                    "--json"}, c),
            0)
      << c.err_buf.Text();
  ExpectBenchJson(c.out_buf.Text(), "byte");
}

TEST(CliTest, BenchMessageModeJson) {
  Capture c;
  ASSERT_EQ(RunCli({"bench", "--mode", "message", "--size", "64",
                    "--clients", "2", "--duration", "100ms", "--json"}, c),
            0)
      << c.err_buf.Text();
  ExpectBenchJson(c.out_buf.Text(), "message");
}

TEST(CliTest, BenchTableWithoutTerminalHasNoProgressLine) {
  Capture c;
  ASSERT_EQ(RunCli({"bench", "--duration", "50ms"}, c), 0) << c.err_buf.Text();
  const std::string out = c.out_buf.Text();
  EXPECT_TRUE(absl::StrContains(out, "round trip median")) << out;
  EXPECT_FALSE(absl::StrContains(out, "\r")) << out;
}

}  // namespace
