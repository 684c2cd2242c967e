// SPDX-License-Identifier: Apache-2.0
// Stale socket reclaim: a socket file left behind by a listener that is gone
// (a crash, or a bare bind()) does not block Listener::Create; a live
// listener in another process does (AlreadyExists).

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/raw_socket.h"
#include "posix/runtime_dir_fixture.h"
#include "test_util.h"

namespace canal_test {
namespace {

using StaleSocket = RuntimeDirTest;

// Checks that a listener on `name` works: a client connects and talks.
void ExpectUsable(canal::Listener& listener) {
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(listener.name());
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::Channel> server = listener.Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  CANAL_ASSERT_OK(client->Write("alive"));
  absl::StatusOr<std::string> got = ReadExactly(*server, 5);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "alive");
}

TEST_F(StaleSocket, BoundButNeverListeningSocketIsReclaimed) {
  MakeRuntimeDir(0700);
  const std::string name = UniqueName("stale-bind");
  {
    Fd fd = BindUnixSocket(PathOf(name), /*listen_too=*/false);
    ASSERT_TRUE(fd.valid()) << strerror(errno);
  }
  ASSERT_TRUE(IsSocket(PathOf(name)));
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  ExpectUsable(*listener);
}

TEST_F(StaleSocket, ClosedListeningSocketIsReclaimed) {
  MakeRuntimeDir(0700);
  const std::string name = UniqueName("stale-listen");
  {
    Fd fd = BindUnixSocket(PathOf(name), /*listen_too=*/true);
    ASSERT_TRUE(fd.valid()) << strerror(errno);
  }
  ASSERT_TRUE(IsSocket(PathOf(name)));
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  ExpectUsable(*listener);
}

// Runs `child` in a forked process that then _exit()s without any cleanup,
// as a crash would. Returns the child's exit status.
template <typename Fn>
int RunAndVanish(Fn child) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    _exit(child());
  }
  int status = -1;
  waitpid(pid, &status, 0);
  return status;
}

TEST_F(StaleSocket, ListenerOfACrashedProcessIsReclaimed) {
  const std::string name = UniqueName("stale-crash");
  const int status = RunAndVanish([&] {
    absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
    if (!listener.ok()) return 3;
    _exit(0);  // No destructor, no cleanup.
  });
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "child failed to create the listener";
  ASSERT_TRUE(IsSocket(PathOf(name))) << "the crash left no socket behind";
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  ExpectUsable(*listener);
}

TEST_F(StaleSocket, CrashedMessageListenerWithInstanceLimitIsReclaimed) {
  const std::string name = UniqueName("stale-slots");
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_instances = 2;
  const int status = RunAndVanish([&] {
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(name, options);
    if (!listener.ok()) return 3;
    _exit(0);
  });
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> a = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(a);
  absl::StatusOr<canal::Channel> b = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(b);
  EXPECT_EQ(a->mode(), canal::PipeMode::kMessage);
  canal::ConnectOptions quick;
  quick.timeout = absl::Milliseconds(100);
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, quick), kDeadlineExceeded);
}

// A listener that lives in a child process until told to go.
class ChildListener {
 public:
  ChildListener(const std::string& name,
                const canal::ListenerOptions& options) {
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0) return;
    fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      close(ready[0]);
      close(go[1]);
      absl::StatusOr<canal::Listener> listener =
          canal::Listener::Create(name, options);
      const char c = listener.ok() ? 'y' : 'n';
      if (write(ready[1], &c, 1) != 1) _exit(4);
      if (listener.ok()) {
        // Serve one client: echo one message (message mode) or 5 bytes.
        absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
        if (ch.ok()) {
          if (ch->mode() == canal::PipeMode::kMessage) {
            absl::StatusOr<std::string> m = ch->ReadMessage(absl::Seconds(10));
            if (m.ok()) (void)ch->WriteMessage(*m);
          }
        }
      }
      char g;
      (void)!read(go[0], &g, 1);
      _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    go_ = go[1];
    char c = 0;
    ok_ = read(ready[0], &c, 1) == 1 && c == 'y';
    close(ready[0]);
  }
  ~ChildListener() {
    if (go_ >= 0) close(go_);  // The child reads EOF and exits.
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  bool ok() const { return ok_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  bool ok_ = false;
};

TEST_F(StaleSocket, LiveListenerInAnotherProcessIsAlreadyExists) {
  const std::string name = UniqueName("live-other");
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  ChildListener child(name, options);
  ASSERT_TRUE(child.ok());
  CANAL_EXPECT_CODE(canal::Listener::Create(name), kAlreadyExists);
  // The refused attempt left the child's listener intact.
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  absl::StatusOr<canal::PeerInfo> peer = ch->Peer();
  CANAL_ASSERT_OK(peer);
  EXPECT_EQ(peer->process_id, static_cast<int64_t>(child.pid()));
  absl::StatusOr<std::string> reply = ch->Transact("across", kHangGuard);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "across");
}

}  // namespace
}  // namespace canal_test
