// Row 3: Transact writes one request message and reads one reply message;
// Call is Connect + Transact + close.

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

// Reads one message from `channel` and replies with `prefix + message`.
absl::Status EchoOnce(canal::Channel& channel, absl::string_view prefix) {
  absl::StatusOr<std::string> m = channel.ReadMessage(kHangGuard);
  if (!m.ok()) return m.status();
  return channel.WriteMessage(absl::StrCat(prefix, *m));
}

TEST(TransactTest, ReturnsTheReplyMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-reply"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::Status echo_status;
  absl::StatusOr<std::string> reply;
  {
    Background echo([&] { echo_status = EchoOnce(pair->server, "re:"); });
    reply = pair->client.Transact("ping", kHangGuard);
    EXPECT_TRUE(echo.Finished(kHangGuard));
  }
  CANAL_ASSERT_OK(echo_status);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "re:ping");
}

TEST(TransactTest, ServerSideCanTransactToo) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-server"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::Status echo_status;
  absl::StatusOr<std::string> reply;
  {
    Background echo([&] { echo_status = EchoOnce(pair->client, "client:"); });
    reply = pair->server.Transact("hello", kHangGuard);
    EXPECT_TRUE(echo.Finished(kHangGuard));
  }
  CANAL_ASSERT_OK(echo_status);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "client:hello");
}

TEST(TransactTest, LargeReplyIsReturnedWhole) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-large"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(1024 * 1024, 21);
  absl::Status echo_status;
  absl::StatusOr<std::string> reply;
  {
    Background echo([&] {
      absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
      echo_status = m.status();
      if (m.ok()) echo_status = pair->server.WriteMessage(big);
    });
    reply = pair->client.Transact("give me a lot", kHangGuard);
    EXPECT_TRUE(echo.Finished(kHangGuard));
  }
  CANAL_ASSERT_OK(echo_status);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(reply->size(), big.size());
  EXPECT_TRUE(*reply == big);
}

TEST(TransactTest, EmptyRequestAndReply) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-empty"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::Status echo_status;
  absl::StatusOr<std::string> reply;
  {
    Background echo([&] { echo_status = EchoOnce(pair->server, ""); });
    reply = pair->client.Transact("", kHangGuard);
    EXPECT_TRUE(echo.Finished(kHangGuard));
  }
  CANAL_ASSERT_OK(echo_status);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "");
}

TEST(TransactTest, RepeatedTransactionsStayPaired) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-repeat"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::Status echo_status;
  {
    Background echo([&] {
      for (int i = 0; i < 50 && echo_status.ok(); ++i) {
        echo_status = EchoOnce(pair->server, "re:");
      }
    });
    for (int i = 0; i < 50; ++i) {
      absl::StatusOr<std::string> reply =
          pair->client.Transact(absl::StrCat("request ", i), kHangGuard);
      if (!reply.ok()) {
        ADD_FAILURE() << "Transact " << i << ": " << reply.status();
        pair->server.Close();
        break;
      }
      EXPECT_EQ(*reply, absl::StrCat("re:request ", i));
    }
    EXPECT_TRUE(echo.Finished(kHangGuard));
  }
  CANAL_EXPECT_OK(echo_status);
}

TEST(TransactTest, WhilePartOfAMessageIsUnreadIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-unread"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.WriteMessage("0123456789"));
  char buffer[4];
  absl::StatusOr<canal::ReadResult> r =
      pair->client.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_TRUE(r->more);
  CANAL_EXPECT_CODE(pair->client.Transact("req", absl::Milliseconds(200)),
                    kFailedPrecondition);
}

// TransactNamedPipe refuses with ERROR_PIPE_BUSY while unread data is
// queued; canal does the same on every platform, and the queued message
// stays intact.
TEST(TransactTest, WhileAWholeMessageIsQueuedIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-queued"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  // Once WriteMessage returns, the message sits in the client's queue.
  CANAL_ASSERT_OK(pair->server.WriteMessage("stale"));
  CANAL_EXPECT_CODE(pair->client.Transact("req", absl::Milliseconds(200)),
                    kFailedPrecondition);
  absl::StatusOr<std::string> queued = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(queued);
  EXPECT_EQ(*queued, "stale");
}

TEST(CallTest, ReturnsTheReplyAndClosesTheChannel) {
  const std::string name = UniqueName("call-reply");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, MessageOptions());
  CANAL_ASSERT_OK(listener);
  absl::Status server_status;
  absl::Status after_reply;
  {
    Background server([&] {
      absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
      server_status = ch.status();
      if (!ch.ok()) return;
      server_status = EchoOnce(*ch, "called:");
      if (!server_status.ok()) return;
      after_reply = ch->ReadMessage(kHangGuard).status();
    });
    absl::StatusOr<std::string> reply = canal::Call(name, "hi", kHangGuard);
    CANAL_EXPECT_OK(reply);
    if (reply.ok()) {
      EXPECT_EQ(*reply, "called:hi");
    } else {
      listener->Close();
    }
    EXPECT_TRUE(server.Finished(kHangGuard));
  }
  CANAL_EXPECT_OK(server_status);
  // Call closed its end after the reply: the listener sees end of stream.
  EXPECT_EQ(after_reply.code(), absl::StatusCode::kOutOfRange) << after_reply;
}

TEST(CallTest, ByteModeListenerIsFailedPrecondition) {
  const std::string name = UniqueName("call-byte");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_CODE(canal::Call(name, "hi", absl::Seconds(2)),
                    kFailedPrecondition);
}

TEST(CallTest, UnknownNameIsNotFound) {
  CANAL_EXPECT_CODE(canal::Call(UniqueName("call-none"), "hi", absl::Seconds(2)),
                    kNotFound);
}

}  // namespace
