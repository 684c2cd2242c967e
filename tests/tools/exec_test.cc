// SPDX-License-Identifier: Apache-2.0
// `canal serve --exec`, in-process on both backends, with
// tests/helper/canal_test_child as the program: the relay both ways, end of
// stream each way, the environment, message formats, the bound on children,
// a program that cannot start, and stopping.

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "tests/tools/cli_test_util.h"
#include "tools/canal/relay.h"

namespace {

using canal_cli_test::AwaitListener;
using canal_cli_test::Capture;
using canal_cli_test::ChildCommand;
using canal_cli_test::RunCli;
using canal_cli_test::Server;
using canal_test::UniqueName;

// Reads until the end of the stream (bounded by the hang guard).
absl::StatusOr<std::string> ReadToEnd(canal::Channel& ch) {
  std::string out;
  char buffer[4096];
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        ch.Read(absl::MakeSpan(buffer), canal_test::kHangGuard);
    if (absl::IsOutOfRange(r.status())) return out;
    if (!r.ok()) return r.status();
    out.append(buffer, r->size);
  }
}

TEST(ExecTest, RelaysBothWays) {
  const std::string name = UniqueName("exec-echo");
  Server server({"serve", name, "--exec", ChildCommand("echo")});
  AwaitListener(name);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  const std::string data = canal_test::Pattern(200000, 5);
  CANAL_ASSERT_OK(ch->Write(data));
  absl::StatusOr<std::string> back = canal_test::ReadExactly(*ch, data.size());
  CANAL_ASSERT_OK(back);
  EXPECT_TRUE(*back == data);
  ch->Close();
  EXPECT_EQ(server.Stop(), 0);
  EXPECT_EQ(server.capture().Err(), "");
}

TEST(ExecTest, TheChildsEndOfOutputEndsTheConnection) {
  // `argv` prints its arguments and exits without reading.
  const std::string name = UniqueName("exec-eof");
  Server server({"serve", name, "--exec", ChildCommand("argv one")});
  AwaitListener(name);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  absl::StatusOr<std::string> all = ReadToEnd(*ch);
  CANAL_ASSERT_OK(all);
  EXPECT_TRUE(absl::StrContains(*all, "6f6e65")) << *all;  // "one" in hex
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ExecTest, TheClientsEndClosesTheChildsInput) {
  // `wait-eof` prints "eof <bytes>" and exits only after reading the end of
  // its input, which it gets only when the client has finished. The server
  // is not stopped, so the child ending at all shows that it got there.
  const std::string name = UniqueName("exec-ineof");
  Server server({"serve", name, "--exec", ChildCommand("wait-eof"), "--verbose",
                 "--count", "1"});
  AwaitListener(name);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->Write("12345"));
#ifdef _WIN32
  ch->Close();  // named pipes cannot half-close
#else
  canal_cli::FinishSending(*ch);  // half-close: the reply can still come
  absl::StatusOr<std::string> reply = ReadToEnd(*ch);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "eof 5\n");
#endif
  EXPECT_EQ(server.Join(), 0);
  const std::string err = server.capture().Err();
  EXPECT_TRUE(absl::StrContains(err, "client 1 connected (pid ")) << err;
  EXPECT_TRUE(absl::StrContains(err, "client 1: child ")) << err;
#ifndef _WIN32
  EXPECT_TRUE(absl::StrContains(err, "exited with code 0")) << err;
#endif
  EXPECT_TRUE(absl::StrContains(err, "client 1 finished")) << err;
}

TEST(ExecTest, TheChildKnowsThePipeAndThePeer) {
  for (const char* var : {"CANAL_PIPE", "CANAL_PEER_PID"}) {
    const std::string name = UniqueName("exec-env");
    Server server(
        {"serve", name, "--exec", ChildCommand(std::string("env ") + var)});
    AwaitListener(name);
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<std::string> all = ReadToEnd(*ch);
    CANAL_ASSERT_OK(all);
    std::string value(absl::StripTrailingAsciiWhitespace(*all));
    if (std::string(var) == "CANAL_PIPE") {
      EXPECT_EQ(value, name);
    } else {
      EXPECT_EQ(value, absl::StrCat(canal_test::CurrentProcessId()));
    }
    EXPECT_EQ(server.Stop(), 0);
  }
}

TEST(ExecTest, MessageModeCarriesMessagesAsLinesHexOrFrames) {
  const std::string all = canal_test::Pattern(256, 1);
  for (const char* format : {"", "--hex", "--frames"}) {
    SCOPED_TRACE(format);
    const std::string name = UniqueName("exec-msg");
    std::vector<std::string> args = {"serve", name, "--message", "--exec",
                                     ChildCommand("echo")};
    if (*format != '\0') args.push_back(format);
    Server server(args);
    AwaitListener(name);
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    const std::string request = *format == '\0' ? "one line" : all;
    for (const std::string& m : {request, std::string()}) {
      absl::StatusOr<std::string> reply =
          ch->Transact(m, canal_test::kHangGuard);
      CANAL_ASSERT_OK(reply);
      EXPECT_TRUE(*reply == m) << reply->size();
    }
    ch->Close();
    EXPECT_EQ(server.Stop(), 0);
    EXPECT_EQ(server.capture().Err(), "");
  }
}

TEST(ExecTest, AtTheBoundFurtherClientsWait) {
  const std::string name = UniqueName("exec-bound");
  Server server({"serve", name, "--exec", ChildCommand("echo"),
                 "--max-children", "1", "--verbose"});
  AwaitListener(name);
  absl::StatusOr<canal::Channel> first = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(first);
  CANAL_ASSERT_OK(first->Write("a"));
  CANAL_ASSERT_OK(canal_test::ReadExactly(*first, 1));
  // One child runs: the server says it stops accepting.
  ASSERT_TRUE(server.capture().err_buf.WaitFor("not accepting"))
      << server.capture().Err();
  absl::StatusOr<canal::Channel> second = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(second);
  CANAL_ASSERT_OK(second->Write("b"));
  // The second client is served once the first child has ended.
  first->Close();
  absl::StatusOr<std::string> b = canal_test::ReadExactly(*second, 1);
  CANAL_ASSERT_OK(b);
  EXPECT_EQ(*b, "b");
  second->Close();
  EXPECT_EQ(server.Stop(), 0);
  const std::string err = server.capture().Err();
  const size_t first_ended = err.find("client 1: child");
  const size_t second_came = err.find("client 2 connected");
  ASSERT_NE(first_ended, std::string::npos) << err;
  ASSERT_NE(second_came, std::string::npos) << err;
  EXPECT_LT(first_ended, second_came) << err;
}

TEST(ExecTest, AProgramThatCannotStartIsReportedAndTheServerGoesOn) {
  const std::string name = UniqueName("exec-missing");
  Server server({"serve", name, "--exec", "no-such-program-canal-test arg",
                 "--count", "2"});
  AwaitListener(name);
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<std::string> all = ReadToEnd(*ch);  // closed at once
    CANAL_ASSERT_OK(all);
    EXPECT_EQ(*all, "");
  }
  EXPECT_EQ(server.Join(), 0);
  const std::string err = server.capture().Err();
  EXPECT_TRUE(absl::StrContains(err,
                                "client 1: cannot start "
                                "\"no-such-program-canal-test\""))
      << err;
  EXPECT_TRUE(absl::StrContains(err, "client 2: cannot start")) << err;
}

TEST(ExecTest, StoppingKillsRunningChildren) {
  const std::string name = UniqueName("exec-stop");
  Server server({"serve", name, "--exec", ChildCommand("hang"), "--verbose"});
  AwaitListener(name);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  ASSERT_TRUE(server.capture().err_buf.WaitFor("client 1 connected"));
  canal_test::Background stopper([&] { EXPECT_EQ(server.Stop(), 0); });
  EXPECT_TRUE(stopper.Finished(canal_test::kHangGuard));
  absl::StatusOr<std::string> all = ReadToEnd(*ch);
  CANAL_ASSERT_OK(all);
  EXPECT_TRUE(absl::StrContains(server.capture().Err(), "client 1: child"))
      << server.capture().Err();
}

}  // namespace
