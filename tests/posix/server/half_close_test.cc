// SPDX-License-Identifier: Apache-2.0
// POSIX only: clients that send their request and then shut down their
// sending side (shutdown(SHUT_WR), as socat, `nc -N` and many scripts do)
// and read the reply until the end of the stream. The server must deliver
// every reply it accepted (and answer every request it received) before it
// closes, and only then report the end of the stream in on_close. (Windows
// pipes have no half-close: a client that closes its end can no longer
// read, see server.h.)

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "posix/other_user.h"
#include "posix/raw_socket.h"
#include "server/server_test_util.h"

namespace canal_test {
namespace {

class ServerHalfCloseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok()) << "cannot create a directory in /tmp";
  }

  void TearDown() override { server_.reset(); }

  void Start(const canal::ServerOptions& options,
             canal::ServerHandlers handlers) {
    handlers.on_close = [this](canal::Connection&, const absl::Status& s) {
      closes_.Add(s);
    };
    auto server = canal::Server::Start(path_, options, std::move(handlers));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // A raw client whose reads give up after a generous hang guard.
  int Connect() {
    const int fd = ConnectRawPeer(path_);
    if (fd >= 0) SetIoTimeouts(fd, absl::Seconds(30));
    return fd;
  }

  static void WriteAll(int fd, absl::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << strerror(errno);
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  // Everything until the end of the stream (or the hang guard).
  static std::string ReadToEnd(int fd) {
    std::string got;
    char buf[64 * 1024];
    while (true) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

  absl::Status WaitForClose() { return closes_.Next(); }

  static std::string Frame(absl::string_view payload) {
    return FrameHeader(static_cast<uint32_t>(payload.size())) +
           std::string(payload);
  }

  SharedDir dir_{0700};
  const std::string path_ = dir_.PathOf("s");
  CloseLog closes_;  // Outlives server_.
  std::unique_ptr<canal::Server> server_;
};

TEST_F(ServerHalfCloseTest, ByteModeReplyArrivesWholeBeforeTheEnd) {
  constexpr size_t kReply = 768 * 1024;
  std::mutex mu;
  std::map<uint64_t, std::string> requests;
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view data) {
    std::lock_guard<std::mutex> lock(mu);
    std::string& request = requests[c.id()];
    request.append(data.data(), data.size());
    if (request == "GET\n") {
      absl::Status s = c.Send(Pattern(kReply, 7));
      EXPECT_TRUE(s.ok()) << s;
    }
  };
  canal::ServerOptions options;  // Byte mode.
  Start(options, std::move(handlers));
  int fd = Connect();
  ASSERT_GE(fd, 0);
  WriteAll(fd, "GET\n");
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  const std::string got = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(got.size(), kReply);
  EXPECT_TRUE(got == Pattern(kReply, 7));
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
}

TEST_F(ServerHalfCloseTest, PipelinedRequestsAreAllAnsweredThroughAFullQueue) {
  constexpr int kRequests = 32;
  constexpr size_t kPad = 64 * 1024;
  canal::ServerHandlers handlers;
  handlers.on_request = [](canal::Connection&,
                           absl::string_view r) -> absl::StatusOr<std::string> {
    return absl::StrCat(r, std::string(kPad, '.'));
  };
  canal::ServerOptions options = MessageServerOptions();
  // Far less than the replies: the server pauses (and stops dispatching)
  // several times before it has answered everything.
  options.max_queued_bytes = 128 * 1024;
  options.listener.buffer_size = 16 * 1024;
  Start(options, std::move(handlers));
  int fd = Connect();
  ASSERT_GE(fd, 0);
  std::string requests;
  for (int i = 0; i < kRequests; ++i) {
    requests += Frame(absl::StrCat("request ", i));
  }
  WriteAll(fd, requests);
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  const std::string got = ReadToEnd(fd);
  close(fd);
  std::string expected;
  for (int i = 0; i < kRequests; ++i) {
    expected += Frame(absl::StrCat("request ", i, std::string(kPad, '.')));
  }
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
}

TEST_F(ServerHalfCloseTest, PartialFrameAtTheEndIsDataLossAfterTheReplies) {
  canal::ServerHandlers handlers;
  handlers.on_request = [](canal::Connection&,
                           absl::string_view r) -> absl::StatusOr<std::string> {
    return std::string(r);
  };
  Start(MessageServerOptions(), std::move(handlers));
  int fd = Connect();
  ASSERT_GE(fd, 0);
  const std::string whole = Frame("one") + Frame("two");
  WriteAll(fd, whole + Frame("three, cut").substr(0, 10));
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  EXPECT_EQ(ReadToEnd(fd), whole);
  close(fd);
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
}

TEST_F(ServerHalfCloseTest, ClientThatLeavesWithoutReadingEndsTheFlush) {
  constexpr size_t kReply = 8 << 20;  // Far more than the socket buffers.
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view) {
    EXPECT_TRUE(c.Send(std::string(kReply, 'r')).ok());
  };
  Start(MessageServerOptions(), std::move(handlers));
  int fd = Connect();
  ASSERT_GE(fd, 0);
  WriteAll(fd, Frame("give me lots"));
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  char buf[4096];
  ASSERT_GT(read(fd, buf, sizeof(buf)), 0);  // The reply has started.
  close(fd);  // Gone, with most of it still queued in the server.
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "not delivered")) << s;
  EXPECT_EQ(server_->connection_count(), 0u);
}

TEST_F(ServerHalfCloseTest, ClientThatHalfClosesAndNeverReadsIsClosedWhenIdle) {
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view) {
    EXPECT_TRUE(c.Send(std::string(8 << 20, 'r')).ok());
  };
  canal::ServerOptions options = MessageServerOptions();
  options.idle_timeout = absl::Milliseconds(300);
  Start(options, std::move(handlers));
  int fd = Connect();
  ASSERT_GE(fd, 0);
  WriteAll(fd, Frame("give me lots"));
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  // Never reads: the flush stalls, and the idle timeout ends it.
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(server_->connection_count(), 0u);
  close(fd);
}

}  // namespace
}  // namespace canal_test
