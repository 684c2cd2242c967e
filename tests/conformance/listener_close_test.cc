// SPDX-License-Identifier: Apache-2.0
// Row 13: Listener::Close. Clients that connected but were never accepted lose
// their connection (they read end of stream, their writes fail); channels
// already accepted keep working, but the name is released at once: a new
// Connect, WaitForListener or Call gets NotFound without waiting, and a new
// listener may take the name.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
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
using canal_test::ReadExactly;
using canal_test::UniqueName;

canal::ConnectOptions Timeout(absl::Duration timeout) {
  canal::ConnectOptions options;
  options.timeout = timeout;
  return options;
}

// Writes until a Write fails (the first ones may still land in a buffer)
// and returns that failure.
absl::Status WriteUntilFailure(canal::Channel& channel) {
  const std::string chunk = Pattern(4096);
  for (int i = 0; i < 10000; ++i) {
    absl::Status status = channel.Write(chunk, kHangGuard);
    if (!status.ok()) return status;
  }
  return absl::InternalError("10000 writes to a closed listener all succeeded");
}

// Wine's test_CloseHandle: once the server end is closed, the client's
// ReadFile fails with ERROR_BROKEN_PIPE and its WriteFile with ERROR_NO_DATA;
// closing a listener closes the instances of the clients it never accepted.
void UnacceptedClientsLoseTheirConnection(canal::PipeMode mode,
                                          const char* label) {
  const std::string name = UniqueName(label);
  canal::ListenerOptions options;
  options.mode = mode;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  std::vector<canal::Channel> clients;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<canal::Channel> client =
        canal::Channel::Connect(name, Timeout(kHangGuard));
    CANAL_ASSERT_OK(client);
    clients.push_back(*std::move(client));
  }
  // One of them has already sent something nobody will read.
  CANAL_ASSERT_OK(clients[0].Write("unread"));
  listener->Close();
  for (size_t i = 0; i < clients.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("client ", i));
    char buffer[16];
    CANAL_EXPECT_CODE(clients[i].Read(absl::MakeSpan(buffer), kHangGuard),
                      kOutOfRange);
    const absl::Status write = WriteUntilFailure(clients[i]);
    EXPECT_EQ(write.code(), absl::StatusCode::kUnavailable) << write;
  }
}

TEST(ListenerCloseTest, UnacceptedByteClientsSeeEndOfStream) {
  UnacceptedClientsLoseTheirConnection(canal::PipeMode::kByte, "lc-unacc-b");
}

TEST(ListenerCloseTest, UnacceptedMessageClientsSeeEndOfStream) {
  UnacceptedClientsLoseTheirConnection(canal::PipeMode::kMessage, "lc-unacc-m");
}

// A blocked Read of an unaccepted client wakes when the listener closes.
TEST(ListenerCloseTest, BlockedReadOfAnUnacceptedClientWakes) {
  const std::string name = UniqueName("lc-unacc-wake");
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  absl::Status read_status;
  {
    Background reader([&] {
      char buffer[8];
      read_status = client->Read(absl::MakeSpan(buffer), kHangGuard).status();
    });
    listener->Close();
    if (!reader.Finished(kHangGuard + absl::Seconds(5))) {
      ADD_FAILURE() << "the blocked Read did not wake";
      client->Close();
    }
  }
  EXPECT_EQ(read_status.code(), absl::StatusCode::kOutOfRange) << read_status;
}

// Listener::Close "releases the name" while accepted channels stay open:
// Connect, WaitForListener and Call fail with NotFound at once, as if no
// listener had ever had the name (WaitNamedPipe: "If no instances of the
// specified named pipe exist, the WaitNamedPipe function returns
// immediately, regardless of the time-out value"), and the old channels
// still carry data both ways. `max_instances` = 1 makes the old channel use
// up the limit as well.
enum class Probe { kConnect, kWaitForListener, kCall };

void NameIsGoneAtOnceWhileAcceptedChannelsLive(Probe probe, int max_instances,
                                               const char* label) {
  const std::string name = UniqueName(label);
  canal::ListenerOptions options = MessageOptions();
  options.max_instances = max_instances;
  absl::StatusOr<ConnectedPair> pair = MakePair(name, options);
  CANAL_ASSERT_OK(pair);
  pair->listener.Close();
  const absl::Duration long_wait = 3 * kHangGuard;
  absl::Status status;
  {
    Background caller([&] {
      switch (probe) {
        case Probe::kConnect:
          status = canal::Channel::Connect(name, Timeout(long_wait)).status();
          break;
        case Probe::kWaitForListener:
          status = canal::WaitForListener(name, long_wait);
          break;
        case Probe::kCall:
          status = canal::Call(name, "hello?", long_wait).status();
          break;
      }
    });
    if (!caller.Finished(kHangGuard)) {
      ADD_FAILURE() << "waited for an instance although the listener was "
                       "closed";
      // Closing the old channels removes the last instances.
      pair->server.Close();
      pair->client.Close();
      return;
    }
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  CANAL_ASSERT_OK(pair->client.WriteMessage("still here"));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "still here");
  CANAL_ASSERT_OK(pair->server.WriteMessage("me too"));
  m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "me too");
}

TEST(ListenerCloseTest, ConnectIsNotFoundAtOnceWhileAcceptedChannelsLive) {
  NameIsGoneAtOnceWhileAcceptedChannelsLive(
      Probe::kConnect, canal::kUnlimitedInstances, "lc-live-conn");
}

TEST(ListenerCloseTest, WaitIsNotFoundAtOnceWhileAcceptedChannelsLive) {
  NameIsGoneAtOnceWhileAcceptedChannelsLive(
      Probe::kWaitForListener, canal::kUnlimitedInstances, "lc-live-wait");
}

TEST(ListenerCloseTest, CallIsNotFoundAtOnceWhileAcceptedChannelsLive) {
  NameIsGoneAtOnceWhileAcceptedChannelsLive(
      Probe::kCall, canal::kUnlimitedInstances, "lc-live-call");
}

TEST(ListenerCloseTest, ConnectIsNotFoundAtOnceWhileAllInstancesAreInUse) {
  NameIsGoneAtOnceWhileAcceptedChannelsLive(Probe::kConnect, 1, "lc-full-conn");
}

TEST(ListenerCloseTest, WaitIsNotFoundAtOnceWhileAllInstancesAreInUse) {
  NameIsGoneAtOnceWhileAcceptedChannelsLive(Probe::kWaitForListener, 1,
                                            "lc-full-wait");
}

// "Stops listening and releases the name" (canal/listener.h): a new
// listener can take the name while the old channels live, and new clients
// reach the new listener, not the old one.
// POSIX binds a new socket. Windows would have to add instances to the old
// pipe, whose mode, instance limit and DACL its first instance fixed, so
// canal refuses until the old channels are closed (docs/semantics.md,
// "listening again on a name ...").
TEST(ListenerCloseTest, NewListenerTakesTheNameWhileOldChannelsLive) {
  const std::string name = UniqueName("lc-retake");
  absl::StatusOr<ConnectedPair> pair = MakePair(name);
  CANAL_ASSERT_OK(pair);
  pair->listener.Close();
#if defined(_WIN32)
  absl::StatusOr<canal::Listener> refused = canal_test::CreateListener(name);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists)
      << refused.status();
  CANAL_ASSERT_OK(pair->client.Write("old"));
  absl::StatusOr<std::string> old = ReadExactly(pair->server, 3);
  CANAL_ASSERT_OK(old);
  EXPECT_EQ(*old, "old");
  pair->client.Close();
  pair->server.Close();
  absl::StatusOr<canal::Listener> second = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(second);
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, Timeout(kHangGuard));
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::Channel> accepted = second->Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted);
  CANAL_ASSERT_OK(client->Write("new"));
  absl::StatusOr<std::string> got = ReadExactly(*accepted, 3);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "new");
#else
  absl::StatusOr<canal::Listener> second = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(second);
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, Timeout(kHangGuard));
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::Channel> accepted = second->Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted);
  CANAL_ASSERT_OK(client->Write("new"));
  absl::StatusOr<std::string> got = ReadExactly(*accepted, 3);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "new");
  // The old pair is untouched.
  CANAL_ASSERT_OK(pair->client.Write("old"));
  got = ReadExactly(pair->server, 3);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "old");
#endif
}

// A Connect waiting for the busy instance of a listener that then closes
// ends with NotFound, without waiting out its timeout (the instance held by
// a client that was never accepted goes away with the listener).
TEST(ListenerCloseTest, WaitingConnectEndsWithNotFoundWhenTheListenerCloses) {
  const std::string name = UniqueName("lc-waiting");
  canal::ListenerOptions options;
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> holder = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(holder);
  absl::Notification started;
  absl::Status waited;
  {
    Background waiter([&] {
      started.Notify();
      waited = canal::Channel::Connect(name, Timeout(3 * kHangGuard)).status();
    });
    started.WaitForNotification();
    listener->Close();
    if (!waiter.Finished(kHangGuard)) {
      ADD_FAILURE() << "the waiting Connect did not notice the listener close";
      holder->Close();
    }
  }
  EXPECT_EQ(waited.code(), absl::StatusCode::kNotFound) << waited;
}

}  // namespace
