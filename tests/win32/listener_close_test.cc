// SPDX-License-Identifier: Apache-2.0
// What closing (or destroying) a listener does on Windows while the
// channels it accepted live on: the pipe, and so the name, stays until
// their instances are gone, so clients must learn from the listener's
// section that it was closed (NotFound, at once) instead of waiting for an
// instance that will never free up; the name cannot be listened on again
// until those channels close. Also: when an instance counts against
// max_instances, and destroying a listener while a thread is in Accept.

#include <windows.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
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
using canal_test::RunningUnderWine;
using canal_test::UniqueName;

constexpr absl::Duration kLongTimeout = absl::Seconds(30);

canal::ConnectOptions Timeout(absl::Duration timeout) {
  canal::ConnectOptions options;
  options.timeout = timeout;
  return options;
}

canal::ListenerOptions Limited(int max_instances) {
  canal::ListenerOptions options;
  options.max_instances = max_instances;
  return options;
}

TEST(ClosedListenerTest, ConnectAndWaitAreNotFoundAtOnceWhileChannelsLive) {
  for (int max_instances : {canal::kUnlimitedInstances, 1}) {
    SCOPED_TRACE(max_instances);
    const std::string name = UniqueName("closed-live");
    absl::StatusOr<ConnectedPair> pair = MakePair(name, Limited(max_instances));
    ASSERT_TRUE(pair.ok()) << pair.status();
    pair->listener.Close();
    absl::Status connected;
    absl::Status waited;
    {
      Background connect([&] {
        connected =
            canal::Channel::Connect(name, Timeout(kLongTimeout)).status();
      });
      EXPECT_TRUE(connect.Finished(kHangGuard));
    }
    {
      Background wait(
          [&] { waited = canal::WaitForListener(name, kLongTimeout); });
      EXPECT_TRUE(wait.Finished(kHangGuard));
    }
    EXPECT_EQ(connected.code(), absl::StatusCode::kNotFound) << connected;
    EXPECT_TRUE(canal_test::MessageNames(connected, "Connect", name));
    EXPECT_EQ(waited.code(), absl::StatusCode::kNotFound) << waited;
    // The accepted channel still works.
    CANAL_ASSERT_OK(pair->client.Write("still"));
    absl::StatusOr<std::string> got = canal_test::ReadExactly(pair->server, 5);
    CANAL_ASSERT_OK(got);
    EXPECT_EQ(*got, "still");
  }
}

TEST(ClosedListenerTest, ConnectWaitingForABusyListenerEndsWhenItCloses) {
  const std::string name = UniqueName("closed-wait");
  absl::StatusOr<ConnectedPair> pair = MakePair(name, Limited(1));
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::Notification started;
  absl::Status connected;
  absl::Status waited;
  {
    Background connect([&] {
      started.Notify();
      connected = canal::Channel::Connect(name, Timeout(kLongTimeout)).status();
    });
    Background wait(
        [&] { waited = canal::WaitForListener(name, kLongTimeout); });
    started.WaitForNotification();
    pair->listener.Close();
    EXPECT_TRUE(connect.Finished(kHangGuard));
    EXPECT_TRUE(wait.Finished(kHangGuard));
  }
  EXPECT_EQ(connected.code(), absl::StatusCode::kNotFound) << connected;
  EXPECT_EQ(waited.code(), absl::StatusCode::kNotFound) << waited;
}

// Windows keeps the closed listener's pipe (its mode, limit and DACL) while
// an accepted channel has an instance; a new listener would have to join
// it, so the name is refused until those channels are closed.
TEST(ClosedListenerTest, NameIsTakenUntilItsChannelsClose) {
  const std::string name = UniqueName("closed-again");
  absl::StatusOr<ConnectedPair> pair = MakePair(name);
  ASSERT_TRUE(pair.ok()) << pair.status();
  pair->listener.Close();
  absl::StatusOr<canal::Listener> again = canal::Listener::Create(name);
  CANAL_EXPECT_CODE(again, kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(again.status().message(),
                                "earlier listener of this name"))
      << again.status();
  pair->server.Close();
  pair->client.Close();
  again = canal::Listener::Create(name);
  CANAL_ASSERT_OK(again);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_EXPECT_OK(client);
}

// How long an instance counts against max_instances. Windows counts it
// until both ends are closed (the named-pipe file system frees an instance
// when its last handle goes, and CreateNamedPipe refuses more than
// nMaxInstances with ERROR_PIPE_BUSY); Wine frees it when the server's end
// closes. Either way, once both ends are closed a waiting client gets it.
TEST(InstanceLimitTest, AnInstanceCountsUntilBothEndsClose) {
  const std::string name = UniqueName("inst-count");
  absl::StatusOr<ConnectedPair> pair = MakePair(name, Limited(1));
  ASSERT_TRUE(pair.ok()) << pair.status();
  pair->server.Close();
  // The client has not closed its end yet.
  absl::StatusOr<canal::Channel> second =
      canal::Channel::Connect(name, Timeout(absl::Milliseconds(300)));
  if (RunningUnderWine()) {
    CANAL_EXPECT_OK(second);
  } else {
    CANAL_EXPECT_CODE(second, kDeadlineExceeded);
    pair->client.Close();
    second = canal::Channel::Connect(name, Timeout(kHangGuard));
    CANAL_EXPECT_OK(second);
  }
  absl::StatusOr<canal::Channel> accepted = pair->listener.Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted);
  CANAL_ASSERT_OK(second->Write("next"));
  absl::StatusOr<std::string> got = canal_test::ReadExactly(*accepted, 4);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "next");
}

// --- Destroying a listener while a thread is in Accept ----------------------

// Accept is inside the authorisation callback when another thread destroys
// the listener: the destructor waits for the call to leave (so that nothing
// it uses, the callback's captures included, goes away under it) and the
// call returns Cancelled.
TEST(DestroyListenerTest, WaitsForAcceptInTheCallbackAndCancelsIt) {
  const std::string name = UniqueName("destroy-cb");
  absl::Notification in_callback;
  absl::Notification release;
  std::atomic<bool> released{false};
  canal::ListenerOptions options;
  options.authorize = [&](const canal::PeerInfo&) {
    in_callback.Notify();
    release.WaitForNotification();
    released.store(true);
    return absl::OkStatus();
  };
  auto listener = std::make_unique<canal::Listener>();
  {
    absl::StatusOr<canal::Listener> created =
        canal::Listener::Create(name, options);
    ASSERT_TRUE(created.ok()) << created.status();
    *listener = *std::move(created);
  }
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::Status accepted;
  std::atomic<bool> destroyed_before_release{false};
  absl::Notification destroyed;
  {
    Background accept([&] { accepted = listener->Accept().status(); });
    in_callback.WaitForNotification();
    Background destroy([&] {
      listener.reset();
      destroyed_before_release.store(!released.load());
      destroyed.Notify();
    });
    // The listener is closed once its name is gone.
    while (canal::WaitForListener(name, absl::ZeroDuration()).code() !=
           absl::StatusCode::kNotFound) {
    }
    // Give a destructor that does not wait the chance to return.
    destroyed.WaitForNotificationWithTimeout(absl::Milliseconds(500));
    release.Notify();
    EXPECT_TRUE(accept.Finished(kHangGuard));
    EXPECT_TRUE(destroy.Finished(kHangGuard));
  }
  EXPECT_FALSE(destroyed_before_release.load())
      << "the destructor returned while Accept was still in the callback";
  EXPECT_EQ(accepted.code(), absl::StatusCode::kCancelled) << accepted;
}

// Accept is waiting for a client (it has just refused one) when another
// thread destroys the listener: it returns Cancelled, and the process does
// not touch freed memory (run many times).
TEST(DestroyListenerTest, WakesWaitingAcceptWithCancelled) {
  for (int round = 0; round < 20; ++round) {
    const std::string name = UniqueName("destroy-wait");
    absl::Notification refused;
    canal::ListenerOptions options;
    options.authorize = [&](const canal::PeerInfo&) {
      refused.Notify();
      return absl::PermissionDeniedError("not you");
    };
    auto listener = std::make_unique<canal::Listener>();
    {
      absl::StatusOr<canal::Listener> created =
          canal::Listener::Create(name, options);
      ASSERT_TRUE(created.ok()) << created.status();
      *listener = *std::move(created);
    }
    absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
    ASSERT_TRUE(client.ok()) << client.status();
    absl::Status accepted;
    {
      Background accept([&] { accepted = listener->Accept().status(); });
      refused.WaitForNotification();
      listener.reset();
      EXPECT_TRUE(accept.Finished(kHangGuard));
    }
    ASSERT_EQ(accepted.code(), absl::StatusCode::kCancelled) << accepted;
  }
}

}  // namespace
