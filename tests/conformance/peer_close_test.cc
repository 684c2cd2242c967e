// Row 8: when the peer is gone, the reader first gets every byte already
// sent and then OutOfRange; a writer gets Unavailable. Writing to a closed
// peer never kills the process (no SIGPIPE).

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
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

// Reads until an error; returns the bytes and stores the final status.
std::string ReadToEnd(canal::Channel& channel, absl::Status* final_status) {
  std::string out;
  std::vector<char> buffer(64 * 1024);
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        channel.Read(absl::MakeSpan(buffer), kHangGuard);
    if (!r.ok()) {
      *final_status = r.status();
      return out;
    }
    out.append(buffer.data(), r->size);
  }
}

TEST(PeerCloseTest, ServerReadsEverythingThenOutOfRange) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-srv"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("last words"));
  pair->client.Close();
  absl::Status end;
  EXPECT_EQ(ReadToEnd(pair->server, &end), "last words");
  EXPECT_EQ(end.code(), absl::StatusCode::kOutOfRange) << end;
}

TEST(PeerCloseTest, ClientReadsEverythingThenOutOfRange) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-cli"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.Write("goodbye"));
  pair->server.Close();
  absl::Status end;
  EXPECT_EQ(ReadToEnd(pair->client, &end), "goodbye");
  EXPECT_EQ(end.code(), absl::StatusCode::kOutOfRange) << end;
}

TEST(PeerCloseTest, LargeStreamIsReadCompletelyBeforeOutOfRange) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-large"));
  CANAL_ASSERT_OK(pair);
  const std::string data = Pattern(2 * 1024 * 1024, 9);
  absl::Status write_status;
  absl::Status end;
  std::string received;
  {
    Background writer([&] {
      write_status = pair->server.Write(data);
      pair->server.Close();
    });
    received = ReadToEnd(pair->client, &end);
    EXPECT_TRUE(writer.Finished(kHangGuard));
  }
  CANAL_EXPECT_OK(write_status);
  EXPECT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data);
  EXPECT_EQ(end.code(), absl::StatusCode::kOutOfRange) << end;
}

TEST(PeerCloseTest, QueuedMessagesAreReadThenOutOfRange) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("pc-msg"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("one"));
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  CANAL_ASSERT_OK(pair->client.WriteMessage("three"));
  pair->client.Close();
  for (const char* expected : {"one", "", "three"}) {
    absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(*m, expected);
  }
  CANAL_EXPECT_CODE(pair->server.ReadMessage(kHangGuard), kOutOfRange);
}

TEST(PeerCloseTest, OutOfRangeRepeats) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-again"));
  CANAL_ASSERT_OK(pair);
  pair->client.Close();
  char buffer[8];
  CANAL_EXPECT_CODE(pair->server.Read(absl::MakeSpan(buffer), kHangGuard),
                    kOutOfRange);
  CANAL_EXPECT_CODE(pair->server.Read(absl::MakeSpan(buffer), kHangGuard),
                    kOutOfRange);
}

TEST(PeerCloseTest, BlockedReadWakesWithOutOfRangeWhenPeerCloses) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-wake"));
  CANAL_ASSERT_OK(pair);
  absl::Status read_status;
  {
    Background reader([&] {
      char buffer[8];
      read_status = pair->server.Read(absl::MakeSpan(buffer)).status();
    });
    pair->client.Close();
    if (!reader.Finished(kHangGuard)) {
      ADD_FAILURE() << "Read did not return after the peer closed";
      pair->server.Close();
    }
  }
  EXPECT_EQ(read_status.code(), absl::StatusCode::kOutOfRange) << read_status;
}

TEST(PeerCloseTest, PeekAfterPeerClosedWithNothingQueuedIsOutOfRange) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-peek"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("z"));
  pair->client.Close();
  absl::StatusOr<std::string> got = ReadExactly(pair->server, 1);
  CANAL_ASSERT_OK(got);
  CANAL_EXPECT_CODE(pair->server.Peek(), kOutOfRange);
}

// Writes until a Write fails (the first writes may still land in a buffer)
// and returns that failure.
absl::Status WriteUntilFailure(canal::Channel& channel) {
  const std::string chunk = Pattern(4096);
  for (int i = 0; i < 10000; ++i) {
    absl::Status status = channel.Write(chunk, kHangGuard);
    if (!status.ok()) return status;
  }
  return absl::InternalError("10000 writes to a closed peer all succeeded");
}

TEST(PeerCloseTest, ClientWriteAfterServerClosedIsUnavailable) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-cw"));
  CANAL_ASSERT_OK(pair);
  pair->server.Close();
  const absl::Status status = WriteUntilFailure(pair->client);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  // And it stays so; the process is still alive.
  CANAL_EXPECT_CODE(pair->client.Write("more"), kUnavailable);
}

TEST(PeerCloseTest, ServerWriteAfterClientClosedIsUnavailable) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-sw"));
  CANAL_ASSERT_OK(pair);
  pair->client.Close();
  const absl::Status status = WriteUntilFailure(pair->server);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

TEST(PeerCloseTest, MessageWriteAfterPeerClosedIsUnavailable) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("pc-mw"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  pair->server.Close();
  const absl::Status status = WriteUntilFailure(pair->client);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

TEST(PeerCloseTest, TransactAfterPeerClosedFails) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("pc-tx"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  pair->server.Close();
  const absl::Status status =
      pair->client.Transact("anyone?", kHangGuard).status();
  // The request may still be accepted by a buffer (then the reply is missing:
  // end of stream) or refused (broken connection).
  EXPECT_TRUE(status.code() == absl::StatusCode::kUnavailable ||
              status.code() == absl::StatusCode::kOutOfRange)
      << status;
}

}  // namespace
