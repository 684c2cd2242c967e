// SPDX-License-Identifier: Apache-2.0
// Floods of refused peers: the attacker (uid 65534) connects again and again
// to a listener that refuses it, by its access policy or by `authorize`.
// Listener::Accept(timeout) must still return DeadlineExceeded once its
// deadline has passed: refusing a peer must not start the wait over.

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/attack/attacker.h"
#include "posix/raw_socket.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {
namespace {

// The attacker connects whenever the listener's authorize callback asks
// for the next peer (a byte on `more`), and answers once its connection is
// queued (a byte on `queued`). The callback only returns after that answer,
// so whenever Accept looks for a client there is a refused one waiting: an
// endless flood, driven without sleeps or races.
TEST(Flood, RefusedByAuthorizeAcceptStillTimesOut) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  SyncPipe more, queued;
  ASSERT_TRUE(more.ok() && queued.ok());
  std::atomic<bool> flooding{true};
  std::atomic<int> refused{0};

  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  options.authorize = [&](const canal::PeerInfo& peer) {
    if (peer.uid == static_cast<int64_t>(kNobody)) {
      ++refused;
      if (flooding && more.Signal()) queued.Wait();
      return absl::PermissionDeniedError("not you");
    }
    return absl::OkStatus();
  };
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path, options);
  CANAL_ASSERT_OK(listener);

  const pid_t attacker = ForkAs(kNobody, kNoGroup, [&] {
    more.CloseWrite();
    queued.CloseRead();
    do {
      Fd fd = ConnectUnixSocket(path);
      if (!fd.valid()) return kChildUnexpected;
      // Closed at once: still in the backlog, still a peer to refuse.
      fd.reset();
      if (!queued.Signal()) return 0;
    } while (more.Wait());
    return 0;
  });
  ASSERT_GT(attacker, 0);
  more.CloseRead();
  queued.CloseWrite();
  // The first refused peer is queued before Accept starts.
  ASSERT_TRUE(queued.Wait());

  absl::Status status;
  Background accept(
      [&] { status = listener->Accept(absl::Milliseconds(300)).status(); });
  const bool returned = accept.Finished(kHangGuard);
  EXPECT_TRUE(returned) << "Accept(300 ms) was still running after "
                        << kHangGuard << " of refused peers";
  // Stop the flood (also what lets a looping Accept finish).
  flooding = false;
  more.CloseWrite();
  EXPECT_TRUE(accept.Finished(kHangGuard));
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_GT(refused.load(), 0);
  EXPECT_EQ(WaitExit(attacker), 0);
}

// Peers the access policy refuses: the listener admits only its own user,
// but the socket's mode lets everyone connect (as on a system that ignores
// socket file modes). With a zero timeout the deadline has passed before the
// first peer is even looked at, so Accept refuses that one and returns; it
// must not work through the whole queue first.
TEST(Flood, RefusedByPolicyAcceptStopsAtItsDeadline) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(0755);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(path);
  CANAL_ASSERT_OK(listener);
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);

  constexpr int kPeers = 64;
  SyncPipe queued, count;
  ASSERT_TRUE(queued.ok() && count.ok());
  const pid_t attacker = ForkAs(kNobody, kNoGroup, [&] {
    queued.CloseRead();
    count.CloseWrite();
    std::vector<Fd> peers;
    for (int i = 0; i < kPeers; ++i) {
      peers.push_back(ConnectUnixSocket(path));
      if (!peers.back().valid()) return kChildUnexpected;
    }
    queued.Signal();
    if (!count.Wait()) return kChildUnexpected;
    // A refused peer was closed by the listener: end of stream for us.
    int closed = 0;
    for (Fd& fd : peers) {
      pollfd p{fd.get(), POLLIN, 0};
      char byte;
      if (poll(&p, 1, 0) == 1 && recv(fd.get(), &byte, 1, MSG_DONTWAIT) == 0) {
        ++closed;
      }
    }
    return closed;
  });
  ASSERT_GT(attacker, 0);
  queued.CloseWrite();
  count.CloseRead();
  ASSERT_TRUE(queued.Wait());

  CANAL_EXPECT_CODE(listener->Accept(absl::ZeroDuration()), kDeadlineExceeded);
  count.Signal();
  EXPECT_EQ(WaitExit(attacker), 1) << "refused peers handled by one Accept(0)";

  // The listener still serves its own user behind the rest of the flood.
  Background own([&] {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(path);
    CANAL_EXPECT_OK(ch);
  });
  CANAL_EXPECT_OK(listener->Accept(kHangGuard));
  EXPECT_TRUE(own.Finished(kHangGuard));
}

}  // namespace
}  // namespace canal_test
