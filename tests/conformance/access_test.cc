// SPDX-License-Identifier: Apache-2.0
// Row 5: PipeAccess, seen from the listener. On an inbound pipe clients write
// and the listener reads; on an outbound pipe the reverse. The forbidden
// direction fails with FailedPrecondition on both sides.

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::ConnectedPair;
using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::UniqueName;

canal::ListenerOptions Options(canal::PipeAccess access,
                               canal::PipeMode mode = canal::PipeMode::kByte) {
  canal::ListenerOptions options;
  options.access = access;
  options.mode = mode;
  return options;
}

TEST(AccessTest, InboundCarriesDataFromClientToListener) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("acc-in-ok"), Options(canal::PipeAccess::kInbound));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("up"));
  absl::StatusOr<std::string> got = canal_test::ReadExactly(pair->server, 2);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "up");
}

TEST(AccessTest, InboundClientCannotRead) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("acc-in-cr"), Options(canal::PipeAccess::kInbound));
  CANAL_ASSERT_OK(pair);
  char buffer[4];
  CANAL_EXPECT_CODE(
      pair->client.Read(absl::MakeSpan(buffer), absl::Milliseconds(100)),
      kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->client.Peek(absl::MakeSpan(buffer)),
                    kFailedPrecondition);
}

TEST(AccessTest, InboundListenerCannotWrite) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("acc-in-sw"), Options(canal::PipeAccess::kInbound));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->server.Write("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
}

TEST(AccessTest, OutboundCarriesDataFromListenerToClient) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("acc-out-ok"), Options(canal::PipeAccess::kOutbound));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.Write("down"));
  absl::StatusOr<std::string> got = canal_test::ReadExactly(pair->client, 4);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "down");
}

TEST(AccessTest, OutboundClientCannotWrite) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("acc-out-cw"), Options(canal::PipeAccess::kOutbound));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.Write("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
}

TEST(AccessTest, OutboundListenerCannotRead) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("acc-out-sr"), Options(canal::PipeAccess::kOutbound));
  CANAL_ASSERT_OK(pair);
  char buffer[4];
  CANAL_EXPECT_CODE(
      pair->server.Read(absl::MakeSpan(buffer), absl::Milliseconds(100)),
      kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->server.Peek(absl::MakeSpan(buffer)),
                    kFailedPrecondition);
}

TEST(AccessTest, InboundMessageCallsInTheWrongDirectionFail) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("acc-in-msg"),
               Options(canal::PipeAccess::kInbound, canal::PipeMode::kMessage));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.ReadMessage(absl::Milliseconds(100)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->server.WriteMessage("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
  // The allowed direction still works.
  CANAL_ASSERT_OK(pair->client.WriteMessage("ok"));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "ok");
}

TEST(AccessTest, OutboundMessageCallsInTheWrongDirectionFail) {
  absl::StatusOr<ConnectedPair> pair = MakePair(
      UniqueName("acc-out-msg"),
      Options(canal::PipeAccess::kOutbound, canal::PipeMode::kMessage));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.WriteMessage("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->server.ReadMessage(absl::Milliseconds(100)),
                    kFailedPrecondition);
  CANAL_ASSERT_OK(pair->server.WriteMessage("ok"));
  absl::StatusOr<std::string> m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "ok");
}

TEST(AccessTest, TransactOnOneWayPipeIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("acc-tx"),
               Options(canal::PipeAccess::kInbound, canal::PipeMode::kMessage));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.Transact("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->server.Transact("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
}

}  // namespace
