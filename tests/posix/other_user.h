// SPDX-License-Identifier: Apache-2.0
// Another user for the POSIX security and attack tests: child processes
// that drop to another uid (the suite runs as root in CI; tests that need
// it skip otherwise), pipes to synchronise with them, and a private
// directory for native socket paths that other users can reach.

#ifndef CANAL_TESTS_POSIX_OTHER_USER_H_
#define CANAL_TESTS_POSIX_OTHER_USER_H_

#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace canal_test {

// Unprivileged ids for the children (nobody/nogroup on Debian, and one
// below). They need no passwd entry: the kernel only sees numbers.
inline constexpr uid_t kNobody = 65534;
inline constexpr gid_t kNoGroup = 65534;
inline constexpr uid_t kOtherUid = 65533;
inline constexpr gid_t kOtherGid = 65533;

// Exit codes a child uses for its own failures (status codes are 0..16).
inline constexpr int kChildSetupFailed = 120;
inline constexpr int kChildUnexpected = 121;

inline bool IsRoot() { return geteuid() == 0; }

#define CANAL_SKIP_UNLESS_ROOT()                                      \
  do {                                                                \
    if (!::canal_test::IsRoot()) {                                    \
      GTEST_SKIP() << "needs root to run a child process as another " \
                      "uid (CI runs the suite as root)";              \
    }                                                                 \
  } while (false)

// A child's exit code for a status: its code number.
inline int ExitCodeOf(const absl::Status& status) {
  return static_cast<int>(status.code());
}

// One pipe; each side closes the end it does not use.
class SyncPipe {
 public:
  SyncPipe() {
    if (pipe(fds_) != 0) fds_[0] = fds_[1] = -1;
  }
  ~SyncPipe() {
    CloseRead();
    CloseWrite();
  }
  SyncPipe(const SyncPipe&) = delete;
  SyncPipe& operator=(const SyncPipe&) = delete;
  bool ok() const { return fds_[0] >= 0; }

  // Sends one byte.
  bool Signal() {
    const char byte = 1;
    return write(fds_[1], &byte, 1) == 1;
  }
  // Waits (at most 20 s, the hang guard) for a byte or for the writer to
  // close its end. True for a byte.
  bool Wait() {
    pollfd p{fds_[0], POLLIN, 0};
    int rc;
    do {
      rc = poll(&p, 1, 20000);
    } while (rc < 0 && errno == EINTR);
    if (rc != 1) return false;
    char byte;
    return read(fds_[0], &byte, 1) == 1;
  }
  void CloseRead() {
    if (fds_[0] >= 0) close(fds_[0]);
    fds_[0] = -1;
  }
  void CloseWrite() {
    if (fds_[1] >= 0) close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2];
};

// Forks a child that gives up root for `uid`/`gid` (no supplementary groups
// but `extra_group` if >= 0) and exits with `body()`'s result. Only the
// forking thread exists in the child, so call this before starting threads
// in the test. Returns the child's pid (-1 if fork failed).
inline pid_t ForkAs(uid_t uid, gid_t gid, const std::function<int()>& body,
                    int extra_group = -1) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid != 0) return pid;
  gid_t groups[1] = {static_cast<gid_t>(extra_group)};
  if (setgroups(extra_group >= 0 ? 1 : 0, groups) != 0 || setgid(gid) != 0 ||
      setuid(uid) != 0 || geteuid() != uid) {
    _exit(kChildSetupFailed);
  }
  _exit(body());
}

// Waits for `pid` and returns its exit code, or 200 + signal number.
inline int WaitExit(pid_t pid) {
  int status = 0;
  pid_t rc;
  do {
    rc = waitpid(pid, &status, 0);
  } while (rc < 0 && errno == EINTR);
  if (rc != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 200 + WTERMSIG(status);
  return -1;
}

// A fresh directory (mkdtemp under /tmp) with `mode` and owner, removed
// with everything in it at the end of the scope; for native socket paths
// (with a mode such as 0755, other uids reach them).
class SharedDir {
 public:
  explicit SharedDir(mode_t mode = 0755, uid_t owner = geteuid(),
                     gid_t group = getegid()) {
    char tmpl[] = "/tmp/canal-sec-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    path_ = tmpl;
    if (chown(path_.c_str(), owner, group) != 0 ||
        chmod(path_.c_str(), mode) != 0) {
      path_.clear();
    }
  }
  ~SharedDir() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  SharedDir(const SharedDir&) = delete;
  SharedDir& operator=(const SharedDir&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string PathOf(const std::string& leaf) const {
    return path_ + "/" + leaf;
  }

 private:
  std::string path_;
};

// lstat's permission bits of `path`, or -1.
inline int ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

inline long GroupOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<long>(st.st_gid);
}

}  // namespace canal_test

#endif  // CANAL_TESTS_POSIX_OTHER_USER_H_
