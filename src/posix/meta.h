// The files a POSIX listener keeps beside its socket, so that clients learn
// its mode, direction and limits without any handshake on the socket (which
// keeps byte mode a plain Unix stream socket):
//
//   <socket>.canal~lock   One text line, e.g.
//                           canal 1 mode=message access=inbound
//                           max_instances=4 max_message_size=67108864
//                           buffer_size=65536 pid=1234
//                         (on one line). The listener holds flock(LOCK_EX)
//                         on it for its whole life, so "the lock is held"
//                         means "a live listener has this name"; the kernel
//                         drops the lock if the listener dies, which is how
//                         stale files are recognised. '~' is not allowed in
//                         portable names, so these never collide with a pipe.
//   <socket>.canal~slot<K> K = 0..max_instances-1, only with an instance
//                         limit. A client holds flock(LOCK_EX) on one free
//                         slot for the life of its channel; when every slot
//                         is locked the listener is busy.
//
// Unknown keys in the line are ignored, so later versions can add some.

#ifndef CANAL_SRC_POSIX_META_H_
#define CANAL_SRC_POSIX_META_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include <sys/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "canal/types.h"
#include "src/posix/fd_util.h"

namespace canal {
namespace internal {

struct ListenerMeta {
  PipeMode mode = PipeMode::kByte;
  PipeAccess access = PipeAccess::kDuplex;
  int max_instances = kUnlimitedInstances;
  size_t max_message_size = 64 * 1024 * 1024;
  size_t buffer_size = 0;
  int64_t pid = 0;
};

std::string MetaPathFor(absl::string_view socket_path);
std::string SlotPathFor(absl::string_view socket_path, int slot);

std::string FormatMeta(const ListenerMeta& meta);
// False for anything that is not a complete, valid version-1 line.
bool ParseMeta(absl::string_view text, ListenerMeta* meta);

// --- Listener side ---------------------------------------------------------

// Opens (creating, mode 0600) and exclusively locks the metadata file.
// AlreadyExists if a live listener holds it. On success `*old_contents` gets
// what a previous (dead) listener left in it.
absl::StatusOr<UniqueFd> LockMeta(absl::string_view op, absl::string_view name,
                                  const std::string& meta_path,
                                  std::string* old_contents);

// Gives the open metadata or slot file `fd` exactly the permission bits
// `mode` and, if `group` >= 0, that group (fchmod/fchown on the descriptor:
// no path is followed). Clients open these files read-only, so `mode` says
// who may find the listener (see MetaModeFor in peer_cred.h).
absl::Status SetFileAccess(absl::string_view op, absl::string_view name,
                           int fd, absl::string_view path, mode_t mode,
                           int64_t group);

// Replaces the contents of the locked metadata file.
absl::Status WriteMeta(absl::string_view op, absl::string_view name, int fd,
                       const ListenerMeta& meta);

// Creates fresh slot files 0..count-1 (removing any old ones first, which a
// client of a dead listener might still hold), with SetFileAccess(mode,
// group).
absl::Status CreateSlots(absl::string_view op, absl::string_view name,
                         absl::string_view socket_path, int count, mode_t mode,
                         int64_t group);

// Removes slot files 0..count-1. Only call while holding the metadata lock:
// then every slot file at these paths is ours.
void RemoveSlots(absl::string_view socket_path, int count);

// --- Client side -----------------------------------------------------------

enum class ListenerState {
  kAbsent,    // No metadata file.
  kStale,     // A metadata file nobody holds: its listener is gone.
  kStarting,  // Locked, but the line is not (completely) written yet.
  kLive,      // Locked and readable: `meta` is valid.
};

// Reads the state of the listener on `socket_path`.
absl::StatusOr<ListenerState> ProbeListener(absl::string_view op,
                                            absl::string_view name,
                                            absl::string_view socket_path,
                                            ListenerMeta* meta);

// Tries to lock a free slot without waiting. Returns the locked descriptor,
// or an invalid UniqueFd if every slot is taken (or the slot files are not
// there, which happens only while a listener starts or stops).
absl::StatusOr<UniqueFd> TryAcquireSlot(absl::string_view op,
                                        absl::string_view name,
                                        absl::string_view socket_path,
                                        int count);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_META_H_
