// SPDX-License-Identifier: Apache-2.0
// Row 14: ListenerOptions::buffer_size. 0, the default, is the system's buffer
// size, never a zero quota; a small explicit size still carries data of any
// size (the writer waits for the reader instead).

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

// CreateNamedPipe: nInBufferSize / nOutBufferSize are advisory; with a zero
// quota every WriteFile would wait until the reader took the data. canal's
// default (0) means the system's size instead: writes that fit return while
// nobody reads, in both directions and both modes.
void WritesWithoutAReader(canal::PipeMode mode, const char* label) {
  canal::ListenerOptions options;
  options.mode = mode;
  ASSERT_EQ(options.buffer_size, 0u);
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName(label), options);
  CANAL_ASSERT_OK(pair);
  // 32 KiB each way, in 8 writes: half of Windows' 64 KiB default.
  const std::string chunk = Pattern(4096, 43);
  for (canal::Channel* writer : {&pair->client, &pair->server}) {
    for (int i = 0; i < 8; ++i) {
      CANAL_ASSERT_OK(writer->Write(chunk, kHangGuard));
    }
  }
  for (canal::Channel* reader : {&pair->server, &pair->client}) {
    for (int i = 0; i < 8; ++i) {
      absl::StatusOr<std::string> got =
          mode == canal::PipeMode::kMessage
              ? reader->ReadMessage(kHangGuard)
              : ReadExactly(*reader, chunk.size());
      CANAL_ASSERT_OK(got);
      EXPECT_TRUE(*got == chunk);
    }
  }
}

TEST(BufferSizeTest, DefaultWritesWithoutWaitingForTheReader) {
  WritesWithoutAReader(canal::PipeMode::kByte, "buf-default-b");
}

TEST(BufferSizeTest, DefaultMessagesWithoutWaitingForTheReader) {
  WritesWithoutAReader(canal::PipeMode::kMessage, "buf-default-m");
}

// With a buffer far smaller than the data, a write still completes once the
// reader drains the pipe: the size bounds what is queued, not what can be
// sent (the write "will block until the data is read from the pipe",
// CreateNamedPipe remarks).
void SmallBufferCarriesLargeWrites(canal::PipeMode mode, const char* label) {
  canal::ListenerOptions options;
  options.mode = mode;
  options.buffer_size = 1024;
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName(label), options);
  CANAL_ASSERT_OK(pair);
  const std::string data = Pattern(512 * 1024, 47);
  absl::Status write_status;
  absl::StatusOr<std::string> got;
  {
    Background writer(
        [&] { write_status = pair->client.Write(data, kHangGuard); });
    got = mode == canal::PipeMode::kMessage
              ? pair->server.ReadMessage(kHangGuard)
              : ReadExactly(pair->server, data.size());
    if (!got.ok()) pair->client.Close();
  }
  CANAL_EXPECT_OK(write_status);
  CANAL_ASSERT_OK(got);
  EXPECT_TRUE(*got == data);
}

TEST(BufferSizeTest, SmallBufferCarriesALargeByteWrite) {
  SmallBufferCarriesLargeWrites(canal::PipeMode::kByte, "buf-small-b");
}

TEST(BufferSizeTest, SmallBufferCarriesALargeMessage) {
  SmallBufferCarriesLargeWrites(canal::PipeMode::kMessage, "buf-small-m");
}

}  // namespace
