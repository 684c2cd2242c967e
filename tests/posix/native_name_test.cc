// SPDX-License-Identifier: Apache-2.0
// Native names on POSIX: an absolute path is used unchanged, its directory
// is the caller's choice and is not checked.

#include <sys/stat.h>
#include <unistd.h>

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

using NativeName = RuntimeDirTest;

TEST_F(NativeName, AbsolutePathWorksInMessageMode) {
  const std::string path = base() + "/native.sock";
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path, options);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(listener->name(), path);
  EXPECT_TRUE(IsSocket(path));
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(path);
  CANAL_ASSERT_OK(client);
  EXPECT_EQ(client->mode(), canal::PipeMode::kMessage);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  CANAL_ASSERT_OK(client->WriteMessage("native"));
  absl::StatusOr<std::string> m = server->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "native");
}

TEST_F(NativeName, DirectoryOfANativePathIsNotChecked) {
  ASSERT_EQ(chmod(base().c_str(), 0755), 0);
  const std::string path = base() + "/open-dir.sock";
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(path);
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_OK(canal::Channel::Connect(path));
}

TEST_F(NativeName, NativePathDoesNotUseTheRuntimeDir) {
  const std::string path = base() + "/elsewhere.sock";
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(path);
  CANAL_ASSERT_OK(listener);
  struct stat st;
  EXPECT_NE(lstat(runtime_dir().c_str(), &st), 0)
      << "the runtime dir was created for a native name";
}

TEST_F(NativeName, MissingPathIsNotFoundWithTheNativeError) {
  const std::string path = base() + "/missing.sock";
  const absl::Status status = canal::Channel::Connect(path).status();
  ASSERT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_TRUE(MessageNames(status, "Connect", path));
  EXPECT_TRUE(absl::StrContains(status.message(), "ENOENT")) << status;
}

TEST_F(NativeName, MissingDirectoryIsNotFound) {
  CANAL_EXPECT_CODE(canal::Channel::Connect(base() + "/no/such/dir.sock"),
                    kNotFound);
}

TEST_F(NativeName, TakenNativePathIsAlreadyExists) {
  const std::string path = base() + "/taken.sock";
  absl::StatusOr<canal::Listener> first = canal::Listener::Create(path);
  CANAL_ASSERT_OK(first);
  CANAL_EXPECT_CODE(canal::Listener::Create(path), kAlreadyExists);
}

}  // namespace
}  // namespace canal_test
