// SPDX-License-Identifier: Apache-2.0
// POSIX only: a client process killed in the middle of a message. Its
// connection ends with an error status (DataLoss: the stream ended inside a
// frame), and so do clients that send malformed or oversized frames, while
// the server keeps serving others. (On Windows the kernel frames messages,
// so a peer cannot die inside one; modes_test.cc covers a client leaving
// with a request outstanding on both backends.)

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "posix/other_user.h"
#include "posix/raw_socket.h"
#include "server/server_test_util.h"

namespace canal_test {
namespace {

class ServerKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok()) << "cannot create a directory in /tmp";
    canal::ServerOptions options = MessageServerOptions();
    options.listener.max_message_size = 1 << 20;
    canal::ServerHandlers handlers;
    handlers.on_request = [](canal::Connection&, absl::string_view r)
        -> absl::StatusOr<std::string> { return std::string(r); };
    handlers.on_close = [this](canal::Connection&, const absl::Status& s) {
      closes_.Add(s);
    };
    auto server = canal::Server::Start(path_, options, std::move(handlers));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override { server_.reset(); }

  // Forks a child that connects with a raw socket, writes `bytes`, then
  // kills itself with SIGKILL. Returns once the child is gone.
  void RunChild(const std::string& bytes) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Only async-signal-safe calls in the child.
      int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      if (fd < 0 ||
          connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        _exit(2);
      }
      size_t off = 0;
      while (off < bytes.size()) {
        ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
        if (n <= 0) _exit(3);
        off += static_cast<size_t>(n);
      }
      kill(getpid(), SIGKILL);
      _exit(4);
    }
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exit " << WEXITSTATUS(wstatus);
    EXPECT_EQ(WTERMSIG(wstatus), SIGKILL);
  }

  absl::Status WaitForClose() { return closes_.Next(); }

  void ExpectOthersServed() {
    absl::StatusOr<std::string> r =
        canal::Call(path_, "still here", absl::Seconds(30));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, "still here");
    // The Call's own connection ends cleanly.
    EXPECT_EQ(WaitForClose().code(), absl::StatusCode::kOutOfRange);
  }

  SharedDir dir_{0700};  // Ours, mode 0700.
  const std::string path_ = dir_.PathOf("s");
  CloseLog closes_;  // Outlives server_.
  std::unique_ptr<canal::Server> server_;
};

TEST_F(ServerKillTest, KilledInsideAMessageIsDataLoss) {
  // Half of a message: header and 500 of its 1000 bytes.
  std::string bytes = FrameHeader(1000) + std::string(500, 'h');
  RunChild(bytes);
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  ExpectOthersServed();
}

TEST_F(ServerKillTest, KilledInsideAHeaderIsDataLoss) {
  RunChild(std::string("CNL1\x05", 5));
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  ExpectOthersServed();
}

TEST_F(ServerKillTest, KilledBetweenMessagesIsClean) {
  RunChild(FrameHeader(2) + "ok");
  absl::Status s = WaitForClose();
  // The reply may hit the dead socket first (Unavailable) or the end of
  // stream is seen first (OutOfRange); never OK, never DataLoss.
  EXPECT_TRUE(s.code() == absl::StatusCode::kOutOfRange ||
              s.code() == absl::StatusCode::kUnavailable)
      << s;
  ExpectOthersServed();
}

TEST_F(ServerKillTest, BadMagicIsDataLoss) {
  RunChild("HTTP/1.1 GET /\r\n\r\n");
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  ExpectOthersServed();
}

TEST_F(ServerKillTest, OversizedFrameIsResourceExhausted) {
  RunChild(FrameHeader((1u << 20) + 1));
  absl::Status s = WaitForClose();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  ExpectOthersServed();
}

TEST_F(ServerKillTest, FrameDribbledByteByByteIsOneMessage) {
  // A raw client sending one frame a byte at a time, and reading the reply.
  int fd = ConnectRawPeer(path_);
  ASSERT_GE(fd, 0) << strerror(errno);
  const std::string frame = FrameHeader(5) + "hello";
  for (char c : frame) ASSERT_EQ(write(fd, &c, 1), 1);
  std::string got;
  char buf[64];
  while (got.size() < frame.size()) {
    ssize_t n = read(fd, buf, sizeof(buf));
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, frame);
  close(fd);
  EXPECT_EQ(WaitForClose().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace canal_test
