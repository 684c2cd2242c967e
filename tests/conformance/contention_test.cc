// SPDX-License-Identifier: Apache-2.0
// Row 9, continued: a call that has to wait for another thread's call on the
// same channel (or listener) still honours its own timeout. One thread may
// read while another writes; a second reader (or writer, or a Transact,
// which needs both) waits for the first, but never longer than its own
// timeout: DeadlineExceeded, not blocked until the other call ends.
//
// Each test starts a first call that blocks, makes sure it is under way
// where that can be observed (the peer has received its first byte or its
// request), then runs the second call with a short timeout on another
// thread under a hang guard. If the second call does not return, the test
// fails and closes the channel, which ends both calls.

#include <functional>
#include <string>
#include <utility>

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

constexpr absl::Duration kShort = absl::Milliseconds(100);
// The first call's own timeout: longer than the hang guard (10 s), so that a
// second call stuck behind it is caught by the guard, not freed by the end
// of the first call.
constexpr absl::Duration kFirstCall = absl::Seconds(30);

// Runs `second` on its own thread and expects DeadlineExceeded within the
// hang guard. If it hangs, `release` ends the first call (and with it the
// wait of the second) and this returns false: the channel is closed.
bool ExpectOwnTimeout(const std::function<absl::Status()>& second,
                      const std::function<void()>& release) {
  absl::Status status;
  bool in_time = true;
  {
    Background caller([&] { status = second(); });
    if (!caller.Finished(kHangGuard)) {
      in_time = false;
      ADD_FAILURE() << "the second call waited for the first one instead of "
                       "timing out after its own "
                    << kShort;
      release();
    }
  }
  if (in_time) {
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  }
  return in_time;
}

// A Read blocked on an empty pipe. Wine's test_blocking_rw ("add one more
// pending read, then cancel the first one") cancels a second pending read
// on its own while the first one stays pending and later completes. The
// first Read cannot be observed from outside; if the second one happened
// to start first, it times out all the same.
enum class ReadCall { kRead, kReadMessage };

void ReadBehindRead(canal::PipeMode mode, ReadCall call, const char* label) {
  const bool whole_messages = call == ReadCall::kReadMessage;
  canal::ListenerOptions options;
  options.mode = mode;
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName(label), options);
  CANAL_ASSERT_OK(pair);
  absl::Notification started;
  absl::StatusOr<std::string> first;
  {
    Background reader([&] {
      started.Notify();
      if (whole_messages) {
        first = pair->server.ReadMessage(kFirstCall);
      } else {
        char buffer[16];
        absl::StatusOr<canal::ReadResult> r =
            pair->server.Read(absl::MakeSpan(buffer), kFirstCall);
        first = r.ok()
                    ? absl::StatusOr<std::string>(std::string(buffer, r->size))
                    : absl::StatusOr<std::string>(r.status());
      }
    });
    started.WaitForNotification();
    if (!ExpectOwnTimeout(
            [&] {
              if (whole_messages) {
                return pair->server.ReadMessage(kShort).status();
              }
              char buffer[16];
              return pair->server.Read(absl::MakeSpan(buffer), kShort).status();
            },
            [&] { pair->server.Close(); })) {
      return;
    }
    // The first Read still gets the data.
    CANAL_EXPECT_OK(pair->client.Write("data"));
  }
  CANAL_ASSERT_OK(first);
  EXPECT_EQ(*first, "data");
}

TEST(ContentionTest, ByteReadBehindABlockedReadTimesOut) {
  ReadBehindRead(canal::PipeMode::kByte, ReadCall::kRead, "ct-read-b");
}

TEST(ContentionTest, MessageReadBehindABlockedReadTimesOut) {
  ReadBehindRead(canal::PipeMode::kMessage, ReadCall::kRead, "ct-read-m");
}

TEST(ContentionTest, ReadMessageBehindABlockedReadMessageTimesOut) {
  ReadBehindRead(canal::PipeMode::kMessage, ReadCall::kReadMessage,
                 "ct-readmsg");
}

// A Write blocked on a full pipe: the peer has its first byte, so the write
// is under way, and nobody reads the rest. Wine's test_blocking_rw ("make
// two async writes, cancel the first one") cancels one of two pending writes
// on its own.
void WriteBehindWrite(canal::PipeMode mode, const char* label) {
  canal::ListenerOptions options;
  options.mode = mode;
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName(label), options);
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(8 * 1024 * 1024, 61);
  absl::Status first;
  {
    Background writer([&] { first = pair->client.Write(big, kFirstCall); });
    char one[1];
    CANAL_ASSERT_OK(pair->server.Read(absl::MakeSpan(one), kHangGuard));
    const bool in_time = ExpectOwnTimeout(
        [&] {
          return mode == canal::PipeMode::kMessage
                     ? pair->client.WriteMessage("second", kShort)
                     : pair->client.Write("second", kShort);
        },
        [&] { pair->client.Close(); });
    if (!in_time) return;
    pair->client.Close();  // Ends the first Write.
  }
  EXPECT_EQ(first.code(), absl::StatusCode::kCancelled) << first;
}

TEST(ContentionTest, ByteWriteBehindABlockedWriteTimesOut) {
  WriteBehindWrite(canal::PipeMode::kByte, "ct-write-b");
}

TEST(ContentionTest, WriteMessageBehindABlockedWriteMessageTimesOut) {
  WriteBehindWrite(canal::PipeMode::kMessage, "ct-write-m");
}

// A Transact waiting for its reply: the peer has its request. A second
// Transact, or a Read, on the same channel times out, sends nothing, and the
// first Transact still gets its reply (Wine's test_transact cancels an
// overlapped transaction on its own: "cancel keeps written data").
enum class Second { kTransact, kRead };

void BehindAWaitingTransact(Second second, const char* label) {
  const bool second_is_transact = second == Second::kTransact;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName(label), MessageOptions());
  CANAL_ASSERT_OK(pair);
  absl::StatusOr<std::string> first;
  {
    Background caller(
        [&] { first = pair->client.Transact("one", kFirstCall); });
    absl::StatusOr<std::string> request = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(request);
    ASSERT_EQ(*request, "one");
    if (!ExpectOwnTimeout(
            [&] {
              if (second_is_transact) {
                return pair->client.Transact("two", kShort).status();
              }
              char buffer[16];
              return pair->client.Read(absl::MakeSpan(buffer), kShort).status();
            },
            [&] { pair->client.Close(); })) {
      return;
    }
    absl::StatusOr<canal::PeekResult> p = pair->server.Peek();
    CANAL_EXPECT_OK(p);
    if (p.ok()) {
      EXPECT_EQ(p->available, 0u) << "the timed-out call sent something";
    }
    CANAL_EXPECT_OK(pair->server.WriteMessage("re:one"));
  }
  CANAL_ASSERT_OK(first);
  EXPECT_EQ(*first, "re:one");
}

TEST(ContentionTest, TransactBehindAWaitingTransactTimesOut) {
  BehindAWaitingTransact(Second::kTransact, "ct-tx-tx");
}

TEST(ContentionTest, ReadBehindAWaitingTransactTimesOut) {
  BehindAWaitingTransact(Second::kRead, "ct-tx-read");
}

// Accept on a listener that another thread is already accepting on (Wine's
// test_overlapped: a pending ConnectNamedPipe is cancelled with CancelIo
// and fails with ERROR_OPERATION_ABORTED on its own).
TEST(ContentionTest, AcceptBehindABlockedAcceptTimesOut) {
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(UniqueName("ct-accept"));
  CANAL_ASSERT_OK(listener);
  absl::Notification started;
  absl::Status first;
  {
    Background acceptor([&] {
      started.Notify();
      first = listener->Accept(kFirstCall).status();
    });
    started.WaitForNotification();
    if (ExpectOwnTimeout([&] { return listener->Accept(kShort).status(); },
                         [&] { listener->Close(); })) {
      listener->Close();  // Ends the first Accept.
    }
  }
  EXPECT_EQ(first.code(), absl::StatusCode::kCancelled) << first;
}

}  // namespace
