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
#include "absl/types/span.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::ConnectedPair;
using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::MessageOptions;
using canal_test::UniqueName;

TEST(PeekTest, EmptyPipeReportsNothingWithoutBlocking) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("peek-empty"));
  CANAL_ASSERT_OK(pair);
  char buffer[8];
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek(absl::MakeSpan(buffer));
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
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek(absl::MakeSpan(buffer));
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
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek(absl::MakeSpan(buffer));
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
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek(absl::MakeSpan(buffer));
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
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek(absl::MakeSpan(buffer));
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
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(std::string(buffer, p->size), "second");
  EXPECT_EQ(p->available, 6u);
  EXPECT_EQ(p->message_remaining, 6u);
  m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "second");
}

}  // namespace
