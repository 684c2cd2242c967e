// SPDX-License-Identifier: Apache-2.0
// ListenerOptions::buffer_size = 0 (the default) and PipeOptions::buffer_size
// = 0 mean a 64 KiB quota on Windows: a write that fits does not wait for
// the reader. (A zero quota, which Windows would pass on as such, makes
// every WriteFile wait until the reader has taken the data; Wine does
// exactly that.)

#include <windows.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "canal/pipe.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::ConnectedPair;
using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::UniqueName;

// Nobody reads until every write has returned.
void ExpectWritesDoNotWaitForTheReader(canal::Channel& writer,
                                       canal::Channel& reader) {
  const std::string data = canal_test::Pattern(16 * 1024, 7);
  CANAL_ASSERT_OK(writer.Write(data, kHangGuard));
  absl::StatusOr<std::string> got =
      canal_test::ReadExactly(reader, data.size());
  CANAL_ASSERT_OK(got);
  EXPECT_TRUE(*got == data);
}

TEST(DefaultBufferTest, ListenerWritesDoNotWaitForTheReader) {
  for (canal::PipeMode mode :
       {canal::PipeMode::kByte, canal::PipeMode::kMessage}) {
    canal::ListenerOptions options;
    options.mode = mode;
    ASSERT_EQ(options.buffer_size, 0u);
    absl::StatusOr<ConnectedPair> pair =
        MakePair(UniqueName("buffer-default"), options);
    ASSERT_TRUE(pair.ok()) << pair.status();
    ExpectWritesDoNotWaitForTheReader(pair->client, pair->server);
    ExpectWritesDoNotWaitForTheReader(pair->server, pair->client);
  }
}

TEST(DefaultBufferTest, CreatePipeWritesDoNotWaitForTheReader) {
  canal::PipeOptions options;
  ASSERT_EQ(options.buffer_size, 0u);
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe(options);
  ASSERT_TRUE(pipe.ok()) << pipe.status();
  ExpectWritesDoNotWaitForTheReader(pipe->write_end, pipe->read_end);
}

}  // namespace
