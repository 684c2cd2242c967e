// SPDX-License-Identifier: Apache-2.0
// Row 2: message mode keeps boundaries, delivers empty messages, continues a
// message read in parts (more == true), carries messages up to
// max_message_size and refuses larger ones before sending; the message calls
// on a byte-mode channel fail with FailedPrecondition.

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

TEST(MessageModeTest, BothEndsReportMessageMode) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-mode"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  EXPECT_EQ(pair->server.mode(), canal::PipeMode::kMessage);
  EXPECT_EQ(pair->client.mode(), canal::PipeMode::kMessage);
}

TEST(MessageModeTest, ReadMessageKeepsBoundaries) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-bound"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("a"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("bb"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("ccc"));
  for (const char* expected : {"a", "bb", "ccc"}) {
    absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(*m, expected);
  }
}

TEST(MessageModeTest, ReadReturnsOneMessageEvenWithALargerBuffer) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-oneread"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("abc"));
  CANAL_ASSERT_OK(pair->client.Write("defg"));
  std::vector<char> buffer(100);
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer.data(), r->size), "abc");
  EXPECT_FALSE(r->more);
  r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer.data(), r->size), "defg");
  EXPECT_FALSE(r->more);
}

TEST(MessageModeTest, WriteAndWriteMessageBothSendOneMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-write"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.Write("from-write"));
  CANAL_ASSERT_OK(pair->server.WriteMessage("from-write-message"));
  absl::StatusOr<std::string> m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "from-write");
  m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "from-write-message");
}

TEST(MessageModeTest, EmptyMessagesAreDelivered) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-empty"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  CANAL_ASSERT_OK(pair->client.WriteMessage("x"));
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "");
  m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "x");
  char buffer[8];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_FALSE(r->more);
}

TEST(MessageModeTest, PartialReadSetsMoreAndContinuesTheSameMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-partial"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("0123456789"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("next"));
  char buffer[4];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "0123");
  EXPECT_TRUE(r->more);
  r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "4567");
  EXPECT_TRUE(r->more);
  r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "89");
  EXPECT_FALSE(r->more);
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "next");
}

TEST(MessageModeTest, ReadWithExactBufferSizeHasNoMore) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-exact"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("1234"));
  char buffer[4];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "1234");
  EXPECT_FALSE(r->more);
}

TEST(MessageModeTest, SixteenMebibyteMessageRoundTrips) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-16m"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string request = Pattern(16 * 1024 * 1024, 11);
  absl::Status echo_status;
  absl::StatusOr<std::string> reply;
  {
    Background echo([&] {
      absl::StatusOr<std::string> m = pair->server.ReadMessage();
      echo_status = m.status();
      if (m.ok()) echo_status = pair->server.WriteMessage(*m);
    });
    absl::Status write_status = pair->client.WriteMessage(request);
    if (write_status.ok()) {
      reply = pair->client.ReadMessage(absl::Seconds(60));
    } else {
      reply = write_status;
    }
    if (!reply.ok()) pair->server.Close();
    EXPECT_TRUE(echo.Finished(absl::Seconds(60)));
  }
  CANAL_ASSERT_OK(echo_status);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(reply->size(), request.size());
  EXPECT_TRUE(*reply == request) << "the message came back corrupted";
}

TEST(MessageModeTest, MessageOfExactlyMaxSizeIsAccepted) {
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 1024;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-maxok"), options);
  CANAL_ASSERT_OK(pair);
  const std::string message = Pattern(1024, 5);
  CANAL_ASSERT_OK(pair->client.WriteMessage(message));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_TRUE(*m == message);
}

TEST(MessageModeTest, ClientMessageOverMaxSizeIsRefusedBeforeSending) {
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 1024;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-cbig"), options);
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.WriteMessage(Pattern(1025)), kInvalidArgument);
  CANAL_EXPECT_CODE(pair->client.Write(Pattern(4096)), kInvalidArgument);
  // Nothing of the refused messages reached the listener.
  CANAL_ASSERT_OK(pair->client.WriteMessage("small"));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "small");
}

TEST(MessageModeTest, ServerMessageOverMaxSizeIsRefusedBeforeSending) {
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 1024;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-sbig"), options);
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->server.WriteMessage(Pattern(1025)), kInvalidArgument);
  CANAL_ASSERT_OK(pair->server.WriteMessage("small"));
  absl::StatusOr<std::string> m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "small");
}

TEST(MessageModeTest, ReadMessageOnByteChannelIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("msg-byte-rm"));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.ReadMessage(absl::Milliseconds(100)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->server.ReadMessage(absl::Milliseconds(100)),
                    kFailedPrecondition);
}

TEST(MessageModeTest, WriteMessageOnByteChannelIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("msg-byte-wm"));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.WriteMessage("x"), kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->server.WriteMessage("x"), kFailedPrecondition);
  // Nothing was sent.
  CANAL_ASSERT_OK(pair->client.Write("y"));
  absl::StatusOr<std::string> got = canal_test::ReadExactly(pair->server, 1);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "y");
}

TEST(MessageModeTest, TransactOnByteChannelIsFailedPrecondition) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("msg-byte-tx"));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.Transact("x", absl::Milliseconds(100)),
                    kFailedPrecondition);
}

// "If the specified number of bytes to read is less than the size of the
// next message, the function reads as much of the message as possible ...
// (ERROR_MORE_DATA). The remainder of the message can be read using another
// read operation." (Named Pipe Type, Read, and Wait Modes; Wine's
// test_CreateNamedPipe reads one message in two and in three parts, and
// test_ReadFile reads 1 byte of a 512-byte message.) Every buffer size
// splits the message into pieces of exactly min(size, rest), `more` is set
// on all but the last, and the next message starts afterwards.
TEST(MessageModeTest, PartialReadsOfEverySizeReassembleTheMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-sizes"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string message = Pattern(100, 23);
  for (size_t size : {1, 3, 7, 50, 99, 100, 101, 1000}) {
    SCOPED_TRACE(absl::StrCat("buffer of ", size, " bytes"));
    CANAL_ASSERT_OK(pair->client.WriteMessage(message));
    CANAL_ASSERT_OK(pair->client.WriteMessage("next"));
    std::vector<char> buffer(size);
    std::string received;
    bool more = true;
    while (more) {
      absl::StatusOr<canal::ReadResult> r =
          pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
      CANAL_ASSERT_OK(r);
      const size_t rest = message.size() - received.size();
      ASSERT_EQ(r->size, std::min(size, rest));
      received.append(buffer.data(), r->size);
      EXPECT_EQ(r->more, received.size() < message.size());
      more = r->more;
    }
    EXPECT_TRUE(received == message) << "the pieces do not make the message";
    absl::StatusOr<std::string> next = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(next);
    EXPECT_EQ(*next, "next");
  }
}

// Wine's test_CreateNamedPipe: "when doing a partial read of a message, the
// rest is still in the pipe, and can be received from a second thread".
TEST(MessageModeTest, PartialMessageContinuesOnAnotherThread) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-2thread"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("0123456789ab"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("second"));
  char first[4];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(first), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_EQ(std::string(first, r->size), "0123");
  ASSERT_TRUE(r->more);
  std::string middle;
  absl::StatusOr<canal::ReadResult> middle_result;
  {
    Background other([&] {
      char buffer[4];
      middle_result = pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
      if (middle_result.ok()) middle.assign(buffer, middle_result->size);
    });
  }
  CANAL_ASSERT_OK(middle_result);
  EXPECT_EQ(middle, "4567");
  EXPECT_TRUE(middle_result->more);
  absl::StatusOr<std::string> rest;
  {
    Background other([&] { rest = pair->server.ReadMessage(kHangGuard); });
  }
  CANAL_ASSERT_OK(rest);
  EXPECT_EQ(*rest, "89ab");
  absl::StatusOr<std::string> second = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(second);
  EXPECT_EQ(*second, "second");
}

// A zero-length read of a message-mode pipe takes nothing and reports that
// the message has more (ERROR_MORE_DATA; Wine's test_blocking_rw completes a
// zero-byte ReadFile as a partial read once a 1-byte message arrives).
TEST(MessageModeTest, ZeroLengthReadReportsMoreWithoutConsuming) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-zero"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("abc"));
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<canal::ReadResult> r =
        pair->server.Read(absl::Span<char>(), kHangGuard);
    CANAL_ASSERT_OK(r);
    EXPECT_EQ(r->size, 0u);
    EXPECT_TRUE(r->more);
  }
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "abc");
}

// The same in the middle of a message: the rest stays where it was.
TEST(MessageModeTest, ZeroLengthReadInsideAMessageKeepsTheRest) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-zero-mid"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("abcdef"));
  char buffer[2];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_EQ(std::string(buffer, r->size), "ab");
  ASSERT_TRUE(r->more);
  r = pair->server.Read(absl::Span<char>(), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_TRUE(r->more);
  absl::StatusOr<std::string> rest = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(rest);
  EXPECT_EQ(*rest, "cdef");
}

// Wine's test_blocking_rw: "0 length write wakes one read in msg mode": a
// zero-length read takes an empty message whole (no `more`), and the message
// after it is untouched.
TEST(MessageModeTest, ZeroLengthReadConsumesAnEmptyMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-zero-empty"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  CANAL_ASSERT_OK(pair->client.WriteMessage("x"));
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::Span<char>(), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_FALSE(r->more);
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "x");
}

// Wine's test_blocking_rw: "pipe is empty, the next read will block", also
// with a zero-length buffer; it completes when a message arrives.
TEST(MessageModeTest, ZeroLengthReadWaitsForAMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-zero-wait"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(
      pair->server.Read(absl::Span<char>(), absl::Milliseconds(100)),
      kDeadlineExceeded);
  absl::StatusOr<canal::ReadResult> r;
  {
    Background reader(
        [&] { r = pair->server.Read(absl::Span<char>(), kHangGuard); });
    CANAL_ASSERT_OK(pair->client.WriteMessage("y"));
  }
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_TRUE(r->more);
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "y");
}

// Empty messages between others keep their place, whether they are read
// with Read or ReadMessage (Wine's test_blocking_rw: "we still have an empty
// message in queue").
TEST(MessageModeTest, EmptyMessagesBetweenOthersKeepTheirPlace) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-empties"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::vector<std::string> messages = {"a", "", "", "bc", "", "d"};
  for (const std::string& m : messages) {
    CANAL_ASSERT_OK(pair->client.WriteMessage(m));
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("message ", i));
    if (i % 2 == 0) {
      char buffer[8];
      absl::StatusOr<canal::ReadResult> r =
          pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
      CANAL_ASSERT_OK(r);
      EXPECT_EQ(std::string(buffer, r->size), messages[i]);
      EXPECT_FALSE(r->more);
    } else {
      absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
      CANAL_ASSERT_OK(m);
      EXPECT_EQ(*m, messages[i]);
    }
  }
  CANAL_EXPECT_CODE(pair->server.ReadMessage(absl::Milliseconds(100)),
                    kDeadlineExceeded);
}

// Wine's test_blocking_rw: a read waiting on an empty pipe, then a write of
// more than it asked for: the read takes what fits (ERROR_MORE_DATA) and the
// rest of the message stays queued.
TEST(MessageModeTest, WaitingReadTakesWhatFitsAndTheRestStaysQueued) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("msg-pending"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string message = Pattern(4000, 29);
  std::vector<char> buffer(1000);
  absl::StatusOr<canal::ReadResult> r;
  {
    Background reader(
        [&] { r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard); });
    CANAL_ASSERT_OK(pair->client.WriteMessage(message));
  }
  CANAL_ASSERT_OK(r);
  ASSERT_EQ(r->size, 1000u);
  EXPECT_TRUE(r->more);
  EXPECT_TRUE(std::string(buffer.data(), r->size) == message.substr(0, 1000));
  std::vector<char> peek_buffer(4000);
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(peek_buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->size, 3000u);
  EXPECT_EQ(p->available, 3000u);
  EXPECT_EQ(p->message_remaining, 3000u);
  absl::StatusOr<std::string> rest = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(rest);
  EXPECT_TRUE(*rest == message.substr(1000));
}

}  // namespace
