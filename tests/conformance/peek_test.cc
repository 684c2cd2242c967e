// SPDX-License-Identifier: Apache-2.0
// Row 4: Peek copies without consuming and reports `size` copied,
// `available` bytes queued in total and `message_remaining` unread bytes of
// the current message (0 in byte mode). It never blocks.
//
// A Write returns once its data is in the pipe, so data written by one end is
// visible to Peek on the other end as soon as Write has returned.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
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
using canal_test::UniqueName;

TEST(PeekTest, EmptyPipeReportsNothingWithoutBlocking) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("peek-empty"));
  CANAL_ASSERT_OK(pair);
  char buffer[8];
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 0u);
  EXPECT_EQ(p->available, 0u);
  EXPECT_EQ(p->message_remaining, 0u);
}

TEST(PeekTest, ByteModeCopiesAndReportsAvailableWithNoMessageRemaining) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("peek-byte"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("hello "));
  CANAL_ASSERT_OK(pair->client.Write("world"));
  char buffer[5];
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 5u);
  EXPECT_EQ(std::string(buffer, p->size), "hello");
  EXPECT_EQ(p->available, 11u);
  EXPECT_EQ(p->message_remaining, 0u);
}

TEST(PeekTest, WithoutBufferReportsSizesOnly) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("peek-nobuf"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("abc"));
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek();
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 0u);
  EXPECT_EQ(p->available, 3u);
  EXPECT_EQ(p->message_remaining, 0u);
}

TEST(PeekTest, ByteModePeekDoesNotConsume) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("peek-keep"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("stay"));
  char buffer[16];
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<canal::PeekResult> p =
        pair->server.Peek(absl::MakeSpan(buffer));
    CANAL_ASSERT_OK(p);
    EXPECT_EQ(std::string(buffer, p->size), "stay");
    EXPECT_EQ(p->available, 4u);
  }
  absl::StatusOr<std::string> got = canal_test::ReadExactly(pair->server, 4);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "stay");
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->available, 0u);
}

TEST(PeekTest, MessageModeCopiesOnlyTheCurrentMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-msg"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("abc"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("defg"));
  char buffer[16];
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 3u);
  EXPECT_EQ(std::string(buffer, p->size), "abc");
  EXPECT_EQ(p->available, 7u);
  EXPECT_EQ(p->message_remaining, 3u);
}

TEST(PeekTest, MessageRemainingDoesNotDependOnTheBufferSize) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-remain"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("abcdef"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("gh"));
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek();
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 0u);
  EXPECT_EQ(p->available, 8u);
  EXPECT_EQ(p->message_remaining, 6u);
  char buffer[4];
  p = pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 4u);
  EXPECT_EQ(std::string(buffer, p->size), "abcd");
  EXPECT_EQ(p->available, 8u);
  EXPECT_EQ(p->message_remaining, 6u);
}

TEST(PeekTest, MessageRemainingShrinksAfterAPartialRead) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-partial"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("abcdef"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("gh"));
  char two[2];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(two), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_EQ(std::string(two, r->size), "ab");
  ASSERT_TRUE(r->more);
  char buffer[16];
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(std::string(buffer, p->size), "cdef");
  EXPECT_EQ(p->available, 6u);
  EXPECT_EQ(p->message_remaining, 4u);
}

TEST(PeekTest, MessageModePeekDoesNotConsume) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-mkeep"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("first"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("second"));
  char buffer[16];
  CANAL_ASSERT_OK(pair->server.Peek(absl::MakeSpan(buffer)));
  CANAL_ASSERT_OK(pair->server.Peek(absl::MakeSpan(buffer)));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "first");
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(std::string(buffer, p->size), "second");
  EXPECT_EQ(p->available, 6u);
  EXPECT_EQ(p->message_remaining, 6u);
  m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "second");
}

// Wine's test_blocking_rw writes a 20-byte and a 15-byte message and peeks
// after each partial read; test_CreateNamedPipe peeks at several writes.
// PeekNamedPipe: lpTotalBytesAvail is "the total number of bytes available
// to be read from the pipe", lpBytesLeftThisMessage "the number of bytes
// remaining in this message". Here with an empty message in the queue too.
TEST(PeekTest, CountsFollowTheQueueThroughSeveralMessages) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-steps"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string m1 = Pattern(20, 1);
  const std::string m2 = Pattern(15, 2);
  const std::string m4 = Pattern(5, 4);
  CANAL_ASSERT_OK(pair->client.WriteMessage(m1));
  CANAL_ASSERT_OK(pair->client.WriteMessage(m2));
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  CANAL_ASSERT_OK(pair->client.WriteMessage(m4));
  char buffer[64];
  auto expect_peek = [&](const std::string& copied, size_t available,
                         size_t remaining) {
    absl::StatusOr<canal::PeekResult> p =
        pair->server.Peek(absl::MakeSpan(buffer));
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(std::string(buffer, p->size), copied);
    EXPECT_EQ(p->available, available);
    EXPECT_EQ(p->message_remaining, remaining);
  };
  expect_peek(m1, 40, 20);
  char ten[10];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(ten), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_EQ(r->size, 10u);
  ASSERT_TRUE(r->more);
  expect_peek(m1.substr(10), 30, 10);
  r = pair->server.Read(absl::MakeSpan(ten), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_EQ(r->size, 10u);
  ASSERT_FALSE(r->more);
  expect_peek(m2, 20, 15);
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  ASSERT_TRUE(*m == m2);
  // The empty message is the current one: nothing to copy, nothing left of
  // it, and the bytes of the message after it still count as available.
  expect_peek("", 5, 0);
  r = pair->server.Read(absl::MakeSpan(ten), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_EQ(r->size, 0u);
  ASSERT_FALSE(r->more);
  expect_peek(m4, 5, 5);
  m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  ASSERT_TRUE(*m == m4);
  expect_peek("", 0, 0);
}

// Wine's test_blocking_rw: "simple pass of empty message" peeks as 0, 0, 0,
// and a later Read still returns it.
TEST(PeekTest, EmptyMessageAloneReportsZerosAndIsStillRead) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-empty-msg"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  char buffer[8];
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 0u);
  EXPECT_EQ(p->available, 0u);
  EXPECT_EQ(p->message_remaining, 0u);
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_FALSE(r->more);
  CANAL_EXPECT_CODE(
      pair->server.Read(absl::MakeSpan(buffer), absl::Milliseconds(100)),
      kDeadlineExceeded);
}

// Wine's test_CreateNamedPipe peeks with a buffer but a length of 0: nothing
// is copied, the counts are the same as without a buffer.
TEST(PeekTest, ZeroLengthBufferCopiesNothing) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-zero"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("More bits"));
  char buffer[16] = {};
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer, 0));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 0u);
  EXPECT_EQ(p->available, 9u);
  EXPECT_EQ(p->message_remaining, 9u);
  EXPECT_EQ(buffer[0], '\0');
}

// Wine's test_CreateNamedPipe ("Test reading of multiple writes"): in byte
// mode a Peek copies the bytes of several writes at once.
TEST(PeekTest, ByteModePeekCopiesAcrossWrites) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("peek-writes"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("Bit Bucket"));
  CANAL_ASSERT_OK(pair->client.Write("More bits"));
  char four[4];
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek(absl::MakeSpan(four));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(std::string(four, p->size), "Bit ");
  EXPECT_EQ(p->available, 19u);
  char buffer[64];
  p = pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(std::string(buffer, p->size), "Bit BucketMore bits");
  EXPECT_EQ(p->available, 19u);
  EXPECT_EQ(p->message_remaining, 0u);
}

// Wine's test_blocking_rw: a message larger than the pipe's buffer, written
// while nobody reads, is pending; PeekNamedPipe already counts all of it
// ("write a message larger than buffer": available and message length are
// buf_size + 2000). Peek reports the whole message as available and
// remaining, and whatever it copies is the start of that message.
TEST(PeekTest, BlockedWritersMessageIsCounted) {
  canal::ListenerOptions options = MessageOptions();
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-blocked-msg"), options);
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(256 * 1024, 31);
  absl::Status write_status;
  std::vector<char> buffer(big.size());
  absl::StatusOr<canal::PeekResult> p;
  {
    // The writer outlasts the polling below, whatever it finds.
    Background writer(
        [&] { write_status = pair->client.WriteMessage(big, 3 * kHangGuard); });
    const bool counted = canal_test::PollUntil(
        [&] {
          p = pair->server.Peek(absl::MakeSpan(buffer));
          return !p.ok() || p->available == big.size();
        },
        kHangGuard);
    CANAL_EXPECT_OK(p);
    if (p.ok()) {
      EXPECT_TRUE(counted) << "available stayed at " << p->available << " of "
                           << big.size() << " bytes while the writer waited";
      EXPECT_EQ(p->message_remaining, big.size());
      EXPECT_LE(p->size, p->available);
      EXPECT_TRUE(std::string(buffer.data(), p->size) == big.substr(0, p->size))
          << "Peek copied bytes that are not the start of the message";
    }
    // Reading the message lets the writer finish.
    absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
    CANAL_EXPECT_OK(m);
    if (m.ok()) {
      EXPECT_TRUE(*m == big);
    } else {
      pair->client.Close();
    }
  }
  CANAL_EXPECT_OK(write_status);
}

// The same in byte mode (Wine's test_blocking_rw, byte-mode pass: "test
// pending write" counts the pending write's buf_size bytes as available).
// Windows counts the blocked write, and so does the shared-memory
// transport on both backends (the writer says in the ring how much waits);
// a stream socket cannot, because the bytes are still in the writer's
// memory: POSIX pipes report what the socket buffers hold, which is less
// than the write (docs/semantics.md).
TEST(PeekTest, BlockedByteWriterIsCountedExceptOnPosixSockets) {
  canal::ListenerOptions options;
  options.buffer_size = 4096;
  // Over shared memory the ring is the buffer: smaller than the write too.
  options.ring_size = 64 * 1024;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-blocked-byte"), options);
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(256 * 1024, 37);
  absl::Status write_status;
  absl::StatusOr<canal::PeekResult> p;
  {
    Background writer(
        [&] { write_status = pair->client.Write(big, 3 * kHangGuard); });
#ifdef _WIN32
    const bool socket = false;
#else
    const bool socket =
        canal_test::ExpectedTransport(options) == canal::Transport::kPipe;
#endif
    if (!socket) {
      const bool counted = canal_test::PollUntil(
          [&] {
            p = pair->server.Peek();
            return !p.ok() || p->available == big.size();
          },
          kHangGuard);
      CANAL_EXPECT_OK(p);
      if (p.ok()) {
        EXPECT_TRUE(counted) << "available stayed at " << p->available << " of "
                             << big.size() << " bytes while the writer waited";
        EXPECT_LE(p->size, p->available);
      }
    } else {
      canal_test::PollUntil(
          [&] {
            p = pair->server.Peek();
            return !p.ok() || p->available > 0;
          },
          kHangGuard);
      CANAL_EXPECT_OK(p);
      if (p.ok()) {
        EXPECT_GT(p->available, 0u);
        EXPECT_LT(p->available, big.size());
      }
    }
    absl::StatusOr<std::string> got =
        canal_test::ReadExactly(pair->server, big.size(), kHangGuard);
    CANAL_EXPECT_OK(got);
    if (got.ok()) {
      EXPECT_TRUE(*got == big);
    } else {
      pair->client.Close();
    }
  }
  CANAL_EXPECT_OK(write_status);
}

// Wine's test_blocking_rw peeks while reads are pending: Peek never waits
// for a Read or ReadMessage that another thread is blocked in.
enum class ReadCall { kRead, kReadMessage };

void PeekWhileAReadIsBlocked(canal::PipeMode mode, ReadCall call,
                             const char* label) {
  canal::ListenerOptions options;
  options.mode = mode;
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName(label), options);
  CANAL_ASSERT_OK(pair);
  absl::Notification reader_started;
  absl::Status read_status;
  absl::StatusOr<canal::PeekResult> peeked;
  {
    Background reader([&] {
      reader_started.Notify();
      if (call == ReadCall::kReadMessage) {
        read_status = pair->server.ReadMessage(kHangGuard).status();
      } else {
        char buffer[16];
        read_status =
            pair->server.Read(absl::MakeSpan(buffer), kHangGuard).status();
      }
    });
    reader_started.WaitForNotification();
    {
      Background peeker([&] { peeked = pair->server.Peek(); });
      if (!peeker.Finished(kHangGuard)) {
        ADD_FAILURE() << "Peek waited for the blocked read";
      }
      // Lets the reader (and with it a waiting Peek) finish.
      CANAL_EXPECT_OK(pair->client.Write("done"));
    }
  }
  CANAL_EXPECT_OK(peeked);
  CANAL_EXPECT_OK(read_status);
}

TEST(PeekTest, DoesNotWaitForABlockedByteRead) {
  PeekWhileAReadIsBlocked(canal::PipeMode::kByte, ReadCall::kRead,
                          "peek-nowait-b");
}

TEST(PeekTest, DoesNotWaitForABlockedMessageRead) {
  PeekWhileAReadIsBlocked(canal::PipeMode::kMessage, ReadCall::kRead,
                          "peek-nowait-m");
}

TEST(PeekTest, DoesNotWaitForABlockedReadMessage) {
  PeekWhileAReadIsBlocked(canal::PipeMode::kMessage, ReadCall::kReadMessage,
                          "peek-nowait-rm");
}

}  // namespace
