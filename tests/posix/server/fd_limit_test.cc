// SPDX-License-Identifier: Apache-2.0
// POSIX only: a server in a process with few descriptors (RLIMIT_NOFILE of
// 64 in a forked child) and more idle clients than that. With the default
// max_connections the server stays below the limit (it never runs into
// EMFILE and never spins on it), the idle clients are closed by the idle
// timeout in turn, and a new client that queued up behind all of them is
// served.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
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

constexpr rlim_t kChildFdLimit = 64;
constexpr int kIdleClients = 100;

std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

void WriteLine(int fd, const std::string& line) {
  const std::string data = line + "\n";
  (void)!write(fd, data.data(), data.size());
}

TEST(ServerFdLimitTest,
     IdleClientsBeyondTheDescriptorLimitDoNotLockOutANewOne) {
  SharedDir dir(0700);
  ASSERT_TRUE(dir.ok()) << "cannot create a directory in /tmp";
  const std::string path = dir.PathOf("s");
  int up[2], down[2];
  ASSERT_EQ(pipe2(up, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(down, O_CLOEXEC), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = kChildFdLimit;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) _exit(3);
    std::mutex mu;
    int open = 0, max_open = 0, idle_closed = 0, other_closed = 0;
    canal::ServerOptions options = MessageServerOptions();  // Default cap.
    options.idle_timeout = absl::Milliseconds(500);
    canal::ServerHandlers handlers;
    handlers.on_open = [&](canal::Connection&) {
      std::lock_guard<std::mutex> lock(mu);
      max_open = std::max(max_open, ++open);
    };
    handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      --open;
      if (s.code() == absl::StatusCode::kDeadlineExceeded) {
        ++idle_closed;
      } else {
        ++other_closed;
      }
    };
    handlers.on_request = [](canal::Connection&, absl::string_view r)
        -> absl::StatusOr<std::string> { return std::string(r); };
    auto server = canal::Server::Start(path, options, std::move(handlers));
    if (!server.ok()) {
      WriteLine(up[1], server.status().ToString());
      _exit(4);
    }
    WriteLine(up[1], "ready");
    ReadLine(down[0]);  // "report"
    {
      std::lock_guard<std::mutex> lock(mu);
      WriteLine(up[1],
                absl::StrCat(max_open, " ", idle_closed, " ", other_closed));
    }
    server->reset();
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  ASSERT_EQ(ReadLine(up[0]), "ready");

  std::vector<int> idle;
  for (int i = 0; i < kIdleClients; ++i) {
    int fd = ConnectRawPeer(path);
    ASSERT_GE(fd, 0) << strerror(errno);
    idle.push_back(fd);
  }
  absl::StatusOr<std::string> reply =
      canal::Call(path, "let me in", absl::Seconds(60));
  CANAL_EXPECT_OK(reply);
  if (reply.ok()) {
    EXPECT_EQ(*reply, "let me in");
  }
  WriteLine(down[1], "report");
  const std::string report = ReadLine(up[0]);
  int max_open = 0, idle_closed = 0, other_closed = 0;
  ASSERT_EQ(std::sscanf(report.c_str(), "%d %d %d", &max_open, &idle_closed,
                        &other_closed),
            3)
      << "child said \"" << report << "\"";
  // The default cap: half of the limit, so never near EMFILE.
  EXPECT_EQ(max_open, static_cast<int>(kChildFdLimit / 2));
  // The new client came after all the idle ones, so at most cap - 1 of
  // them were still open when it got in; every other one was closed for
  // being idle, and nothing failed.
  EXPECT_GE(idle_closed, kIdleClients - max_open + 1);
  EXPECT_LE(other_closed, 1);  // The new client's own, if already closed.
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  for (int fd : idle) close(fd);
  close(up[0]);
  close(down[1]);
}

}  // namespace
}  // namespace canal_test
