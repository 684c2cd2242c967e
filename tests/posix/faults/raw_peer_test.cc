// SPDX-License-Identifier: Apache-2.0
// Hostile peers on POSIX, speaking raw bytes over a Unix socket to a
// message-mode listener: malformed frames and random byte streams fail that
// channel (DataLoss, or the connection is closed) while the listener keeps
// serving everyone else; a header announcing 4 GiB - 1 bytes is refused with
// ResourceExhausted at once, without waiting for (or reading) the payload.
// Windows has no equivalent: the kernel frames messages.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/other_user.h"
#include "posix/raw_socket.h"
#include "test_util.h"

namespace canal_test {
namespace {

// A raw Unix-socket client; closes on destruction.
class RawClient {
 public:
  explicit RawClient(const std::string& path) : fd_(ConnectRawPeer(path)) {}
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  // Sends everything (MSG_NOSIGNAL); false once the peer is gone.
  bool Send(const std::string& data) { return WriteAll(fd_, data); }
  // Whether the peer closed (end of stream or reset) within `timeout_ms`,
  // discarding anything it sent.
  bool ClosedByPeer(int timeout_ms) {
    const absl::Time deadline = absl::Now() + absl::Milliseconds(timeout_ms);
    char buf[4096];
    while (absl::Now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const int left = static_cast<int>(
          absl::ToInt64Milliseconds(deadline - absl::Now()) + 1);
      if (::poll(&p, 1, left) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
};

class FaultsRawPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok()) << "cannot create a directory in /tmp";
  }
  canal::ListenerOptions Options() const {
    canal::ListenerOptions options = MessageOptions();
    options.max_message_size = 1024 * 1024;
    return options;
  }
  SharedDir dir_{0700};
  const std::string path_ = dir_.PathOf("s");  // A native name: the path.
};

// Thread-per-client: each hostile input fails its own channel with
// DataLoss; the next client's Transact works.
TEST_F(FaultsRawPeer, MalformedFramesFailOnlyThatChannelOnListener) {
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path_, Options());
  CANAL_ASSERT_OK(listener);
  const std::vector<std::string> inputs = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",  // not canal at all
      FrameHeader(5, "CNL2") + "hello",     // bad magic
      FrameHeader(100) + "only a part",     // stream ends inside a frame
      // A good frame, then garbage.
      FrameHeader(3) + "abc" + FrameHeader(7, "XXXX"),
      std::string("CNL"),  // stream ends inside a header
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("input ", i));
    {
      RawClient raw(path_);
      ASSERT_TRUE(raw.ok());
      absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
      CANAL_ASSERT_OK(ch);
      ASSERT_TRUE(raw.Send(inputs[i]));
      if (i == 3) {
        absl::StatusOr<std::string> good = ch->ReadMessage(absl::Seconds(10));
        CANAL_ASSERT_OK(good);
        EXPECT_EQ(*good, "abc");
      }
      // Truncations are only visible at end of stream: end it.
      if (i == 2 || i == 4) raw.Close();
      absl::StatusOr<std::string> bad = ch->ReadMessage(absl::Seconds(10));
      CANAL_EXPECT_CODE(bad, kDataLoss);
      // The channel stays failed.
      EXPECT_FALSE(ch->ReadMessage(absl::Seconds(1)).ok());
    }
    // Another client is served.
    Background serve([&] {
      absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
      if (!ch.ok()) return;
      absl::StatusOr<std::string> req = ch->ReadMessage(absl::Seconds(10));
      if (req.ok()) (void)ch->WriteMessage("re:" + *req, absl::Seconds(10));
    });
    absl::StatusOr<canal::Channel> good = canal::Channel::Connect(path_);
    CANAL_ASSERT_OK(good);
    absl::StatusOr<std::string> reply =
        good->Transact("ok?", absl::Seconds(10));
    CANAL_ASSERT_OK(reply);
    EXPECT_EQ(*reply, "re:ok?");
    EXPECT_TRUE(serve.Finished(kHangGuard));
  }
}

// canal::Server: 16 raw clients blast random bytes while a good client keeps
// transacting; every raw client is disconnected, every good round trip works.
TEST_F(FaultsRawPeer, HostileByteStreamsDoNotDisturbServer) {
  canal::ServerOptions options;
  options.listener = Options();
  options.threads = 2;
  ConnectionCounter connections;  // Outlives the server.
  canal::ServerHandlers handlers;
  handlers.on_request = [](canal::Connection&, absl::string_view request)
      -> absl::StatusOr<std::string> { return absl::StrCat("re:", request); };
  absl::StatusOr<std::unique_ptr<canal::Server>> server = canal::Server::Start(
      path_, options, connections.Wrap(std::move(handlers)));
  ASSERT_TRUE(server.ok()) << server.status();

  absl::StatusOr<canal::Channel> good = canal::Channel::Connect(path_);
  CANAL_ASSERT_OK(good);
  std::mt19937 rng(8);
  for (int round = 0; round < 16; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    std::string noise(1 + rng() % 65536, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    if (round % 2 == 1) noise.replace(0, 4, "CNL1");  // plausible magic
    RawClient raw(path_);
    ASSERT_TRUE(raw.ok());
    raw.Send(noise);  // may fail once the server dropped us
    // End the stream so a plausible header with a short payload is cut
    // short too: the server must drop every one of them.
    raw.ShutdownWrite();
    EXPECT_TRUE(raw.ClosedByPeer(5000)) << "hostile client not dropped";
    const std::string request = absl::StrCat("good-", round);
    absl::StatusOr<std::string> reply =
        good->Transact(request, absl::Seconds(10));
    CANAL_ASSERT_OK(reply);
    EXPECT_EQ(*reply, "re:" + request);
  }
  good->Close();
  EXPECT_TRUE(connections.WaitUntilAllClosed(absl::Seconds(10)))
      << connections.open() << " connections left";
  EXPECT_EQ((*server)->connection_count(), 0u);
  // And a brand-new client still works.
  absl::StatusOr<std::string> reply =
      canal::Call(path_, "after", absl::Seconds(10));
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "re:after");
}

// A header announcing 4 GiB - 1 bytes (limit 1 MiB): ResourceExhausted at
// once, without waiting for the payload (none is ever sent; the raw client
// stays connected, so a reader that waited would hit its 10 s timeout).
TEST_F(FaultsRawPeer, OversizedAnnouncementRefusedAtOnce) {
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path_, Options());
  CANAL_ASSERT_OK(listener);
  for (const bool whole : {true, false}) {
    SCOPED_TRACE(whole ? "ReadMessage" : "Read");
    RawClient raw(path_);
    ASSERT_TRUE(raw.ok());
    absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
    CANAL_ASSERT_OK(ch);
    ASSERT_TRUE(raw.Send(FrameHeader(0xffffffffu)));
    absl::Status status;
    if (whole) {
      status = ch->ReadMessage(absl::Seconds(10)).status();
    } else {
      char buf[16];
      status = ch->Read(absl::MakeSpan(buf), absl::Seconds(10)).status();
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  }
  // Also just over the limit.
  {
    RawClient raw(path_);
    ASSERT_TRUE(raw.ok());
    absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
    CANAL_ASSERT_OK(ch);
    ASSERT_TRUE(raw.Send(FrameHeader(1024 * 1024 + 1)));
    CANAL_EXPECT_CODE(ch->ReadMessage(absl::Seconds(10)), kResourceExhausted);
  }
}

// The server reads the request and ends the stream inside its reply (a
// partial header, or a header and part of the payload): Transact is
// DataLoss, not Unavailable (which is for a peer that closed before the
// reply began, tests/reliability/faults/peer_gone_before_reply_test.cc).
TEST_F(FaultsRawPeer, StreamEndingInsideTheReplyIsDataLoss) {
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(path_, Options());
  CANAL_ASSERT_OK(listener);
  for (const std::string& torn :
       {std::string("CNL"), FrameHeader(100) + "part"}) {
    SCOPED_TRACE(torn.size());
    absl::StatusOr<canal::Channel> client = canal::Channel::Connect(path_);
    CANAL_ASSERT_OK(client);
    absl::StatusOr<canal::Channel> server = listener->Accept(absl::Seconds(10));
    CANAL_ASSERT_OK(server);
    Background torn_reply([&] {
      absl::StatusOr<std::string> request =
          server->ReadMessage(absl::Seconds(10));
      EXPECT_TRUE(request.ok()) << request.status();
      const int fd = server->native_handle();
      EXPECT_EQ(::send(fd, torn.data(), torn.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(torn.size()));
      server->Close();
    });
    absl::StatusOr<std::string> reply =
        client->Transact("question", absl::Seconds(10));
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kDataLoss)
        << reply.status();
    EXPECT_TRUE(torn_reply.Finished(kHangGuard));
  }
}

}  // namespace
}  // namespace canal_test
