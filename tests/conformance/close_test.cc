// SPDX-License-Identifier: Apache-2.0
// Row 10: Close() from another thread wakes a blocked Read, Write or Accept
// with Cancelled; a channel may be read on one thread while written on
// another; operations after Close fail with Cancelled; moved-from and
// default-constructed objects fail with FailedPrecondition.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::Background;
using canal_test::ConnectedPair;
using canal_test::MakePair;
using canal_test::MessageOptions;
using canal_test::Pattern;
using canal_test::ReadExactly;
using canal_test::UniqueName;

// How long a woken call may take to return. The contract says 100 ms; this
// is only a hang guard, generous for slow machines and Wine.
constexpr absl::Duration kWakeBound = absl::Seconds(5);

TEST(CloseTest, CloseWakesBlockedRead) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("close-read"));
  CANAL_ASSERT_OK(pair);
  absl::Notification first_read;
  absl::Status second_read;
  {
    Background reader([&] {
      char buffer[8];
      // The first Read proves the thread is running; the second one blocks.
      absl::StatusOr<canal::ReadResult> r =
          pair->server.Read(absl::MakeSpan(buffer, 1));
      first_read.Notify();
      if (!r.ok()) {
        second_read = r.status();
        return;
      }
      second_read = pair->server.Read(absl::MakeSpan(buffer)).status();
    });
    CANAL_ASSERT_OK(pair->client.Write("x"));
    EXPECT_TRUE(first_read.WaitForNotificationWithTimeout(kWakeBound));
    pair->server.Close();
    if (!reader.Finished(kWakeBound)) {
      ADD_FAILURE() << "Close did not wake the blocked Read";
      pair->client.Close();  // Let the reader go (OutOfRange).
    }
  }
  EXPECT_EQ(second_read.code(), absl::StatusCode::kCancelled) << second_read;
}

TEST(CloseTest, CloseWakesBlockedReadMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("close-rmsg"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::Notification started;
  absl::Status read_status;
  {
    Background reader([&] {
      started.Notify();
      read_status = pair->client.ReadMessage().status();
    });
    started.WaitForNotification();
    pair->client.Close();
    if (!reader.Finished(kWakeBound)) {
      ADD_FAILURE() << "Close did not wake the blocked ReadMessage";
      pair->server.Close();
    }
  }
  EXPECT_EQ(read_status.code(), absl::StatusCode::kCancelled) << read_status;
}

TEST(CloseTest, CloseWakesWriteBlockedOnFullPipe) {
  canal::ListenerOptions options;
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("close-write"), options);
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(32 * 1024 * 1024);
  absl::Notification started;
  absl::Status write_status;
  {
    Background writer([&] {
      started.Notify();
      // Nobody reads, so this cannot complete.
      write_status = pair->client.Write(big);
    });
    started.WaitForNotification();
    pair->client.Close();
    if (!writer.Finished(kWakeBound)) {
      ADD_FAILURE() << "Close did not wake the blocked Write";
      pair->server.Close();
    }
  }
  EXPECT_EQ(write_status.code(), absl::StatusCode::kCancelled) << write_status;
}

TEST(CloseTest, ListenerCloseWakesBlockedAccept) {
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(UniqueName("close-accept"));
  CANAL_ASSERT_OK(listener);
  absl::Notification started;
  absl::Status accept_status;
  {
    Background acceptor([&] {
      started.Notify();
      accept_status = listener->Accept().status();
    });
    started.WaitForNotification();
    listener->Close();
    EXPECT_TRUE(acceptor.Finished(kWakeBound))
        << "Close did not wake the blocked Accept";
  }
  EXPECT_EQ(accept_status.code(), absl::StatusCode::kCancelled)
      << accept_status;
}

TEST(CloseTest, AcceptAfterListenerCloseIsCancelled) {
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(UniqueName("close-accept2"));
  CANAL_ASSERT_OK(listener);
  listener->Close();
  EXPECT_FALSE(listener->is_open());
  CANAL_EXPECT_CODE(listener->Accept(absl::Seconds(2)), kCancelled);
}

TEST(CloseTest, ReadAndWriteOnDifferentThreadsAtOnce) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("close-duplex"));
  CANAL_ASSERT_OK(pair);
  const std::string up = Pattern(2 * 1024 * 1024, 1);
  const std::string down = Pattern(2 * 1024 * 1024, 2);
  // Both ends write a lot at once while reading on another thread: with a
  // channel that cannot read while writing, this deadlocks on full buffers.
  absl::Status client_write, server_write;
  absl::StatusOr<std::string> client_got, server_got;
  {
    Background cw([&] { client_write = pair->client.Write(up); });
    Background sw([&] { server_write = pair->server.Write(down); });
    Background cr([&] { client_got = ReadExactly(pair->client, down.size()); });
    server_got = ReadExactly(pair->server, up.size());
    const bool done = cw.Finished(absl::Seconds(20)) &&
                      sw.Finished(absl::Seconds(20)) &&
                      cr.Finished(absl::Seconds(20));
    if (!done) {
      ADD_FAILURE() << "concurrent read and write did not finish";
      pair->client.Close();
      pair->server.Close();
    }
  }
  CANAL_EXPECT_OK(client_write);
  CANAL_EXPECT_OK(server_write);
  CANAL_ASSERT_OK(client_got);
  CANAL_ASSERT_OK(server_got);
  EXPECT_TRUE(*client_got == down);
  EXPECT_TRUE(*server_got == up);
}

TEST(CloseTest, OperationsAfterCloseAreCancelled) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("close-after"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  pair->client.Close();
  EXPECT_FALSE(pair->client.is_open());
  char buffer[8];
  CANAL_EXPECT_CODE(pair->client.Read(absl::MakeSpan(buffer)), kCancelled);
  CANAL_EXPECT_CODE(pair->client.Write("x"), kCancelled);
  CANAL_EXPECT_CODE(pair->client.ReadMessage(), kCancelled);
  CANAL_EXPECT_CODE(pair->client.WriteMessage("x"), kCancelled);
  CANAL_EXPECT_CODE(pair->client.Transact("x"), kCancelled);
  CANAL_EXPECT_CODE(pair->client.Peek(), kCancelled);
}

TEST(CloseTest, CloseIsIdempotent) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("close-twice"));
  CANAL_ASSERT_OK(pair);
  pair->client.Close();
  pair->client.Close();
  pair->listener.Close();
  pair->listener.Close();
  char buffer[8];
  CANAL_EXPECT_CODE(pair->client.Read(absl::MakeSpan(buffer)), kCancelled);
}

TEST(CloseTest, AcceptedChannelsOutliveTheListener) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("close-outlive"));
  CANAL_ASSERT_OK(pair);
  pair->listener.Close();
  CANAL_ASSERT_OK(pair->client.Write("still here"));
  absl::StatusOr<std::string> got = ReadExactly(pair->server, 10);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "still here");
  CANAL_ASSERT_OK(pair->server.Write("me too"));
  got = ReadExactly(pair->client, 6);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "me too");
}

TEST(CloseTest, MovedFromChannelIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("close-moved"));
  CANAL_ASSERT_OK(pair);
  canal::Channel moved = std::move(pair->client);
  EXPECT_TRUE(moved.is_open());
  // NOLINTNEXTLINE(bugprone-use-after-move): testing the moved-from state.
  canal::Channel& old = pair->client;
  EXPECT_FALSE(old.is_open());
  char buffer[8];
  CANAL_EXPECT_CODE(old.Read(absl::MakeSpan(buffer), absl::Milliseconds(100)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(old.Write("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(old.Peek(), kFailedPrecondition);
  CANAL_EXPECT_CODE(old.Peer(), kFailedPrecondition);
  old.Close();  // Harmless.
  // The moved-to channel still works.
  CANAL_ASSERT_OK(moved.Write("y"));
  absl::StatusOr<std::string> got = ReadExactly(pair->server, 1);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "y");
}

TEST(CloseTest, DefaultConstructedChannelIsFailedPrecondition) {
  canal::Channel channel;
  EXPECT_FALSE(channel.is_open());
  EXPECT_EQ(channel.mode(), canal::PipeMode::kByte);
  char buffer[8];
  CANAL_EXPECT_CODE(channel.Read(absl::MakeSpan(buffer)), kFailedPrecondition);
  CANAL_EXPECT_CODE(channel.Write("x"), kFailedPrecondition);
  CANAL_EXPECT_CODE(channel.ReadMessage(), kFailedPrecondition);
  CANAL_EXPECT_CODE(channel.WriteMessage("x"), kFailedPrecondition);
  CANAL_EXPECT_CODE(channel.Transact("x"), kFailedPrecondition);
}

TEST(CloseTest, MovedFromListenerIsFailedPrecondition) {
  const std::string name = UniqueName("close-lmoved");
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  canal::Listener moved = std::move(*listener);
  EXPECT_TRUE(moved.is_open());
  EXPECT_EQ(moved.name(), name);
  canal::Listener& old = *listener;
  EXPECT_FALSE(old.is_open());
  CANAL_EXPECT_CODE(old.Accept(absl::Milliseconds(100)), kFailedPrecondition);
  old.Close();  // Harmless, and does not close the moved-to listener.
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

// Wine's test_transact, "cancel keeps written data": a Transact waiting for
// its reply is woken by Close() with Cancelled, and its request stays
// delivered.
TEST(CloseTest, CloseWakesTransactWaitingForItsReply) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("close-tx"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::Status transact_status;
  {
    Background caller([&] {
      transact_status =
          pair->client.Transact("request", kWakeBound * 3).status();
    });
    absl::StatusOr<std::string> request = pair->server.ReadMessage(kWakeBound);
    CANAL_EXPECT_OK(request);
    if (request.ok()) {
      EXPECT_EQ(*request, "request");
    }
    pair->client.Close();
    if (!caller.Finished(kWakeBound)) {
      ADD_FAILURE() << "Close did not wake the Transact";
      pair->server.Close();
    }
  }
  EXPECT_EQ(transact_status.code(), absl::StatusCode::kCancelled)
      << transact_status;
}

// Wine's test_blocking_rw: CancelIoEx ends a pending write with
// ERROR_OPERATION_ABORTED; Close() does so for a WriteMessage blocked on a
// full pipe.
TEST(CloseTest, CloseWakesWriteMessageBlockedOnFullPipe) {
  canal::ListenerOptions options = MessageOptions();
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("close-wmsg"), options);
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(8 * 1024 * 1024);
  absl::Status write_status;
  {
    Background writer(
        [&] { write_status = pair->server.WriteMessage(big, kWakeBound * 3); });
    // The first byte has arrived: the write is under way.
    char first[1];
    CANAL_EXPECT_OK(pair->client.Read(absl::MakeSpan(first), kWakeBound));
    pair->server.Close();
    if (!writer.Finished(kWakeBound)) {
      ADD_FAILURE() << "Close did not wake the blocked WriteMessage";
      pair->client.Close();
    }
  }
  EXPECT_EQ(write_status.code(), absl::StatusCode::kCancelled) << write_status;
}

}  // namespace
