// SPDX-License-Identifier: Apache-2.0
// The files a POSIX listener keeps beside its socket, so that clients learn
// its mode, direction and limits without any handshake on the socket (which
// keeps byte mode a plain Unix stream socket):
//
//   <socket>.canal~lock   Empty. The listener holds flock(LOCK_EX) on it for
//                         its whole life: "the lock is held" means "a
//                         listener owns this name", and the kernel drops the
//                         lock if the listener dies. Always mode 0600,
//                         whatever the access policy: whoever can open a file
//                         can hold a lock on it, and a lock held by another
//                         user after the listener died would keep the name
//                         from ever being reclaimed.
//   <socket>.canal~meta   One text line, e.g.
//                           canal 1 mode=message access=inbound
//                           max_instances=4 max_message_size=67108864
//                           buffer_size=65536 pid=1234 [transport=shm]
//                         (on one line), readable by the classes the socket
//                         admits. Written to <socket>.canal~meta.new and
//                         renamed into place after listen(2), so a reader
//                         sees the whole line or nothing, and a line means
//                         "this listener was accepting connections". On
//                         Linux the listener also holds an open file
//                         description write lock (F_OFD_SETLK) on it for its
//                         whole life: a write lock needs the file open for
//                         writing, which only its owner (and root) can do,
//                         so any client can tell a live listener from a dead
//                         one's leftovers (F_OFD_GETLK) and nobody else can
//                         pretend to be alive.
//   <socket>.canal~slot<K> K = 0..max_instances-1, only with an instance
//                         limit. A client holds flock(LOCK_EX) on one free
//                         slot for the life of its channel; when every slot
//                         is locked the listener is busy.
//
// '~' is not allowed in portable names, so these never collide with a pipe.
// Every file is created by the listener that holds the name lock, with
// O_CREAT | O_EXCL | O_NOFOLLOW after removing whatever was at its path; a
// lock file that is not the listener user's own regular file is refused, not
// used. Clients open every file with O_NONBLOCK | O_NOFOLLOW (a FIFO or a
// link planted at one of these paths cannot block or redirect them), and
// trust only regular files owned by the server user they expect.
//
// Unknown keys in the line are ignored, so later versions can add some.

#ifndef CANAL_SRC_POSIX_META_H_
#define CANAL_SRC_POSIX_META_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "canal/types.h"
#include "src/posix/io.h"

namespace canal {
namespace internal {
namespace posix {

struct ListenerMeta {
  PipeMode mode = PipeMode::kByte;
  PipeAccess access = PipeAccess::kDuplex;
  int max_instances = kUnlimitedInstances;
  size_t max_message_size = 64 * 1024 * 1024;
  size_t buffer_size = 0;
  int64_t pid = 0;
  // transport=shm: the listener sends each client a shared-memory offer
  // first (src/internal/shm_channel.h).
  bool shared_memory = false;
};

std::string LockPathFor(absl::string_view socket_path);
std::string MetaPathFor(absl::string_view socket_path);
std::string SlotPathFor(absl::string_view socket_path, int slot);

std::string FormatMeta(const ListenerMeta& meta);
// False for anything that is not a complete, valid version-1 line.
bool ParseMeta(absl::string_view text, ListenerMeta* meta);

// --- Listener side ---------------------------------------------------------

// Takes the name: opens (creating it, mode 0600, if missing) and
// exclusively locks the lock file `lock_path`. AlreadyExists if a listener
// holds it; PermissionDenied if the path holds anything but a regular file
// of the effective user (a link, a FIFO, a directory, a socket, another
// user's file), which is left alone. A stale lock file with extra links or
// group/other permission bits is replaced by a fresh one, since someone may
// hold it open.
absl::StatusOr<UniqueFd> AcquireNameLock(absl::string_view op,
                                         absl::string_view name,
                                         const std::string& lock_path);

// Removes what an earlier listener of this name (or anyone else) left at the
// metadata paths of `socket_path`, and the slot files its metadata listed.
// Only call while holding the name lock. A directory at one of these paths
// is not removed: AlreadyExists.
absl::Status RemoveLeftovers(absl::string_view op, absl::string_view name,
                             absl::string_view socket_path);

// Gives the open metadata or slot file `fd` exactly the permission bits
// `mode` and, if `group` >= 0, that group (fchmod/fchown on the descriptor:
// no path is followed). Clients open these files read-only, so `mode` says
// who may find the listener (see MetaModeFor in security.h).
absl::Status SetFileAccess(absl::string_view op, absl::string_view name, int fd,
                           absl::string_view path, mode_t mode, int64_t group);

// Publishes `meta` for the listener on `socket_path` (see above), with
// SetFileAccess(mode, group). Returns the metadata file, on which this
// process holds the liveness lock while it stays open. Only call while
// holding the name lock.
absl::StatusOr<UniqueFd> PublishMeta(absl::string_view op,
                                     absl::string_view name,
                                     absl::string_view socket_path,
                                     const ListenerMeta& meta, mode_t mode,
                                     int64_t group);

// Creates fresh slot files 0..count-1 (removing whatever is at their paths
// first, e.g. an old slot file a client of a dead listener still holds),
// with SetFileAccess(mode, group).
absl::Status CreateSlots(absl::string_view op, absl::string_view name,
                         absl::string_view socket_path, int count, mode_t mode,
                         int64_t group);

// Removes slot files 0..count-1. Only call while holding the name lock:
// then every slot file at these paths is the holder's.
void RemoveSlots(absl::string_view socket_path, int count);

// --- Client side -----------------------------------------------------------

enum class ListenerState {
  kAbsent,    // No canal listener files: nobody, or a program that is not
              // canal.
  kStale,     // Only files of a listener that is gone.
  kStarting,  // A listener holds the name but has not published its
              // metadata yet (or this client cannot tell that it died).
  kLive,      // A live listener: `meta` and `owner` are valid.
};

struct ProbeResult {
  ListenerState state = ListenerState::kAbsent;
  ListenerMeta meta;
  uid_t owner = 0;  // Who owns the metadata file (and so the slot files).
};

// Reads the state of the listener on `socket_path`. Metadata owned by a
// user `expected` does not accept (see ExpectedServerAllows), or that is
// not a regular file, is PermissionDenied, as a server of that user would
// be.
absl::StatusOr<ProbeResult> ProbeListener(absl::string_view op,
                                          absl::string_view name,
                                          absl::string_view socket_path,
                                          const ExpectedServer& expected);

// Tries to lock a free slot without waiting. Returns the locked descriptor,
// or an invalid UniqueFd if every slot is taken (or the slot files are not
// there, which happens only while a listener starts or stops).
// PermissionDenied for a slot path that holds anything but a regular file
// of `owner` (the metadata file's owner).
absl::StatusOr<UniqueFd> TryAcquireSlot(absl::string_view op,
                                        absl::string_view name,
                                        absl::string_view socket_path,
                                        int count, uid_t owner);

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_META_H_
