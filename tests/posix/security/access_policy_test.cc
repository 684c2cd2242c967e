// SPDX-License-Identifier: Apache-2.0
// Access policies on POSIX: the modes of the socket, its lock, metadata and
// slot files and the runtime dir for each policy (whatever the umask),
// invalid policies, and the runtime-dir refusals not already covered by
// tests/posix/runtime_dir_test.cc.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/raw_socket.h"
#include "posix/runtime_dir_fixture.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {
namespace {

using AccessPolicyTest = RuntimeDirTest;

std::string LockOf(const std::string& socket) { return socket + ".canal~lock"; }
std::string MetaOf(const std::string& socket) { return socket + ".canal~meta"; }
std::string SlotOf(const std::string& socket, int k) {
  return absl::StrCat(socket, ".canal~slot", k);
}

// Sets the umask for one scope (process-wide; tests in one executable run
// one at a time).
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }

 private:
  mode_t old_;
};

TEST_F(AccessPolicyTest, DefaultIsOwnerOnlyEverywhere) {
  const std::string name = UniqueName("pol-default");
  canal::ListenerOptions options;
  options.max_instances = 2;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(ModeOf(runtime_dir()), 0700);
  EXPECT_EQ(ModeOf(PathOf(name)), 0600);
  EXPECT_EQ(ModeOf(LockOf(PathOf(name))), 0600);
  EXPECT_EQ(ModeOf(MetaOf(PathOf(name))), 0600);
  EXPECT_EQ(ModeOf(SlotOf(PathOf(name), 0)), 0600);
  EXPECT_EQ(ModeOf(SlotOf(PathOf(name), 1)), 0600);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST_F(AccessPolicyTest, DefaultModeDoesNotDependOnTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}}) {
    ScopedUmask scoped(mask);
    const std::string name = UniqueName("pol-umask");
    absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
    CANAL_ASSERT_OK(listener);
    EXPECT_EQ(ModeOf(PathOf(name)), 0600) << "umask " << mask;
    EXPECT_EQ(ModeOf(LockOf(PathOf(name))), 0600) << "umask " << mask;
    EXPECT_EQ(ModeOf(MetaOf(PathOf(name))), 0600) << "umask " << mask;
  }
}

TEST_F(AccessPolicyTest, AllLocalUsersOpensSocketAndFilesToEveryone) {
  ScopedUmask scoped(022);  // Typical; canal must widen past it.
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path, options);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(ModeOf(path), 0666);
  EXPECT_EQ(ModeOf(MetaOf(path)), 0644);
  EXPECT_EQ(ModeOf(SlotOf(path, 0)), 0644);
  // Whoever can open the lock file can hold its lock after the listener
  // dies: it stays the owner's alone.
  EXPECT_EQ(ModeOf(LockOf(path)), 0600);
  CANAL_EXPECT_OK(canal::Channel::Connect(path));
}

TEST_F(AccessPolicyTest, AllLocalUsersWithPortableNameKeepsTheDirPrivate) {
  const std::string name = UniqueName("pol-all-portable");
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(ModeOf(PathOf(name)), 0666);
  // The per-user runtime dir stays 0700: other users need a native path.
  EXPECT_EQ(ModeOf(runtime_dir()), 0700);
}

struct CustomCase {
  uint32_t socket_mode;
  int file_mode;
};

TEST_F(AccessPolicyTest, CustomModeAndGroup) {
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  // Root may give the files to any group; others only to their own.
  const gid_t group = IsRoot() ? kNoGroup : getegid();
  for (const CustomCase& c : {CustomCase{0600, 0600}, CustomCase{0660, 0640},
                              CustomCase{0620, 0640}, CustomCase{0640, 0640},
                              CustomCase{0606, 0604}, CustomCase{0666, 0644}}) {
    ScopedUmask scoped(027);
    const std::string path = dir.PathOf(absl::StrCat("svc-", c.socket_mode));
    canal::ListenerOptions options;
    options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
    options.access_policy.posix_mode = c.socket_mode;
    options.access_policy.posix_group = group;
    options.max_instances = 1;
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(path, options);
    CANAL_ASSERT_OK(listener);
    EXPECT_EQ(ModeOf(path), static_cast<int>(c.socket_mode)) << path;
    EXPECT_EQ(GroupOf(path), static_cast<long>(group)) << path;
    EXPECT_EQ(ModeOf(MetaOf(path)), c.file_mode) << path;
    EXPECT_EQ(GroupOf(MetaOf(path)), static_cast<long>(group)) << path;
    EXPECT_EQ(ModeOf(SlotOf(path, 0)), c.file_mode) << path;
    EXPECT_EQ(GroupOf(SlotOf(path, 0)), static_cast<long>(group)) << path;
    EXPECT_EQ(ModeOf(LockOf(path)), 0600) << path;
  }
}

TEST_F(AccessPolicyTest, CustomGroupMinusOneMeansTheListenersGroup) {
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
  options.access_policy.posix_mode = 0660;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path, options);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(ModeOf(path), 0660);
  EXPECT_EQ(GroupOf(path), static_cast<long>(getegid()));
}

TEST_F(AccessPolicyTest, LeftoverWideFilesAreReplacedByPrivateOnes) {
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  // What a dead kAllLocalUsers listener leaves behind, with its lock file
  // widened too (as an owner might, or an older canal did).
  {
    canal::ListenerOptions wide;
    wide.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(path, wide);
    CANAL_ASSERT_OK(listener);
    ASSERT_EQ(ModeOf(MetaOf(path)), 0644);
    ASSERT_EQ(chmod(LockOf(path).c_str(), 0644), 0);
    // Simulate a crash: keep the files, drop the locks.
    for (const std::string& file : {MetaOf(path), LockOf(path)}) {
      ASSERT_EQ(link(file.c_str(), (file + ".kept").c_str()), 0)
          << strerror(errno);
    }
    listener->Close();
    for (const std::string& file : {MetaOf(path), LockOf(path)}) {
      ASSERT_EQ(rename((file + ".kept").c_str(), file.c_str()), 0);
    }
  }
  // Someone opened the wide lock file meanwhile (and could take its lock
  // whenever it is free).
  Fd held(open(LockOf(path).c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(held.valid()) << strerror(errno);
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(path);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(ModeOf(MetaOf(path)), 0600);
  EXPECT_EQ(ModeOf(LockOf(path)), 0600);
  EXPECT_EQ(ModeOf(path), 0600);
  // A fresh lock file: the descriptor held open reaches only the old one.
  struct stat old_lock, new_lock;
  ASSERT_EQ(fstat(held.get(), &old_lock), 0);
  ASSERT_EQ(lstat(LockOf(path).c_str(), &new_lock), 0);
  EXPECT_NE(new_lock.st_ino, old_lock.st_ino);
}

TEST_F(AccessPolicyTest, InvalidPosixModesAreInvalidArgument) {
  for (uint32_t mode : {0777u, 0u, 0060u, 0400u, 0200u, 0700u, 01600u, 04600u,
                        0611u, 010000u}) {
    canal::ListenerOptions options;
    options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
    options.access_policy.posix_mode = mode;
    const std::string name = UniqueName("pol-bad");
    const absl::Status status = canal::Listener::Create(name, options).status();
    EXPECT_TRUE(absl::IsInvalidArgument(status))
        << "mode 0" << std::oct << mode << ": " << status;
    EXPECT_FALSE(IsSocket(PathOf(name)));
  }
}

TEST_F(AccessPolicyTest, InvalidGroupAndScopeAreInvalidArgument) {
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
  options.access_policy.posix_group = -2;
  CANAL_EXPECT_CODE(canal::Listener::Create(UniqueName("pol-grp"), options),
                    kInvalidArgument);
  options = canal::ListenerOptions();
  options.access_policy.scope = static_cast<canal::AccessPolicy::Scope>(42);
  CANAL_EXPECT_CODE(canal::Listener::Create(UniqueName("pol-scope"), options),
                    kInvalidArgument);
}

TEST_F(AccessPolicyTest, AGroupWeAreNotInIsPermissionDenied) {
  if (IsRoot()) GTEST_SKIP() << "root may give a file to any group";
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  gid_t foreign = 0;  // root's group: not ours when we are not root.
  if (getegid() == foreign) GTEST_SKIP() << "running with gid 0";
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
  options.access_policy.posix_mode = 0660;
  options.access_policy.posix_group = foreign;
  CANAL_EXPECT_CODE(canal::Listener::Create(dir.PathOf("svc"), options),
                    kPermissionDenied);
}

TEST_F(AccessPolicyTest, ExpectedServerKUserNeedsAUid) {
  const std::string name = UniqueName("pol-expect");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  canal::ConnectOptions options;
  options.expected_server.kind = canal::ExpectedServer::Kind::kUser;
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, options), kInvalidArgument);
  options.expected_server.posix_uid = geteuid();
  CANAL_EXPECT_OK(canal::Channel::Connect(name, options));
}

TEST_F(AccessPolicyTest, OwnServerPassesTheDefaultServerCheck) {
  const std::string name = UniqueName("pol-own");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, MessageOptions());
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::PeerInfo> server = client->Peer();
  CANAL_ASSERT_OK(server);
  EXPECT_EQ(server->uid, static_cast<int64_t>(geteuid()));
  EXPECT_EQ(server->gid, static_cast<int64_t>(getegid()));
  EXPECT_EQ(server->process_id, CurrentProcessId());
  EXPECT_TRUE(server->user_sid.empty());
}

TEST_F(AccessPolicyTest, RunAsClientIsUnimplementedOnPosix) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("pol-runas"));
  CANAL_ASSERT_OK(pair);
  bool ran = false;
  const absl::Status status = pair->server.RunAsClient([&] { ran = true; });
  EXPECT_TRUE(absl::IsUnimplemented(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "Peer()")) << status;
  EXPECT_FALSE(ran);
}

// --- Runtime dir: what tests/posix/runtime_dir_test.cc does not cover ----

TEST_F(AccessPolicyTest, RuntimeDirRefusalsSayWhatIsWrong) {
  MakeRuntimeDir(0750);
  absl::Status status = canal::Listener::Create(UniqueName("rt-msg")).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "0750")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), runtime_dir())) << status;
}

TEST_F(AccessPolicyTest, ClientRefusesASymlinkedRuntimeDir) {
  const std::string real = base() + "/real";
  ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(symlink(real.c_str(), runtime_dir().c_str()), 0);
  const absl::Status status =
      canal::Channel::Connect(UniqueName("rt-link")).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "symbolic link")) << status;
  CANAL_EXPECT_CODE(
      canal::WaitForListener(UniqueName("rt-link"), absl::ZeroDuration()),
      kPermissionDenied);
}

TEST_F(AccessPolicyTest, ClientRefusesARuntimeDirOwnedBySomeoneElse) {
  CANAL_SKIP_UNLESS_ROOT();
  MakeRuntimeDir(0700);
  const std::string name = UniqueName("rt-owner-client");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  ASSERT_EQ(chown(runtime_dir().c_str(), kNobody, kNoGroup), 0);
  const absl::Status status = canal::Channel::Connect(name).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "owned by uid 65534"))
      << status;
  CANAL_EXPECT_CODE(canal::Call(name, "x"), kPermissionDenied);
}

}  // namespace
}  // namespace canal_test
