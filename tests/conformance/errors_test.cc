// Row 12: the error table, identical on both backends, and error messages
// that name the operation and the pipe.

#include <string>
#include <utility>

#include "absl/status/status.h"
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
  absl::StatusOr<canal::Listener> first = canal::Listener::Create(name);
  CANAL_ASSERT_OK(first);
  const absl::Status status = canal::Listener::Create(name).status();
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
  CANAL_EXPECT_CODE(canal::Listener::Create(UniqueName("err-neg"), options),
                    kInvalidArgument);
}

TEST(ErrorsTest, MaxInstancesAboveLimitIsInvalidArgument) {
  canal::ListenerOptions options;
  options.max_instances = canal::kMaxInstanceLimit + 1;
  CANAL_EXPECT_CODE(canal::Listener::Create(UniqueName("err-255"), options),
                    kInvalidArgument);
}

TEST(ErrorsTest, MaxInstancesAtLimitIsAccepted) {
  canal::ListenerOptions options;
  options.max_instances = canal::kMaxInstanceLimit;
  CANAL_EXPECT_OK(canal::Listener::Create(UniqueName("err-254"), options));
}

TEST(ErrorsTest, ZeroMaxMessageSizeIsInvalidArgument) {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_message_size = 0;
  CANAL_EXPECT_CODE(canal::Listener::Create(UniqueName("err-zero"), options),
                    kInvalidArgument);
}

TEST(ErrorsTest, InvalidOptionsMessageNamesPipe) {
  const std::string name = UniqueName("err-opt-msg");
  canal::ListenerOptions options;
  options.max_instances = -5;
  const absl::Status status = canal::Listener::Create(name, options).status();
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
      canal::Listener::Create(UniqueName("err-opts"), options);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(listener->options().mode, canal::PipeMode::kMessage);
  EXPECT_EQ(listener->options().access, canal::PipeAccess::kOutbound);
  EXPECT_EQ(listener->options().max_instances, 3);
  EXPECT_EQ(listener->options().max_message_size, 4096u);
}

}  // namespace
