// SPDX-License-Identifier: Apache-2.0
// Handle passing on the POSIX backend, as a hostile peer sees it: raw
// sendmsg(2) with SCM_RIGHTS that no frame claims, frames that claim more
// than came, more descriptors than the receiver's control buffer holds.
// Every case is DataLoss and leaves no descriptor behind (/proc/self/fd);
// every descriptor that is delivered is close-on-exec.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::kHangGuard;
using canal_test::OpenHandleCount;
using canal_test::UniqueName;

void PutLe32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

std::string PlainFrame(absl::string_view payload) {
  std::string out = "CNL1";
  PutLe32(&out, static_cast<uint32_t>(payload.size()));
  out.append(payload.data(), payload.size());
  return out;
}

std::string HandleFrame(absl::string_view payload, uint32_t claimed) {
  std::string out = "CNLH";
  PutLe32(&out, static_cast<uint32_t>(payload.size()));
  PutLe32(&out, claimed);
  out.append(payload.data(), payload.size());
  return out;
}

// One sendmsg of `bytes` with `fds` as SCM_RIGHTS (none if empty).
bool SendWithFds(int socket, absl::string_view bytes,
                 const std::vector<int>& fds) {
  iovec iov;
  iov.iov_base = const_cast<char*>(bytes.data());
  iov.iov_len = bytes.size();
  msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(fds.size() * sizeof(int)), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  return sendmsg(socket, &msg, MSG_NOSIGNAL) ==
         static_cast<ssize_t>(bytes.size());
}

// A message-mode pair; the client's descriptor is the hostile peer's raw
// socket (the client Channel itself is never used).
struct Pair {
  canal::Listener listener;
  canal::Channel server;
  canal::Channel client;
  int raw() const { return client.native_handle(); }
};

absl::StatusOr<Pair> MakePair(absl::string_view label, int server_max = 64) {
  const std::string name = UniqueName(label);
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.max_handles_per_message = server_max;
  Pair pair;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok()) return listener.status();
  pair.listener = *std::move(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  if (!client.ok()) return client.status();
  pair.client = *std::move(client);
  absl::StatusOr<canal::Channel> server = pair.listener.Accept(kHangGuard);
  if (!server.ok()) return server.status();
  pair.server = *std::move(server);
  return pair;
}

// A pipe whose ends are the descriptors a hostile peer sends; not
// close-on-exec, so that a close-on-exec copy proves the receiver set it.
class Fds {
 public:
  Fds() {
    if (pipe(fds_) != 0) fds_[0] = fds_[1] = -1;
  }
  ~Fds() {
    close(fds_[0]);
    close(fds_[1]);
  }
  std::vector<int> Times(int n) const {
    std::vector<int> out;
    for (int i = 0; i < n; ++i) out.push_back(fds_[i % 2]);
    return out;
  }
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }

 private:
  int fds_[2];
};

// Runs `hostile` (which sends on the raw socket), expects the server's
// ReadMessageWithHandles to fail with DataLoss naming the call and the
// pipe, and the descriptor count to be what it was before.
void ExpectDataLossWithoutLeak(Pair& pair,
                               const std::function<void(int raw)>& hostile) {
  const int64_t before = OpenHandleCount();
  hostile(pair.raw());
  absl::StatusOr<canal::MessageWithHandles> m =
      pair.server.ReadMessageWithHandles(kHangGuard);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  EXPECT_TRUE(canal_test::MessageNames(m.status(), "ReadMessageWithHandles",
                                       pair.server.name()));
  // Sticky: the stream can no longer be matched with its descriptors.
  CANAL_EXPECT_CODE(pair.server.ReadMessage(absl::ZeroDuration()), kDataLoss);
  EXPECT_EQ(OpenHandleCount(), before);
}

TEST(PosixHandles, DescriptorsThatNoFrameClaimsAreDataLoss) {
  absl::StatusOr<Pair> pair = MakePair("ph-unclaimed");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  ExpectDataLossWithoutLeak(*pair, [&](int raw) {
    ASSERT_TRUE(SendWithFds(raw, PlainFrame("plain"), fds.Times(2)));
  });
}

TEST(PosixHandles, UnclaimedDescriptorsBeforeAClaimingFrameAreDataLoss) {
  absl::StatusOr<Pair> pair = MakePair("ph-unclaimed2");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  const int64_t before = OpenHandleCount();
  ASSERT_TRUE(SendWithFds(pair->raw(), PlainFrame("first"), fds.Times(1)));
  ASSERT_TRUE(SendWithFds(pair->raw(), HandleFrame("second", 1), fds.Times(1)));
  // Plain reads too: the first message cannot be delivered clean.
  CANAL_EXPECT_CODE(pair->server.ReadMessage(kHangGuard), kDataLoss);
  EXPECT_EQ(OpenHandleCount(), before);
}

TEST(PosixHandles, FrameClaimingMoreThanCameIsDataLoss) {
  absl::StatusOr<Pair> pair = MakePair("ph-more");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  ExpectDataLossWithoutLeak(*pair, [&](int raw) {
    ASSERT_TRUE(SendWithFds(raw, HandleFrame("claims3", 3), fds.Times(1)));
  });
}

TEST(PosixHandles, FrameClaimingFewerThanCameIsDataLoss) {
  absl::StatusOr<Pair> pair = MakePair("ph-fewer");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  ExpectDataLossWithoutLeak(*pair, [&](int raw) {
    ASSERT_TRUE(SendWithFds(raw, HandleFrame("claims1", 1), fds.Times(3)));
  });
}

TEST(PosixHandles, FrameClaimingDescriptorsWithoutAnyIsDataLoss) {
  absl::StatusOr<Pair> pair = MakePair("ph-none");
  CANAL_ASSERT_OK(pair);
  ExpectDataLossWithoutLeak(*pair, [&](int raw) {
    ASSERT_TRUE(SendWithFds(raw, HandleFrame("claims2", 2), {}));
  });
}

TEST(PosixHandles, HeaderOverTheLimitIsDataLoss) {
  absl::StatusOr<Pair> pair = MakePair("ph-header", 4);
  CANAL_ASSERT_OK(pair);
  Fds fds;
  ExpectDataLossWithoutLeak(*pair, [&](int raw) {
    ASSERT_TRUE(SendWithFds(raw, HandleFrame("claims9", 9), fds.Times(3)));
  });
}

TEST(PosixHandles, MoreDescriptorsThanTheControlBufferIsDataLoss) {
  // The receiver's buffer holds 2; the kernel truncates (MSG_CTRUNC) and
  // closes the rest; the 2 that came are closed too.
  absl::StatusOr<Pair> pair = MakePair("ph-ctrunc", 2);
  CANAL_ASSERT_OK(pair);
  Fds fds;
  ExpectDataLossWithoutLeak(*pair, [&](int raw) {
    ASSERT_TRUE(SendWithFds(raw, HandleFrame("claims2", 2), fds.Times(40)));
  });
}

TEST(PosixHandles, PlainReadOfAHostileFrameLeaksNothing) {
  absl::StatusOr<Pair> pair = MakePair("ph-plainread");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  const int64_t before = OpenHandleCount();
  ASSERT_TRUE(SendWithFds(pair->raw(), PlainFrame("abc"), fds.Times(2)));
  char buf[8];
  CANAL_EXPECT_CODE(pair->server.Read(absl::MakeSpan(buf), kHangGuard),
                    kDataLoss);
  EXPECT_EQ(OpenHandleCount(), before);
}

TEST(PosixHandles, OtherControlMessagesAreIgnored) {
#ifdef SCM_CREDENTIALS
  absl::StatusOr<Pair> pair = MakePair("ph-creds");
  CANAL_ASSERT_OK(pair);
  const std::string frame = PlainFrame("with credentials");
  iovec iov;
  iov.iov_base = const_cast<char*>(frame.data());
  iov.iov_len = frame.size();
  msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  char control[CMSG_SPACE(sizeof(ucred))];
  std::memset(control, 0, sizeof(control));
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_CREDENTIALS;
  c->cmsg_len = CMSG_LEN(sizeof(ucred));
  ucred cred{getpid(), getuid(), getgid()};
  std::memcpy(CMSG_DATA(c), &cred, sizeof(cred));
  ASSERT_EQ(sendmsg(pair->raw(), &msg, MSG_NOSIGNAL),
            static_cast<ssize_t>(frame.size()));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(m->data, "with credentials");
  EXPECT_TRUE(m->handles.empty());
#else
  GTEST_SKIP() << "no SCM_CREDENTIALS on this system";
#endif
}

TEST(PosixHandles, EveryReceivedDescriptorIsCloseOnExec) {
  absl::StatusOr<Pair> pair = MakePair("ph-cloexec");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  ASSERT_EQ(fcntl(fds.read_end(), F_GETFD) & FD_CLOEXEC, 0);
  const std::vector<int> sent = fds.Times(5);
  CANAL_ASSERT_OK(
      pair->client.WriteMessageWithHandles("five", sent, kHangGuard));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  ASSERT_EQ(m->handles.size(), 5u);
  for (const canal::OwnedHandle& h : m->handles) {
    const int flags = fcntl(h.get(), F_GETFD);
    ASSERT_GE(flags, 0);
    EXPECT_NE(flags & FD_CLOEXEC, 0) << "fd " << h.get();
  }
}

TEST(PosixHandles, WireFormat) {
  absl::StatusOr<Pair> pair = MakePair("ph-wire");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  // Without handles: the plain frame, byte for byte.
  CANAL_ASSERT_OK(pair->client.WriteMessageWithHandles("abc", {}, kHangGuard));
  const int raw = pair->server.native_handle();
  char buf[64];
  ASSERT_EQ(recv(raw, buf, 11, MSG_WAITALL), 11);
  EXPECT_EQ(std::string(buf, 11), PlainFrame("abc"));
  // With two: "CNLH", length, count, and SCM_RIGHTS on the same bytes.
  const std::vector<int> two = fds.Times(2);
  CANAL_ASSERT_OK(pair->client.WriteMessageWithHandles("xy", two, kHangGuard));
  iovec iov{buf, sizeof(buf)};
  msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  char control[CMSG_SPACE(8 * sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = recvmsg(raw, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
  ASSERT_EQ(n, 14);
  EXPECT_EQ(std::string(buf, 14), HandleFrame("xy", 2));
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->cmsg_type, SCM_RIGHTS);
  ASSERT_EQ(c->cmsg_len, CMSG_LEN(2 * sizeof(int)));
  int got[2];
  std::memcpy(got, CMSG_DATA(c), sizeof(got));
  close(got[0]);
  close(got[1]);
}

TEST(PosixHandles, DescriptorsOfAMessageReadInPartAreClosedWithTheChannel) {
  absl::StatusOr<Pair> pair = MakePair("ph-close");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  const int64_t before = OpenHandleCount();
  CANAL_ASSERT_OK(pair->client.WriteMessageWithHandles(
      "a longer message", fds.Times(4), kHangGuard));
  char buf[4];
  absl::StatusOr<canal::ReadResult> part =
      pair->server.Read(absl::MakeSpan(buf), kHangGuard);
  CANAL_ASSERT_OK(part);
  EXPECT_TRUE(part->more);
  // The four arrived with the header and wait for the rest of the message.
  EXPECT_EQ(OpenHandleCount(), before + 4);
  pair->server.Close();
  // They go with the channel, and so does the channel's own socket.
  EXPECT_EQ(OpenHandleCount(), before - 1);
}

TEST(PosixHandles, PartialReadThenReadMessageWithHandlesGetsThem) {
  absl::StatusOr<Pair> pair = MakePair("ph-rest");
  CANAL_ASSERT_OK(pair);
  Fds fds;
  CANAL_ASSERT_OK(pair->client.WriteMessageWithHandles(
      "head and tail", fds.Times(2), kHangGuard));
  char buf[5];
  absl::StatusOr<canal::ReadResult> part =
      pair->server.Read(absl::MakeSpan(buf), kHangGuard);
  CANAL_ASSERT_OK(part);
  EXPECT_EQ(std::string(buf, part->size), "head ");
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(m->data, "and tail");
  EXPECT_EQ(m->handles.size(), 2u);
}

}  // namespace
