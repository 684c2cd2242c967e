// SPDX-License-Identifier: Apache-2.0
// Locks held by another user: the attacker (uid 65534) opens every file
// beside an all-users listener's socket that it can open and takes or waits
// for a lock on each (flock, and a read lock of the kind canal uses for
// liveness), so that it holds them once the listener process is killed. The
// name must still be reclaimed by the next Listener::Create (at once, well
// inside the 1 s docs/reliability.md promises), clients of the dead
// listener must get NotFound at once instead of waiting for their timeout,
// and while the listener lives nothing the attacker holds lets anyone take
// the name over.

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/attack/attacker.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {
namespace {

canal::ListenerOptions AllUsersMessage() {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_instances = 2;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  return options;
}

// Every file name a listener on `socket` has beside it, in this version or
// an earlier one.
std::vector<std::string> FilesBeside(const std::string& socket) {
  return {socket + ".canal~lock", socket + ".canal~meta",
          socket + ".canal~slot0", socket + ".canal~slot1"};
}

// A root listener in a child process, alive until killed.
class ListenerProcess {
 public:
  explicit ListenerProcess(const std::string& path) {
    if (!ready_.ok()) return;
    fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      ready_.CloseRead();
      absl::StatusOr<canal::Listener> listener =
          canal::Listener::Create(path, AllUsersMessage());
      if (!listener.ok()) _exit(ExitCodeOf(listener.status()));
      ready_.Signal();
      // Serve request/reply until killed.
      while (true) {
        absl::StatusOr<canal::Channel> ch = listener->Accept();
        if (!ch.ok()) _exit(kChildUnexpected);
        absl::StatusOr<std::string> m = ch->ReadMessage(absl::Seconds(10));
        if (m.ok()) (void)ch->WriteMessage("live: " + *m);
      }
    }
    ready_.CloseWrite();
    started_ = pid_ > 0 && ready_.Wait();
  }
  ~ListenerProcess() { Kill(); }

  bool started() const { return started_; }
  // SIGKILL, as a crash: no cleanup at all.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    WaitExit(pid_);
    pid_ = -1;
  }

 private:
  SyncPipe ready_;
  pid_t pid_ = -1;
  bool started_ = false;
};

// The attacker: one child per file, which opens it read-only if it can,
// says so, then blocks in flock(LOCK_EX) (flock does not care how the file
// was opened) and in a read lock of the open-file-description kind (a
// write lock needs a descriptor open for writing), and holds both until
// told to stop.
class LockHolders {
 public:
  explicit LockHolders(const std::vector<std::string>& paths) {
    for (const std::string& path : paths) {
      auto holder = std::make_unique<Holder>();
      if (!holder->opened.ok() || !holder->locked.ok() || !holder->stop.ok()) {
        continue;
      }
      Holder* h = holder.get();
      h->pid = ForkAs(kNobody, kNoGroup, [h, path] {
        h->opened.CloseRead();
        h->locked.CloseRead();
        h->stop.CloseWrite();
        const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) return 3;  // Not readable by us: nothing to hold.
        h->opened.Signal();
        if (flock(fd, LOCK_EX) != 0) return kChildUnexpected;
        struct flock read_lock = {};
        read_lock.l_type = F_RDLCK;
        read_lock.l_whence = SEEK_SET;
        // Blocks while the listener holds its write lock, like the flock.
        if (fcntl(fd, F_OFD_SETLKW, &read_lock) != 0) return kChildUnexpected;
        h->locked.Signal();
        h->stop.Wait();
        return 0;
      });
      h->opened.CloseWrite();
      h->locked.CloseWrite();
      h->stop.CloseRead();
      h->path = path;
      h->is_open = h->pid > 0 && h->opened.Wait();
      holders_.push_back(std::move(holder));
    }
  }
  ~LockHolders() {
    for (auto& h : holders_) {
      h->stop.CloseWrite();
      if (h->pid > 0) {
        kill(h->pid, SIGKILL);
        WaitExit(h->pid);
      }
    }
  }

  // How many files the attacker could open.
  int opened() const {
    int n = 0;
    for (const auto& h : holders_) n += h->is_open ? 1 : 0;
    return n;
  }
  // Waits until each holder that opened its file holds its locks. True if
  // all do (within the hang guard).
  bool AllLocked() {
    bool all = true;
    for (auto& h : holders_) {
      if (h->is_open && !h->has_lock) {
        h->has_lock = h->locked.Wait();
        all = all && h->has_lock;
        if (!h->has_lock) ADD_FAILURE() << "no lock on " << h->path;
      }
    }
    return all;
  }

 private:
  struct Holder {
    SyncPipe opened, locked, stop;
    std::string path;
    pid_t pid = -1;
    bool is_open = false;
    bool has_lock = false;
  };
  std::vector<std::unique_ptr<Holder>> holders_;
};

TEST(StaleLock, LocksHeldByAnotherUserAfterACrashDoNotKeepTheName) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(01777);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  auto listener = std::make_unique<ListenerProcess>(path);
  ASSERT_TRUE(listener->started());
  LockHolders attacker(FilesBeside(path));
  // The metadata and slot files are readable by every user (they must be,
  // for clients); the lock file is not.
  EXPECT_GE(attacker.opened(), 1);
  listener->Kill();
  ASSERT_TRUE(attacker.AllLocked());

  // Clients see that nobody serves the name: NotFound, not a wait until
  // the timeout (DeadlineExceeded). Also a client of another user, which
  // cannot open the lock file.
  CANAL_EXPECT_CODE(canal::Channel::Connect(path), kNotFound);
  CANAL_EXPECT_CODE(canal::WaitForListener(path, absl::Seconds(5)), kNotFound);
  CANAL_EXPECT_CODE(canal::Call(path, "x"), kNotFound);
  const pid_t other_client = ForkAs(kOtherUid, kOtherGid, [&] {
    const absl::Status wait = canal::WaitForListener(path, absl::Seconds(5));
    if (!absl::IsNotFound(wait)) return 20 + ExitCodeOf(wait);
    return ExitCodeOf(canal::Channel::Connect(path).status());
  });
  ASSERT_GT(other_client, 0);
  EXPECT_EQ(WaitExit(other_client),
            static_cast<int>(absl::StatusCode::kNotFound));

  // The next listener takes the name at once, and serves.
  absl::StatusOr<canal::Listener> next =
      canal::Listener::Create(path, AllUsersMessage());
  CANAL_ASSERT_OK(next);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(path);
  CANAL_ASSERT_OK(client);
  EXPECT_EQ(client->mode(), canal::PipeMode::kMessage);
  Background server([&] {
    absl::StatusOr<canal::Channel> ch = next->Accept(kHangGuard);
    if (!ch.ok()) return;
    absl::StatusOr<std::string> m = ch->ReadMessage(kHangGuard);
    if (m.ok()) (void)ch->WriteMessage("next: " + *m);
  });
  absl::StatusOr<std::string> reply = client->Transact("hi", kHangGuard);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "next: hi");
  EXPECT_TRUE(server.Finished(kHangGuard));
}

TEST(StaleLock, LocksHeldByAnotherUserNeverLetALiveListenerBeTakenOver) {
  CANAL_SKIP_UNLESS_ROOT();
  SharedDir dir(01777);
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.PathOf("svc");
  ListenerProcess listener(path);
  ASSERT_TRUE(listener.started());
  // The attacker holds what it can while the listener lives (the slot
  // flocks are free, so it gets those: see docs/security.md).
  LockHolders attacker({path + ".canal~slot0"});
  ASSERT_TRUE(attacker.AllLocked());
  for (int i = 0; i < 3; ++i) {
    CANAL_EXPECT_CODE(canal::Listener::Create(path, AllUsersMessage()),
                      kAlreadyExists);
  }
  // Clients still reach the live listener, through the slot left free.
  CANAL_EXPECT_OK(canal::WaitForListener(path, kHangGuard));
  absl::StatusOr<std::string> reply = canal::Call(path, "ping", kHangGuard);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "live: ping");
}

}  // namespace
}  // namespace canal_test
