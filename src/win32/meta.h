// SPDX-License-Identifier: Apache-2.0
// A listener's limits and liveness, published for its clients.
//
// Windows tells a client the pipe type (GetNamedPipeInfo) but not canal's
// max_message_size, which a writer must check before sending (semantics row
// 2), nor whether the listener behind a name is still open: a closed
// listener's accepted channels keep the pipe's instances (clients see them
// all busy), and a listener with max_instances = 1 has, for a moment between
// two channels, no instance at all (clients see no pipe). The listener
// publishes both in a small named section,
// `Local\canal-pipe-meta-<hash of the upper-cased pipe path>`.
//
// Anyone in the session can create or hold a named section, so a section is
// evidence only if
//   - its owner (GetSecurityInfo) is a user the reader trusts: a client
//     trusts the user it expects the server to run as (the listener sets
//     itself as owner, and nobody can set another user as owner without
//     SeRestorePrivilege);
//   - its content is well-formed and says "open";
//   - the process it names is still running and was created at the time it
//     records (a crashed listener leaves "open" behind; its pid may be
//     reused).
// A listener writes "closed" when it is closed, and keeps the section until
// its last accepted channel is gone, so that a client that finds every
// instance busy can tell a closed listener (NotFound) from a busy one (wait).
//
// Layout (little-endian, 32 bytes): 0..3 "CNLM", 4..7 version 2, 8..11
// max_message_size, 12..15 state (0 being written, 1 open, 2 closed),
// 16..19 listener process id, 20..23 flags (bit 0: the listener sends each
// client a shared-memory offer, src/internal/shm_channel.h; readers of
// older sections see 0), 24..31 the listener process's creation time
// (FILETIME).

#ifndef CANAL_SRC_WIN32_META_H_
#define CANAL_SRC_WIN32_META_H_

#include <windows.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/win32/io.h"

namespace canal {
namespace internal {
namespace win32 {

// The section a listener publishes, mapped for as long as the listener state
// lives (its last accepted channel included).
class PublishedMeta {
 public:
  // Creates the section for `pipe_path` with `security_attributes` (the
  // listener's DACL, src/win32/security.h), owned by `own_sid`, and marks it
  // open. A section that already exists is reused if it is this user's and
  // stale (closed, or its listener process is gone): an earlier listener's
  // section that some other process still holds must not block a restart.
  // AlreadyExists if it belongs to a live listener, if another user owns it
  // (it cannot be told apart from a squatter, and clients would not trust
  // it), or if it cannot be opened at all (ERROR_ACCESS_DENIED: another
  // user's section that denies us). Other failures as they are.
  static absl::StatusOr<std::unique_ptr<PublishedMeta>> Publish(
      const std::wstring& pipe_path, absl::string_view name,
      uint32_t max_message_size, bool offers_shared_memory,
      SECURITY_ATTRIBUTES* security_attributes, const std::wstring& own_sid);

  // Marks the section closed: from now on clients get NotFound.
  void MarkClosed();

  // Marks it closed (if it was not) and releases it.
  ~PublishedMeta();
  PublishedMeta(const PublishedMeta&) = delete;
  PublishedMeta& operator=(const PublishedMeta&) = delete;

 private:
  PublishedMeta(ScopedHandle section, void* view);

  ScopedHandle section_;
  void* view_;
  bool closed_ = false;
};

// What a client can tell about the listener of a name from its section.
enum class Liveness {
  kAlive,    // A trusted section says open and its process runs (or cannot
             // be inspected).
  kClosed,   // A trusted section says closed, or its process is gone.
  kUnknown,  // No section, one of an untrusted owner, or a malformed one:
             // the name's server (if any) is not a canal listener we trust.
};

// Reads the section for `pipe_path`; only a section owned by one of
// `trusted_owners` (SID strings) counts.
Liveness ListenerLiveness(const std::wstring& pipe_path,
                          const std::vector<std::wstring>& trusted_owners);

// What a client just connected to a server learns from its section.
struct ListenerInfo {
  // The published max_message_size, or 0xffffffff if there is none.
  uint32_t max_message_size = 0xffffffffu;
  // Whether the listener sends a shared-memory offer first.
  bool shared_memory = false;
};

// Reads the section for `pipe_path` published by a section owned by
// `server_sid` (the user of the server a client has just connected to).
// The offer flag counts only if the section names `server_pid` (the
// process at the other end of the pipe): a client that waited for an offer
// from a server that never sends one would read its first bytes as one.
ListenerInfo ReadListenerInfo(const std::wstring& pipe_path,
                              const std::wstring& server_sid,
                              uint32_t server_pid);

// `Local\canal-pipe-meta-<hash>` for `pipe_path`.
std::wstring ListenerMetaName(const std::wstring& pipe_path);

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_META_H_
