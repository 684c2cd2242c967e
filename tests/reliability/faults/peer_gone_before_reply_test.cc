// SPDX-License-Identifier: Apache-2.0
// A peer that reads the request and closes without replying: Transact and
// Call fail with Unavailable ("the peer closed the pipe before replying") on
// both backends, as TransactNamedPipe does on Windows, not OutOfRange (which
// a plain read of a finished stream reports). The conformance expectation,
// written here too; the POSIX-only case of a stream that ends inside the
// reply (DataLoss) is in tests/posix/faults/raw_peer_test.cc.

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace canal_test {
namespace {

TEST(PeerGoneBeforeReply, TransactIsUnavailable) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("gone-transact"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  Background server([&] {
    absl::StatusOr<std::string> request = pair->server.ReadMessage(kHangGuard);
    EXPECT_TRUE(request.ok()) << request.status();
    if (request.ok()) {
      EXPECT_EQ(*request, "question");
    }
    pair->server.Close();
  });
  absl::StatusOr<std::string> reply =
      pair->client.Transact("question", kHangGuard);
  ASSERT_EQ(reply.status().code(), absl::StatusCode::kUnavailable)
      << reply.status();
  EXPECT_TRUE(MessageNames(reply.status(), "Transact", pair->client.name()));
  EXPECT_TRUE(server.Finished(kHangGuard));
}

TEST(PeerGoneBeforeReply, CallIsUnavailable) {
  const std::string name = UniqueName("gone-call");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, MessageOptions());
  CANAL_ASSERT_OK(listener);
  Background server([&] {
    absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
    ASSERT_TRUE(ch.ok()) << ch.status();
    absl::StatusOr<std::string> request = ch->ReadMessage(kHangGuard);
    EXPECT_TRUE(request.ok()) << request.status();
    ch->Close();
  });
  absl::StatusOr<std::string> reply = canal::Call(name, "question", kHangGuard);
  ASSERT_EQ(reply.status().code(), absl::StatusCode::kUnavailable)
      << reply.status();
  EXPECT_TRUE(MessageNames(reply.status(), "Call", name));
  EXPECT_TRUE(server.Finished(kHangGuard));
}

// Not a reply-less close: a reply that was written before the close is
// still delivered.
TEST(PeerGoneBeforeReply, ReplyWrittenBeforeTheCloseIsDelivered) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("gone-replied"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  Background server([&] {
    absl::StatusOr<std::string> request = pair->server.ReadMessage(kHangGuard);
    EXPECT_TRUE(request.ok()) << request.status();
    EXPECT_TRUE(pair->server.WriteMessage("answer", kHangGuard).ok());
    pair->server.Close();
  });
  absl::StatusOr<std::string> reply =
      pair->client.Transact("question", kHangGuard);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "answer");
  EXPECT_TRUE(server.Finished(kHangGuard));
}

}  // namespace
}  // namespace canal_test
