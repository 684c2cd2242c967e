// SPDX-License-Identifier: Apache-2.0
// Row 1: byte mode is a stream. Read blocks until at least one byte and
// returns at most buffer.size() bytes with more == false; Write writes all of
// its data; write boundaries are not kept.

#include <algorithm>
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
using canal_test::Pattern;
using canal_test::ReadExactly;
using canal_test::UniqueName;

TEST(ByteModeTest, BothEndsReportByteMode) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-mode"));
  CANAL_ASSERT_OK(pair);
  EXPECT_EQ(pair->server.mode(), canal::PipeMode::kByte);
  EXPECT_EQ(pair->client.mode(), canal::PipeMode::kByte);
  EXPECT_TRUE(pair->server.is_open());
  EXPECT_TRUE(pair->client.is_open());
}

TEST(ByteModeTest, ReadReturnsAtMostBufferSizeWithMoreFalse) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-bufsize"));
  CANAL_ASSERT_OK(pair);
  const std::string data = Pattern(100);
  CANAL_ASSERT_OK(pair->client.Write(data));
  char buffer[10];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_GE(r->size, 1u);
  EXPECT_LE(r->size, sizeof(buffer));
  EXPECT_FALSE(r->more);
  EXPECT_EQ(std::string(buffer, r->size), data.substr(0, r->size));
  absl::StatusOr<std::string> rest =
      ReadExactly(pair->server, data.size() - r->size);
  CANAL_ASSERT_OK(rest);
  EXPECT_EQ(*rest, data.substr(r->size));
}

TEST(ByteModeTest, ReadReturnsWhatIsQueuedWithoutFillingTheBuffer) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-partial"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("hello"));
  std::vector<char> buffer(4096);
  // A Read that waited for a full buffer would run into the hang guard.
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  ASSERT_GE(r->size, 1u);
  ASSERT_LE(r->size, 5u);
  EXPECT_FALSE(r->more);
  EXPECT_EQ(std::string(buffer.data(), r->size),
            std::string("hello").substr(0, r->size));
}

TEST(ByteModeTest, ManyWritesAreReassembledAsOneStream) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-stream"));
  CANAL_ASSERT_OK(pair);
  const std::string data = Pattern(300 * 1000, 7);
  absl::Status write_status;
  {
    Background writer([&] {
      size_t offset = 0;
      size_t chunk = 1;
      while (offset < data.size() && write_status.ok()) {
        const size_t n = std::min(chunk, data.size() - offset);
        write_status =
            pair->client.Write(absl::string_view(data).substr(offset, n));
        offset += n;
        chunk = chunk % 997 + 13;  // Varying sizes, 1..1009 bytes.
      }
    });
    std::string received;
    std::vector<char> buffer(777);
    while (received.size() < data.size()) {
      absl::StatusOr<canal::ReadResult> r =
          pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
      if (!r.ok()) {
        ADD_FAILURE() << "Read after " << received.size()
                      << " bytes: " << r.status();
        pair->client.Close();
        break;
      }
      if (r->size < 1 || r->size > buffer.size() || r->more) {
        ADD_FAILURE() << "Read returned size " << r->size << ", more "
                      << r->more << " for a buffer of " << buffer.size();
        pair->client.Close();
        break;
      }
      received.append(buffer.data(), r->size);
    }
    EXPECT_TRUE(writer.Finished(kHangGuard));
    EXPECT_EQ(received.size(), data.size());
    EXPECT_TRUE(received == data) << "the stream was reordered or corrupted";
  }
  CANAL_EXPECT_OK(write_status);
}

TEST(ByteModeTest, LargeWriteIsDeliveredCompletely) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-large"));
  CANAL_ASSERT_OK(pair);
  const std::string data = Pattern(4 * 1024 * 1024, 3);
  absl::Status write_status;
  absl::StatusOr<std::string> received;
  {
    Background writer([&] { write_status = pair->server.Write(data); });
    received = ReadExactly(pair->client, data.size());
    if (!received.ok()) pair->server.Close();
    EXPECT_TRUE(writer.Finished(kHangGuard));
  }
  CANAL_ASSERT_OK(write_status);
  CANAL_ASSERT_OK(received);
  EXPECT_TRUE(*received == data);
}

TEST(ByteModeTest, BothDirectionsCarryData) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-duplex"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("ping"));
  absl::StatusOr<std::string> got = ReadExactly(pair->server, 4);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "ping");
  CANAL_ASSERT_OK(pair->server.Write("pong!"));
  got = ReadExactly(pair->client, 5);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "pong!");
}

TEST(ByteModeTest, ChannelsKeepTheirNames) {
  const std::string name = UniqueName("byte-name");
  absl::StatusOr<ConnectedPair> pair = MakePair(name);
  CANAL_ASSERT_OK(pair);
  EXPECT_EQ(pair->listener.name(), name);
  EXPECT_EQ(pair->client.name(), name);
  EXPECT_EQ(pair->server.name(), name);
}

TEST(ByteModeTest, PeerReportsThisProcess) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-peer"));
  CANAL_ASSERT_OK(pair);
  absl::StatusOr<canal::PeerInfo> client_peer = pair->client.Peer();
  absl::StatusOr<canal::PeerInfo> server_peer = pair->server.Peer();
  CANAL_ASSERT_OK(client_peer);
  CANAL_ASSERT_OK(server_peer);
  EXPECT_EQ(client_peer->process_id, canal_test::CurrentProcessId());
  EXPECT_EQ(server_peer->process_id, canal_test::CurrentProcessId());
}

// "The system does not differentiate between the bytes written in different
// write operations" (Named Pipe Type, Read, and Wait Modes). Wine's
// test_CreateNamedPipe ("Test reading of multiple writes", byte mode): two
// writes queued before a read come back from one ReadFile.
TEST(ByteModeTest, WritesQueuedBeforeAReadComeBackInOneRead) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-merge"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("Bit Bucket"));
  CANAL_ASSERT_OK(pair->client.Write("More bits"));
  CANAL_ASSERT_OK(pair->client.Write("!"));
  char buffer[64];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "Bit BucketMore bits!");
  EXPECT_FALSE(r->more);
  // The same in the other direction.
  CANAL_ASSERT_OK(pair->server.Write("one"));
  CANAL_ASSERT_OK(pair->server.Write("two"));
  r = pair->client.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "onetwo");
}

// A read smaller than what is queued takes the front of the stream, across
// write boundaries, and leaves the rest (Wine's test_CreateNamedPipe reads
// 4 bytes, then the rest, in byte mode).
TEST(ByteModeTest, SmallReadsCutAcrossWriteBoundaries) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-cut"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("ab"));
  CANAL_ASSERT_OK(pair->client.Write("cdef"));
  char three[3];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(three), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(three, r->size), "abc");
  EXPECT_FALSE(r->more);
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek();
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->available, 3u);
  absl::StatusOr<std::string> rest = ReadExactly(pair->server, 3);
  CANAL_ASSERT_OK(rest);
  EXPECT_EQ(*rest, "def");
}

// Wine's test_blocking_rw, byte mode: a zero-length write does not wake a
// pending read. A byte stream has no empty reads: the waiting Read returns
// the next real byte, and nothing is counted before it.
TEST(ByteModeTest, EmptyWriteSendsNothing) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-empty"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write(""));
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek();
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->available, 0u);
  char buffer[8];
  CANAL_EXPECT_CODE(
      pair->server.Read(absl::MakeSpan(buffer), absl::Milliseconds(100)),
      kDeadlineExceeded);
  absl::StatusOr<canal::ReadResult> r;
  {
    Background reader(
        [&] { r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard); });
    CANAL_ASSERT_OK(pair->client.Write(""));
    CANAL_ASSERT_OK(pair->client.Write("z"));
  }
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "z");
}

// Wine's test_blocking_rw: a read waiting on an empty pipe, then a write of
// more than it asked for: the read returns at most its buffer and the rest
// stays queued.
TEST(ByteModeTest, WaitingReadTakesAtMostItsBufferAndTheRestStaysQueued) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-pending"));
  CANAL_ASSERT_OK(pair);
  const std::string data = Pattern(4000, 41);
  std::vector<char> buffer(1000);
  absl::StatusOr<canal::ReadResult> r;
  {
    Background reader(
        [&] { r = pair->server.Read(absl::MakeSpan(buffer), kHangGuard); });
    CANAL_ASSERT_OK(pair->client.Write(data));
  }
  CANAL_ASSERT_OK(r);
  ASSERT_GE(r->size, 1u);
  ASSERT_LE(r->size, 1000u);
  EXPECT_TRUE(std::string(buffer.data(), r->size) == data.substr(0, r->size));
  absl::StatusOr<canal::PeekResult> p = pair->server.Peek();
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(p->available, data.size() - r->size);
  absl::StatusOr<std::string> rest =
      ReadExactly(pair->server, data.size() - r->size);
  CANAL_ASSERT_OK(rest);
  EXPECT_TRUE(*rest == data.substr(r->size));
}

// A zero-length ReadFile on a byte pipe is special on Windows (it waits for
// data); canal's byte-mode Read with an empty buffer returns 0 at once on
// both backends, consumes nothing, and is not an error after the peer
// closed (docs/semantics.md, "a byte-mode Read with an empty buffer").
TEST(ByteModeTest, ZeroLengthReadReturnsAtOnce) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("byte-zero"));
  CANAL_ASSERT_OK(pair);
  absl::StatusOr<canal::ReadResult> r;
  {
    Background reader([&] {
      r = pair->server.Read(absl::Span<char>(), absl::InfiniteDuration());
    });
    if (!reader.Finished(kHangGuard)) {
      ADD_FAILURE() << "a zero-length Read waited for data";
      pair->client.Close();
    }
  }
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_FALSE(r->more);
  CANAL_ASSERT_OK(pair->client.Write("kept"));
  r = pair->server.Read(absl::Span<char>(), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  absl::StatusOr<std::string> got = ReadExactly(pair->server, 4);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "kept");
  pair->client.Close();
  r = pair->server.Read(absl::Span<char>(), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
}

}  // namespace
