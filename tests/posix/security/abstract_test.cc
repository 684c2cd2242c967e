// SPDX-License-Identifier: Apache-2.0
// Linux abstract-namespace names ("@name"): refused unless both sides opt
// in; with the opt-in they work (byte mode), and since they have no file
// permissions the listener's peer check is what keeps other users out.

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

std::string AbstractName(absl::string_view label) {
  return absl::StrCat("@", UniqueName(label));
}

canal::ListenerOptions OptedIn() {
  canal::ListenerOptions options;
  options.allow_abstract_namespace = true;
  return options;
}

canal::ConnectOptions ConnectOptedIn() {
  canal::ConnectOptions options;
  options.allow_abstract_namespace = true;
  return options;
}

#if defined(__linux__)

TEST(Abstract, RefusedWithoutOptInOnBothSides) {
  const std::string name = AbstractName("abs-optin");
  const absl::Status listen = canal::Listener::Create(name).status();
  EXPECT_TRUE(absl::IsInvalidArgument(listen)) << listen;
  EXPECT_TRUE(absl::StrContains(listen.message(), "allow_abstract_namespace"))
      << listen;

  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, OptedIn());
  CANAL_ASSERT_OK(listener);
  const absl::Status connect = canal::Channel::Connect(name).status();
  EXPECT_TRUE(absl::IsInvalidArgument(connect)) << connect;
  EXPECT_TRUE(absl::StrContains(connect.message(), "allow_abstract_namespace"))
      << connect;
  // Calls without ConnectOptions have no way to opt in.
  CANAL_EXPECT_CODE(canal::Call(name, "x"), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::ZeroDuration()),
                    kInvalidArgument);
  // Nothing was connected by any of these.
  CANAL_EXPECT_CODE(listener->Accept(absl::ZeroDuration()), kDeadlineExceeded);
}

TEST(Abstract, WorksWithOptInAndHasNoFiles) {
  const std::string name = AbstractName("abs-works");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, OptedIn());
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_CODE(canal::Listener::Create(name, OptedIn()), kAlreadyExists);

  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, ConnectOptedIn());
  CANAL_ASSERT_OK(client);
  EXPECT_EQ(client->mode(), canal::PipeMode::kByte);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  CANAL_ASSERT_OK(client->Write("ping"));
  absl::StatusOr<std::string> got = ReadExactly(*server, 4);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "ping");
  for (const canal::Channel* end : {&*client, &*server}) {
    absl::StatusOr<canal::PeerInfo> peer = end->Peer();
    CANAL_ASSERT_OK(peer);
    EXPECT_EQ(peer->process_id, CurrentProcessId());
    EXPECT_EQ(peer->uid, static_cast<int64_t>(geteuid()));
    EXPECT_EQ(peer->gid, static_cast<int64_t>(getegid()));
  }
  // No socket file: "@..." is not a path relative to anything.
  EXPECT_FALSE(IsSocket(name));

  listener->Close();
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, ConnectOptedIn()), kNotFound);
}

TEST(Abstract, OnlyByteModeDuplexUnlimited) {
  canal::ListenerOptions options = OptedIn();
  options.mode = canal::PipeMode::kMessage;
  CANAL_EXPECT_CODE(canal::Listener::Create(AbstractName("abs-msg"), options),
                    kInvalidArgument);
  options = OptedIn();
  options.access = canal::PipeAccess::kInbound;
  CANAL_EXPECT_CODE(canal::Listener::Create(AbstractName("abs-in"), options),
                    kInvalidArgument);
  options = OptedIn();
  options.max_instances = 2;
  CANAL_EXPECT_CODE(canal::Listener::Create(AbstractName("abs-max"), options),
                    kInvalidArgument);
}

TEST(Abstract, TooLongIsInvalidArgument) {
  const std::string name = "@" + std::string(108, 'a');
  CANAL_EXPECT_CODE(canal::Listener::Create(name, OptedIn()), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, ConnectOptedIn()),
                    kInvalidArgument);
  // 107 bytes fit.
  CANAL_EXPECT_OK(canal::Listener::Create(
      absl::StrCat("@", UniqueName("abs-long"), std::string(60, 'b')),
      OptedIn()));
}

// Connects from a child running as `uid`/`gid` and reports what a Read then
// sees (OutOfRange: the listener hung up), or the Connect error.
pid_t ConnectAs(uid_t uid, gid_t gid, const std::string& name,
                SyncPipe& connected) {
  return ForkAs(uid, gid, [&] {
    connected.CloseRead();
    absl::StatusOr<canal::Channel> ch =
        canal::Channel::Connect(name, ConnectOptedIn());
    if (!ch.ok()) return ExitCodeOf(ch.status());
    connected.Signal();
    char buf[8];
    absl::StatusOr<canal::ReadResult> read =
        ch->Read(absl::MakeSpan(buf), absl::Seconds(10));
    if (read.ok())
      return std::string(buf, read->size) == "ok" ? 0 : kChildUnexpected;
    return ExitCodeOf(read.status());
  });
}

// With `options`, a child as uid/gid connects: returns whether the listener
// admitted it (it then gets "ok"; a refused one is dropped and the parent's
// own connection is accepted instead).
void ExpectAdmission(const canal::ListenerOptions& options, uid_t uid,
                     gid_t gid, bool admitted) {
  const std::string name = AbstractName("abs-peer");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  SyncPipe connected;
  ASSERT_TRUE(connected.ok());
  const pid_t child = ConnectAs(uid, gid, name, connected);
  ASSERT_GT(child, 0);
  connected.CloseWrite();
  ASSERT_TRUE(connected.Wait()) << "the child did not connect";
  if (admitted) {
    absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<canal::PeerInfo> peer = ch->Peer();
    CANAL_ASSERT_OK(peer);
    EXPECT_EQ(peer->uid, static_cast<int64_t>(uid));
    EXPECT_EQ(peer->process_id, static_cast<int64_t>(child));
    CANAL_EXPECT_OK(ch->Write("ok"));
    EXPECT_EQ(WaitExit(child), 0);
    return;
  }
  Background own_client([&] {
    EXPECT_EQ(WaitExit(child), static_cast<int>(absl::StatusCode::kOutOfRange));
    absl::StatusOr<canal::Channel> ch =
        canal::Channel::Connect(name, ConnectOptedIn());
    EXPECT_TRUE(ch.ok()) << ch.status();
  });
  absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(ch);
  absl::StatusOr<canal::PeerInfo> peer = ch->Peer();
  CANAL_ASSERT_OK(peer);
  EXPECT_EQ(peer->process_id, CurrentProcessId());
  EXPECT_TRUE(own_client.Finished(kHangGuard));
}

TEST(Abstract, AnotherUserIsRefusedUnderCurrentUser) {
  CANAL_SKIP_UNLESS_ROOT();
  ExpectAdmission(OptedIn(), kNobody, kNoGroup, false);
}

TEST(Abstract, AnotherUserIsAdmittedUnderAllLocalUsers) {
  CANAL_SKIP_UNLESS_ROOT();
  canal::ListenerOptions options = OptedIn();
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  ExpectAdmission(options, kNobody, kNoGroup, true);
}

TEST(Abstract, CustomPolicyChecksGroupAndOtherBits) {
  CANAL_SKIP_UNLESS_ROOT();
  canal::ListenerOptions group_only = OptedIn();
  group_only.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
  group_only.access_policy.posix_mode = 0660;
  group_only.access_policy.posix_group = kNoGroup;
  ExpectAdmission(group_only, kOtherUid, kNoGroup, true);
  ExpectAdmission(group_only, kOtherUid, kOtherGid, false);
  canal::ListenerOptions others = group_only;
  others.access_policy.posix_mode = 0606;  // Others yes, the group no.
  ExpectAdmission(others, kOtherUid, kOtherGid, true);
  ExpectAdmission(others, kOtherUid, kNoGroup, false);
}

#else  // !__linux__

TEST(Abstract, RefusedEvenWithOptIn) {
  const std::string name = AbstractName("abs-nolinux");
  CANAL_EXPECT_CODE(canal::Listener::Create(name, OptedIn()), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, ConnectOptedIn()),
                    kInvalidArgument);
}

#endif

}  // namespace
}  // namespace canal_test
