// SPDX-License-Identifier: Apache-2.0
// Tests of the `canal` command-line tool, run in-process through the cli
// library (tools/canal/cli.h) so that they run unchanged on both backends:
// help, version, usage errors and exit codes, serve (relay, echo, access
// flags, dump, message formats), connect, call, wait and bench. exec_test.cc
// covers serve --exec, list_test.cc covers list, tool_process_test.cc runs
// the built binary.

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "canal/version.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "tests/tools/cli_test_util.h"
#include "tools/canal/message_format.h"

#ifdef _WIN32
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#else
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace {

using canal_cli_test::AwaitListener;
using canal_cli_test::Capture;
using canal_cli_test::LineCount;
using canal_cli_test::RunCli;
using canal_cli_test::ScriptedInput;
using canal_cli_test::Server;
using canal_test::UniqueName;

const char* const kCommands[] = {"serve", "connect", "call",
                                 "wait",  "list",    "bench"};

// Input that ends only once `out` shows `expected`.
void InputUntil(Capture& c, std::string text, std::string expected) {
  auto sent = std::make_shared<bool>(false);
  canal_cli_test::SyncBuf* out = &c.out_buf;
  c.io.read_input = [sent, out, text, expected](
                        absl::Span<char> buffer) -> absl::StatusOr<size_t> {
    if (!*sent) {
      *sent = true;
      text.copy(buffer.data(), text.size());
      return text.size();
    }
    if (!out->WaitFor(expected)) {
      return absl::DeadlineExceededError("the echo never arrived");
    }
    return 0;
  };
}

// --- Help, version, usage ----------------------------------------------------

TEST(CliTest, HelpListsCommandsAndExitCodes) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--help"}, {"-h"}, {"help"}}) {
    Capture c;
    EXPECT_EQ(RunCli(args, c), 0);
    const std::string out = c.Out();
    for (const char* word :
         {"serve", "connect", "call", "wait", "list", "bench", "--version",
          "Exit codes", "not found", "timeout", "permission denied"}) {
      EXPECT_TRUE(absl::StrContains(out, word)) << word << "\n" << out;
    }
  }
}

TEST(CliTest, VersionPrintsTheGeneratedVersion) {
  Capture c;
  EXPECT_EQ(RunCli({"--version"}, c), 0);
  EXPECT_EQ(c.Out(), absl::StrCat("canal ", CANAL_VERSION_STRING, "\n"));
  EXPECT_EQ(c.Err(), "");
}

TEST(CliTest, EveryCommandHasHelp) {
  for (const char* command : kCommands) {
    for (bool via_help_command : {false, true}) {
      Capture c;
      std::vector<std::string> args =
          via_help_command ? std::vector<std::string>{"help", command}
                           : std::vector<std::string>{command, "--help"};
      EXPECT_EQ(RunCli(args, c), 0) << command;
      EXPECT_TRUE(
          absl::StartsWith(c.Out(), std::string("Usage: canal ") + command))
          << c.Out();
      EXPECT_TRUE(absl::StrContains(c.Out(), "Exit codes"));
      EXPECT_TRUE(absl::StrContains(c.Out(), "--help"));
      EXPECT_EQ(c.Err(), "");
    }
  }
  // The help of serve, connect and call explains the frame format exactly.
  for (const char* command : {"serve", "connect", "call"}) {
    Capture c;
    RunCli({command, "-h"}, c);
    EXPECT_TRUE(absl::StrContains(c.Out(), "4-byte big-endian length"))
        << command;
  }
}

TEST(CliTest, UsageErrorsExit2WithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"help", "serve", "x"},
      {"call", "x"},
      {"call"},
      {"call", "x", "zz", "--hex"},
      {"call", "x", "y", "--hex", "--frames"},
      {"call", "x", "y", "--expect-user", "no-such-user-canal-test"},
      {"connect", "a", "b"},
      {"connect", "a", "--linger", "-1s"},
      {"connect", "a", "--dump", "binary"},
      {"serve", "x", "--no-such-flag"},
      {"serve", "x", "--max-instances", "0"},
      {"serve", "x", "--max-instances", "255"},
      {"serve", "x", "--count", "0"},
      {"serve", "x", "--hex"},
      {"serve", "x", "--message", "--hex", "--frames"},
      {"serve", "x", "--message", "--echo", "--hex"},
      {"serve", "x", "--echo", "--exec", "cat"},
      {"serve", "x", "--exec", ""},
      {"serve", "x", "--exec", "cat 'unterminated"},
      {"serve", "x", "--max-children", "2"},
      {"serve", "x", "--exec", "cat", "--max-children", "0"},
      {"serve", "x", "--allow-local-users", "--allow-group", "0"},
      {"serve", "x", "--allow-group", "no-such-group-canal-test"},
      {"serve"},
      {"wait", "x", "--timeout", "soon"},
      {"wait", "x", "--timeout"},
      {"list", "a", "b"},
      {"bench", "--mode", "stream"},
      {"bench", "--size", "-3"},
      {"bench", "--size", "0"},
      {"bench", "--clients", "65"},
      {"bench", "--duration", "0s"},
      {"bench", "--duration", "inf"},
      {"bench", "--transport", "memory"},
  };
  for (const auto& args : cases) {
    Capture c;
    EXPECT_EQ(RunCli(args, c), canal_cli::kExitUsage)
        << absl::StrJoin(args, " ") << "\n"
        << c.Err();
    EXPECT_EQ(LineCount(c.Err()), 1) << c.Err();
    EXPECT_TRUE(absl::StartsWith(c.Err(), "canal")) << c.Err();
    EXPECT_TRUE(absl::StrContains(c.Err(), "--help')")) << c.Err();
    EXPECT_EQ(c.Out(), "");
  }
}

TEST(CliTest, ExitCodesForStatus) {
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::NotFoundError("")), 3);
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::DeadlineExceededError("")), 4);
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::PermissionDeniedError("")), 5);
  EXPECT_EQ(canal_cli::ExitCodeFor(absl::UnavailableError("")), 1);
}

// --- wait
// ----------------------------------------------------------------------

TEST(CliTest, WaitWithoutListenerIsNotFound) {
  Capture c;
  EXPECT_EQ(RunCli({"wait", UniqueName("cli-nf")}, c),
            canal_cli::kExitNotFound);
  EXPECT_EQ(LineCount(c.Err()), 1) << c.Err();
}

TEST(CliTest, WaitPollTimesOut) {
  Capture c;
  EXPECT_EQ(
      RunCli({"wait", UniqueName("cli-poll"), "--poll", "--timeout", "100ms"},
             c),
      canal_cli::kExitTimeout);
  EXPECT_TRUE(absl::StrContains(c.Err(), "no listener appeared"));
}

TEST(CliTest, WaitPollFindsALateListener) {
  const std::string name = UniqueName("cli-late");
  Capture c;
  int code = -1;
  std::thread waiter([&] {
    code = RunCli({"wait", name, "--poll", "--timeout", "20s"}, c);
  });
  Server server({"serve", name, "--echo"});
  waiter.join();
  EXPECT_EQ(code, 0) << c.Err();
  EXPECT_EQ(server.Stop(), 0);
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
      << c.Err();
  // connect --timeout: the same wait, then exit code 4.
  Capture c2;
  c2.SetInput("");
  EXPECT_EQ(RunCli({"connect", name, "--timeout", "100ms"}, c2),
            canal_cli::kExitTimeout)
      << c2.Err();
  holder->Close();
  EXPECT_EQ(server.Stop(), 0);
}

// --- call
// ------------------------------------------------------------------------

TEST(CliTest, CallWithoutListenerIsNotFound) {
  Capture c;
  EXPECT_EQ(RunCli({"call", UniqueName("cli-nf"), "x"}, c),
            canal_cli::kExitNotFound);
}

TEST(CliTest, ServeEchoAndCall) {
  const std::string name = UniqueName("cli-echo");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
  for (const char* request : {"hello", "second call", ""}) {
    Capture c;
    EXPECT_EQ(RunCli({"call", name, request, "--timeout", "10s"}, c), 0)
        << c.Err();
    EXPECT_EQ(c.Out(), std::string(request) + "\n");
  }
  EXPECT_EQ(server.Stop(), 0);  // Ctrl-C
  EXPECT_EQ(server.capture().Err(), "");
}

TEST(CliTest, CallOnByteListenerFails) {
  const std::string name = UniqueName("cli-callbyte");
  Server server({"serve", name, "--echo"});
  AwaitListener(name);
  Capture c;
  EXPECT_EQ(RunCli({"call", name, "x"}, c), canal_cli::kExitError);
  EXPECT_EQ(LineCount(c.Err()), 1) << c.Err();
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CliTest, CallBinarySafeFormats) {
  const std::string name = UniqueName("cli-callfmt");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
  const std::string all = canal_test::Pattern(256);
  {
    // --hex: the argument and the reply are hex.
    Capture c;
    EXPECT_EQ(RunCli({"call", name, "--hex", canal_cli::EncodeHex(all)}, c), 0)
        << c.Err();
    EXPECT_EQ(c.Out(), canal_cli::EncodeHex(all) + "\n");
  }
  {
    // "-": the request comes from standard input; one final line break
    // is not part of it.
    Capture c;
    c.SetInput("from stdin\r\n");
    EXPECT_EQ(RunCli({"call", name, "-"}, c), 0) << c.Err();
    EXPECT_EQ(c.Out(), "from stdin\n");
  }
  {
    // "-" with --hex: white space and line breaks between digits ignored.
    Capture c;
    c.SetInput("00 01\nff\n");
    EXPECT_EQ(RunCli({"call", name, "-", "--hex"}, c), 0) << c.Err();
    EXPECT_EQ(c.Out(), "0001ff\n");
  }
  {
    // "-" with --frames: exactly one frame in, one frame out.
    Capture c;
    const std::string frame =
        canal_cli::EncodeMessage(canal_cli::MessageFormat::kFrames, all);
    c.SetInput(frame);
    EXPECT_EQ(RunCli({"call", name, "-", "--frames"}, c), 0) << c.Err();
    EXPECT_EQ(c.Out(), frame);
  }
  {
    // A REQUEST argument with --frames: the reply is a frame.
    Capture c;
    EXPECT_EQ(RunCli({"call", name, "ab", "--frames"}, c), 0) << c.Err();
    EXPECT_EQ(c.Out(), std::string("\0\0\0\2ab", 6));
  }
  for (const std::string& bad :
       {std::string(), std::string("\0\0\0\1a\0\0\0\0", 9),
        std::string("\0\0\0\5ab", 6)}) {
    // Zero frames, two frames, a cut frame: errors, nothing sent.
    Capture c;
    c.SetInput(bad);
    EXPECT_EQ(RunCli({"call", name, "-", "--frames"}, c),
              canal_cli::kExitError);
    EXPECT_EQ(LineCount(c.Err()), 1) << c.Err();
    EXPECT_EQ(c.Out(), "");
  }
  {
    Capture c;
    c.SetInput("zz");
    EXPECT_EQ(RunCli({"call", name, "-", "--hex"}, c), canal_cli::kExitError);
  }
  EXPECT_EQ(server.Stop(), 0);
}

// The uid or SID of this process's user, for --expect-user.
std::string MyUser() {
#ifdef _WIN32
  HANDLE token = nullptr;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return "";
  DWORD size = 0;
  GetTokenInformation(token, TokenUser, nullptr, 0, &size);
  std::vector<unsigned char> buffer(size);
  std::string sid;
  if (GetTokenInformation(token, TokenUser, buffer.data(), size, &size)) {
    char* text = nullptr;
    if (ConvertSidToStringSidA(
            reinterpret_cast<TOKEN_USER*>(buffer.data())->User.Sid, &text)) {
      sid = text;
      LocalFree(text);
    }
  }
  CloseHandle(token);
  return sid;
#else
  return absl::StrCat(::geteuid());
#endif
}

bool RunningAsAdmin() {
#ifdef _WIN32
  return false;  // canal's Windows check admits SYSTEM only, never admins
#else
  return ::geteuid() == 0;
#endif
}

TEST(CliTest, ExpectUserChecksTheServer) {
  const std::string name = UniqueName("cli-expect");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
  const std::string me = MyUser();
  ASSERT_FALSE(me.empty());
  for (const std::string& user : {me, std::string("any")}) {
    Capture c;
    EXPECT_EQ(RunCli({"call", name, "ok", "--expect-user", user}, c), 0)
        << user << ": " << c.Err();
    Capture c2;
    InputUntil(c2, "ok\n", "ok\n");
    EXPECT_EQ(
        RunCli({"connect", name, "--expect-user", user, "--linger", "0s"}, c2),
        0)
        << c2.Err();
    EXPECT_EQ(c2.Out(), "ok\n");
  }
  // Another user: refused with exit code 5 before anything is sent, unless
  // this process's server counts as an administrator (root on POSIX),
  // which canal always admits.
#ifdef _WIN32
  const std::string other = "S-1-5-21-1000-2000-3000-4242";
#else
  const std::string other = "424242";
#endif
  Capture c;
  const int code = RunCli({"call", name, "x", "--expect-user", other}, c);
  if (RunningAsAdmin()) {
    EXPECT_EQ(code, 0) << c.Err();
  } else {
    EXPECT_EQ(code, canal_cli::kExitPermissionDenied) << c.Err();
    EXPECT_EQ(c.Out(), "");
    Capture c2;
    c2.SetInput("x\n");
    EXPECT_EQ(RunCli({"connect", name, "--expect-user", other}, c2),
              canal_cli::kExitPermissionDenied)
        << c2.Err();
  }
  EXPECT_EQ(server.Stop(), 0);
}

// --- serve: the relay, echo, stop, count
// -----------------------------------------

TEST(CliTest, ServeHandlesEchoClientsConcurrently) {
  const std::string name = UniqueName("cli-multi");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
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

TEST(CliTest, ServeEchoCountExitsAfterNClients) {
  const std::string name = UniqueName("cli-count");
  Server server({"serve", name, "--echo", "--count", "2"});
  AwaitListener(name);
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    CANAL_ASSERT_OK(ch->Write("byte echo"));
    absl::StatusOr<std::string> back =
        canal_test::ReadExactly(*ch, 9, absl::Seconds(10));
    CANAL_ASSERT_OK(back);
    EXPECT_EQ(*back, "byte echo");
  }
  EXPECT_EQ(server.Join(), 0);  // after the second client closed
  Capture c;
  EXPECT_EQ(RunCli({"wait", name}, c), canal_cli::kExitNotFound);
}

TEST(CliTest, ConnectCopiesStdinToServe) {
  const std::string name = UniqueName("cli-pipe");
  Server server({"serve", name, "--count", "1"});
  AwaitListener(name);
  Capture c;
  c.SetInput("line one\nline two\nno newline");
  EXPECT_EQ(RunCli({"connect", name, "--linger", "0s"}, c), 0) << c.Err();
  EXPECT_EQ(server.Join(), 0);  // --count 1: ends after this client
  EXPECT_EQ(server.capture().Out(), "line one\nline two\nno newline");
}

TEST(CliTest, ServeRelaysItsStdinToTheClient) {
  // Both directions at once; the client ends its input only once the
  // server's data has arrived, so no timing is involved.
  const std::string name = UniqueName("cli-both");
  ScriptedInput server_input;
  server_input.Push("from the server\n");
  Server server({"serve", name, "--count", "1"}, &server_input);
  AwaitListener(name);
  Capture c;
  ScriptedInput client_input;
  c.SetInput(&client_input);
  client_input.Push("from the client\n");
  std::thread ender([&] {
    c.out_buf.WaitFor("from the server\n");
    server.capture().out_buf.WaitFor("from the client\n");
    client_input.End();
  });
  EXPECT_EQ(RunCli({"connect", name, "--linger", "0s"}, c), 0) << c.Err();
  ender.join();
  server_input.End();
  EXPECT_EQ(server.Join(), 0) << server.capture().Err();
  EXPECT_EQ(c.Out(), "from the server\n");
  EXPECT_EQ(server.capture().Out(), "from the client\n");
}

TEST(CliTest, ServeRelayServesClientsOneAtATime) {
  const std::string name = UniqueName("cli-seq");
  Server server({"serve", name, "--count", "2"});
  AwaitListener(name);
  absl::StatusOr<canal::Channel> first = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(first);
  CANAL_ASSERT_OK(first->Write("first;"));
  ASSERT_TRUE(server.capture().out_buf.WaitFor("first;"));
  // The second client connects and sends while the first is being served;
  // its bytes are printed only after the first has finished.
  absl::StatusOr<canal::Channel> second = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(second);
  CANAL_ASSERT_OK(second->Write("second;"));
  CANAL_ASSERT_OK(first->Write("more;"));
  ASSERT_TRUE(server.capture().out_buf.WaitFor("more;"));
  first->Close();
  ASSERT_TRUE(server.capture().out_buf.WaitFor("second;"));
  second->Close();
  EXPECT_EQ(server.Join(), 0);
  EXPECT_EQ(server.capture().Out(), "first;more;second;");
}

TEST(CliTest, ServeRelayStopsOnCtrlC) {
  const std::string name = UniqueName("cli-relaystop");
  ScriptedInput input;  // never ends
  Server server({"serve", name}, &input);
  AwaitListener(name);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->Write("x"));
  ASSERT_TRUE(server.capture().out_buf.WaitFor("x"));
  EXPECT_EQ(server.Stop(), 0);
  char b;
  CANAL_EXPECT_CODE(ch->Read(absl::MakeSpan(&b, 1), absl::Seconds(10)),
                    kOutOfRange);
  input.End();
}

TEST(CliTest, ServeMessageModeLinesHexAndFrames) {
  const std::string all = canal_test::Pattern(300, 3);
  struct Case {
    const char* flag;
    canal_cli::MessageFormat format;
  };
  for (const Case& fc : {Case{"", canal_cli::MessageFormat::kLines},
                         Case{"--hex", canal_cli::MessageFormat::kHex},
                         Case{"--frames", canal_cli::MessageFormat::kFrames}}) {
    SCOPED_TRACE(fc.flag);
    const std::string name = UniqueName("cli-fmt");
    const bool binary = fc.format != canal_cli::MessageFormat::kLines;
    const std::string payload = binary ? all : "a line";
    ScriptedInput input;
    // The server's stdin holds two messages for the client.
    input.Push(canal_cli::EncodeMessage(fc.format, payload) +
               canal_cli::EncodeMessage(fc.format, ""));
    std::vector<std::string> args = {"serve", name, "--message", "--count",
                                     "1"};
    if (*fc.flag != '\0') args.push_back(fc.flag);
    Server server(args, &input);
    AwaitListener(name);
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<std::string> m1 = ch->ReadMessage(absl::Seconds(10));
    absl::StatusOr<std::string> m2 = ch->ReadMessage(absl::Seconds(10));
    CANAL_ASSERT_OK(m1);
    CANAL_ASSERT_OK(m2);
    EXPECT_EQ(*m1, payload);
    EXPECT_EQ(*m2, "");
    // Messages from the client are printed in the same format.
    CANAL_ASSERT_OK(ch->WriteMessage(payload));
    CANAL_ASSERT_OK(ch->WriteMessage(""));
    const std::string expected = canal_cli::EncodeMessage(fc.format, payload) +
                                 canal_cli::EncodeMessage(fc.format, "");
    ASSERT_TRUE(server.capture().out_buf.WaitFor(expected));
    ch->Close();
    input.End();
    EXPECT_EQ(server.Join(), 0);
    EXPECT_EQ(server.capture().Out(), expected);
  }
}

TEST(CliTest, ServeReportsMalformedInputAndGoesOn) {
  // A server whose stdin is not hex: the session reports it in one line and
  // the server goes on to the next client.
  const std::string name = UniqueName("cli-badhex");
  ScriptedInput input;
  input.Push("not hex\n");
  input.End();
  Server server({"serve", name, "--message", "--hex", "--count", "2"}, &input);
  AwaitListener(name);
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    CANAL_ASSERT_OK(ch->WriteMessage("a"));
    ASSERT_TRUE(server.capture().out_buf.WaitFor(i == 0 ? "61\n" : "61\n61\n"));
    ch->Close();
  }
  EXPECT_EQ(server.Join(), 0);
  EXPECT_EQ(LineCount(server.capture().Err()), 1) << server.capture().Err();
  EXPECT_TRUE(absl::StrContains(server.capture().Err(), "not hex"))
      << server.capture().Err();
}

// --- connect
// ------------------------------------------------------------------------

TEST(CliTest, ConnectMessageModeLinesAreMessages) {
  const std::string name = UniqueName("cli-lines");
  Server server({"serve", name, "--message", "--count", "1"});
  AwaitListener(name);
  Capture c;
  c.SetInput("alpha\r\nbeta\n\ngamma");
  EXPECT_EQ(RunCli({"connect", name, "--message", "--linger", "0s"}, c), 0)
      << c.Err();
  EXPECT_EQ(server.Join(), 0);
  // One message per line, printed one per line by serve; the empty line is
  // an empty message.
  EXPECT_EQ(server.capture().Out(), "alpha\nbeta\n\ngamma\n");
}

TEST(CliTest, ConnectPrintsEchoedMessages) {
  const std::string name = UniqueName("cli-conn-echo");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
  Capture c;
  InputUntil(c, "ping\npong\n", "ping\npong\n");
  EXPECT_EQ(RunCli({"connect", name, "--linger", "0s"}, c), 0) << c.Err();
  EXPECT_EQ(c.Out(), "ping\npong\n");
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CliTest, ConnectFramesAndHexAreBinarySafe) {
  const std::string name = UniqueName("cli-conn-bin");
  Server server({"serve", name, "--message", "--echo"});
  AwaitListener(name);
  const std::string all = canal_test::Pattern(256, 9);
  for (canal_cli::MessageFormat f :
       {canal_cli::MessageFormat::kFrames, canal_cli::MessageFormat::kHex}) {
    const std::string wire = canal_cli::EncodeMessage(f, all) +
                             canal_cli::EncodeMessage(f, "") +
                             canal_cli::EncodeMessage(f, "\n");
    Capture c;
    InputUntil(c, wire, wire);
    const char* flag =
        f == canal_cli::MessageFormat::kHex ? "--hex" : "--frames";
    EXPECT_EQ(RunCli({"connect", name, flag, "--linger", "0s"}, c), 0)
        << c.Err();
    EXPECT_EQ(c.Out(), wire) << flag;
  }
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CliTest, ConnectMessageFlagsRefuseByteListener) {
  const std::string name = UniqueName("cli-bytes");
  Server server({"serve", name, "--echo"});
  AwaitListener(name);
  for (const char* flag : {"--message", "--hex", "--frames"}) {
    Capture c;
    c.SetInput("");
    EXPECT_EQ(RunCli({"connect", name, flag}, c), canal_cli::kExitError);
    EXPECT_TRUE(absl::StrContains(c.Err(), "byte mode")) << c.Err();
  }
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CliTest, ConnectWithoutListenerIsNotFound) {
  Capture c;
  c.SetInput("");
  EXPECT_EQ(RunCli({"connect", UniqueName("cli-nf")}, c),
            canal_cli::kExitNotFound);
  EXPECT_EQ(LineCount(c.Err()), 1);
}

TEST(CliTest, ConnectStopsOnCtrlC) {
  const std::string name = UniqueName("cli-connstop");
  Server server({"serve", name, "--echo"});
  AwaitListener(name);
  Capture c;
  ScriptedInput input;  // never ends
  c.SetInput(&input);
  canal_cli::StopSource stop;
  input.Push("x");
  int code = -1;
  std::thread client([&] { code = RunCli({"connect", name}, c, &stop); });
  ASSERT_TRUE(c.out_buf.WaitFor("x"));
  stop.Stop();
  client.join();
  EXPECT_EQ(code, 0) << c.Err();
  input.End();
  EXPECT_EQ(server.Stop(), 0);
}

// --- --dump
// ----------------------------------------------------------------------------

TEST(CliTest, DumpShowsBothDirectionsOnStderr) {
  const std::string name = UniqueName("cli-dump");
  Server server({"serve", name, "--message", "--echo", "--dump", "text"});
  AwaitListener(name);
  Capture c;
  InputUntil(c, "hi\n", "hi\n");
  EXPECT_EQ(RunCli({"connect", name, "--dump", "hex", "--linger", "0s"}, c), 0)
      << c.Err();
  EXPECT_EQ(c.Out(), "hi\n");  // the data itself is unchanged
  EXPECT_EQ(c.Err(),
            "> message, 2 bytes\n"
            "  0000  68 69                                            hi\n"
            "< message, 2 bytes\n"
            "  0000  68 69                                            hi\n");
  EXPECT_EQ(server.Stop(), 0);
  EXPECT_EQ(server.capture().Err(),
            "< client 1: message, 2 bytes\nhi\n"
            "> client 1: message, 2 bytes\nhi\n");
  EXPECT_EQ(server.capture().Out(), "");
}

TEST(CliTest, DumpOfTheStdioRelay) {
  const std::string name = UniqueName("cli-dump2");
  Server server({"serve", name, "--count", "1", "--dump", "text"});
  AwaitListener(name);
  Capture c;
  c.SetInput("a\x01");
  EXPECT_EQ(RunCli({"connect", name, "--dump", "text", "--linger", "0s"}, c), 0)
      << c.Err();
  EXPECT_EQ(server.Join(), 0);
  EXPECT_EQ(c.Err(), "> 2 bytes\na\\x01\n");
  EXPECT_EQ(server.capture().Err(), "< client 1: 2 bytes\na\\x01\n");
  EXPECT_EQ(server.capture().Out(), "a\x01");
}

// --- access policy flags
// --------------------------------------------------------------

// What the listener's security looks like from a client: POSIX, the socket
// file's mode and group; Windows, the pipe's DACL as SDDL.
std::string Security(const std::string& name, canal::Channel& client) {
#ifdef _WIN32
  (void)name;
  PSECURITY_DESCRIPTOR sd = nullptr;
  if (GetSecurityInfo(client.native_handle(), SE_KERNEL_OBJECT,
                      DACL_SECURITY_INFORMATION, nullptr, nullptr, nullptr,
                      nullptr, &sd) != ERROR_SUCCESS) {
    return "<GetSecurityInfo failed>";
  }
  char* text = nullptr;
  std::string out = "<no SDDL>";
  if (ConvertSecurityDescriptorToStringSecurityDescriptorA(
          sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &text, nullptr)) {
    out = text;
    LocalFree(text);
  }
  LocalFree(sd);
  return out;
#else
  (void)client;
  // The portable name's socket is in the runtime directory; find it from
  // the listing.
  Capture c;
  RunCli({"list", "--json"}, c);
  nlohmann::json all = nlohmann::json::parse(c.Out(), nullptr, false);
  for (const auto& p : all) {
    if (p["name"] == name) {
      struct stat st;
      const std::string path = p["path"];
      if (::stat(path.c_str(), &st) != 0) return "<stat failed>";
      return absl::StrCat(absl::Hex(st.st_mode & 0777), " gid ", st.st_gid);
    }
  }
  return "<not listed>";
#endif
}

TEST(CliTest, ServeAccessFlagsSetThePolicy) {
#ifdef _WIN32
  const std::string group = "S-1-5-32-545";  // BUILTIN\Users
#else
  // As root the socket can be given any group; otherwise one's own.
  const std::string group = absl::StrCat(::geteuid() == 0 ? 1 : ::getegid());
#endif
  struct Case {
    std::vector<std::string> flags;
    std::string expected;  // in Security()'s text
  };
  const std::vector<Case> cases = {
#ifdef _WIN32
      {{}, ";;;SY)"},  // only SYSTEM and this user
      {{"--allow-local-users"}, ";;;AU)"},
      {{"--allow-group", group}, ";;;BU)"},
      {{"--allow-group", "Users"}, ";;;BU)"},
#else
      {{}, "180 gid"},                                              // 0600
      {{"--allow-local-users"}, "1b6 gid"},                         // 0666
      {{"--allow-group", group}, absl::StrCat("1b0 gid ", group)},  // 0660
#endif
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(absl::StrJoin(k.flags, " "));
    const std::string name = UniqueName("cli-acl");
    std::vector<std::string> args = {"serve", name, "--echo"};
    args.insert(args.end(), k.flags.begin(), k.flags.end());
    Server server(args);
    AwaitListener(name);
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    const std::string security = Security(name, *ch);
#ifdef _WIN32
    if (canal_test::RunningUnderWine() && absl::StartsWith(security, "<")) {
      GTEST_SKIP() << "Wine does not report the pipe's DACL: " << security;
    }
#endif
    EXPECT_TRUE(absl::StrContains(security, k.expected)) << security;
    if (k.flags.empty()) {
      EXPECT_FALSE(absl::StrContains(security, ";;;AU)")) << security;
    }
    CANAL_ASSERT_OK(ch->Write("x"));
    char b;
    CANAL_EXPECT_OK(ch->Read(absl::MakeSpan(&b, 1), absl::Seconds(10)));
    ch->Close();
    EXPECT_EQ(server.Stop(), 0);
  }
}

// --- bench
// -------------------------------------------------------------------------------

void ExpectBenchJson(const std::string& text, const char* mode, int clients) {
  EXPECT_EQ(LineCount(text), 1) << text;
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  ASSERT_TRUE(json.is_object()) << text;
  EXPECT_EQ(json["mode"], mode);
  EXPECT_EQ(json["clients"], clients);
  EXPECT_TRUE(json["primitive"].is_string());
  for (const char* side : {"canal", "raw"}) {
    for (const char* key :
         {"bytes_per_second", "messages_per_second", "round_trips_per_second",
          "latency_median_us", "latency_p99_us", "round_trips"}) {
      EXPECT_TRUE(json[side][key].is_number()) << side << "." << key;
    }
    EXPECT_GT(json[side]["bytes_per_second"].get<double>(), 0) << side;
  }
  for (const char* key :
       {"throughput", "messages_per_second", "latency_median", "latency_p99"}) {
    EXPECT_TRUE(json["ratio"][key].is_number()) << key;
  }
}

TEST(CliTest, BenchJsonHasBothFigures) {
  Capture c;
  ASSERT_EQ(
      RunCli({"bench", "--duration", "100ms", "--size", "1024", "--json"}, c),
      0)
      << c.Err();
  ExpectBenchJson(c.Out(), "byte", 1);
}

TEST(CliTest, BenchMessageModeJson) {
  Capture c;
  ASSERT_EQ(RunCli({"bench", "--mode", "message", "--size", "64", "--clients",
                    "2", "--duration", "100ms", "--json"},
                   c),
            0)
      << c.Err();
  ExpectBenchJson(c.Out(), "message", 2);
}

TEST(CliTest, BenchReportsThePipeTransportByDefault) {
  Capture c;
  ASSERT_EQ(
      RunCli({"bench", "--duration", "50ms", "--size", "64", "--json"}, c), 0)
      << c.Err();
  ExpectBenchJson(c.Out(), "byte", 1);
  nlohmann::json json = nlohmann::json::parse(c.Out(), nullptr, false);
  ASSERT_TRUE(json.is_object()) << c.Out();
  EXPECT_EQ(json["transport"], "pipe");
  // One pair per phase, two ends each.
  EXPECT_EQ(json["canal_transports"], nlohmann::json({{"pipe", 4}})) << c.Out();
}

TEST(CliTest, BenchSharedMemoryTransportIsUsedAndReported) {
  // What a duplex listener offering shared memory gives its channels here
  // (the Win32 backend keeps them on the pipe for now).
  canal::ListenerOptions shm;
  shm.transport = canal::Transport::kSharedMemory;
  const std::string used =
      canal_test::ExpectedTransport(shm) == canal::Transport::kSharedMemory
          ? "shared memory"
          : "pipe";
  for (const char* mode : {"byte", "message"}) {
    Capture c;
    ASSERT_EQ(RunCli({"bench", "--transport", "shm", "--mode", mode, "--size",
                      "64", "--clients", "2", "--duration", "50ms", "--json"},
                     c),
              0)
        << c.Err();
    ExpectBenchJson(c.Out(), mode, 2);
    nlohmann::json json = nlohmann::json::parse(c.Out(), nullptr, false);
    ASSERT_TRUE(json.is_object()) << c.Out();
    EXPECT_EQ(json["transport"], "shm");
    // Two pairs per phase, two ends each, all on the same transport.
    EXPECT_EQ(json["canal_transports"], nlohmann::json({{used, 8}}))
        << mode << ": " << c.Out();
  }
  Capture text;
  ASSERT_EQ(RunCli({"bench", "--transport", "shm", "--duration", "50ms"}, text),
            0)
      << text.Err();
  EXPECT_TRUE(absl::StrContains(
      text.Out(),
      absl::StrCat("canal transport: shm asked, used: ", used, " (4 channel")))
      << text.Out();
}

TEST(CliTest, BenchProgressLineFollowsTheTerminal) {
  struct Case {
    canal_cli::ProgressStyle style;
    bool carriage_returns;
    bool escapes;
  };
  for (const Case& k : {Case{canal_cli::ProgressStyle::kNone, false, false},
                        Case{canal_cli::ProgressStyle::kAnsi, true, true},
                        Case{canal_cli::ProgressStyle::kPlain, true, false}}) {
    Capture c;
    c.io.progress = k.style;
    ASSERT_EQ(RunCli({"bench", "--duration", "250ms"}, c), 0) << c.Err();
    const std::string out = c.Out();
    EXPECT_TRUE(absl::StrContains(out, "round trip median")) << out;
    EXPECT_EQ(absl::StrContains(out, "\r"), k.carriage_returns) << out;
    EXPECT_EQ(absl::StrContains(out, "\033"), k.escapes) << out;
    if (k.carriage_returns) {
      // The table itself starts on a clean line.
      EXPECT_TRUE(absl::StrContains(out, "\rcanal bench:") ||
                  absl::StrContains(out, "\r\033[Kcanal bench:"))
          << out;
    }
  }
}

TEST(CliTest, BenchStopsOnCtrlC) {
  Capture c;
  canal_cli::StopSource stop;
  c.io.progress = canal_cli::ProgressStyle::kPlain;
  int code = -1;
  std::thread bench([&] {
    code = RunCli({"bench", "--duration", "1m"}, c, &stop);
  });
  ASSERT_TRUE(c.out_buf.WaitFor("throughput"));
  stop.Stop();
  bench.join();
  EXPECT_EQ(code, canal_cli::kExitError);
  EXPECT_TRUE(absl::StrContains(c.Err(), "interrupted")) << c.Err();
}

}  // namespace
