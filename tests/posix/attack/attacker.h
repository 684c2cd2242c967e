// SPDX-License-Identifier: Apache-2.0
// Helpers for the POSIX attack suite: the attacker (a child that drops to
// uid 65534, see posix/other_user.h) plants files of every kind, snapshots
// prove that nothing which is not canal's own was changed, and a guard turns
// a call that would hang into a test failure instead of a hung test.

#ifndef CANAL_TESTS_POSIX_ATTACK_ATTACKER_H_
#define CANAL_TESTS_POSIX_ATTACK_ATTACKER_H_

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "posix/raw_socket.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {

// What an attacker puts at a path before canal uses it.
enum class PlantKind {
  kSymlink,  // To a file of the victim (root), which must stay as it is.
  kFifo,     // Opening it for reading blocks until a writer comes.
  kDirectory,
  kForeignFile,  // A regular file of the attacker, with a plausible line.
  kSocket,       // A bound, never listening socket of the attacker.
};

inline const char* PlantName(PlantKind kind) {
  switch (kind) {
    case PlantKind::kSymlink:
      return "Symlink";
    case PlantKind::kFifo:
      return "Fifo";
    case PlantKind::kDirectory:
      return "Directory";
    case PlantKind::kForeignFile:
      return "ForeignFile";
    case PlantKind::kSocket:
      return "Socket";
  }
  return "Unknown";
}

inline constexpr PlantKind kAllPlants[] = {
    PlantKind::kSymlink, PlantKind::kFifo, PlantKind::kDirectory,
    PlantKind::kForeignFile, PlantKind::kSocket};

// What a hostile metadata line says: everything that breaks clients.
inline constexpr char kHostileLine[] =
    "canal 1 mode=byte access=inbound max_instances=254 max_message_size=1 "
    "buffer_size=0 pid=1\n";

// Creates `kind` at `path` as uid `uid` (in a child process), first
// removing what is there if `replace` (the directory must let the attacker
// do that: not sticky); a symlink points at `link_target`. True on success.
inline bool PlantAs(uid_t uid, gid_t gid, PlantKind kind,
                    const std::string& path, const std::string& link_target,
                    bool replace = false) {
  const pid_t child = ForkAs(uid, gid, [&] {
    if (replace && unlink(path.c_str()) != 0 && errno != ENOENT) return 2;
    switch (kind) {
      case PlantKind::kSymlink:
        return symlink(link_target.c_str(), path.c_str()) == 0 ? 0 : 1;
      case PlantKind::kFifo:
        return mkfifo(path.c_str(), 0666) == 0 ? 0 : 1;
      case PlantKind::kDirectory:
        return mkdir(path.c_str(), 0777) == 0 ? 0 : 1;
      case PlantKind::kForeignFile: {
        const int fd =
            open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) return 1;
        const ssize_t n = write(fd, kHostileLine, sizeof(kHostileLine) - 1);
        close(fd);
        return n == static_cast<ssize_t>(sizeof(kHostileLine) - 1) ? 0 : 1;
      }
      case PlantKind::kSocket: {
        Fd fd = BindUnixSocket(path, /*listen_too=*/false);
        return fd.valid() ? 0 : 1;
      }
    }
    return 1;
  });
  return child > 0 && WaitExit(child) == 0;
}

inline bool PlantAsAttacker(PlantKind kind, const std::string& path,
                            const std::string& link_target) {
  return PlantAs(kNobody, kNoGroup, kind, path, link_target);
}

// The attacker replaces the file at `path` (in a directory it may write).
inline bool ReplaceAsAttacker(PlantKind kind, const std::string& path,
                              const std::string& link_target) {
  return PlantAs(kNobody, kNoGroup, kind, path, link_target,
                 /*replace=*/true);
}

// The lstat identity, mode, owner and (for a regular file) contents of a
// path, to show that canal left something alone.
struct Snapshot {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string contents;

  bool operator==(const Snapshot& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino &&
           mode == o.mode && uid == o.uid && gid == o.gid &&
           contents == o.contents;
  }
};

inline Snapshot Snap(const std::string& path) {
  Snapshot s;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.mode = st.st_mode;
  s.uid = st.st_uid;
  s.gid = st.st_gid;
  if (S_ISREG(st.st_mode)) {
    const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) s.contents.append(buf, n);
      close(fd);
    }
  }
  return s;
}

inline std::ostream& operator<<(std::ostream& os, const Snapshot& s) {
  if (!s.exists) return os << "(nothing)";
  return os << "ino " << s.ino << " mode 0" << std::oct << s.mode << std::dec
            << " uid " << s.uid << " gid " << s.gid << " contents \""
            << s.contents << "\"";
}

// A file of the victim (root) that a planted link points at: mode 0600,
// known contents.
inline std::string MakeVictimFile(const std::string& path) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return "";
  const char kPrecious[] = "precious\n";
  const ssize_t n = write(fd, kPrecious, sizeof(kPrecious) - 1);
  close(fd);
  if (n != static_cast<ssize_t>(sizeof(kPrecious) - 1)) return "";
  if (chmod(path.c_str(), 0600) != 0) return "";
  return path;
}

// Runs `call` on a thread and waits for it within the hang guard. If it
// does not return, `unblock` is run (it must make the call return, e.g. by
// opening the FIFO it is stuck on) and the guard fails. Returns the call's
// status.
inline absl::Status Guarded(const std::function<absl::Status()>& call,
                            const std::function<void()>& unblock,
                            const std::string& what) {
  absl::Status status = absl::UnknownError("the call did not return");
  Background thread([&] { status = call(); });
  if (!thread.Finished(kHangGuard)) {
    ADD_FAILURE() << what << " was still blocked after " << kHangGuard;
    unblock();
    thread.Finished(kHangGuard);
  }
  return status;
}

// Makes a thread stuck in open(path, O_RDONLY) on a FIFO return, by
// appearing as a writer (repeatedly: the reader may not be in open yet).
inline void UnblockFifoReaders(const std::string& path) {
  for (int i = 0; i < 100; ++i) {
    const int fd = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) close(fd);
  }
}

}  // namespace canal_test

#endif  // CANAL_TESTS_POSIX_ATTACK_ATTACKER_H_
