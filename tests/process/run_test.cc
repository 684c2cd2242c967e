// SPDX-License-Identifier: Apache-2.0
// canal::Run: stdin fed and stdout/stderr collected concurrently, so a child
// writing megabytes to both never deadlocks; timeouts kill the child.

#include <string>

#include "canal/subprocess.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::ChildArgv;
using canal_test::StreamPattern;

TEST(RunTest, SixteenMebibytesOnStdoutAndStderrAtOnce) {
  constexpr size_t kSize = 16 << 20;
  canal::RunOptions options;
  options.timeout = absl::Seconds(120);
  absl::StatusOr<canal::RunResult> result =
      canal::Run(ChildArgv({"write", std::to_string(kSize)}), "", options);
  CANAL_ASSERT_OK(result);
  EXPECT_TRUE(result->status.success());
  ASSERT_EQ(result->stdout_data.size(), kSize);
  ASSERT_EQ(result->stderr_data.size(), kSize);
  EXPECT_TRUE(result->stdout_data == StreamPattern(kSize, 1));
  EXPECT_TRUE(result->stderr_data == StreamPattern(kSize, 2));
}

TEST(RunTest, FeedsStdinWhileReadingStdout) {
  // More than any pipe buffer in both directions at once: echo only reads
  // more stdin after its stdout was drained.
  const std::string input = canal_test::Pattern(8 << 20, 3);
  canal::RunOptions options;
  options.timeout = absl::Seconds(120);
  absl::StatusOr<canal::RunResult> result =
      canal::Run(ChildArgv({"echo"}), input, options);
  CANAL_ASSERT_OK(result);
  EXPECT_TRUE(result->status.success());
  EXPECT_TRUE(result->stdout_data == input);
  EXPECT_EQ(result->stderr_data, "");
}

TEST(RunTest, ExitCodeAndMergedStderr) {
  canal::RunOptions options;
  options.stderr_mode = canal::StdioMode::kStdout;
  absl::StatusOr<canal::RunResult> result =
      canal::Run(ChildArgv({"both"}), "", options);
  CANAL_ASSERT_OK(result);
  EXPECT_EQ(result->stdout_data, "out\nerr\n");
  EXPECT_EQ(result->stderr_data, "");
  result = canal::Run(ChildArgv({"exit", "7"}), "ignored input");
  CANAL_ASSERT_OK(result);
  EXPECT_EQ(result->status.exit_code, 7);
}

TEST(RunTest, TimeoutKillsTheChild) {
  canal::RunOptions options;
  options.timeout = absl::Milliseconds(300);
  // The child never exits by itself: Run returns only if it kills it.
  absl::StatusOr<canal::RunResult> result =
      canal::Run(ChildArgv({"hang"}), "", options);
  CANAL_EXPECT_CODE(result, kDeadlineExceeded);
}

TEST(RunTest, MissingProgram) {
  CANAL_EXPECT_CODE(canal::Run({canal_test::ChildPath() + "-missing"}, ""),
                    kNotFound);
}

}  // namespace
