// SPDX-License-Identifier: Apache-2.0
// Transact and Call when the peer goes away before replying, and Call's
// check of the request size: Win32 specifics of semantics row 3.

#include <windows.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::Background;
using canal_test::ConnectedPair;
using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::MessageOptions;
using canal_test::UniqueName;

// The server reads the request and closes without a reply: Unavailable (the
// connection broke in the middle of the exchange), not OutOfRange, for
// Transact and Call alike. Wine reports this as ERROR_BAD_PIPE, Windows as
// ERROR_BROKEN_PIPE / ERROR_PIPE_NOT_CONNECTED.
TEST(CallTest, PeerClosingBeforeTheReplyIsUnavailable) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("call-transact-gone"), MessageOptions());
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::StatusOr<std::string> reply;
  {
    Background client(
        [&] { reply = pair->client.Transact("hello", kHangGuard); });
    absl::StatusOr<std::string> request = pair->server.ReadMessage(kHangGuard);
    CANAL_EXPECT_OK(request);
    pair->server.Close();
    EXPECT_TRUE(client.Finished(kHangGuard));
  }
  CANAL_EXPECT_CODE(reply, kUnavailable);
  EXPECT_TRUE(canal_test::MessageNames(reply.status(), "Transact",
                                       pair->client.name()));

  const std::string name = UniqueName("call-gone");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, MessageOptions());
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::Status served;
  Background server([&] {
    absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
    if (!ch.ok()) {
      served = ch.status();
      return;
    }
    served = ch->ReadMessage(kHangGuard).status();
    ch->Close();
  });
  absl::StatusOr<std::string> called = canal::Call(name, "hello", kHangGuard);
  EXPECT_TRUE(server.Finished(kHangGuard));
  CANAL_EXPECT_OK(served);
  CANAL_EXPECT_CODE(called, kUnavailable);
  EXPECT_TRUE(canal_test::MessageNames(called.status(), "Call", name));
}

// A request over the listener's max_message_size (which the client learns
// from the listener's section) is InvalidArgument before anything is sent:
// the listener's end sees the client leave without a byte.
TEST(CallTest, OversizedRequestIsInvalidArgumentBeforeAnythingIsSent) {
  const std::string name = UniqueName("call-big");
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 64;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<std::string> called =
      canal::Call(name, std::string(65, 'x'), kHangGuard);
  CANAL_EXPECT_CODE(called, kInvalidArgument);
  EXPECT_TRUE(canal_test::MessageNames(called.status(), "Call", name));
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  ASSERT_TRUE(server.ok()) << server.status();
  CANAL_EXPECT_CODE(server->ReadMessage(kHangGuard), kOutOfRange);
  // At the limit it goes through.
  Background serve([&] {
    absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
    if (!ch.ok()) return;
    absl::StatusOr<std::string> request = ch->ReadMessage(kHangGuard);
    if (request.ok()) (void)ch->WriteMessage(std::to_string(request->size()));
  });
  absl::StatusOr<std::string> reply =
      canal::Call(name, std::string(64, 'x'), kHangGuard);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "64");
}

}  // namespace
