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

namespace canal {
namespace internal {
namespace {

constexpr absl::string_view kMetaSuffix = ".canal~lock";
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
    ssize_t n = ::pread(fd, &(*out)[got], out->size() - got,
                        static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out->resize(got);
  return true;
}

}  // namespace

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
                      "\n");
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
    }
    // Other keys: from a later version; ignored.
  }
  if (!have_mode || !have_access || !have_max_msg) return false;
  *meta = m;
  return true;
}

absl::StatusOr<UniqueFd> LockMeta(absl::string_view op, absl::string_view name,
                                  const std::string& meta_path,
                                  std::string* old_contents) {
  // A listener that is closing unlinks the file while still holding the lock.
  // If we opened the old file just before that, our lock would be on an
  // unlinked inode that the next listener never sees; so after locking,
  // check that the path still names what we locked, and start over if not.
  for (int attempt = 0; attempt < 100; ++attempt) {
    UniqueFd fd(::open(meta_path.c_str(),
                       O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) {
      const int err = errno;
      return ErrnoError(op, name,
                        absl::StrCat("cannot open the lock file \"", meta_path,
                                     "\""),
                        err);
    }
    if (Flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (IsWouldBlock(err)) {
        return ErrnoError(absl::StatusCode::kAlreadyExists, op, name,
                          "a live listener already has this name", err);
      }
      return ErrnoError(op, name,
                        absl::StrCat("cannot lock \"", meta_path, "\""), err);
    }
    if (!SameFile(FileIdOfFd(fd.get()), FileIdOfPath(meta_path))) continue;
    if (!ReadSmallFile(fd.get(), old_contents)) old_contents->clear();
    return fd;
  }
  return MakeError(absl::StatusCode::kUnavailable, op, name,
                   absl::StrCat("the lock file \"", meta_path,
                                "\" keeps being replaced"));
}

absl::Status SetFileAccess(absl::string_view op, absl::string_view name,
                           int fd, absl::string_view path, mode_t mode,
                           int64_t group) {
  if (group >= 0 && ::fchown(fd, static_cast<uid_t>(-1),
                             static_cast<gid_t>(group)) != 0) {
    const int err = errno;
    return ErrnoError(op, name,
                      absl::StrCat("cannot give \"", path, "\" to group ",
                                   group),
                      err);
  }
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    return ErrnoError(op, name,
                      absl::StrCat("cannot set the mode of \"", path, "\""),
                      err);
  }
  return absl::OkStatus();
}

absl::Status WriteMeta(absl::string_view op, absl::string_view name, int fd,
                       const ListenerMeta& meta) {
  const std::string line = FormatMeta(meta);
  if (::ftruncate(fd, 0) != 0) {
    const int err = errno;
    return ErrnoError(op, name, "cannot truncate the lock file", err);
  }
  // One pwrite: a reader sees either a prefix (no newline yet: "starting")
  // or the whole line.
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::pwrite(fd, line.data() + done, line.size() - done,
                         static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return ErrnoError(op, name, "cannot write the lock file", err);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status CreateSlots(absl::string_view op, absl::string_view name,
                         absl::string_view socket_path, int count, mode_t mode,
                         int64_t group) {
  for (int k = 0; k < count; ++k) {
    const std::string path = SlotPathFor(socket_path, k);
    // A client of a dead listener may still hold a lock on an old slot file;
    // a fresh file makes this listener's instances start out free.
    ::unlink(path.c_str());
    int fd = ::open(path.c_str(),
                    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      const int err = errno;
      RemoveSlots(socket_path, k);
      return ErrnoError(op, name,
                        absl::StrCat("cannot create the slot file \"", path,
                                     "\""),
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

absl::StatusOr<ListenerState> ProbeListener(absl::string_view op,
                                            absl::string_view name,
                                            absl::string_view socket_path,
                                            ListenerMeta* meta) {
  const std::string meta_path = MetaPathFor(socket_path);
  UniqueFd fd(::open(meta_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) return ListenerState::kAbsent;
    return ErrnoError(op, name,
                      absl::StrCat("cannot open the lock file \"", meta_path,
                                   "\""),
                      err);
  }
  // A shared lock succeeds only if no listener holds its exclusive one. It
  // is released again at once (closing the descriptor drops it anyway).
  if (Flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    Flock(fd.get(), LOCK_UN);
    return ListenerState::kStale;
  }
  const int err = errno;
  if (!IsWouldBlock(err)) {
    return ErrnoError(op, name,
                      absl::StrCat("cannot test the lock on \"", meta_path,
                                   "\""),
                      err);
  }
  std::string text;
  if (!ReadSmallFile(fd.get(), &text) || !ParseMeta(text, meta)) {
    return ListenerState::kStarting;
  }
  return ListenerState::kLive;
}

absl::StatusOr<UniqueFd> TryAcquireSlot(absl::string_view op,
                                        absl::string_view name,
                                        absl::string_view socket_path,
                                        int count) {
  // Start at a pid-dependent slot so that many clients do not all fight
  // over slot 0 first.
  const int start = static_cast<int>(::getpid() % count);
  for (int i = 0; i < count; ++i) {
    const std::string path = SlotPathFor(socket_path, (start + i) % count);
    // Read-only is enough for flock, and keeps working when later versions
    // let other users connect.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) {
      const int err = errno;
      if (err == ENOENT) continue;  // Listener starting or stopping.
      return ErrnoError(op, name,
                        absl::StrCat("cannot open the slot file \"", path,
                                     "\""),
                        err);
    }
    if (Flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (IsWouldBlock(err)) continue;
      return ErrnoError(op, name,
                        absl::StrCat("cannot lock the slot file \"", path,
                                     "\""),
                        err);
    }
    // A new listener may have replaced the file between open and flock; a
    // lock on the old inode would not count against it.
    if (!SameFile(FileIdOfFd(fd.get()), FileIdOfPath(path))) continue;
    return fd;
  }
  return UniqueFd();
}

}  // namespace internal
}  // namespace canal
