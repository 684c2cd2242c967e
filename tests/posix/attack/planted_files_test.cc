// SPDX-License-Identifier: Apache-2.0
// Planted files: the attacker (uid 65534) puts a symlink, a FIFO, a
// directory, a regular file of its own or a socket at each path canal uses
// (the socket, the lock file, the metadata file and its temporary, the slot
// files, the runtime directory, a FIFO's path), either before the victim
// (root) starts a listener, or, in a directory it may write, while the
// listener runs. canal must answer with a clear status within the timeout,
// never hang (a FIFO opened for reading waits for a writer), never follow a
// planted link, never change anything that is not its own, and never let a
// planted file decide what its clients do.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/attack/attacker.h"
#include "posix/raw_socket.h"
#include "posix/runtime_dir_fixture.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {
namespace {

constexpr absl::Duration kShort = absl::Milliseconds(300);

// The paths beside a listener's socket.
enum class Where { kSocket, kLock, kMeta, kMetaNew, kSlot };

const char* WhereName(Where where) {
  switch (where) {
    case Where::kSocket:
      return "Socket";
    case Where::kLock:
      return "LockFile";
    case Where::kMeta:
      return "MetaFile";
    case Where::kMetaNew:
      return "MetaTempFile";
    case Where::kSlot:
      return "SlotFile";
  }
  return "Unknown";
}

std::string PathAt(const std::string& socket, Where where) {
  switch (where) {
    case Where::kSocket:
      return socket;
    case Where::kLock:
      return socket + ".canal~lock";
    case Where::kMeta:
      return socket + ".canal~meta";
    case Where::kMetaNew:
      return socket + ".canal~meta.new";
    case Where::kSlot:
      return socket + ".canal~slot1";
  }
  return socket;
}

// Every path of `where`: both slot files for kSlot (a client takes the
// first free slot it finds, so each one must be planted).
std::vector<std::string> PathsAt(const std::string& socket, Where where) {
  if (where == Where::kSlot) {
    return {socket + ".canal~slot0", socket + ".canal~slot1"};
  }
  return {PathAt(socket, where)};
}

canal::ListenerOptions AllUsersMessage() {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_instances = 2;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  return options;
}

canal::ConnectOptions Quick() {
  canal::ConnectOptions options;
  options.timeout = kShort;
  return options;
}

// One request/reply through `listener`, with `client` connected to it: the
// listener and its clients still work as the listener says.
void ExpectServes(canal::Listener& listener, canal::Channel& client) {
  EXPECT_EQ(client.mode(), canal::PipeMode::kMessage);
  Background server([&] {
    absl::StatusOr<canal::Channel> ch = listener.Accept(kHangGuard);
    if (!ch.ok()) return;
    absl::StatusOr<std::string> request = ch->ReadMessage(kHangGuard);
    if (request.ok()) (void)ch->WriteMessage("re: " + *request);
  });
  absl::StatusOr<std::string> reply = client.Transact("ping", kHangGuard);
  CANAL_EXPECT_OK(reply);
  if (reply.ok()) {
    EXPECT_EQ(*reply, "re: ping");
  }
  EXPECT_TRUE(server.Finished(kHangGuard));
}

class PlantedTest
    : public ::testing::TestWithParam<std::tuple<Where, PlantKind>> {
 protected:
  void SetUp() override {
    CANAL_SKIP_UNLESS_ROOT();
    ASSERT_TRUE(dir_.ok());
    ASSERT_TRUE(writable_dir_.ok());
    victim_ = MakeVictimFile(dir_.PathOf("victim"));
    ASSERT_FALSE(victim_.empty());
    victim_before_ = Snap(victim_);
  }
  void TearDown() override {
    if (!victim_.empty()) {
      EXPECT_EQ(Snap(victim_), victim_before_) << "the victim's file changed";
    }
  }

  Where where() const { return std::get<0>(GetParam()); }
  PlantKind kind() const { return std::get<1>(GetParam()); }

  // Like /tmp: everyone may create files, only owners may remove them.
  SharedDir dir_{01777};
  // A directory the attacker may change at will (not sticky).
  SharedDir writable_dir_{0777};
  std::string victim_;
  Snapshot victim_before_;
};

std::string PlantedTestName(
    const ::testing::TestParamInfo<std::tuple<Where, PlantKind>>& info) {
  return absl::StrCat(WhereName(std::get<0>(info.param)),
                      PlantName(std::get<1>(info.param)));
}

// --- Planted before the listener starts --------------------------------

using PlantedBeforeCreate = PlantedTest;

TEST_P(PlantedBeforeCreate, CreateRefusesOrReplacesAndChangesNothingElse) {
  const std::string socket = dir_.PathOf("svc");
  const std::string planted = PathAt(socket, where());
  ASSERT_TRUE(PlantAsAttacker(kind(), planted, victim_));
  const Snapshot before = Snap(planted);

  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(socket, AllUsersMessage());
  switch (where()) {
    case Where::kSocket:
      if (kind() == PlantKind::kSocket) {
        // A socket nobody listens on: a stale one, reclaimed.
        CANAL_ASSERT_OK(listener);
        break;
      }
      CANAL_EXPECT_CODE(listener, kAlreadyExists);
      EXPECT_EQ(Snap(planted), before);
      return;
    case Where::kLock:
      // The lock file decides who owns the name: one that is not the
      // victim's own regular file is never used (it could be held or
      // rewritten by its owner) and never touched.
      CANAL_EXPECT_CODE(listener, kPermissionDenied);
      if (!listener.ok()) {
        EXPECT_TRUE(absl::StrContains(listener.status().message(), planted))
            << listener.status();
      }
      EXPECT_EQ(Snap(planted), before);
      EXPECT_FALSE(IsSocket(socket));
      return;
    case Where::kMeta:
    case Where::kMetaNew:
    case Where::kSlot:
      if (kind() == PlantKind::kDirectory) {
        CANAL_EXPECT_CODE(listener, kAlreadyExists);
        EXPECT_EQ(Snap(planted), before);
        EXPECT_FALSE(IsSocket(socket));
        return;
      }
      // Paths only the lock holder uses: the planted entry is replaced by
      // a fresh file (only the directory entry goes; a link's target and
      // the attacker's own file are untouched).
      CANAL_ASSERT_OK(listener);
      break;
  }
  struct stat st;
  if (where() != Where::kMetaNew && where() != Where::kSocket) {
    ASSERT_EQ(lstat(planted.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_uid, 0u);
  }
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(socket);
  CANAL_ASSERT_OK(client);
  ExpectServes(*listener, *client);
}

INSTANTIATE_TEST_SUITE_P(
    Attack, PlantedBeforeCreate,
    ::testing::Combine(::testing::Values(Where::kSocket, Where::kLock,
                                         Where::kMeta, Where::kMetaNew,
                                         Where::kSlot),
                       ::testing::ValuesIn(kAllPlants)),
    PlantedTestName);

// Without a live listener, clients look only at the lock and metadata
// files.
using PlantedWithoutListener = PlantedTest;

TEST_P(PlantedWithoutListener, ClientsFailFastAndChangeNothing) {
  const std::string socket = dir_.PathOf("svc");
  const std::string planted = PathAt(socket, where());
  ASSERT_TRUE(PlantAsAttacker(kind(), planted, victim_));
  const Snapshot before = Snap(planted);
  // A lock file that is not a canal listener's is ignored (nobody listens
  // here); metadata someone else wrote is refused, as their server would be.
  const absl::StatusCode expected = where() == Where::kLock
                                        ? absl::StatusCode::kNotFound
                                        : absl::StatusCode::kPermissionDenied;
  const auto unblock = [&] { UnblockFifoReaders(planted); };
  absl::Status status =
      Guarded([&] { return canal::WaitForListener(socket, kShort); }, unblock,
              "WaitForListener");
  EXPECT_EQ(status.code(), expected) << status;
  status =
      Guarded([&] { return canal::Channel::Connect(socket, Quick()).status(); },
              unblock, "Connect");
  EXPECT_EQ(status.code(), expected) << status;
  status = Guarded([&] { return canal::Call(socket, "x", kShort).status(); },
                   unblock, "Call");
  EXPECT_EQ(status.code(), expected) << status;
  EXPECT_EQ(Snap(planted), before);
}

INSTANTIATE_TEST_SUITE_P(Attack, PlantedWithoutListener,
                         ::testing::Combine(::testing::Values(Where::kLock,
                                                              Where::kMeta),
                                            ::testing::ValuesIn(kAllPlants)),
                         PlantedTestName);

// --- Replaced while the listener runs ------------------------------------
// In a directory the attacker may write (not sticky), it can remove the
// listener's files and put its own in their place.

using ReplacedWhileLive = PlantedTest;

TEST_P(ReplacedWhileLive, ClientsAreNotMisledAndNeverHang) {
  const std::string socket = writable_dir_.PathOf("svc");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(socket, AllUsersMessage());
  CANAL_ASSERT_OK(listener);
  const std::vector<std::string> replaced = PathsAt(socket, where());
  std::vector<Snapshot> before;
  for (const std::string& path : replaced) {
    ASSERT_TRUE(ReplaceAsAttacker(kind(), path, victim_)) << path;
    before.push_back(Snap(path));
  }
  const auto unblock = [&] {
    for (const std::string& path : replaced) UnblockFifoReaders(path);
  };

  if (where() == Where::kLock) {
    // Clients of a live listener do not read the lock file: they still get
    // the listener's own mode and limits and are served.
    absl::StatusOr<canal::Channel> client;
    absl::Status status = Guarded(
        [&] {
          client = canal::Channel::Connect(socket, Quick());
          return client.status();
        },
        unblock, "Connect");
    CANAL_ASSERT_OK(status);
    ExpectServes(*listener, *client);
  } else {
    // Metadata or a slot file that is not the listener's own regular file:
    // refused, within the timeout, for all three calls.
    absl::Status status =
        Guarded([&] { return canal::WaitForListener(socket, kShort); }, unblock,
                "WaitForListener");
    EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
    status = Guarded(
        [&] { return canal::Channel::Connect(socket, Quick()).status(); },
        unblock, "Connect");
    EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), socket + ".canal~"))
        << status;
    status = Guarded([&] { return canal::Call(socket, "x", kShort).status(); },
                     unblock, "Call");
    EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  }
  for (size_t i = 0; i < replaced.size(); ++i) {
    EXPECT_EQ(Snap(replaced[i]), before[i]) << replaced[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Attack, ReplacedWhileLive,
                         ::testing::Combine(::testing::Values(Where::kLock,
                                                              Where::kMeta,
                                                              Where::kSlot),
                                            ::testing::ValuesIn(kAllPlants)),
                         PlantedTestName);

// --- The runtime directory of portable names ------------------------------

class PlantedRuntimeDir : public ::testing::TestWithParam<PlantKind> {};

TEST_P(PlantedRuntimeDir, RefusedByListenerAndClientUnchanged) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(01777);
  ASSERT_TRUE(dir.ok());
  // The attacker's own directory is what a link would point at.
  const std::string elsewhere = dir.PathOf("elsewhere");
  ASSERT_TRUE(PlantAsAttacker(PlantKind::kDirectory, elsewhere, ""));
  const std::string runtime_dir = dir.PathOf("rt");
  ScopedEnv env("CANAL_RUNTIME_DIR", runtime_dir);
  ASSERT_TRUE(PlantAsAttacker(GetParam(), runtime_dir, elsewhere));
  const Snapshot before = Snap(runtime_dir);
  const Snapshot elsewhere_before = Snap(elsewhere);

  const std::string name = UniqueName("attack-rt");
  CANAL_EXPECT_CODE(canal::Listener::Create(name), kPermissionDenied);
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, Quick()), kPermissionDenied);
  CANAL_EXPECT_CODE(canal::WaitForListener(name, kShort), kPermissionDenied);
  EXPECT_EQ(Snap(runtime_dir), before);
  EXPECT_EQ(Snap(elsewhere), elsewhere_before);
  EXPECT_FALSE(IsSocket(elsewhere + "/" + name));
}

INSTANTIATE_TEST_SUITE_P(Attack, PlantedRuntimeDir,
                         ::testing::ValuesIn(kAllPlants),
                         [](const ::testing::TestParamInfo<PlantKind>& info) {
                           return std::string(PlantName(info.param));
                         });

// --- A FIFO's path --------------------------------------------------------

class PlantedFifoPath : public ::testing::TestWithParam<PlantKind> {};

TEST_P(PlantedFifoPath, EveryCallAnswersAndChangesNothing) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(01777);
  ASSERT_TRUE(dir.ok());
  // A link points at a FIFO of the victim, which canal must not open.
  const std::string victim_fifo = dir.PathOf("victim.fifo");
  ASSERT_EQ(mkfifo(victim_fifo.c_str(), 0600), 0) << strerror(errno);
  const std::string path = dir.PathOf("app.fifo");
  ASSERT_TRUE(PlantAsAttacker(GetParam(), path, victim_fifo));
  const Snapshot before = Snap(path);
  const Snapshot victim_before = Snap(victim_fifo);

  CANAL_EXPECT_CODE(canal::Fifo::Create(path, 0666), kAlreadyExists);
  EXPECT_EQ(Snap(path), before);

  absl::StatusOr<canal::Channel> read_end = canal::Fifo::OpenRead(path);
  absl::StatusOr<canal::Channel> write_end =
      canal::Fifo::OpenWrite(path, kShort);
  if (GetParam() == PlantKind::kFifo) {
    // A FIFO is a FIFO, whoever made it: canal does not promise who is at
    // the other end of one (docs/security.md). With the read end open, the
    // write end opens at once.
    CANAL_EXPECT_OK(read_end);
    CANAL_EXPECT_OK(write_end);
  } else {
    // Not a FIFO (a link is not followed): InvalidArgument at once.
    CANAL_EXPECT_CODE(read_end, kInvalidArgument);
    CANAL_EXPECT_CODE(write_end, kInvalidArgument);
  }
  if (read_end.ok()) read_end->Close();
  if (write_end.ok()) write_end->Close();
  if (GetParam() == PlantKind::kFifo) {
    CANAL_EXPECT_OK(canal::Fifo::Remove(path));
  } else {
    CANAL_EXPECT_CODE(canal::Fifo::Remove(path), kFailedPrecondition);
    EXPECT_EQ(Snap(path), before);
  }
  EXPECT_EQ(Snap(victim_fifo), victim_before);
}

INSTANTIATE_TEST_SUITE_P(Attack, PlantedFifoPath,
                         ::testing::ValuesIn(kAllPlants),
                         [](const ::testing::TestParamInfo<PlantKind>& info) {
                           return std::string(PlantName(info.param));
                         });

}  // namespace
}  // namespace canal_test
