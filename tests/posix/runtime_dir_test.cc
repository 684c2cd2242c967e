// SPDX-License-Identifier: Apache-2.0
// The POSIX runtime dir: portable names live in $CANAL_RUNTIME_DIR, else
// $XDG_RUNTIME_DIR/canal, else /tmp/canal-<uid>; the dir is created with
// mode 0700 and must be a real directory owned by us without group/other
// access, or canal refuses with PermissionDenied.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/raw_socket.h"
#include "posix/runtime_dir_fixture.h"
#include "test_util.h"

namespace canal_test {
namespace {

using RuntimeDir = RuntimeDirTest;

TEST_F(RuntimeDir, ListenerCreatesMissingDirWithMode0700) {
  const std::string name = UniqueName("rt-create");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  struct stat st;
  ASSERT_EQ(lstat(runtime_dir().c_str(), &st), 0) << strerror(errno);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, geteuid());
}

TEST_F(RuntimeDir, ARestrictiveUmaskStillGivesExactly0700) {
  // mkdir(0700) under umask 0277 makes a 0500 directory; canal fixes the
  // mode through a descriptor of the directory it made.
  const mode_t old = umask(0277);
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(UniqueName("rt-umask"));
  umask(old);
  CANAL_ASSERT_OK(listener);
  struct stat st;
  ASSERT_EQ(lstat(runtime_dir().c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(RuntimeDir, SocketLivesAtRuntimeDirSlashName) {
  const std::string name = UniqueName("rt-path");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  EXPECT_TRUE(IsSocket(PathOf(name))) << PathOf(name);
  // A plain client reaches it through that path.
  Fd fd = ConnectUnixSocket(PathOf(name));
  EXPECT_TRUE(fd.valid()) << strerror(errno);
}

TEST_F(RuntimeDir, ClientWithMissingDirIsNotFound) {
  CANAL_EXPECT_CODE(canal::Channel::Connect(UniqueName("rt-nodir")), kNotFound);
  // Connecting does not create the dir.
  struct stat st;
  EXPECT_NE(lstat(runtime_dir().c_str(), &st), 0);
}

TEST_F(RuntimeDir, ExistingPrivateDirIsUsed) {
  MakeRuntimeDir(0700);
  const std::string name = UniqueName("rt-exists");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  EXPECT_TRUE(IsSocket(PathOf(name)));
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST_F(RuntimeDir, GroupAndWorldReadableDirIsPermissionDenied) {
  MakeRuntimeDir(0755);
  const std::string name = UniqueName("rt-0755");
  const absl::Status status = canal::Listener::Create(name).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), name)) << status;
  EXPECT_FALSE(IsSocket(PathOf(name)));
}

TEST_F(RuntimeDir, GroupWritableDirIsPermissionDenied) {
  MakeRuntimeDir(0770);
  CANAL_EXPECT_CODE(canal::Listener::Create(UniqueName("rt-0770")),
                    kPermissionDenied);
}

TEST_F(RuntimeDir, ClientRefusesAnUnsafeDirToo) {
  MakeRuntimeDir(0700);
  const std::string name = UniqueName("rt-client");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  ASSERT_EQ(chmod(runtime_dir().c_str(), 0777), 0);
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kPermissionDenied);
}

TEST_F(RuntimeDir, SymlinkedDirIsPermissionDenied) {
  const std::string real = base() + "/real";
  ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(symlink(real.c_str(), runtime_dir().c_str()), 0);
  const std::string name = UniqueName("rt-symlink");
  CANAL_EXPECT_CODE(canal::Listener::Create(name), kPermissionDenied);
  EXPECT_FALSE(IsSocket(real + "/" + name));
}

TEST_F(RuntimeDir, DirOwnedBySomeoneElseIsPermissionDenied) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root to give the runtime dir to another user";
  }
  MakeRuntimeDir(0700);
  ASSERT_EQ(chown(runtime_dir().c_str(), 65534, 65534), 0) << strerror(errno);
  CANAL_EXPECT_CODE(canal::Listener::Create(UniqueName("rt-owner")),
                    kPermissionDenied);
}

TEST_F(RuntimeDir, RegularFileInsteadOfDirIsRefused) {
  const std::string path = runtime_dir();
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  const absl::Status status =
      canal::Listener::Create(UniqueName("rt-file")).status();
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(status) ||
              absl::IsFailedPrecondition(status) || absl::IsNotFound(status))
      << status;
}

TEST_F(RuntimeDir, XdgRuntimeDirIsTheFallback) {
  ScopedEnv no_canal("CANAL_RUNTIME_DIR", std::nullopt);
  ScopedEnv xdg("XDG_RUNTIME_DIR", base());
  const std::string name = UniqueName("rt-xdg");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  const std::string dir = base() + "/canal";
  EXPECT_TRUE(IsSocket(dir + "/" + name)) << dir;
  struct stat st;
  ASSERT_EQ(lstat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST_F(RuntimeDir, EmptyCanalRuntimeDirFallsBackToXdg) {
  ScopedEnv empty("CANAL_RUNTIME_DIR", std::string());
  ScopedEnv xdg("XDG_RUNTIME_DIR", base());
  const std::string name = UniqueName("rt-empty");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  EXPECT_TRUE(IsSocket(base() + "/canal/" + name));
}

TEST_F(RuntimeDir, TmpIsTheLastFallback) {
  ScopedEnv no_canal("CANAL_RUNTIME_DIR", std::nullopt);
  ScopedEnv no_xdg("XDG_RUNTIME_DIR", std::nullopt);
  const std::string name = UniqueName("rt-tmp");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  const std::string dir = absl::StrCat("/tmp/canal-", geteuid());
  EXPECT_TRUE(IsSocket(dir + "/" + name)) << dir;
  struct stat st;
  ASSERT_EQ(lstat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 077, 0u);
  EXPECT_EQ(st.st_uid, geteuid());
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

}  // namespace
}  // namespace canal_test
