// SPDX-License-Identifier: Apache-2.0
// Row 6: instances. With max_instances = N and N channels connected, the next
// Connect waits up to its timeout and then fails with DeadlineExceeded; when
// one closes, a waiting Connect succeeds. Clients connect without anyone
// blocked in Accept.

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::Background;
using canal_test::ConnectedPair;
using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::ReadExactly;
using canal_test::UniqueName;

canal::ConnectOptions Timeout(absl::Duration timeout) {
  canal::ConnectOptions options;
  options.timeout = timeout;
  return options;
}

canal::ListenerOptions Limited(int max_instances,
                               canal::PipeMode mode = canal::PipeMode::kByte) {
  canal::ListenerOptions options;
  options.max_instances = max_instances;
  options.mode = mode;
  return options;
}

TEST(InstancesTest, SecondConnectToSingleInstanceIsDeadlineExceeded) {
  const std::string name = UniqueName("inst-one");
  absl::StatusOr<ConnectedPair> pair = MakePair(name, Limited(1));
  CANAL_ASSERT_OK(pair);
  const absl::Time start = absl::Now();
  absl::StatusOr<canal::Channel> second =
      canal::Channel::Connect(name, Timeout(absl::Milliseconds(150)));
  CANAL_EXPECT_CODE(second, kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
}

TEST(InstancesTest, SingleInstanceIsBusyEvenBeforeAccept) {
  const std::string name = UniqueName("inst-noacc");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, Limited(1));
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> first = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(first);
  CANAL_EXPECT_CODE(
      canal::Channel::Connect(name, Timeout(absl::Milliseconds(100))),
      kDeadlineExceeded);
}

TEST(InstancesTest, ThirdConnectToTwoInstancesIsDeadlineExceeded) {
  const std::string name = UniqueName("inst-two");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, Limited(2, canal::PipeMode::kMessage));
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> a = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(a);
  absl::StatusOr<canal::Channel> b = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(b);
  absl::StatusOr<canal::Channel> sa = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(sa);
  absl::StatusOr<canal::Channel> sb = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(sb);
  CANAL_EXPECT_CODE(
      canal::Channel::Connect(name, Timeout(absl::Milliseconds(100))),
      kDeadlineExceeded);
}

TEST(InstancesTest, WaitingConnectSucceedsWhenAChannelCloses) {
  const std::string name = UniqueName("inst-wait");
  absl::StatusOr<ConnectedPair> pair = MakePair(name, Limited(1));
  CANAL_ASSERT_OK(pair);

  std::atomic<bool> closing{false};
  bool connected_before_close = false;
  absl::Notification started;
  absl::StatusOr<canal::Channel> second;
  {
    Background waiter([&] {
      started.Notify();
      second = canal::Channel::Connect(name, Timeout(kHangGuard));
      connected_before_close = second.ok() && !closing.load();
    });
    started.WaitForNotification();
    closing.store(true);
    // Windows frees the instance when the listener's end closes; POSIX when
    // the client's end does. Close both, as a real conversation ends.
    pair->server.Close();
    pair->client.Close();
    EXPECT_TRUE(waiter.Finished(kHangGuard + absl::Seconds(5)));
  }
  CANAL_ASSERT_OK(second);
  EXPECT_FALSE(connected_before_close)
      << "a second client connected while the only instance was in use";
  absl::StatusOr<canal::Channel> accepted2 = pair->listener.Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted2);
  CANAL_ASSERT_OK(second->Write("again"));
  absl::StatusOr<std::string> got = ReadExactly(*accepted2, 5);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "again");
}

// Many clients connect at once while nobody is in Accept; all succeed, then
// each accepted channel carries exactly one client's data.
void ManyClientsConnectWithoutAccept(canal::PipeMode mode, const char* label) {
  constexpr int kClients = 64;
  const std::string name = UniqueName(label);
  canal::ListenerOptions options;
  options.mode = mode;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);

  absl::Mutex mu;
  int connected = 0;  // Guarded by mu: clients that connected and wrote.
  std::vector<absl::Status> client_status(kClients);
  absl::Notification all_accepted;
  std::vector<std::unique_ptr<Background>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Background>([&, i] {
      const std::string id = absl::StrFormat("client-%03d", i);
      absl::StatusOr<canal::Channel> ch =
          canal::Channel::Connect(name, Timeout(kHangGuard));
      absl::Status status = ch.status();
      if (status.ok()) status = ch->Write(id, kHangGuard);
      {
        absl::MutexLock lock(&mu);
        ++connected;
      }
      if (!status.ok()) {
        client_status[i] = status;
        return;
      }
      // The listener echoes the id back on the channel it accepted.
      absl::StatusOr<std::string> echo = ReadExactly(*ch, id.size());
      if (!echo.ok()) {
        client_status[i] = echo.status();
      } else if (*echo != id) {
        client_status[i] = absl::InternalError("got " + *echo);
      }
      all_accepted.WaitForNotificationWithTimeout(kHangGuard);
    }));
  }
  {
    absl::MutexLock lock(&mu);
    auto all_in = [&] {
      mu.AssertHeld();
      return connected == kClients;
    };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_in), kHangGuard))
        << "only " << connected << " of " << kClients << " clients connected";
  }
  std::set<std::string> seen;
  for (int i = 0; i < kClients; ++i) {
    absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
    if (!ch.ok()) {
      ADD_FAILURE() << "Accept " << i << ": " << ch.status();
      break;
    }
    absl::StatusOr<std::string> id = ReadExactly(*ch, 10);
    if (!id.ok()) {
      ADD_FAILURE() << "Read on accepted channel " << i << ": " << id.status();
      continue;
    }
    EXPECT_TRUE(seen.insert(*id).second) << "duplicate " << *id;
    CANAL_EXPECT_OK(ch->Write(*id, kHangGuard));
  }
  all_accepted.Notify();
  clients.clear();  // Joins.
  EXPECT_EQ(seen.size(), static_cast<size_t>(kClients));
  for (int i = 0; i < kClients; ++i) {
    EXPECT_TRUE(client_status[i].ok())
        << "client " << i << ": " << client_status[i];
  }
}

TEST(InstancesTest, SixtyFourByteClientsConnectWithoutAccept) {
  ManyClientsConnectWithoutAccept(canal::PipeMode::kByte, "inst-64b");
}

TEST(InstancesTest, SixtyFourMessageClientsConnectWithoutAccept) {
  ManyClientsConnectWithoutAccept(canal::PipeMode::kMessage, "inst-64m");
}

// A client that has closed does not give its instance back by itself on
// Windows: Wine's test_CreateNamedPipe ("case 2: other client already
// closed") still gets ERROR_PIPE_BUSY until the server disconnects or
// closes its end ("An instance of a named pipe is always deleted when the
// last handle to the instance of the named pipe is closed", CreateNamedPipe
// remarks). On POSIX the instance is the client's slot lock, freed when the
// client closes (docs/semantics.md, "instance limit"). On both, once both
// ends have closed the instance is free again.
TEST(InstancesTest, ClosedClientsInstanceIsFreeOnceBothEndsClosed) {
  const std::string name = UniqueName("inst-cliclose");
  absl::StatusOr<ConnectedPair> pair = MakePair(name, Limited(1));
  CANAL_ASSERT_OK(pair);
  pair->client.Close();
  // The listener's side has seen the client go.
  char buffer[8];
  CANAL_ASSERT_CODE(pair->server.Read(absl::MakeSpan(buffer), kHangGuard),
                    kOutOfRange);
#ifdef _WIN32
  CANAL_EXPECT_CODE(
      canal::Channel::Connect(name, Timeout(absl::Milliseconds(200))),
      kDeadlineExceeded);
  CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::Milliseconds(200)),
                    kDeadlineExceeded);
#else
  {
    absl::StatusOr<canal::Channel> early =
        canal::Channel::Connect(name, Timeout(kHangGuard));
    CANAL_ASSERT_OK(early);
    absl::StatusOr<canal::Channel> early_accepted =
        pair->listener.Accept(kHangGuard);
    CANAL_ASSERT_OK(early_accepted);
    // Both close here: the instance is free again.
  }
#endif
  pair->server.Close();
  absl::StatusOr<canal::Channel> next =
      canal::Channel::Connect(name, Timeout(kHangGuard));
  CANAL_ASSERT_OK(next);
  absl::StatusOr<canal::Channel> accepted_next =
      pair->listener.Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted_next);
  CANAL_ASSERT_OK(next->Write("again"));
  absl::StatusOr<std::string> got = ReadExactly(*accepted_next, 5);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "again");
}

// Connect, and WaitForListener, count a client that connected but was not
// accepted yet against the limit (Wine's test_CreateNamedPipe: after
// CreateFile on the only instance, WaitNamedPipe(100) fails with
// ERROR_SEM_TIMEOUT before the server called ConnectNamedPipe).
TEST(InstancesTest, WaitForListenerCountsAClientNotYetAccepted) {
  const std::string name = UniqueName("inst-waitnoacc");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, Limited(1));
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> first = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(first);
  CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::Milliseconds(100)),
                    kDeadlineExceeded);
}

}  // namespace
