// SPDX-License-Identifier: Apache-2.0
// Access across users: child processes that drop from root to another uid
// are refused by a default listener and admitted by one for every local
// user, and clients refuse servers run by an unexpected uid (anti-
// squatting). Native socket paths in a fresh directory that other users can
// reach stand in for the directory an administrator would set up.

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/raw_socket.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {
namespace {

canal::ListenerOptions AllUsers(canal::PipeMode mode = canal::PipeMode::kByte) {
  canal::ListenerOptions options;
  options.mode = mode;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  return options;
}

TEST(CrossUser, DefaultListenerRefusesAnotherUser) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(path);
  CANAL_ASSERT_OK(listener);

  const pid_t child = ForkAs(kNobody, kNoGroup, [&] {
    return ExitCodeOf(canal::Channel::Connect(path).status());
  });
  ASSERT_GT(child, 0);
  EXPECT_EQ(WaitExit(child),
            static_cast<int>(absl::StatusCode::kPermissionDenied));
  // Nothing reached the listener.
  CANAL_EXPECT_CODE(listener->Accept(absl::ZeroDuration()), kDeadlineExceeded);
}

TEST(CrossUser, DefaultListenerChecksThePeerUidEvenIfFileModesAllowIt) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(path);
  CANAL_ASSERT_OK(listener);
  // As on a system that ignores socket file modes.
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  ASSERT_EQ(chmod((path + ".canal~meta").c_str(), 0644), 0);

  SyncPipe connected;
  ASSERT_TRUE(connected.ok());
  const pid_t child = ForkAs(kNobody, kNoGroup, [&] {
    connected.CloseRead();
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(path);
    if (!ch.ok()) return ExitCodeOf(ch.status());
    connected.Signal();
    // The listener disconnects us without a word: end of stream.
    char buf[8];
    return ExitCodeOf(
        ch->Read(absl::MakeSpan(buf), absl::Seconds(10)).status());
  });
  ASSERT_GT(child, 0);
  connected.CloseWrite();
  ASSERT_TRUE(connected.Wait()) << "the child did not connect";

  // The refused peer is dropped inside Accept, which then serves the next.
  Background own_client([&] {
    EXPECT_EQ(WaitExit(child), static_cast<int>(absl::StatusCode::kOutOfRange));
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(path);
    EXPECT_TRUE(ch.ok()) << ch.status();
  });
  absl::StatusOr<canal::Channel> accepted = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted);
  absl::StatusOr<canal::PeerInfo> peer = accepted->Peer();
  CANAL_ASSERT_OK(peer);
  EXPECT_EQ(peer->uid, 0);
  EXPECT_EQ(peer->process_id, CurrentProcessId());
  EXPECT_TRUE(own_client.Finished(kHangGuard));
}

TEST(CrossUser, AllLocalUsersAdmitsAnotherUserAndReportsItsIdentity) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path, AllUsers(canal::PipeMode::kMessage));
  CANAL_ASSERT_OK(listener);

  const pid_t child = ForkAs(kNobody, kNoGroup, [&] {
    // The server is root: an administrator, accepted by default.
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(path);
    if (!ch.ok()) return ExitCodeOf(ch.status());
    absl::StatusOr<canal::PeerInfo> server = ch->Peer();
    if (!server.ok()) return ExitCodeOf(server.status());
    if (server->uid != 0) return kChildUnexpected;
    absl::StatusOr<std::string> reply = ch->Transact("who", absl::Seconds(10));
    if (!reply.ok()) return ExitCodeOf(reply.status());
    return *reply == "65534" ? 0 : kChildUnexpected;
  });
  ASSERT_GT(child, 0);
  absl::StatusOr<canal::Channel> accepted = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted);
  absl::StatusOr<canal::PeerInfo> peer = accepted->Peer();
  CANAL_ASSERT_OK(peer);
  EXPECT_EQ(peer->uid, static_cast<int64_t>(kNobody));
  EXPECT_EQ(peer->gid, static_cast<int64_t>(kNoGroup));
  EXPECT_EQ(peer->process_id, static_cast<int64_t>(child));
  absl::StatusOr<std::string> request = accepted->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(request);
  EXPECT_EQ(*request, "who");
  CANAL_EXPECT_OK(accepted->WriteMessage(absl::StrCat(peer->uid)));
  EXPECT_EQ(WaitExit(child), 0);
}

TEST(CrossUser, CustomGroupPolicyAdmitsGroupMembersOnly) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
  options.access_policy.posix_mode = 0660;
  options.access_policy.posix_group = kNoGroup;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path, options);
  CANAL_ASSERT_OK(listener);
  auto connect = [&] {
    return ExitCodeOf(canal::Channel::Connect(path).status());
  };
  // Primary group and supplementary group both count; anyone else is refused.
  const pid_t member = ForkAs(kOtherUid, kNoGroup, connect);
  ASSERT_GT(member, 0);
  EXPECT_EQ(WaitExit(member), 0);
  const pid_t supplementary = ForkAs(kOtherUid, kOtherGid, connect, kNoGroup);
  ASSERT_GT(supplementary, 0);
  EXPECT_EQ(WaitExit(supplementary), 0);
  const pid_t stranger = ForkAs(kOtherUid, kOtherGid, connect);
  ASSERT_GT(stranger, 0);
  EXPECT_EQ(WaitExit(stranger),
            static_cast<int>(absl::StatusCode::kPermissionDenied));
}

// A server child running as `kNobody` on `path` until `stop` is signalled.
class ServerChild {
 public:
  ServerChild(const std::string& path, const canal::ListenerOptions& options) {
    if (!ready_.ok() || !stop_.ok()) return;
    pid_ = ForkAs(kNobody, kNoGroup, [&] {
      ready_.CloseRead();
      stop_.CloseWrite();
      absl::StatusOr<canal::Listener> listener =
          canal::Listener::Create(path, options);
      if (!listener.ok()) return ExitCodeOf(listener.status());
      ready_.Signal();
      // Clients connect without anyone in Accept; wait to be told to stop.
      stop_.Wait();
      return 0;
    });
    ready_.CloseWrite();
    stop_.CloseRead();
    started_ = pid_ > 0 && ready_.Wait();
  }
  ~ServerChild() { Stop(); }

  bool started() const { return started_; }
  pid_t pid() const { return pid_; }
  // Stops the child; its exit code.
  int Stop() {
    if (pid_ <= 0) return exit_code_;
    stop_.CloseWrite();
    exit_code_ = WaitExit(pid_);
    pid_ = -1;
    return exit_code_;
  }

 private:
  SyncPipe ready_;
  SyncPipe stop_;
  pid_t pid_ = -1;
  bool started_ = false;
  int exit_code_ = -1;
};

TEST(CrossUser, ClientRefusesAServerRunByAnUnexpectedUser) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0755, kNobody, kNoGroup);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  canal::ListenerOptions options = AllUsers(canal::PipeMode::kMessage);
  options.max_instances = 1;
  ServerChild server(path, options);
  ASSERT_TRUE(server.started());

  canal::ConnectOptions expect_4242;
  expect_4242.timeout = absl::Seconds(2);
  expect_4242.expected_server.kind = canal::ExpectedServer::Kind::kUser;
  expect_4242.expected_server.posix_uid = 4242;
  absl::Status status = canal::Channel::Connect(path, expect_4242).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "uid 65534")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "4242")) << status;

  // The default expects our own uid (0) or root: also refused, and so is
  // Call, which applies the same default.
  status = canal::Channel::Connect(path).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "expected uid 0")) << status;
  CANAL_EXPECT_CODE(canal::Call(path, "x", absl::Seconds(2)),
                    kPermissionDenied);
  canal::ConnectOptions defaults;
  CANAL_EXPECT_CODE(canal::Call(path, "x", absl::Seconds(2), defaults),
                    kPermissionDenied);

  // Naming the server's user, or accepting anyone, works; the refusals
  // released the one instance slot each time.
  canal::ConnectOptions expect_nobody;
  expect_nobody.expected_server.kind = canal::ExpectedServer::Kind::kUser;
  expect_nobody.expected_server.posix_uid = kNobody;
  {
    absl::StatusOr<canal::Channel> ch =
        canal::Channel::Connect(path, expect_nobody);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<canal::PeerInfo> peer = ch->Peer();
    CANAL_ASSERT_OK(peer);
    EXPECT_EQ(peer->uid, static_cast<int64_t>(kNobody));
    EXPECT_EQ(peer->process_id, static_cast<int64_t>(server.pid()));
  }
  canal::ConnectOptions anyone;
  anyone.expected_server.kind = canal::ExpectedServer::Kind::kAnyone;
  CANAL_EXPECT_OK(canal::Channel::Connect(path, anyone));
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CrossUser, UnprivilegedClientRefusesAnotherUsersServer) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0755, kNobody, kNoGroup);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  ServerChild server(path, AllUsers());
  ASSERT_TRUE(server.started());

  const pid_t client = ForkAs(kOtherUid, kOtherGid, [&] {
    const int by_default = ExitCodeOf(canal::Channel::Connect(path).status());
    canal::ConnectOptions anyone;
    anyone.expected_server.kind = canal::ExpectedServer::Kind::kAnyone;
    const int with_anyone =
        ExitCodeOf(canal::Channel::Connect(path, anyone).status());
    if (by_default > 15 || with_anyone > 15) return kChildUnexpected;
    return by_default * 16 + with_anyone;
  });
  ASSERT_GT(client, 0);
  const int result = WaitExit(client);
  EXPECT_EQ(result / 16, static_cast<int>(absl::StatusCode::kPermissionDenied))
      << "exit code " << result;
  EXPECT_EQ(result % 16, 0) << "exit code " << result;
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CrossUser, ClientRefusesASquatterOnAForeignSocket) {
  // A program that is not canal, run by another user, holding the path the
  // client expected its server at: refused before any byte is sent.
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0777);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  SyncPipe ready, stop;
  ASSERT_TRUE(ready.ok() && stop.ok());
  const pid_t squatter = ForkAs(kNobody, kNoGroup, [&] {
    ready.CloseRead();
    stop.CloseWrite();
    Fd fd = BindUnixSocket(path, true);
    if (!fd.valid()) return kChildSetupFailed;
    chmod(path.c_str(), 0666);
    ready.Signal();
    Fd peer = AcceptUnixSocket(fd.get());
    if (!peer.valid()) return kChildUnexpected;
    // Whatever the client sent before it hung up.
    char buf[16];
    const ssize_t n = read(peer.get(), buf, sizeof(buf));
    stop.Wait();
    return n == 0 ? 0 : kChildUnexpected;
  });
  ASSERT_GT(squatter, 0);
  ready.CloseWrite();
  stop.CloseRead();
  ASSERT_TRUE(ready.Wait());
  CANAL_EXPECT_CODE(canal::Channel::Connect(path), kPermissionDenied);
  stop.CloseWrite();
  EXPECT_EQ(WaitExit(squatter), 0);
}

}  // namespace
}  // namespace canal_test
