// SPDX-License-Identifier: Apache-2.0
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
      canal_test::CreateListener(name, MessageOptions());
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
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_CODE(canal::Call(name, "hi", absl::Seconds(2)),
                    kFailedPrecondition);
}

TEST(CallTest, UnknownNameIsNotFound) {
  CANAL_EXPECT_CODE(
      canal::Call(UniqueName("call-none"), "hi", absl::Seconds(2)), kNotFound);
}

// TransactNamedPipe fails with ERROR_PIPE_BUSY "if there is already data in
// read buffer" (Wine's test_transact), an empty message included, and
// writes nothing: the peer receives no request.
TEST(TransactTest, WhileAnEmptyMessageIsQueuedIsRefusedAndSendsNothing) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-qempty"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.WriteMessage(""));
  CANAL_EXPECT_CODE(pair->client.Transact("req", absl::Milliseconds(200)),
                    kFailedPrecondition);
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek();
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->available, 0u) << "the refused request was sent";
  absl::StatusOr<std::string> queued = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(queued);
  EXPECT_EQ(*queued, "");
}

// test_transact again: after the refusal the queued data is read and the
// next transaction on the same channel works.
TEST(TransactTest, RefusedForQueuedDataSendsNothing) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-qnosend"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.WriteMessage("stale"));
  CANAL_ASSERT_CODE(pair->client.Transact("req", absl::Milliseconds(200)),
                    kFailedPrecondition);
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek();
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->available, 0u) << "the refused request was sent";
  // Once the stale message is read, the same channel transacts normally.
  absl::StatusOr<std::string> stale = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(stale);
  EXPECT_EQ(*stale, "stale");
  absl::Status echo_status;
  absl::StatusOr<std::string> reply;
  {
    Background echo([&] { echo_status = EchoOnce(pair->server, "re:"); });
    reply = pair->client.Transact("req", kHangGuard);
    if (!reply.ok()) pair->server.Close();
  }
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "re:req");
  CANAL_EXPECT_OK(echo_status);
}

// Wine's test_transact, "reply transact with another transact": the callee
// answers with a Transact of its own, whose reply is the caller's next
// message.
TEST(TransactTest, ATransactCanBeAnsweredByATransact) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-tx"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::StatusOr<std::string> callee_reply;
  absl::StatusOr<std::string> caller_reply;
  absl::Status final_write;
  {
    Background callee([&] {
      absl::StatusOr<std::string> request =
          pair->server.ReadMessage(kHangGuard);
      if (!request.ok()) {
        callee_reply = request.status();
        return;
      }
      callee_reply = pair->server.Transact("answer to " + *request, kHangGuard);
    });
    caller_reply = pair->client.Transact("abc", kHangGuard);
    if (caller_reply.ok()) {
      final_write = pair->client.WriteMessage("thanks");
    } else {
      pair->server.Close();
    }
  }
  CANAL_ASSERT_OK(caller_reply);
  EXPECT_EQ(*caller_reply, "answer to abc");
  CANAL_EXPECT_OK(final_write);
  CANAL_ASSERT_OK(callee_reply);
  EXPECT_EQ(*callee_reply, "thanks");
}

// Wine's test_transact, "transact doesn't block on write": a Transact on a
// channel whose other thread is still writing a large message queues its
// request after that message and returns the reply.
TEST(TransactTest, RequestFollowsAWriteInProgress) {
  canal::ListenerOptions options = MessageOptions();
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-afterwrite"), options);
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(256 * 1024, 53);
  absl::Status big_write;
  absl::StatusOr<std::string> reply;
  std::string received_big;
  absl::StatusOr<std::string> request;
  {
    Background writer(
        [&] { big_write = pair->client.WriteMessage(big, kHangGuard); });
    // The first byte of the big message is here: its write is in progress.
    char first[1];
    absl::StatusOr<canal::ReadResult> r =
        pair->server.Read(absl::MakeSpan(first), kHangGuard);
    CANAL_ASSERT_OK(r);
    ASSERT_TRUE(r->more);
    {
      Background transact(
          [&] { reply = pair->client.Transact("req", kHangGuard); });
      absl::StatusOr<std::string> rest = pair->server.ReadMessage(kHangGuard);
      if (rest.ok()) received_big = std::string(first, 1) + *rest;
      request = pair->server.ReadMessage(kHangGuard);
      if (request.ok()) {
        CANAL_EXPECT_OK(pair->server.WriteMessage("rep"));
      } else {
        pair->client.Close();
      }
    }
  }
  CANAL_EXPECT_OK(big_write);
  EXPECT_TRUE(received_big == big);
  CANAL_ASSERT_OK(request);
  EXPECT_EQ(*request, "req");
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "rep");
}

// The project's decision for a peer that goes away before replying: the
// transaction is broken, Unavailable on both backends (TransactNamedPipe
// fails with ERROR_BROKEN_PIPE / ERROR_PIPE_NOT_CONNECTED), not the
// OutOfRange of a reader at end of stream.
TEST(TransactTest, PeerClosingAfterTheRequestIsUnavailable) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-peerclose"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::StatusOr<std::string> request;
  absl::Status status;
  {
    Background callee([&] {
      request = pair->server.ReadMessage(kHangGuard);
      pair->server.Close();
    });
    status = pair->client.Transact("anyone?", kHangGuard).status();
  }
  CANAL_ASSERT_OK(request);
  EXPECT_EQ(*request, "anyone?");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

// The same seen from the listener's side.
TEST(TransactTest, ClientClosingAfterTheRequestIsUnavailable) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-cliclose"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::Status status;
  {
    Background callee([&] {
      pair->client.ReadMessage(kHangGuard).status().IgnoreError();
      pair->client.Close();
    });
    status = pair->server.Transact("anyone?", kHangGuard).status();
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

// A peer that replies and closes at once still gives the reply: the reply
// was in the pipe before the end of stream.
TEST(TransactTest, ReplyBeforeThePeerClosesIsReturned) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("tx-replyclose"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::StatusOr<std::string> reply;
  {
    Background callee([&] {
      if (EchoOnce(pair->server, "last:").ok()) pair->server.Close();
    });
    reply = pair->client.Transact("x", kHangGuard);
  }
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "last:x");
}

// CallNamedPipe combines connect, TransactNamedPipe and close; a server that
// reads the request and closes without answering breaks the call:
// Unavailable, as for Transact.
TEST(CallTest, ServerClosingBeforeReplyingIsUnavailable) {
  const std::string name = UniqueName("call-noreply");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, MessageOptions());
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<std::string> request;
  absl::StatusOr<std::string> reply;
  {
    Background server([&] {
      absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
      if (!ch.ok()) {
        request = ch.status();
        return;
      }
      request = ch->ReadMessage(kHangGuard);
      ch->Close();
    });
    reply = canal::Call(name, "hello?", kHangGuard);
    if (!reply.ok() && !absl::IsUnavailable(reply.status())) listener->Close();
  }
  CANAL_ASSERT_OK(request);
  EXPECT_EQ(*request, "hello?");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable)
      << reply.status();
}

// A request over the listener's max_message_size is InvalidArgument before
// anything is sent: the listener receives no message from the Call (it may
// see a connection that ends at once), and the next client is served.
TEST(CallTest, RequestOverMaxMessageSizeIsInvalidArgumentAndSendsNothing) {
  const std::string name = UniqueName("call-big");
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 16;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  const absl::Status refused =
      canal::Call(name, std::string(17, 'x'), kHangGuard).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_TRUE(canal_test::MessageNames(refused, "Call", name));
  absl::StatusOr<canal::Channel> marker = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(marker);
  CANAL_ASSERT_OK(marker->WriteMessage("marker"));
  // Every message the listener gets is the marker; connections without a
  // message (the refused Call's, if it connected) end at once.
  bool saw_marker = false;
  for (int i = 0; i < 4 && !saw_marker; ++i) {
    absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<std::string> m = ch->ReadMessage(kHangGuard);
    if (absl::IsOutOfRange(m.status())) continue;
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(*m, "marker") << "the listener received a refused request";
    saw_marker = true;
  }
  EXPECT_TRUE(saw_marker);
}

}  // namespace
