// SPDX-License-Identifier: Apache-2.0
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

TEST(PeerCloseTest, TransactAfterPeerClosedIsUnavailable) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("pc-tx"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  pair->server.Close();
  const absl::Status status =
      pair->client.Transact("anyone?", kHangGuard).status();
  // A transaction whose peer is gone is broken, whether its request was
  // refused or swallowed by a buffer: Unavailable on both backends (the
  // project's decision; TransactNamedPipe fails with ERROR_NO_DATA /
  // ERROR_BROKEN_PIPE), never the OutOfRange of a reader at end of stream.
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

// Wine's test_CloseHandle: after the server end is closed, PeekNamedPipe
// still reports the queued message, reads return it, and only then do
// ReadFile and PeekNamedPipe fail with ERROR_BROKEN_PIPE and WriteFile with
// ERROR_NO_DATA.
TEST(PeerCloseTest, QueuedMessageIsStillPeekedAndReadAfterPeerCloses) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("pc-peekmsg"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.WriteMessage("Hello World"));
  pair->server.Close();
  char buffer[32];
  absl::StatusOr<canal::PeekResult> p =
      pair->client.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(std::string(buffer, p->size), "Hello World");
  EXPECT_EQ(p->available, 11u);
  EXPECT_EQ(p->message_remaining, 11u);
  absl::StatusOr<canal::ReadResult> r =
      pair->client.Read(absl::Span<char>(), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_TRUE(r->more);
  absl::StatusOr<std::string> m = pair->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "Hello World");
  CANAL_EXPECT_CODE(pair->client.Read(absl::Span<char>(), kHangGuard),
                    kOutOfRange);
  CANAL_EXPECT_CODE(pair->client.Peek(), kOutOfRange);
  CANAL_EXPECT_CODE(pair->client.WriteMessage("late"), kUnavailable);
}

// test_CloseHandle again, with a zero-length message as the last one.
TEST(PeerCloseTest, EmptyLastMessageIsDeliveredBeforeEndOfStream) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("pc-emptylast"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage(""));
  pair->client.Close();
  char buffer[8];
  absl::StatusOr<canal::ReadResult> r =
      pair->server.Read(absl::MakeSpan(buffer), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
  EXPECT_FALSE(r->more);
  CANAL_EXPECT_CODE(pair->server.Read(absl::Span<char>(), kHangGuard),
                    kOutOfRange);
  CANAL_EXPECT_CODE(pair->server.Peek(), kOutOfRange);
}

// test_CloseHandle in byte-read mode: PeekNamedPipe and ReadFile still get
// the bytes written before the close.
TEST(PeerCloseTest, QueuedBytesAreStillPeekedAfterPeerCloses) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pc-peekbyte"));
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.Write("Hello World"));
  pair->client.Close();
  char buffer[32];
  absl::StatusOr<canal::PeekResult> p =
      pair->server.Peek(absl::MakeSpan(buffer));
  CANAL_ASSERT_OK(p);
  EXPECT_EQ(std::string(buffer, p->size), "Hello World");
  EXPECT_EQ(p->available, 11u);
  absl::StatusOr<std::string> got = ReadExactly(pair->server, 11);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "Hello World");
  CANAL_EXPECT_CODE(pair->server.Peek(), kOutOfRange);
}

// Wine's test_overlapped_transport: "close client with pending writes" /
// "close server with pending writes": a write blocked on a full pipe fails
// with ERROR_BROKEN_PIPE when the reader closes its end.
enum class Writer { kClient, kServer };

void BlockedWriteWakesWhenPeerCloses(canal::PipeMode mode, Writer who,
                                     const char* label) {
  canal::ListenerOptions options;
  options.mode = mode;
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName(label), options);
  CANAL_ASSERT_OK(pair);
  const bool client_writes = who == Writer::kClient;
  canal::Channel& writer = client_writes ? pair->client : pair->server;
  canal::Channel& reader = client_writes ? pair->server : pair->client;
  const std::string big = Pattern(8 * 1024 * 1024, 59);
  absl::Status write_status;
  {
    Background blocked([&] { write_status = writer.Write(big, kHangGuard); });
    // The write is under way once its first byte arrives.
    char first[1];
    CANAL_EXPECT_OK(reader.Read(absl::MakeSpan(first), kHangGuard));
    reader.Close();
    if (!blocked.Finished(kHangGuard + absl::Seconds(5))) {
      ADD_FAILURE() << "the blocked Write did not wake";
      writer.Close();
    }
  }
  EXPECT_EQ(write_status.code(), absl::StatusCode::kUnavailable)
      << write_status;
}

TEST(PeerCloseTest, BlockedClientWriteWakesWithUnavailable) {
  BlockedWriteWakesWhenPeerCloses(canal::PipeMode::kByte, Writer::kClient,
                                  "pc-bw-cb");
}

TEST(PeerCloseTest, BlockedServerWriteWakesWithUnavailable) {
  BlockedWriteWakesWhenPeerCloses(canal::PipeMode::kByte, Writer::kServer,
                                  "pc-bw-sb");
}

TEST(PeerCloseTest, BlockedMessageWriteWakesWithUnavailable) {
  BlockedWriteWakesWhenPeerCloses(canal::PipeMode::kMessage, Writer::kClient,
                                  "pc-bw-cm");
}

// ConnectNamedPipe completes for a client that has connected even if it has
// closed again since; the server then reads what the client wrote and the
// end of the pipe (Wine's test_CloseHandle, client side closed first). A
// client that leaves before Accept is still accepted, with its data.
TEST(PeerCloseTest, ClientThatLeftBeforeAcceptIsAcceptedWithItsData) {
  const std::string name = UniqueName("pc-leftearly");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, MessageOptions());
  CANAL_ASSERT_OK(listener);
  {
    absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(client);
    CANAL_ASSERT_OK(client->WriteMessage("bye"));
  }
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  absl::StatusOr<std::string> m = server->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "bye");
  CANAL_EXPECT_CODE(server->ReadMessage(kHangGuard), kOutOfRange);
  // Who it was is still known (Wine's test_namedpipe_process_id, "closed
  // client handle").
  absl::StatusOr<canal::PeerInfo> peer = server->Peer();
  CANAL_ASSERT_OK(peer);
  EXPECT_EQ(peer->process_id, canal_test::CurrentProcessId());
}

}  // namespace
