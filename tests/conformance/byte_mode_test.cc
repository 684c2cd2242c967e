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

}  // namespace
