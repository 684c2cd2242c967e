// SPDX-License-Identifier: Apache-2.0
// POSIX: the live listeners of a directory, from the files they keep
// beside their sockets (src/posix/meta.h).
//
// A listener holds flock(LOCK_EX) on "<socket>.canal~lock" for its whole life
// and, once it accepts connections, publishes "<socket>.canal~meta", on which
// (on Linux) it also holds an open file description write lock. Only the
// owner can hold that write lock, so it tells a live listener from a dead
// one's leftovers even for another user's listener, whose lock file (always
// 0600) cannot be opened. These are the tests canal's own clients make before
// they connect.

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/canal/accounts.h"
#include "tools/canal/list.h"

namespace canal_cli {
namespace {

constexpr absl::string_view kLockSuffix = ".canal~lock";
constexpr absl::string_view kMetaSuffix = ".canal~meta";
// Far more than a version-1 line needs; bounds what is read.
constexpr size_t kMaxLine = 4096;

// The runtime directory as canal picks it (include/canal/canal.h).
std::string RuntimeDir() {
  auto env = [](const char* name) -> const char* {
    const char* value = std::getenv(name);
    return value != nullptr && value[0] != '\0' ? value : nullptr;
  };
  if (const char* dir = env("CANAL_RUNTIME_DIR")) return dir;
  if (const char* xdg = env("XDG_RUNTIME_DIR")) {
    std::string base = xdg;
    if (!absl::EndsWith(base, "/")) base += "/";
    return base + "canal";
  }
  return absl::StrCat("/tmp/canal-", static_cast<unsigned long>(::geteuid()));
}

struct Closer {
  void operator()(DIR* d) const { ::closedir(d); }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

enum class Probe { kLive, kDead, kUnreadable };
enum class Lock { kHeld, kFree, kUnknown };

// Opens a file another user may have planted: never follows a link, never
// blocks on a FIFO.
int OpenUntrusted(const std::string& path) {
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
}

// Whether some open file description holds a write lock on `fd`'s file
// (kUnknown without open file description locks).
Lock TestWriteLock(int fd) {
#if defined(F_OFD_GETLK)
  struct flock probe = {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_GETLK, &probe) != 0) return Lock::kUnknown;
  // Anyone who may read the file can take a read lock: it means nothing.
  return probe.l_type == F_WRLCK ? Lock::kHeld : Lock::kFree;
#else
  (void)fd;
  return Lock::kUnknown;
#endif
}

// Whether the name lock file is held; kUnknown if it cannot be opened (it is
// 0600, so only its owner can) or is not a regular file of `owner`.
Lock TestNameLock(const std::string& lock_path, uid_t owner) {
  Fd fd(OpenUntrusted(lock_path));
  if (fd.get() < 0) return Lock::kUnknown;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_uid != owner) {
    return Lock::kUnknown;
  }
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd.get(), LOCK_UN);
    return Lock::kFree;
  }
  return errno == EWOULDBLOCK || errno == EAGAIN ? Lock::kHeld : Lock::kUnknown;
}

// Reads at most kMaxLine bytes of `fd` from its start.
std::string ReadLine(int fd) {
  std::string line(kMaxLine, '\0');
  size_t got = 0;
  while (got < line.size()) {
    const ssize_t n =
        ::pread(fd, &line[got], line.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  line.resize(got);
  return line;
}

// Looks at the listener of the socket `socket_path`; fills `pipe` for a
// live one.
Probe ProbeListener(const std::string& socket_path, ListedPipe* pipe) {
  const std::string lock_path = absl::StrCat(socket_path, kLockSuffix);
  Fd meta(OpenUntrusted(absl::StrCat(socket_path, kMetaSuffix)));
  struct stat st;
  if (meta.get() >= 0 && ::fstat(meta.get(), &st) == 0 && S_ISREG(st.st_mode)) {
    Lock alive = TestWriteLock(meta.get());
    if (alive == Lock::kUnknown) alive = TestNameLock(lock_path, st.st_uid);
    // Still unknown (another user's listener on a system without open file
    // description locks): it may be live. canal's clients assume so and let
    // connect(2) tell; so does this list.
    if (alive == Lock::kFree) return Probe::kDead;
    ListedPipe found;
    if (!ParseMetaLine(ReadLine(meta.get()), &found)) {
      // Only the listener's owner can write it: being replaced right now.
      found = ListedPipe();
    }
    found.name = pipe->name;
    found.path = pipe->path;
    *pipe = std::move(found);
    pipe->uid = static_cast<int64_t>(st.st_uid);
    pipe->user = UserNameOf(st.st_uid);
    return Probe::kLive;
  }
  const bool meta_denied = meta.get() < 0 && errno == EACCES;
  // No metadata: a listener that is starting holds the name lock alone.
  Fd lock(OpenUntrusted(lock_path));
  if (lock.get() < 0) {
    return errno == EACCES || meta_denied ? Probe::kUnreadable : Probe::kDead;
  }
  if (::fstat(lock.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Probe::kDead;
  }
  if (::flock(lock.get(), LOCK_SH | LOCK_NB) == 0) {
    ::flock(lock.get(), LOCK_UN);
    return Probe::kDead;
  }
  if (errno != EWOULDBLOCK && errno != EAGAIN) return Probe::kDead;
  if (meta_denied) return Probe::kUnreadable;
  pipe->uid = static_cast<int64_t>(st.st_uid);
  pipe->user = UserNameOf(st.st_uid);
  return Probe::kLive;
}

}  // namespace

absl::StatusOr<ListResult> FindListeners(const std::string& dir_flag) {
  const std::string dir = dir_flag.empty() ? RuntimeDir() : dir_flag;
  std::unique_ptr<DIR, Closer> d(::opendir(dir.c_str()));
  ListResult result;
  if (d == nullptr) {
    const int err = errno;
    if (err == ENOENT && dir_flag.empty()) return result;  // nothing yet
    return absl::ErrnoToStatus(
        err,
        absl::StrCat("canal list: cannot read the directory \"", dir, "\""));
  }
  const std::string prefix = absl::EndsWith(dir, "/") ? dir : dir + "/";
  while (dirent* entry = ::readdir(d.get())) {
    const absl::string_view file = entry->d_name;
    if (!absl::EndsWith(file, kLockSuffix) ||
        file.size() == kLockSuffix.size()) {
      continue;
    }
    ListedPipe pipe;
    pipe.name = std::string(file.substr(0, file.size() - kLockSuffix.size()));
    pipe.path = prefix + pipe.name;
    switch (ProbeListener(pipe.path, &pipe)) {
      case Probe::kLive:
        result.pipes.push_back(std::move(pipe));
        break;
      case Probe::kUnreadable:
        ++result.unreadable;
        break;
      case Probe::kDead:
        break;
    }
  }
  std::sort(
      result.pipes.begin(), result.pipes.end(),
      [](const ListedPipe& a, const ListedPipe& b) { return a.name < b.name; });
  return result;
}

}  // namespace canal_cli
