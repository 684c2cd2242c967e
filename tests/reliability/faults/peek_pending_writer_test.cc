// SPDX-License-Identifier: Apache-2.0
// Peek while a writer is blocked part-way through a message larger than the
// pipe's buffers. Message mode, both backends: as PeekNamedPipe does
// (Wine's dlls/kernel32/tests/pipe.c, test_blocking_rw), `available` and
// `message_remaining` count the whole announced message as soon as any of
// it is visible, although only part of it has arrived; `size` copies only
// bytes that arrived. Byte mode differs: Windows counts the blocked write in
// `available` (and Peek copies from it) too, POSIX cannot know it and counts
// what the socket buffers hold (docs/semantics.md, platform differences).

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace canal_test {
namespace {

constexpr size_t kMessage = 1024 * 1024;

TEST(PeekPendingWriter, MessageModeCountsTheWholeAnnouncedMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("peek-pending"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string message = Pattern(kMessage, 3);
  Background writer([&] {
    EXPECT_TRUE(pair->client.WriteMessage(message, kHangGuard).ok());
  });
  // A read with no buffer waits until a message is there and consumes
  // nothing ("more": it is not empty).
  absl::StatusOr<canal::ReadResult> waited =
      pair->server.Read(absl::Span<char>(), kHangGuard);
  CANAL_ASSERT_OK(waited);
  ASSERT_TRUE(waited->more);
  char buffer[64];
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->available, kMessage);
  EXPECT_EQ(p->message_remaining, kMessage);
  EXPECT_EQ(p->size, sizeof(buffer));
  EXPECT_EQ(std::string(buffer, p->size), message.substr(0, p->size));
  // The writer is still blocked: the message is not all in the buffers.
  EXPECT_FALSE(writer.Finished(absl::ZeroDuration()));
  // After a partial read the rest still counts in full.
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer, 10), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_TRUE(r->more);
  p = pair->server.Peek();
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->available, kMessage - 10);
  EXPECT_EQ(p->message_remaining, kMessage - 10);
  absl::StatusOr<std::string> rest = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(rest);
  EXPECT_EQ(*rest, message.substr(10));
  EXPECT_TRUE(writer.Finished(kHangGuard));
}

TEST(PeekPendingWriter, ByteModeCountsWhatThePlatformCanSee) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("peek-pend-b"));
  CANAL_ASSERT_OK(pair);
  const std::string data = Pattern(kMessage, 4);
  Background writer(
      [&] { EXPECT_TRUE(pair->client.Write(data, kHangGuard).ok()); });
  // The first byte: the write has begun.
  absl::StatusOr<std::string> first = ReadExactly(pair->server, 1);
  CANAL_ASSERT_OK(first);
  std::string buffer(kMessage, '\0');
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->message_remaining, 0u);
#ifdef _WIN32
  // The pending WriteFile counts in full, and Peek copies from it.
  EXPECT_EQ(p->available, kMessage - 1);
  EXPECT_EQ(p->size, kMessage - 1);
#else
  // Only what the socket buffers hold: the rest is still in the writer.
  EXPECT_GT(p->available, 0u);
  EXPECT_LT(p->available, kMessage - 1);
  EXPECT_EQ(p->size, p->available);
#endif
  EXPECT_EQ(buffer.substr(0, p->size), data.substr(1, p->size));
  absl::StatusOr<std::string> rest = ReadExactly(pair->server, kMessage - 1);
  CANAL_ASSERT_OK(rest);
  EXPECT_EQ(*first + *rest, data);
  EXPECT_TRUE(writer.Finished(kHangGuard));
}

}  // namespace
}  // namespace canal_test
