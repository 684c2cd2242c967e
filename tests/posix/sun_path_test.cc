// SPDX-License-Identifier: Apache-2.0
// The sun_path limit: a socket path that does not fit into sockaddr_un is
// InvalidArgument, for native and portable names alike, and is never
// silently truncated.

#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/raw_socket.h"
#include "posix/runtime_dir_fixture.h"
#include "test_util.h"

namespace canal_test {
namespace {

using SunPath = RuntimeDirTest;

constexpr size_t kSunPathSize = sizeof(sockaddr_un{}.sun_path);

// A path under base() of exactly `length` characters.
std::string PathOfLength(const std::string& dir, size_t length) {
  std::string path = dir + "/s";
  path.resize(length, 'p');
  return path;
}

TEST_F(SunPath, NativePathLongerThanSunPathIsInvalidArgument) {
  const std::string path = PathOfLength(base(), kSunPathSize + 20);
  const absl::Status status = canal::Listener::Create(path).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), path)) << status;
  CANAL_EXPECT_CODE(canal::Channel::Connect(path), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::WaitForListener(path, absl::Milliseconds(100)),
                    kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Call(path, "x", absl::Milliseconds(100)),
                    kInvalidArgument);
}

TEST_F(SunPath, TooLongPathIsNotTruncated) {
  const std::string path = PathOfLength(base(), kSunPathSize + 1);
  CANAL_EXPECT_CODE(canal::Listener::Create(path), kInvalidArgument);
  // Nothing was created under a shortened name.
  for (const auto& entry : std::filesystem::directory_iterator(base())) {
    EXPECT_FALSE(entry.is_socket()) << entry.path();
  }
}

TEST_F(SunPath, LongestFittingNativePathWorks) {
  const std::string path = PathOfLength(base(), kSunPathSize - 1);
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(path);
  CANAL_ASSERT_OK(listener);
  EXPECT_TRUE(IsSocket(path));
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(path);
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  CANAL_ASSERT_OK(server->Write("fits"));
  absl::StatusOr<std::string> got = ReadExactly(*client, 4);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "fits");
}

TEST_F(SunPath, PortableNameWhosePathIsTooLongIsInvalidArgument) {
  // Valid as a name (at most 200 characters), but runtime_dir()/<name> is
  // longer than sun_path.
  const std::string name(kSunPathSize + 10 - runtime_dir().size(), 'n');
  ASSERT_LE(name.size(), 200u);
  const absl::Status status = canal::Listener::Create(name).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), name)) << status;
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kInvalidArgument);
}

TEST_F(SunPath, LongestPortableNameThatFitsWorks) {
  const std::string name(kSunPathSize - 1 - runtime_dir().size() - 1, 'n');
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  EXPECT_TRUE(IsSocket(PathOf(name)));
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

}  // namespace
}  // namespace canal_test
