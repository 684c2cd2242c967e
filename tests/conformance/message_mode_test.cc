// Row 2: message mode keeps boundaries, delivers empty messages, continues a
// message read in parts (more == true), carries messages up to
// max_message_size and refuses larger ones before sending; the message calls
// on a byte-mode channel fail with FailedPrecondition.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::Background;
using canal_test::ConnectedPair;
using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::MessageOptions;
using canal_test::Pattern;
using canal_test::UniqueName;

TEST(MessageModeTest, BothEndsReportMessageMode) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-mode"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  EXPECT_EQ(pair->server.mode(), canal::PipeMode::kMessage);
  EXPECT_EQ(pair->client.mode(), canal::PipeMode::kMessage);
}

TEST(MessageModeTest, ReadMessageKeepsBoundaries) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-bound"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("a"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("bb"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("ccc"));
  for (const char* expected : {"a", "bb", "ccc"}) {
    absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(*m, expected);
  }
}

TEST(MessageModeTest, ReadReturnsOneMessageEvenWithALargerBuffer) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-oneread"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("abc"));
  CANAL_ASSERT_OK(pair->client.Write("defg"));
  std::vector<char> buffer(100);
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer.data(), r->size), "abc");
  EXPECT_FALSE(r->more);
  r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer.data(), r->size), "defg");
  EXPECT_FALSE(r->more);
}

TEST(MessageModeTest, WriteAndWriteMessageBothSendOneMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-write"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.Write("from-write"));
  CANAL_ASSERT_OK(pair->server.WriteMessage("from-write-message"));
  absl::StatusOr<std::string> m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "from-write");
  m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "from-write-message");
}

TEST(MessageModeTest, EmptyMessagesAreDelivered) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-empty"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  CANAL_ASSERT_OK(pair->client.WriteMessage("x"));
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "");
  m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "x");
  char buffer[8];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_FALSE(r->more);
}

TEST(MessageModeTest, PartialReadSetsMoreAndContinuesTheSameMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-partial"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("0123456789"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("next"));
  char buffer[4];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "0123");
  EXPECT_TRUE(r->more);
  r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "4567");
  EXPECT_TRUE(r->more);
  r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "89");
  EXPECT_FALSE(r->more);
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "next");
}

TEST(MessageModeTest, ReadWithExactBufferSizeHasNoMore) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-exact"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("1234"));
  char buffer[4];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "1234");
  EXPECT_FALSE(r->more);
}

TEST(MessageModeTest, SixteenMebibyteMessageRoundTrips) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-16m"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string request = Pattern(16 * 1024 * 1024, 11);
  absl::Status echo_status;
  absl::StatusOr<std::string> reply;
  {
    Background echo([&] {
      absl::StatusOr<std::string> m = pair->server.ReadMessage();
      echo_status = m.status();
      if (m.ok()) echo_status = pair->server.WriteMessage(*m);
    });
    absl::Status write_status = pair->client.WriteMessage(request);
    if (write_status.ok()) {
      reply = pair->client.ReadMessage(absl::Seconds(60));
    } else {
      reply = write_status;
    }
    if (!reply.ok()) pair->server.Close();
    EXPECT_TRUE(echo.Finished(absl::Seconds(60)));
  }
  CANAL_ASSERT_OK(echo_status);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(reply->size(), request.size());
  EXPECT_TRUE(*reply == request) << "the message came back corrupted";
}

TEST(MessageModeTest, MessageOfExactlyMaxSizeIsAccepted) {
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 1024;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-maxok"), options);
  CANAL_ASSERT_OK(pair);
  const std::string message = Pattern(1024, 5);
  CANAL_ASSERT_OK(pair->client.WriteMessage(message));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_TRUE(*m == message);
}

TEST(MessageModeTest, ClientMessageOverMaxSizeIsRefusedBeforeSending) {
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 1024;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-cbig"), options);
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.WriteMessage(Pattern(1025)), kInvalidArgument);
  CANAL_EXPECT_CODE(pair->client.Write(Pattern(4096)), kInvalidArgument);
  // Nothing of the refused messages reached the listener.
  CANAL_ASSERT_OK(pair->client.WriteMessage("small"));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "small");
}

TEST(MessageModeTest, ServerMessageOverMaxSizeIsRefusedBeforeSending) {
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 1024;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-sbig"), options);
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->server.WriteMessage(Pattern(1025)), kInvalidArgument);
  CANAL_ASSERT_OK(pair->server.WriteMessage("small"));
  absl::StatusOr<std::string> m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "small");
}

TEST(MessageModeTest, ReadMessageOnByteChannelIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("msg-byte-rm"));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.ReadMessage(absl::Milliseconds(100)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->server.ReadMessage(absl::Milliseconds(100)),
                    kFailedPrecondition);
}

TEST(MessageModeTest, WriteMessageOnByteChannelIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("msg-byte-wm"));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.WriteMessage("x"), kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->server.WriteMessage("x"), kFailedPrecondition);
  // Nothing was sent.
  CANAL_ASSERT_OK(pair->client.Write("y"));
  absl::StatusOr<std::string> got = canal_test::ReadExactly(pair->server, 1);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "y");
}

TEST(MessageModeTest, TransactOnByteChannelIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("msg-byte-tx"));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.Transact("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
}

}  // namespace
