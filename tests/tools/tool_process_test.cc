// SPDX-License-Identifier: Apache-2.0
// The built `canal` binary (canal.exe under Wine) as separate processes, on
// both backends: version and help, exit codes, serve + call, serve --exec +
// connect, the stdin/stdout relay, list and bench. The binary is found
// through $CANAL_TOOL, the --exec child through $CANAL_TEST_CHILD.
// tools_process_test.sh adds the POSIX-only cases (signals, other users,
// socat, Python and Node.js as peers).

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "canal/version.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

#ifndef _WIN32
#include <unistd.h>
#endif

namespace {

using canal_test::UniqueName;

// Generous: a guard against hangs, never a measurement.
constexpr absl::Duration kGuard = absl::Seconds(60);

std::string ToolPath() {
  const char* path = std::getenv("CANAL_TOOL");
  std::string p = path != nullptr ? path : "";
#ifdef _WIN32
  if (!p.empty() && p[0] == '/') {
    p = "Z:" + absl::StrReplaceAll(p, {{"/", "\\"}});
  }
#endif
  return p;
}

struct ToolResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs `canal ARGS` with `input` on its stdin, to its end.
ToolResult Tool(std::vector<std::string> args, const std::string& input = "") {
  args.insert(args.begin(), ToolPath());
  canal::RunOptions options;
  options.timeout = kGuard;
  absl::StatusOr<canal::RunResult> r = canal::Run(args, input, options);
  ToolResult result;
  if (!r.ok()) {
    result.err = std::string(r.status().message());
    return result;
  }
  result.code = r->status.exited ? r->status.exit_code : -r->status.signal;
  result.out = std::move(r->stdout_data);
  result.err = std::move(r->stderr_data);
  return result;
}

// `canal serve ARGS` as a child whose stdin the test writes; it must end
// by itself (--count).
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) {
    args.insert(args.begin(), {ToolPath(), "serve"});
    canal::SubprocessOptions options;
    options.stdin_mode = canal::StdioMode::kPipe;
    options.stdout_mode = canal::StdioMode::kPipe;
    options.stderr_mode = canal::StdioMode::kInherit;
    options.kill_on_destroy = true;
    absl::StatusOr<canal::Subprocess> child =
        canal::Subprocess::Start(args, options);
    EXPECT_TRUE(child.ok()) << child.status();
    if (child.ok()) child_ = *std::move(child);
  }
  canal::Channel& stdin_channel() { return child_.stdin_channel(); }
  // Closes its stdin, reads its stdout to the end, and waits for it.
  int Finish(std::string* out) {
    child_.stdin_channel().Close();
    char buffer[4096];
    while (true) {
      absl::StatusOr<canal::ReadResult> r =
          child_.stdout_channel().Read(absl::MakeSpan(buffer), kGuard);
      if (!r.ok()) break;
      out->append(buffer, r->size);
    }
    absl::StatusOr<canal::ExitStatus> status = child_.Wait(kGuard);
    if (!status.ok()) return -1;
    return status->exited ? status->exit_code : -status->signal;
  }

 private:
  canal::Subprocess child_;
};

void AwaitListener(const std::string& name) {
  ToolResult r = Tool({"wait", name, "--poll", "--timeout", "30s"});
  ASSERT_EQ(r.code, 0) << r.err;
}

TEST(ToolProcessTest, VersionAndHelp) {
  ToolResult v = Tool({"--version"});
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_EQ(v.out, absl::StrCat("canal ", CANAL_VERSION_STRING, "\n"));
  for (const char* command :
       {"serve", "connect", "call", "wait", "list", "bench"}) {
    ToolResult h = Tool({command, "--help"});
    EXPECT_EQ(h.code, 0) << command;
    EXPECT_TRUE(absl::StartsWith(h.out, std::string("Usage: canal ") + command))
        << h.out;
  }
  ToolResult main_help = Tool({"--help"});
  EXPECT_EQ(main_help.code, 0);
  EXPECT_TRUE(absl::StrContains(main_help.out, "permission denied"));
}

TEST(ToolProcessTest, ExitCodes) {
  const std::string nobody = UniqueName("tool-nobody");
  struct Case {
    std::vector<std::string> args;
    int code;
  };
  for (const Case& k : std::vector<Case>{
           {{}, 2},
           {{"serve", "x", "--bogus"}, 2},
           {{"wait", nobody}, 3},
           {{"call", nobody, "x"}, 3},
           {{"connect", nobody}, 3},
           {{"wait", nobody, "--poll", "--timeout", "100ms"}, 4},
       }) {
    ToolResult r = Tool(k.args);
    EXPECT_EQ(r.code, k.code) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(absl::StartsWith(r.err, "canal")) << r.err;
  }
}

TEST(ToolProcessTest, ServeEchoAndCall) {
  const std::string name = UniqueName("tool-echo");
  ServerProcess server({name, "--message", "--echo", "--count", "3"});
  AwaitListener(name);
  ToolResult a = Tool({"call", name, "hello there"});
  EXPECT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, "hello there\n");
  ToolResult b = Tool({"call", name, "-", "--hex"}, "00ff\n");
  EXPECT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(b.out, "00ff\n");
  ToolResult c =
      Tool({"call", name, "-", "--frames"}, std::string("\0\0\0\3a\nb", 7));
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, std::string("\0\0\0\3a\nb", 7));
  std::string out;
  EXPECT_EQ(server.Finish(&out), 0);
  EXPECT_EQ(out, "");
}

TEST(ToolProcessTest, ExecAndConnect) {
  const std::string name = UniqueName("tool-exec");
  ServerProcess server({name, "--exec",
                        "'" + canal_test::ChildPath() + "' argv x", "--count",
                        "1"});
  AwaitListener(name);
  // The child prints its argument in hex and exits: connect gets that,
  // then the end of the stream.
  ToolResult r = Tool({"connect", name, "--linger", "30s", "--dump", "text"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "78\n");
  // --dump text on stderr (which is in text mode on Windows: "\r\n").
  const std::string err = absl::StrReplaceAll(r.err, {{"\r", ""}});
  EXPECT_TRUE(absl::StartsWith(err, "< ")) << r.err;
  EXPECT_TRUE(absl::StrContains(err, "78\n")) << r.err;
  std::string out;
  EXPECT_EQ(server.Finish(&out), 0);
}

TEST(ToolProcessTest, TheRelayGoesBothWays) {
  const std::string name = UniqueName("tool-relay");
  ServerProcess server({name, "--count", "1"});
  CANAL_ASSERT_OK(server.stdin_channel().Write("from the server\n"));
  AwaitListener(name);
  // POSIX: the client half-closes at the end of its input, the server
  // finishes the session at once. Windows pipes cannot half-close, so the
  // client ends after --linger without data.
  ToolResult r = Tool({"connect", name, "--linger", "3s"}, "from the client\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "from the server\n");
  std::string out;
  EXPECT_EQ(server.Finish(&out), 0);
  EXPECT_EQ(out, "from the client\n");
}

TEST(ToolProcessTest, ListShowsTheServer) {
  const std::string name = UniqueName("tool-list");
  ServerProcess server({name, "--message", "--echo", "--count", "1"});
  AwaitListener(name);
  ToolResult r = Tool({"list", "--json"});
  if (canal_test::RunningUnderWine()) {
    EXPECT_EQ(r.code, 1);
    EXPECT_TRUE(absl::StrContains(r.err, "cannot list named pipes")) << r.err;
  } else {
    ASSERT_EQ(r.code, 0) << r.err;
    nlohmann::json list = nlohmann::json::parse(r.out, nullptr, false);
    bool found = false;
    for (const auto& p : list) found = found || p["name"] == name;
    EXPECT_TRUE(found) << r.out;
  }
  ToolResult call = Tool({"call", name, "bye"});  // --count 1: ends it
  EXPECT_EQ(call.code, 0) << call.err;
  std::string out;
  EXPECT_EQ(server.Finish(&out), 0);
  if (canal_test::RunningUnderWine()) {
    GTEST_SKIP() << "Wine cannot enumerate \\\\.\\pipe\\";
  }
}

TEST(ToolProcessTest, ExpectUserRefusesAnotherUsersServer) {
#ifndef _WIN32
  if (::geteuid() == 0) {
    GTEST_SKIP() << "as root every server counts as an administrator's; "
                    "tools_process_test.sh runs a server as another user";
  }
  const std::string other = "424242";
#else
  const std::string other = "S-1-5-21-1000-2000-3000-4242";
#endif
  // The refused client did connect (it checks the server afterwards), so
  // it counts as one of the two clients.
  const std::string name = UniqueName("tool-expect");
  ServerProcess server({name, "--message", "--echo", "--count", "2"});
  AwaitListener(name);
  ToolResult r = Tool({"call", name, "x", "--expect-user", other});
  EXPECT_EQ(r.code, 5) << r.err;
  ToolResult ok = Tool({"call", name, "x", "--expect-user", "any"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  std::string out;
  EXPECT_EQ(server.Finish(&out), 0);
}

TEST(ToolProcessTest, BenchJson) {
  ToolResult r =
      Tool({"bench", "--duration", "50ms", "--size", "512", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_TRUE(j["canal"]["bytes_per_second"].is_number());
  EXPECT_TRUE(j["raw"]["latency_p99_us"].is_number());
  EXPECT_TRUE(j["ratio"]["throughput"].is_number());
  EXPECT_EQ(r.out.find('\r'), std::string::npos);  // not a terminal
}

}  // namespace
