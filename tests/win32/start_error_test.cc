// SPDX-License-Identifier: Apache-2.0
// Subprocess::Start's failures on Windows come from the backend's one Win32
// error table (src/win32/error.cc): the most specific code, and the native
// error by name in the message.

#include <windows.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "canal/subprocess.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::UniqueName;

std::string TempDir() {
  char path[MAX_PATH + 1];
  const DWORD length = GetTempPathA(sizeof(path), path);
  return std::string(path, length);
}

TEST(StartErrorTest, MissingWorkingDirectoryIsNotFoundNamingTheError) {
  canal::SubprocessOptions options;
  options.working_dir = TempDir() + UniqueName("no-such-dir");
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start({"cmd.exe", "/c", "exit 0"}, options);
  CANAL_EXPECT_CODE(child, kNotFound);
  EXPECT_TRUE(
      absl::StrContains(child.status().message(), "ERROR_DIRECTORY") ||
      absl::StrContains(child.status().message(), "ERROR_PATH_NOT_FOUND"))
      << child.status();
  EXPECT_TRUE(absl::StrContains(child.status().message(), "Start"))
      << child.status();
}

TEST(StartErrorTest, NotAProgramIsInvalidArgumentNamingTheError) {
  const std::string path = TempDir() + UniqueName("not-a-program") + ".exe";
  HANDLE file = CreateFileA(path.c_str(), GENERIC_WRITE, 0, nullptr,
                            CREATE_ALWAYS, 0, nullptr);
  ASSERT_NE(file, INVALID_HANDLE_VALUE) << GetLastError();
  const char text[] = "this is text, not a program\r\n";
  DWORD written = 0;
  ASSERT_TRUE(WriteFile(file, text, sizeof(text) - 1, &written, nullptr));
  CloseHandle(file);
  absl::StatusOr<canal::Subprocess> child = canal::Subprocess::Start({path});
  DeleteFileA(path.c_str());
  CANAL_EXPECT_CODE(child, kInvalidArgument);
  EXPECT_TRUE(
      absl::StrContains(child.status().message(), "ERROR_BAD_EXE_FORMAT (193)"))
      << child.status();
}

}  // namespace
