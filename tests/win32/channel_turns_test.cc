// SPDX-License-Identifier: Apache-2.0
// A call that waits behind another thread's call on the same channel (two
// readers, two writers, two transactions) still honours its own timeout:
// DeadlineExceeded, the wait for the other call included, and nothing of it
// reaches the pipe. Close() from another thread ends such a wait with
// Cancelled.

#include <windows.h>

#include <string>

#include "absl/status/status.h"
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
using canal_test::MessageOptions;
using canal_test::UniqueName;

constexpr absl::Duration kShort = absl::Milliseconds(300);
constexpr absl::Duration kLong = absl::Seconds(30);

TEST(ChannelTurnsTest, SecondReaderTimesOut) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("turn-read"));
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::Notification reading;
  absl::StatusOr<canal::ReadResult> first;
  absl::Status second;
  char first_buffer[4];
  {
    // Blocks until data comes.
    Background reader([&] {
      reading.Notify();
      first = pair->server.Read(absl::MakeSpan(first_buffer));
    });
    reading.WaitForNotification();
    {
      Background prober([&] {
        char buffer[4];
        second = pair->server.Read(absl::MakeSpan(buffer), kShort).status();
      });
      EXPECT_TRUE(prober.Finished(kHangGuard))
          << "a 300 ms Read waited for another thread's Read";
      // Ends the first Read (and, without the timeout, the second).
      CANAL_EXPECT_OK(pair->client.Write("data"));
    }
    EXPECT_TRUE(reader.Finished(kHangGuard));
  }
  EXPECT_EQ(second.code(), absl::StatusCode::kDeadlineExceeded) << second;
  CANAL_ASSERT_OK(first);
  EXPECT_EQ(std::string(first_buffer, first->size), "data");
}

TEST(ChannelTurnsTest, SecondWriterTimesOutAndWritesNothing) {
  canal::ListenerOptions options;
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("turn-write"), options);
  ASSERT_TRUE(pair.ok()) << pair.status();
  // Far more than the pipe holds: the first Write blocks until it is read.
  const std::string big = canal_test::Pattern(1 << 20, 1);
  absl::Status first;
  absl::Status second;
  {
    Background writer([&] { first = pair->client.Write(big); });
    // The first Write is under way once its bytes show up.
    while (true) {
      absl::StatusOr<canal::PeekResult> peek =
          pair->server.Peek(absl::Span<char>());
      ASSERT_TRUE(peek.ok()) << peek.status();
      if (peek->available > 0) break;
    }
    {
      Background prober([&] { second = pair->client.Write("late", kShort); });
      EXPECT_TRUE(prober.Finished(kHangGuard))
          << "a 300 ms Write waited for another thread's Write";
      // Ends the first Write (and, without the timeout, the second).
      absl::StatusOr<std::string> got =
          canal_test::ReadExactly(pair->server, big.size());
      CANAL_EXPECT_OK(got);
      EXPECT_TRUE(got.ok() && *got == big)
          << "the stream is not the first Write's bytes";
    }
    EXPECT_TRUE(writer.Finished(kHangGuard));
  }
  CANAL_EXPECT_OK(first);
  EXPECT_EQ(second.code(), absl::StatusCode::kDeadlineExceeded) << second;
  // Nothing of the timed-out Write follows.
  absl::StatusOr<canal::PeekResult> peek =
      pair->server.Peek(absl::Span<char>());
  CANAL_ASSERT_OK(peek);
  EXPECT_EQ(peek->available, 0u);
}

TEST(ChannelTurnsTest, SecondTransactTimesOutAndSendsNothing) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("turn-transact"), MessageOptions());
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::StatusOr<std::string> first;
  absl::Status second;
  {
    Background transact([&] { first = pair->client.Transact("one"); });
    // The first transaction is under way once its request arrives; the
    // server holds the reply back.
    absl::StatusOr<std::string> request = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(request);
    EXPECT_EQ(*request, "one");
    {
      Background prober(
          [&] { second = pair->client.Transact("two", kShort).status(); });
      EXPECT_TRUE(prober.Finished(kHangGuard))
          << "a 300 ms Transact waited for another thread's Transact";
      // Ends the first Transact (and, without the timeout, the second).
      CANAL_EXPECT_OK(pair->server.WriteMessage("re:one"));
    }
    EXPECT_TRUE(transact.Finished(kHangGuard));
  }
  EXPECT_EQ(second.code(), absl::StatusCode::kDeadlineExceeded) << second;
  CANAL_ASSERT_OK(first);
  EXPECT_EQ(*first, "re:one");
  absl::StatusOr<canal::PeekResult> peek =
      pair->server.Peek(absl::Span<char>());
  CANAL_ASSERT_OK(peek);
  EXPECT_EQ(peek->available, 0u) << "the timed-out request was sent";
}

TEST(ChannelTurnsTest, CloseWakesACallWaitingForItsTurn) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("turn-close"));
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::Notification reading;
  absl::Status first;
  absl::Status second;
  {
    Background reader([&] {
      reading.Notify();
      char buffer[4];
      first = pair->server.Read(absl::MakeSpan(buffer)).status();
    });
    reading.WaitForNotification();
    absl::Notification waiting;
    Background waiter([&] {
      waiting.Notify();
      char buffer[4];
      second = pair->server.Read(absl::MakeSpan(buffer), kLong).status();
    });
    waiting.WaitForNotification();
    pair->server.Close();
    EXPECT_TRUE(waiter.Finished(kHangGuard));
    EXPECT_TRUE(reader.Finished(kHangGuard));
  }
  EXPECT_EQ(first.code(), absl::StatusCode::kCancelled) << first;
  EXPECT_EQ(second.code(), absl::StatusCode::kCancelled) << second;
}

}  // namespace
