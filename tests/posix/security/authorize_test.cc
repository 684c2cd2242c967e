// SPDX-License-Identifier: Apache-2.0
// The authorisation callback: it sees each peer's identity before Accept
// returns it, a refused peer is disconnected, and the listener keeps
// serving the others.

#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/runtime_dir_fixture.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {
namespace {

using Authorize = RuntimeDirTest;

TEST_F(Authorize, RefusesOnePeerAndServesTheNext) {
  absl::Mutex mu;
  std::vector<canal::PeerInfo> seen;
  canal::ListenerOptions options = MessageOptions();
  options.authorize = [&](const canal::PeerInfo& peer) {
    absl::MutexLock lock(&mu);
    seen.push_back(peer);
    if (seen.size() == 1) return absl::PermissionDeniedError("first one out");
    return absl::OkStatus();
  };
  const std::string name = UniqueName("auth-next");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);

  // Both connect before anyone accepts.
  absl::StatusOr<canal::Channel> refused = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(refused);
  absl::StatusOr<canal::Channel> served = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(served);

  absl::StatusOr<canal::Channel> accepted = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted);
  // The refused client sees the listener hang up.
  CANAL_EXPECT_CODE(refused->ReadMessage(kHangGuard), kOutOfRange);
  // The served one talks to the accepted channel.
  CANAL_ASSERT_OK(served->WriteMessage("hello"));
  absl::StatusOr<std::string> got = accepted->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello");

  absl::MutexLock lock(&mu);
  ASSERT_EQ(seen.size(), 2u);
  for (const canal::PeerInfo& peer : seen) {
    EXPECT_EQ(peer.process_id, CurrentProcessId());
    EXPECT_EQ(peer.uid, static_cast<int64_t>(geteuid()));
    EXPECT_EQ(peer.gid, static_cast<int64_t>(getegid()));
  }
}

TEST_F(Authorize, AcceptKeepsWaitingWithinItsTimeoutAfterARefusal) {
  std::atomic<int> calls{0};
  canal::ListenerOptions options;
  options.authorize = [&](const canal::PeerInfo&) {
    ++calls;
    return absl::PermissionDeniedError("nobody");
  };
  const std::string name = UniqueName("auth-timeout");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  CANAL_EXPECT_CODE(listener->Accept(absl::Milliseconds(50)),
                    kDeadlineExceeded);
  EXPECT_EQ(calls.load(), 1);
  char buf[4];
  CANAL_EXPECT_CODE(client->Read(absl::MakeSpan(buf), kHangGuard), kOutOfRange);
  // A byte-mode writer to the refused connection sees it broken.
  CANAL_EXPECT_CODE(client->Write("x", kHangGuard), kUnavailable);
}

TEST_F(Authorize, CanRefuseByProcessId) {
  CANAL_SKIP_UNLESS_ROOT();  // Not for the uid change: for a second process
                             // whose identity differs in a visible way.
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  options.authorize = [](const canal::PeerInfo& peer) {
    return peer.process_id == CurrentProcessId()
               ? absl::OkStatus()
               : absl::PermissionDeniedError("only my own process");
  };
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path, options);
  CANAL_ASSERT_OK(listener);
  SyncPipe connected;
  ASSERT_TRUE(connected.ok());
  const pid_t child = ForkAs(kNobody, kNoGroup, [&] {
    connected.CloseRead();
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(path);
    if (!ch.ok()) return ExitCodeOf(ch.status());
    connected.Signal();
    char buf[4];
    return ExitCodeOf(
        ch->Read(absl::MakeSpan(buf), absl::Seconds(10)).status());
  });
  ASSERT_GT(child, 0);
  connected.CloseWrite();
  ASSERT_TRUE(connected.Wait());
  absl::StatusOr<canal::Channel> own = canal::Channel::Connect(path);
  CANAL_ASSERT_OK(own);
  absl::StatusOr<canal::Channel> accepted = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(accepted);
  absl::StatusOr<canal::PeerInfo> peer = accepted->Peer();
  CANAL_ASSERT_OK(peer);
  EXPECT_EQ(peer->process_id, CurrentProcessId());
  EXPECT_EQ(WaitExit(child), static_cast<int>(absl::StatusCode::kOutOfRange));
}

}  // namespace
}  // namespace canal_test
