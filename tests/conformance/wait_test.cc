// SPDX-License-Identifier: Apache-2.0
// Row 7: WaitForListener, like WaitNamedPipe. OK as soon as the name can be
// connected to, NotFound at once when no listener has the name,
// DeadlineExceeded when every instance stays busy past the timeout.

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::Background;
using canal_test::ConnectedPair;
using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::UniqueName;

TEST(WaitForListenerTest, FreeListenerIsOk) {
  const std::string name = UniqueName("wait-ok");
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_OK(canal::WaitForListener(name, kHangGuard));
  // Waiting did not use up the instance.
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(WaitForListenerTest, MessageListenerIsOk) {
  const std::string name = UniqueName("wait-msg");
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_OK(canal::WaitForListener(name, kHangGuard));
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(WaitForListenerTest, UnknownNameIsNotFoundAtOnce) {
  // "At once": with no timeout at all, a call that waited for the name to
  // appear would never return (and the test's own timeout would fail it).
  CANAL_EXPECT_CODE(
      canal::WaitForListener(UniqueName("wait-none"), absl::InfiniteDuration()),
      kNotFound);
}

TEST(WaitForListenerTest, BusyListenerIsDeadlineExceeded) {
  const std::string name = UniqueName("wait-busy");
  canal::ListenerOptions options;
  options.max_instances = 1;
  absl::StatusOr<ConnectedPair> pair = MakePair(name, options);
  CANAL_ASSERT_OK(pair);
  const absl::Time start = absl::Now();
  CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::Milliseconds(150)),
                    kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
}

TEST(WaitForListenerTest, ReturnsOkWhenABusyInstanceIsFreed) {
  const std::string name = UniqueName("wait-freed");
  canal::ListenerOptions options;
  options.max_instances = 1;
  absl::StatusOr<ConnectedPair> pair = MakePair(name, options);
  CANAL_ASSERT_OK(pair);
  absl::Notification started;
  absl::Status waited;
  {
    Background waiter([&] {
      started.Notify();
      waited = canal::WaitForListener(name, kHangGuard);
    });
    started.WaitForNotification();
    pair->server.Close();
    pair->client.Close();
    EXPECT_TRUE(waiter.Finished(kHangGuard + absl::Seconds(5)));
  }
  CANAL_EXPECT_OK(waited);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(WaitForListenerTest, ClosedListenerIsNotFound) {
  const std::string name = UniqueName("wait-closed");
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  listener->Close();
  CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::Seconds(2)), kNotFound);
}

}  // namespace
