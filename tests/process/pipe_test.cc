// SPDX-License-Identifier: Apache-2.0
// CreatePipe: round trips, direction, timeouts, Close cancellation on each
// end, peer close. Runs on both backends.

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "canal/pipe.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::Background;
using canal_test::kHangGuard;
using canal_test::Pattern;
using canal_test::ReadExactly;

TEST(CreatePipeTest, RoundTrip) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  EXPECT_TRUE(pipe->read_end.is_open());
  EXPECT_EQ(pipe->read_end.mode(), canal::PipeMode::kByte);
  CANAL_ASSERT_OK(pipe->write_end.Write("hello pipe"));
  absl::StatusOr<std::string> got = ReadExactly(pipe->read_end, 10);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello pipe");
}

TEST(CreatePipeTest, LargeTransferWithConcurrentReader) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  const std::string data = Pattern(4 << 20, 7);
  absl::Status write_status;
  Background writer([&] {
    write_status = pipe->write_end.Write(data, absl::Seconds(30));
    pipe->write_end.Close();
  });
  absl::StatusOr<std::string> got =
      ReadExactly(pipe->read_end, data.size(), absl::Seconds(30));
  ASSERT_TRUE(writer.Finished(absl::Seconds(60)));
  CANAL_ASSERT_OK(write_status);
  CANAL_ASSERT_OK(got);
  EXPECT_TRUE(*got == data);
  char c;
  CANAL_EXPECT_CODE(
      pipe->read_end.Read(absl::MakeSpan(&c, 1), absl::Seconds(5)),
      kOutOfRange);
}

TEST(CreatePipeTest, OneWay) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  char c;
  CANAL_EXPECT_CODE(pipe->read_end.Write("x"), kFailedPrecondition);
  CANAL_EXPECT_CODE(pipe->write_end.Read(absl::MakeSpan(&c, 1)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(pipe->write_end.WriteMessage("x"), kFailedPrecondition);
  CANAL_EXPECT_CODE(pipe->read_end.ReadMessage(), kFailedPrecondition);
}

TEST(CreatePipeTest, ReadTimeoutConsumesNothing) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  char buf[8];
  CANAL_EXPECT_CODE(
      pipe->read_end.Read(absl::MakeSpan(buf), absl::Milliseconds(50)),
      kDeadlineExceeded);
  CANAL_EXPECT_CODE(
      pipe->read_end.Read(absl::MakeSpan(buf), absl::ZeroDuration()),
      kDeadlineExceeded);
  CANAL_ASSERT_OK(pipe->write_end.Write("abc"));
  absl::StatusOr<std::string> got = ReadExactly(pipe->read_end, 3);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "abc");
}

TEST(CreatePipeTest, WriteTimeoutWhenFull) {
  canal::PipeOptions options;
  options.buffer_size = 4096;
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe(options);
  CANAL_ASSERT_OK(pipe);
  // Far more than any pipe buffer; nobody reads.
  const std::string data(16 << 20, 'x');
  CANAL_EXPECT_CODE(pipe->write_end.Write(data, absl::Milliseconds(100)),
                    kDeadlineExceeded);
}

TEST(CreatePipeTest, PeekDoesNotConsume) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  CANAL_ASSERT_OK(pipe->write_end.Write("peekaboo"));
  char buf[4];
  absl::StatusOr<canal::PeekResult> peek;
  // The write has completed; the bytes are in the pipe.
  peek = pipe->read_end.Peek(absl::MakeSpan(buf));
  CANAL_ASSERT_OK(peek);
  EXPECT_EQ(peek->size, 4u);
  EXPECT_EQ(std::string(buf, 4), "peek");
  EXPECT_EQ(peek->available, 8u);
  absl::StatusOr<std::string> got = ReadExactly(pipe->read_end, 8);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "peekaboo");
}

TEST(CreatePipeTest, PeerClosedGivesOutOfRangeAfterData) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  CANAL_ASSERT_OK(pipe->write_end.Write("last words"));
  pipe->write_end.Close();
  absl::StatusOr<std::string> got = ReadExactly(pipe->read_end, 10);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "last words");
  char c;
  CANAL_EXPECT_CODE(
      pipe->read_end.Read(absl::MakeSpan(&c, 1), absl::Seconds(5)),
      kOutOfRange);
}

TEST(CreatePipeTest, WriteAfterReaderClosedIsUnavailableWithoutSigpipe) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  pipe->read_end.Close();
  // With SIGPIPE at its default disposition this would kill the test.
  CANAL_EXPECT_CODE(pipe->write_end.Write("into the void", absl::Seconds(5)),
                    kUnavailable);
}

TEST(CreatePipeTest, CloseWakesBlockedRead) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  absl::Notification started;
  absl::Status status;
  Background reader([&] {
    char buf[16];
    started.Notify();
    status = pipe->read_end.Read(absl::MakeSpan(buf)).status();
  });
  started.WaitForNotification();
  pipe->read_end.Close();
  ASSERT_TRUE(reader.Finished(kHangGuard));
  CANAL_EXPECT_CODE(status, kCancelled);
}

TEST(CreatePipeTest, CloseWakesBlockedWrite) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  absl::Notification started;
  absl::Status status;
  Background writer([&] {
    const std::string data(16 << 20, 'y');  // Blocks: nobody reads.
    started.Notify();
    status = pipe->write_end.Write(data);
  });
  started.WaitForNotification();
  pipe->write_end.Close();
  ASSERT_TRUE(writer.Finished(kHangGuard));
  CANAL_EXPECT_CODE(status, kCancelled);
}

// A second Read (or Write) on one end waits for the first one, but never
// longer than its own timeout (row 9, as on named channels). The first call
// outlasts the hang guard, so a second call stuck behind it fails the test
// instead of being freed by the end of the first; the channel is then
// closed, which ends both.
constexpr absl::Duration kShort = absl::Milliseconds(100);
constexpr absl::Duration kFirstCall = absl::Seconds(30);

TEST(CreatePipeTest, ReadBehindABlockedReadTimesOut) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  absl::Notification started;
  absl::StatusOr<std::string> first;
  {
    Background reader([&] {
      started.Notify();
      first = ReadExactly(pipe->read_end, 4, kFirstCall);
    });
    started.WaitForNotification();
    absl::Status second;
    Background caller([&] {
      char buf[16];
      second = pipe->read_end.Read(absl::MakeSpan(buf), kShort).status();
    });
    if (!caller.Finished(kHangGuard)) {
      ADD_FAILURE() << "the second Read waited for the first one instead of "
                       "timing out after its own "
                    << kShort;
      pipe->read_end.Close();
      return;
    }
    CANAL_EXPECT_CODE(second, kDeadlineExceeded);
    // The first Read still gets the data.
    CANAL_EXPECT_OK(pipe->write_end.Write("data"));
  }
  CANAL_ASSERT_OK(first);
  EXPECT_EQ(*first, "data");
}

TEST(CreatePipeTest, WriteBehindABlockedWriteTimesOut) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  const std::string data(16 << 20, 'w');  // More than the pipe holds.
  absl::Status first;
  {
    Background writer([&] { first = pipe->write_end.Write(data, kFirstCall); });
    // The first Write is under way once its first byte arrives.
    absl::StatusOr<std::string> head = ReadExactly(pipe->read_end, 1);
    CANAL_ASSERT_OK(head);
    absl::Status second;
    Background caller(
        [&] { second = pipe->write_end.Write("second", kShort); });
    if (!caller.Finished(kHangGuard)) {
      ADD_FAILURE() << "the second Write waited for the first one instead of "
                       "timing out after its own "
                    << kShort;
      pipe->write_end.Close();
      return;
    }
    CANAL_EXPECT_CODE(second, kDeadlineExceeded);
    // The first Write still delivers all of its bytes, and nothing else.
    absl::StatusOr<std::string> rest =
        ReadExactly(pipe->read_end, data.size() - 1, kFirstCall);
    CANAL_ASSERT_OK(rest);
    EXPECT_TRUE(*head + *rest == data);
    char buf[8];
    absl::StatusOr<canal::PeekResult> left =
        pipe->read_end.Peek(absl::MakeSpan(buf));
    CANAL_ASSERT_OK(left);
    EXPECT_EQ(left->available, 0u);
  }
  CANAL_EXPECT_OK(first);
}

TEST(CreatePipeTest, OperationsAfterCloseAreCancelled) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  pipe->read_end.Close();
  pipe->write_end.Close();
  pipe->write_end.Close();  // Idempotent.
  EXPECT_FALSE(pipe->read_end.is_open());
  char c;
  CANAL_EXPECT_CODE(pipe->read_end.Read(absl::MakeSpan(&c, 1)), kCancelled);
  CANAL_EXPECT_CODE(pipe->write_end.Write("x"), kCancelled);
}

TEST(CreatePipeTest, ManyPipesAtOnce) {
  std::vector<canal::PipePair> pipes;
  for (int i = 0; i < 64; ++i) {
    absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
    CANAL_ASSERT_OK(pipe);
    pipes.push_back(*std::move(pipe));
  }
  for (size_t i = 0; i < pipes.size(); ++i) {
    CANAL_ASSERT_OK(pipes[i].write_end.Write(std::to_string(i)));
  }
  for (size_t i = 0; i < pipes.size(); ++i) {
    const std::string want = std::to_string(i);
    absl::StatusOr<std::string> got =
        ReadExactly(pipes[i].read_end, want.size());
    CANAL_ASSERT_OK(got);
    EXPECT_EQ(*got, want);
  }
}

}  // namespace
