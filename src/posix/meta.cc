// SPDX-License-Identifier: Apache-2.0
#include "src/posix/meta.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "src/internal/errors.h"
#include "src/posix/error.h"
#include "src/posix/security.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

constexpr absl::string_view kLockSuffix = ".canal~lock";
constexpr absl::string_view kMetaSuffix = ".canal~meta";
// Where the metadata line is written before it is renamed into place.
constexpr absl::string_view kNewSuffix = ".new";
constexpr absl::string_view kSlotSuffix = ".canal~slot";
// Far more than a version-1 line needs; bounds what a client reads.
constexpr size_t kMaxMetaSize = 4096;

const char* ModeName(PipeMode mode) {
  return mode == PipeMode::kMessage ? "message" : "byte";
}

const char* AccessName(PipeAccess access) {
  switch (access) {
    case PipeAccess::kInbound:
      return "inbound";
    case PipeAccess::kOutbound:
      return "outbound";
    case PipeAccess::kDuplex:
      break;
  }
  return "duplex";
}

// flock, retried on EINTR (possible for blocking locks on some systems; we
// only use LOCK_NB, but being defensive is cheap).
int Flock(int fd, int op) {
  int rc;
  do {
    rc = ::flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

bool IsWouldBlock(int err) { return err == EWOULDBLOCK || err == EAGAIN; }

// Reads up to kMaxMetaSize bytes from the start of `fd`.
bool ReadSmallFile(int fd, std::string* out) {
  out->assign(kMaxMetaSize, '\0');
  size_t got = 0;
  while (got < out->size()) {
    ssize_t n =
        ::pread(fd, &(*out)[got], out->size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out->resize(got);
  return true;
}

// Opens an existing file at a path someone else may control: never
// following a link there, never waiting for a FIFO's other end, never
// acquiring a controlling terminal. -1 with errno set on failure.
int OpenUntrusted(const std::string& path, int flags) {
  int fd;
  do {
    fd = ::open(path.c_str(),
                flags | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// What kind of file `st` describes, for messages.
const char* KindOf(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "a device";
}

// The open() errors that mean "something that is not a regular file is at
// the path" (O_NOFOLLOW on a link, a socket), as a kind for messages.
const char* KindOfOpenError(int err) {
  if (err == ELOOP) return "a symbolic link";
  if (err == ENXIO) return "a socket";
  return nullptr;
}

bool SameAsStat(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Removes whatever non-directory is at `path` (a directory entry only:
// nothing a link points to is touched). Missing is fine.
absl::Status RemoveEntry(absl::string_view op, absl::string_view name,
                         const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return absl::OkStatus();
    return ErrnoError(op, name, absl::StrCat("cannot inspect \"", path, "\""),
                      err);
  }
  if (S_ISDIR(st.st_mode)) {
    return MakeError(absl::StatusCode::kAlreadyExists, op, name,
                     absl::StrCat("\"", path,
                                  "\" is a directory, where canal keeps a "
                                  "file of this listener; remove it"));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    const int err = errno;
    return ErrnoError(
        op, name,
        absl::StrCat("cannot remove ", KindOf(st), " \"", path,
                     "\" owned by uid ", static_cast<int64_t>(st.st_uid),
                     " from where canal keeps a file of this "
                     "listener"),
        err);
  }
  return absl::OkStatus();
}

enum class LockState { kHeld, kFree, kUnknown };

// Whether some open file description holds a write lock on `fd`'s file
// (kUnknown where the system has no open file description locks).
LockState TestWriteLock(int fd) {
#if defined(F_OFD_GETLK)
  struct flock probe = {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  probe.l_start = 0;
  probe.l_len = 0;
  if (::fcntl(fd, F_OFD_GETLK, &probe) != 0) return LockState::kUnknown;
  // A read lock can be taken through a read-only descriptor by anyone who
  // may read the file; it never means a listener.
  return probe.l_type == F_WRLCK ? LockState::kHeld : LockState::kFree;
#else
  (void)fd;
  return LockState::kUnknown;
#endif
}

// Whether the lock file of `socket_path` is held, if this process can tell:
// it must be a regular file of `owner` that we may open.
LockState TestNameLock(absl::string_view socket_path, uid_t owner) {
  const std::string lock_path = LockPathFor(socket_path);
  UniqueFd fd(OpenUntrusted(lock_path, O_RDONLY));
  if (!fd.valid()) return LockState::kUnknown;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_uid != owner) {
    return LockState::kUnknown;
  }
  if (Flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return LockState::kFree;
  return IsWouldBlock(errno) ? LockState::kHeld : LockState::kUnknown;
}

}  // namespace

std::string LockPathFor(absl::string_view socket_path) {
  return absl::StrCat(socket_path, kLockSuffix);
}

std::string MetaPathFor(absl::string_view socket_path) {
  return absl::StrCat(socket_path, kMetaSuffix);
}

std::string SlotPathFor(absl::string_view socket_path, int slot) {
  return absl::StrCat(socket_path, kSlotSuffix, slot);
}

std::string FormatMeta(const ListenerMeta& meta) {
  return absl::StrCat("canal 1 mode=", ModeName(meta.mode),
                      " access=", AccessName(meta.access),
                      " max_instances=", meta.max_instances,
                      " max_message_size=", meta.max_message_size,
                      " buffer_size=", meta.buffer_size, " pid=", meta.pid,
                      meta.shared_memory ? " transport=shm" : "", "\n");
}

bool ParseMeta(absl::string_view text, ListenerMeta* meta) {
  // A line without its newline is still being written.
  if (text.empty() || text.back() != '\n') return false;
  text.remove_suffix(1);
  std::vector<absl::string_view> words =
      absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (words.size() < 2 || words[0] != "canal" || words[1] != "1") return false;
  ListenerMeta m;
  bool have_mode = false, have_access = false, have_max_msg = false;
  for (size_t i = 2; i < words.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(words[i], absl::MaxSplits('=', 1));
    const absl::string_view key = kv.first, value = kv.second;
    if (key == "mode") {
      if (value == "byte") {
        m.mode = PipeMode::kByte;
      } else if (value == "message") {
        m.mode = PipeMode::kMessage;
      } else {
        return false;
      }
      have_mode = true;
    } else if (key == "access") {
      if (value == "duplex") {
        m.access = PipeAccess::kDuplex;
      } else if (value == "inbound") {
        m.access = PipeAccess::kInbound;
      } else if (value == "outbound") {
        m.access = PipeAccess::kOutbound;
      } else {
        return false;
      }
      have_access = true;
    } else if (key == "max_instances") {
      if (!absl::SimpleAtoi(value, &m.max_instances) || m.max_instances < 0 ||
          m.max_instances > kMaxInstanceLimit) {
        return false;
      }
    } else if (key == "max_message_size") {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v) || v == 0 || v > 0xffffffffu) {
        return false;
      }
      m.max_message_size = static_cast<size_t>(v);
      have_max_msg = true;
    } else if (key == "buffer_size") {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v)) return false;
      m.buffer_size = static_cast<size_t>(v);
    } else if (key == "pid") {
      if (!absl::SimpleAtoi(value, &m.pid)) return false;
    } else if (key == "transport") {
      if (value == "shm") {
        m.shared_memory = true;
      } else if (value != "pipe") {
        return false;
      }
    }
    // Other keys: from a later version; ignored.
  }
  if (!have_mode || !have_access || !have_max_msg) return false;
  *meta = m;
  return true;
}

absl::StatusOr<UniqueFd> AcquireNameLock(absl::string_view op,
                                         absl::string_view name,
                                         const std::string& lock_path) {
  const uid_t me = ::geteuid();
  // Each pass either takes the lock or finds the path changed under it
  // (another listener closing, or replacing a stale file) and looks again.
  for (int attempt = 0; attempt < 100; ++attempt) {
    struct stat st;
    if (::lstat(lock_path.c_str(), &st) != 0) {
      const int err = errno;
      if (err != ENOENT) {
        return ErrnoError(
            op, name,
            absl::StrCat("cannot inspect the lock file \"", lock_path, "\""),
            err);
      }
      // Read-only is enough for flock. Nobody else can open the new file
      // before we lock it except our own user and root (mode 0600).
      UniqueFd fd(::open(lock_path.c_str(),
                         O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         0600));
      if (!fd.valid()) {
        const int open_err = errno;
        if (open_err == EEXIST) continue;
        return ErrnoError(
            op, name,
            absl::StrCat("cannot create the lock file \"", lock_path, "\""),
            open_err);
      }
      if (Flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        const int lock_err = errno;
        if (IsWouldBlock(lock_err)) {
          // Another Create of ours found the new file first and serves.
          return ErrnoError(absl::StatusCode::kAlreadyExists, op, name,
                            "another listener is taking this name", lock_err);
        }
        return ErrnoError(op, name,
                          absl::StrCat("cannot lock \"", lock_path, "\""),
                          lock_err);
      }
      if (!SameFile(FileIdOfFd(fd.get()), FileIdOfPath(lock_path))) continue;
      return fd;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != me) {
      // Not canal's: whoever made it may hold a lock on it or change it at
      // will, and removing it could race another listener taking the name.
      return MakeError(
          absl::StatusCode::kPermissionDenied, op, name,
          absl::StrCat("\"", lock_path, "\" is ", KindOf(st), " owned by uid ",
                       static_cast<int64_t>(st.st_uid),
                       ", not a lock file of uid ", static_cast<int64_t>(me),
                       "; canal leaves it alone (remove it, or use a "
                       "directory that others cannot write)"));
    }
    UniqueFd fd(OpenUntrusted(lock_path, O_RDONLY));
    if (!fd.valid()) {
      const int err = errno;
      // Replaced between lstat and open: look again.
      if (err == ENOENT || KindOfOpenError(err) != nullptr) continue;
      return ErrnoError(
          op, name,
          absl::StrCat("cannot open the lock file \"", lock_path, "\""), err);
    }
    struct stat opened;
    if (::fstat(fd.get(), &opened) != 0 || !SameAsStat(st, opened)) continue;
    if (Flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (IsWouldBlock(err)) {
        return ErrnoError(absl::StatusCode::kAlreadyExists, op, name,
                          "a live listener already has this name", err);
      }
      return ErrnoError(op, name,
                        absl::StrCat("cannot lock \"", lock_path, "\""), err);
    }
    // A listener that is closing unlinks the file while still holding the
    // lock; a lock on an unlinked inode would not keep the next listener
    // out.
    if (!SameFile(FileIdOfFd(fd.get()), FileIdOfPath(lock_path))) continue;
    if (::fstat(fd.get(), &opened) != 0) continue;
    if (opened.st_nlink != 1 || (opened.st_mode & 077) != 0) {
      // A dead listener's file, but reachable under another name or by
      // other users, who may still hold it open and wait for its lock.
      // Holding the lock, we may remove it; the next pass makes a new one.
      ::unlink(lock_path.c_str());
      continue;
    }
    return fd;  // A dead listener's lock file: ours again.
  }
  return MakeError(
      absl::StatusCode::kUnavailable, op, name,
      absl::StrCat("the lock file \"", lock_path, "\" keeps being replaced"));
}

absl::Status RemoveLeftovers(absl::string_view op, absl::string_view name,
                             absl::string_view socket_path) {
  const std::string meta_path = MetaPathFor(socket_path);
  // The slot count of the previous listener, if its metadata is ours.
  int old_slots = 0;
  struct stat st;
  if (::lstat(meta_path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_uid == ::geteuid()) {
    UniqueFd fd(OpenUntrusted(meta_path, O_RDONLY));
    struct stat opened;
    std::string text;
    ListenerMeta old;
    if (fd.valid() && ::fstat(fd.get(), &opened) == 0 &&
        SameAsStat(st, opened) && ReadSmallFile(fd.get(), &text) &&
        ParseMeta(text, &old)) {
      old_slots = old.max_instances;
    }
  }
  for (const std::string& path :
       {meta_path, absl::StrCat(meta_path, kNewSuffix)}) {
    absl::Status removed = RemoveEntry(op, name, path);
    if (!removed.ok()) return removed;
  }
  RemoveSlots(socket_path, old_slots);
  return absl::OkStatus();
}

absl::Status SetFileAccess(absl::string_view op, absl::string_view name, int fd,
                           absl::string_view path, mode_t mode, int64_t group) {
  if (group >= 0 &&
      ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(group)) != 0) {
    const int err = errno;
    return ErrnoError(
        op, name, absl::StrCat("cannot give \"", path, "\" to group ", group),
        err);
  }
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    return ErrnoError(
        op, name, absl::StrCat("cannot set the mode of \"", path, "\""), err);
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> PublishMeta(absl::string_view op,
                                     absl::string_view name,
                                     absl::string_view socket_path,
                                     const ListenerMeta& meta, mode_t mode,
                                     int64_t group) {
  const std::string meta_path = MetaPathFor(socket_path);
  const std::string new_path = absl::StrCat(meta_path, kNewSuffix);
  absl::Status removed = RemoveEntry(op, name, new_path);
  if (!removed.ok()) return removed;
  UniqueFd fd(::open(new_path.c_str(),
                     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    const int err = errno;
    return ErrnoError(op, name,
                      absl::StrCat("cannot create \"", new_path, "\""), err);
  }
  auto fail = [&](absl::Status status) {
    if (SameFile(FileIdOfFd(fd.get()), FileIdOfPath(new_path))) {
      ::unlink(new_path.c_str());
    }
    return status;
  };
#if defined(F_OFD_SETLK)
  struct flock lock = {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 0;
  if (::fcntl(fd.get(), F_OFD_SETLK, &lock) != 0) {
    const int err = errno;
    // EINVAL: a kernel without open file description locks (before 3.15);
    // clients then fall back to the name lock.
    if (err != EINVAL) {
      return fail(ErrnoError(
          op, name, absl::StrCat("cannot lock \"", new_path, "\""), err));
    }
  }
#endif
  const std::string line = FormatMeta(meta);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::pwrite(fd.get(), line.data() + done, line.size() - done,
                         static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return fail(ErrnoError(
          op, name, absl::StrCat("cannot write \"", new_path, "\""), err));
    }
    done += static_cast<size_t>(n);
  }
  absl::Status access =
      SetFileAccess(op, name, fd.get(), new_path, mode, group);
  if (!access.ok()) return fail(access);
  if (::rename(new_path.c_str(), meta_path.c_str()) != 0) {
    const int err = errno;
    return fail(ErrnoError(
        op, name,
        absl::StrCat("cannot rename \"", new_path, "\" to \"", meta_path, "\""),
        err));
  }
  if (!SameFile(FileIdOfFd(fd.get()), FileIdOfPath(meta_path))) {
    return MakeError(absl::StatusCode::kPermissionDenied, op, name,
                     absl::StrCat("\"", meta_path,
                                  "\" was replaced right after it was "
                                  "written (is its directory writable by "
                                  "others?)"));
  }
  return fd;
}

absl::Status CreateSlots(absl::string_view op, absl::string_view name,
                         absl::string_view socket_path, int count, mode_t mode,
                         int64_t group) {
  for (int k = 0; k < count; ++k) {
    const std::string path = SlotPathFor(socket_path, k);
    // A client of a dead listener may still hold a lock on an old slot file;
    // a fresh file makes this listener's instances start out free.
    absl::Status removed = RemoveEntry(op, name, path);
    if (!removed.ok()) {
      RemoveSlots(socket_path, k);
      return removed;
    }
    int fd = ::open(path.c_str(),
                    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      const int err = errno;
      RemoveSlots(socket_path, k);
      return ErrnoError(
          op, name, absl::StrCat("cannot create the slot file \"", path, "\""),
          err);
    }
    absl::Status access = SetFileAccess(op, name, fd, path, mode, group);
    CloseFd(fd);
    if (!access.ok()) {
      RemoveSlots(socket_path, k + 1);
      return access;
    }
  }
  return absl::OkStatus();
}

void RemoveSlots(absl::string_view socket_path, int count) {
  for (int k = 0; k < count; ++k) {
    ::unlink(SlotPathFor(socket_path, k).c_str());
  }
}

namespace {

// Whether the name lock says a listener that has not published its
// metadata yet holds the name.
ListenerState ProbeStartup(absl::string_view socket_path,
                           const ExpectedServer& expected) {
  struct stat st;
  if (::lstat(LockPathFor(socket_path).c_str(), &st) != 0) {
    return ListenerState::kAbsent;
  }
  // canal makes nothing else there: not a listener's.
  if (!S_ISREG(st.st_mode) ||
      !ExpectedServerAllows(expected, static_cast<int64_t>(st.st_uid))) {
    return ListenerState::kAbsent;
  }
  switch (TestNameLock(socket_path, st.st_uid)) {
    case LockState::kFree:
      return ListenerState::kStale;
    case LockState::kHeld:
    case LockState::kUnknown:  // Another user's lock (mode 0600).
      break;
  }
  return ListenerState::kStarting;
}

}  // namespace

absl::StatusOr<ProbeResult> ProbeListener(absl::string_view op,
                                          absl::string_view name,
                                          absl::string_view socket_path,
                                          const ExpectedServer& expected) {
  const std::string meta_path = MetaPathFor(socket_path);
  ProbeResult result;
  UniqueFd fd(OpenUntrusted(meta_path, O_RDONLY));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      result.state = ProbeStartup(socket_path, expected);
      return result;
    }
    if (const char* kind = KindOfOpenError(err)) {
      return ErrnoError(
          absl::StatusCode::kPermissionDenied, op, name,
          absl::StrCat("the listener's metadata file \"", meta_path, "\" is ",
                       kind, "; canal does not use it"),
          err);
    }
    return ErrnoError(op, name,
                      absl::StrCat("cannot open the listener's metadata "
                                   "file \"",
                                   meta_path, "\""),
                      err);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return ErrnoError(op, name,
                      absl::StrCat("cannot inspect \"", meta_path, "\""), err);
  }
  if (!S_ISREG(st.st_mode)) {
    return MakeError(
        absl::StatusCode::kPermissionDenied, op, name,
        absl::StrCat("the listener's metadata file \"", meta_path, "\" is ",
                     KindOf(st), "; canal does not use it"));
  }
  // Whoever wrote the file decides the mode and limits the client uses: it
  // must be the server the client is willing to talk to.
  if (!ExpectedServerAllows(expected, static_cast<int64_t>(st.st_uid))) {
    return MakeError(
        absl::StatusCode::kPermissionDenied, op, name,
        absl::StrCat("the listener's metadata file \"", meta_path,
                     "\" is owned by uid ", static_cast<int64_t>(st.st_uid),
                     ", expected ", DescribeExpectedServer(expected),
                     " (set ConnectOptions::expected_server to accept "
                     "another server user)"));
  }
  std::string text;
  if (!ReadSmallFile(fd.get(), &text) || !ParseMeta(text, &result.meta)) {
    result.state = ListenerState::kStarting;
    return result;
  }
  result.owner = st.st_uid;
  LockState alive = TestWriteLock(fd.get());
  if (alive == LockState::kUnknown)
    alive = TestNameLock(socket_path, st.st_uid);
  // Unknown (another user's lock file, on a system without open file
  // description locks): assume alive; connect(2) tells.
  result.state =
      alive == LockState::kFree ? ListenerState::kStale : ListenerState::kLive;
  return result;
}

absl::StatusOr<UniqueFd> TryAcquireSlot(absl::string_view op,
                                        absl::string_view name,
                                        absl::string_view socket_path,
                                        int count, uid_t owner) {
  // Start at a pid-dependent slot so that many clients do not all fight
  // over slot 0 first.
  const int start = static_cast<int>(::getpid() % count);
  for (int i = 0; i < count; ++i) {
    const std::string path = SlotPathFor(socket_path, (start + i) % count);
    // Read-only is enough for flock, and works for clients of other users.
    UniqueFd fd(OpenUntrusted(path, O_RDONLY));
    if (!fd.valid()) {
      const int err = errno;
      if (err == ENOENT) continue;  // Listener starting or stopping.
      if (const char* kind = KindOfOpenError(err)) {
        return ErrnoError(absl::StatusCode::kPermissionDenied, op, name,
                          absl::StrCat("the slot file \"", path, "\" is ", kind,
                                       "; canal does not use it"),
                          err);
      }
      return ErrnoError(
          op, name, absl::StrCat("cannot open the slot file \"", path, "\""),
          err);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) {
      const int err = errno;
      return ErrnoError(op, name, absl::StrCat("cannot inspect \"", path, "\""),
                        err);
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != owner) {
      return MakeError(
          absl::StatusCode::kPermissionDenied, op, name,
          absl::StrCat("the slot file \"", path, "\" is ", KindOf(st),
                       " owned by uid ", static_cast<int64_t>(st.st_uid),
                       ", not one of the listener's (uid ",
                       static_cast<int64_t>(owner),
                       "); canal does not use it"));
    }
    if (Flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (IsWouldBlock(err)) continue;
      return ErrnoError(
          op, name, absl::StrCat("cannot lock the slot file \"", path, "\""),
          err);
    }
    // A new listener may have replaced the file between open and flock; a
    // lock on the old inode would not count against it.
    if (!SameFile(FileIdOfFd(fd.get()), FileIdOfPath(path))) continue;
    return fd;
  }
  return UniqueFd();
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
