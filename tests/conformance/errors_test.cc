// SPDX-License-Identifier: Apache-2.0
// Row 12: the error table, identical on both backends, and error messages
// that name the operation and the pipe.

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::ConnectedPair;
using canal_test::MakePair;
using canal_test::MessageNames;
using canal_test::UniqueName;

TEST(ErrorsTest, ConnectToUnknownNameIsNotFound) {
  CANAL_EXPECT_CODE(canal::Channel::Connect(UniqueName("err-nf")), kNotFound);
}

TEST(ErrorsTest, ConnectNotFoundMessageNamesOperationAndPipe) {
  const std::string name = UniqueName("err-nf-msg");
  const absl::Status status = canal::Channel::Connect(name).status();
  ASSERT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_TRUE(MessageNames(status, "Connect", name));
}

TEST(ErrorsTest, WaitForListenerNotFoundMessageNamesOperationAndPipe) {
  const std::string name = UniqueName("err-wait-msg");
  const absl::Status status =
      canal::WaitForListener(name, absl::Milliseconds(100));
  ASSERT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_TRUE(MessageNames(status, "WaitForListener", name));
}

TEST(ErrorsTest, ReadTimeoutMessageNamesOperationAndPipe) {
  const std::string name = UniqueName("err-read-msg");
  absl::StatusOr<ConnectedPair> pair = MakePair(name);
  CANAL_ASSERT_OK(pair);
  char buffer[4];
  const absl::Status status =
      pair->client.Read(absl::MakeSpan(buffer), absl::Milliseconds(50))
          .status();
  ASSERT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_TRUE(MessageNames(status, "Read", name));
}

TEST(ErrorsTest, WrongModeMessageNamesOperationAndPipe) {
  const std::string name = UniqueName("err-mode-msg");
  absl::StatusOr<ConnectedPair> pair = MakePair(name);
  CANAL_ASSERT_OK(pair);
  const absl::Status status = pair->server.WriteMessage("x");
  ASSERT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_TRUE(MessageNames(status, "WriteMessage", name));
}

TEST(ErrorsTest, PeerGoneMessageNamesOperationAndPipe) {
  const std::string name = UniqueName("err-eof-msg");
  absl::StatusOr<ConnectedPair> pair = MakePair(name);
  CANAL_ASSERT_OK(pair);
  pair->client.Close();
  char buffer[4];
  const absl::Status status =
      pair->server.Read(absl::MakeSpan(buffer), canal_test::kHangGuard)
          .status();
  ASSERT_TRUE(absl::IsOutOfRange(status)) << status;
  EXPECT_TRUE(MessageNames(status, "Read", name));
}

TEST(ErrorsTest, AlreadyExistsMessageNamesPipe) {
  const std::string name = UniqueName("err-exists");
  absl::StatusOr<canal::Listener> first = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(first);
  const absl::Status status = canal_test::CreateListener(name).status();
  ASSERT_TRUE(absl::IsAlreadyExists(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), name)) << status;
}

TEST(ErrorsTest, InvalidNameMessageNamesOperation) {
  const absl::Status status = canal::Channel::Connect("bad name").status();
  ASSERT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_TRUE(MessageNames(status, "Connect", "bad name"));
}

TEST(ErrorsTest, NegativeMaxInstancesIsInvalidArgument) {
  canal::ListenerOptions options;
  options.max_instances = -1;
  CANAL_EXPECT_CODE(canal_test::CreateListener(UniqueName("err-neg"), options),
                    kInvalidArgument);
}

TEST(ErrorsTest, MaxInstancesAboveLimitIsInvalidArgument) {
  canal::ListenerOptions options;
  options.max_instances = canal::kMaxInstanceLimit + 1;
  CANAL_EXPECT_CODE(canal_test::CreateListener(UniqueName("err-255"), options),
                    kInvalidArgument);
}

TEST(ErrorsTest, MaxInstancesAtLimitIsAccepted) {
  canal::ListenerOptions options;
  options.max_instances = canal::kMaxInstanceLimit;
  CANAL_EXPECT_OK(canal_test::CreateListener(UniqueName("err-254"), options));
}

TEST(ErrorsTest, ZeroMaxMessageSizeIsInvalidArgument) {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_message_size = 0;
  CANAL_EXPECT_CODE(canal_test::CreateListener(UniqueName("err-zero"), options),
                    kInvalidArgument);
}

TEST(ErrorsTest, InvalidOptionsMessageNamesPipe) {
  const std::string name = UniqueName("err-opt-msg");
  canal::ListenerOptions options;
  options.max_instances = -5;
  const absl::Status status =
      canal_test::CreateListener(name, options).status();
  ASSERT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), name)) << status;
}

TEST(ErrorsTest, ListenerReportsItsOptions) {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.access = canal::PipeAccess::kOutbound;
  options.max_instances = 3;
  options.max_message_size = 4096;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(UniqueName("err-opts"), options);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(listener->options().mode, canal::PipeMode::kMessage);
  EXPECT_EQ(listener->options().access, canal::PipeAccess::kOutbound);
  EXPECT_EQ(listener->options().max_instances, 3);
  EXPECT_EQ(listener->options().max_message_size, 4096u);
}

// "Every message reads `canal: <operation> "<name>": ...`" (docs/semantics.md):
// the operation is the public call that failed, exactly, so that Write and
// WriteMessage (or Read and ReadMessage) can be told apart.
::testing::AssertionResult NamesTheCall(const absl::Status& status,
                                        absl::string_view op,
                                        absl::string_view name) {
  const std::string prefix = absl::StrCat("canal: ", op, " \"", name, "\": ");
  if (absl::StartsWith(status.message(), prefix)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "message of " << status << " does not start with \"" << prefix
         << "\"";
}

// The first failure of up to 1000 calls of `write` (the first writes to a
// closed peer may still land in a buffer).
absl::Status FirstFailure(const std::function<absl::Status()>& write) {
  for (int i = 0; i < 1000; ++i) {
    absl::Status status = write();
    if (!status.ok()) return status;
  }
  return absl::InternalError("1000 writes to a closed peer all succeeded");
}

TEST(ErrorsTest, WriteAndWriteMessageNameThemselves) {
  const std::string name = UniqueName("err-op-write");
  absl::StatusOr<ConnectedPair> pair =
      MakePair(name, canal_test::MessageOptions());
  CANAL_ASSERT_OK(pair);
  pair->server.Close();
  const absl::Status write =
      FirstFailure([&] { return pair->client.Write("x"); });
  ASSERT_TRUE(absl::IsUnavailable(write)) << write;
  EXPECT_TRUE(NamesTheCall(write, "Write", name));
  const absl::Status write_message = pair->client.WriteMessage("x");
  ASSERT_TRUE(absl::IsUnavailable(write_message)) << write_message;
  EXPECT_TRUE(NamesTheCall(write_message, "WriteMessage", name));
}

TEST(ErrorsTest, TimeoutsNameTheCall) {
  const std::string name = UniqueName("err-op-timeout");
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.max_instances = 1;
  absl::StatusOr<ConnectedPair> pair = MakePair(name, options);
  CANAL_ASSERT_OK(pair);
  const absl::Duration kShort = absl::Milliseconds(50);
  char buffer[4];
  const absl::Status read =
      pair->client.Read(absl::MakeSpan(buffer), kShort).status();
  ASSERT_TRUE(absl::IsDeadlineExceeded(read)) << read;
  EXPECT_TRUE(NamesTheCall(read, "Read", name));
  const absl::Status read_message = pair->client.ReadMessage(kShort).status();
  ASSERT_TRUE(absl::IsDeadlineExceeded(read_message)) << read_message;
  EXPECT_TRUE(NamesTheCall(read_message, "ReadMessage", name));
  const absl::Status transact = pair->client.Transact("t", kShort).status();
  ASSERT_TRUE(absl::IsDeadlineExceeded(transact)) << transact;
  EXPECT_TRUE(NamesTheCall(transact, "Transact", name));
  const absl::Status accept = pair->listener.Accept(kShort).status();
  ASSERT_TRUE(absl::IsDeadlineExceeded(accept)) << accept;
  EXPECT_TRUE(NamesTheCall(accept, "Accept", name));
  // The only instance is in use.
  canal::ConnectOptions connect;
  connect.timeout = kShort;
  const absl::Status busy = canal::Channel::Connect(name, connect).status();
  ASSERT_TRUE(absl::IsDeadlineExceeded(busy)) << busy;
  EXPECT_TRUE(NamesTheCall(busy, "Connect", name));
  const absl::Status wait = canal::WaitForListener(name, kShort);
  ASSERT_TRUE(absl::IsDeadlineExceeded(wait)) << wait;
  EXPECT_TRUE(NamesTheCall(wait, "WaitForListener", name));
  const absl::Status call = canal::Call(name, "c", kShort).status();
  ASSERT_TRUE(absl::IsDeadlineExceeded(call)) << call;
  EXPECT_TRUE(NamesTheCall(call, "Call", name));
}

TEST(ErrorsTest, PeekAndReadMessageAtEndOfStreamNameTheCall) {
  const std::string name = UniqueName("err-op-eof");
  absl::StatusOr<ConnectedPair> pair =
      MakePair(name, canal_test::MessageOptions());
  CANAL_ASSERT_OK(pair);
  pair->server.Close();
  const absl::Status read_message =
      pair->client.ReadMessage(canal_test::kHangGuard).status();
  ASSERT_TRUE(absl::IsOutOfRange(read_message)) << read_message;
  EXPECT_TRUE(NamesTheCall(read_message, "ReadMessage", name));
  const absl::Status peek = pair->client.Peek().status();
  ASSERT_TRUE(absl::IsOutOfRange(peek)) << peek;
  EXPECT_TRUE(NamesTheCall(peek, "Peek", name));
}

}  // namespace
