// SPDX-License-Identifier: Apache-2.0
// canal::Fifo is POSIX-only: on Windows every call is Unimplemented with a
// message that points to the alternatives.

#include "canal/fifo.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

TEST(FifoWindowsTest, EveryCallIsUnimplemented) {
  absl::Status create = canal::Fifo::Create("C:\\x.fifo", 0600);
  CANAL_EXPECT_CODE(create, kUnimplemented);
  EXPECT_TRUE(absl::StrContains(create.message(), "POSIX-only"));
  EXPECT_TRUE(absl::StrContains(create.message(), "CreatePipe"));
  CANAL_EXPECT_CODE(canal::Fifo::OpenRead("C:\\x.fifo"), kUnimplemented);
  CANAL_EXPECT_CODE(canal::Fifo::OpenWrite("C:\\x.fifo", absl::Seconds(1)),
                    kUnimplemented);
  CANAL_EXPECT_CODE(canal::Fifo::Remove("C:\\x.fifo"), kUnimplemented);
}

}  // namespace
