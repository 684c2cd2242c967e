// SPDX-License-Identifier: Apache-2.0
// canal: local inter-process communication with Windows named-pipe semantics
// on every OS.
//
// This header holds the plain value types shared by `Channel` and `Listener`:
// modes, options and results. See canal/canal.h for an overview.

#ifndef CANAL_TYPES_H_
#define CANAL_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace canal {

// How data is framed. Mirrors PIPE_TYPE_BYTE / PIPE_TYPE_MESSAGE.
enum class PipeMode {
  // A stream of bytes; write boundaries are not kept. On POSIX this is a plain
  // Unix stream socket, so any Unix-socket program interoperates with it.
  kByte,
  // Each write is delivered as one message, of any size up to
  // `ListenerOptions::max_message_size`, including empty messages.
  kMessage,
};

// Direction of data, seen from the listener. Mirrors PIPE_ACCESS_*.
enum class PipeAccess {
  kDuplex,    // Both sides read and write.
  kInbound,   // Clients write, the listener reads.
  kOutbound,  // The listener writes, clients read.
};

// `ListenerOptions::max_instances` value meaning "no limit" (255 on Windows,
// PIPE_UNLIMITED_INSTANCES).
inline constexpr int kUnlimitedInstances = 0;

// The largest explicit instance limit; Windows reserves 255 for "unlimited".
inline constexpr int kMaxInstanceLimit = 254;

// The default and the largest value of `max_handles_per_message`
// (ListenerOptions, ConnectOptions). The largest is what Linux accepts in
// one sendmsg (SCM_MAX_FD).
inline constexpr int kDefaultMaxHandlesPerMessage = 64;
inline constexpr int kMaxHandlesPerMessageLimit = 253;

// How a connected channel carries its data. Mirrors nothing in Windows,
// whose pipes are always kernel objects; see docs/semantics.md.
enum class Transport {
  // Every byte goes through the kernel's pipe or socket.
  kPipe,
  // Data goes through two rings in memory shared by the two processes (one
  // per direction), set up over the pipe when the client connects; the pipe
  // stays open to tell each side when the other is gone, and carries the
  // messages with handles (in their place among the rings' messages).
  kSharedMemory,
};

// `ListenerOptions::ring_size` limits: each direction's ring, a power of
// two.
inline constexpr size_t kDefaultRingSize = 256 * 1024;
inline constexpr size_t kMinRingSize = 4 * 1024;
inline constexpr size_t kMaxRingSize = size_t{1} << 30;

// The default `spin` of ListenerOptions and ConnectOptions.
inline constexpr absl::Duration kDefaultSharedMemorySpin =
    absl::Microseconds(50);

// Who is at the other end of a channel.
struct PeerInfo {
  int64_t process_id = 0;  // The peer's process id, 0 if the system cannot say.
  // POSIX: the peer's effective uid and gid (-1 if the system cannot say).
  // Windows: -1.
  int64_t uid = -1;
  int64_t gid = -1;
  // Windows: the peer process's user as a SID string ("S-1-5-21-..."),
  // empty if it cannot be read. POSIX: empty.
  std::string user_sid;
};

// Who may connect to a listener. The default admits only the user running
// the listener (plus SYSTEM / root, which can do anything anyway).
struct AccessPolicy {
  enum class Scope {
    kCurrentUser,    // The listener's own user only.
    kAllLocalUsers,  // Every user logged on to this machine; never remote or
                     // anonymous clients.
    kCustom,         // `windows_sddl` on Windows, `posix_mode` and
                     // `posix_group` on POSIX.
  };
  Scope scope = Scope::kCurrentUser;
  // kCustom on Windows: a security descriptor in SDDL, applied to every
  // instance, e.g. "D:P(A;;GA;;;SY)(A;;GA;;;OW)(A;;GRGW;;;BU)". It must hold
  // a protected DACL ("D:P"); empty with kCustom is InvalidArgument.
  // Ignored on POSIX.
  std::string windows_sddl;
  // kCustom on POSIX: permission bits of the socket (a subset of 0666 that
  // includes 0600, so that the listener's own user can connect), and
  // the group that the group bits apply to (-1: the listener's group). The
  // listener also checks each peer's uid/gid against them. Ignored on
  // Windows.
  uint32_t posix_mode = 0600;
  int64_t posix_group = -1;
};

// Decides whether a connected peer is served. Runs before `Accept` returns
// the channel; a non-OK status disconnects that peer (the listener keeps
// serving others). Called on the thread that calls `Accept`.
using AuthorizeFn = std::function<absl::Status(const PeerInfo&)>;

// Options for `Listener::Create`.
struct ListenerOptions {
  PipeMode mode = PipeMode::kByte;
  PipeAccess access = PipeAccess::kDuplex;
  // At most this many channels connected at once, 1..kMaxInstanceLimit, or
  // kUnlimitedInstances. Further clients wait in `Channel::Connect`.
  int max_instances = kUnlimitedInstances;
  // In/out buffer size hint per instance, at most 1 GiB: SO_SNDBUF/SO_RCVBUF
  // on POSIX (the kernel rounds and clamps it; Linux doubles it),
  // nInBufferSize/nOutBufferSize on Windows. 0, the default, means the
  // system's choice: the kernel's socket buffer sizes on POSIX (about 208 KiB
  // on Linux), and 64 KiB on Windows, where a zero quota would make every
  // write wait for the reader.
  size_t buffer_size = 0;
  // The largest message either side may send on a message-mode channel:
  // 1 to 4 GiB - 1 (the frame header's length field), else InvalidArgument.
  size_t max_message_size = 64 * 1024 * 1024;
  // Who may connect. See `AccessPolicy`.
  AccessPolicy access_policy;
  // Optional: admits or refuses each peer after the system's checks.
  AuthorizeFn authorize;
  // Linux only: allow an abstract-namespace name ("@name"). Abstract sockets
  // have no file permissions, so the listener then always checks each peer's
  // uid against `access_policy`. InvalidArgument elsewhere or when false.
  bool allow_abstract_namespace = false;
  // The most handles a message on an accepted channel may carry, sent
  // (more is InvalidArgument) or received (more is DataLoss, with every
  // handle that came closed): 0..kMaxHandlesPerMessageLimit, else
  // InvalidArgument. See Channel::WriteMessageWithHandles.
  int max_handles_per_message = kDefaultMaxHandlesPerMessage;
  // kSharedMemory: offer each client the shared-memory transport, which it
  // takes unless it disallows it (ConnectOptions::allow_shared_memory) or
  // cannot map the memory; then, and for a one-way listener (`access` not
  // kDuplex), the channel uses the pipe. Channel::transport() says which.
  // A channel starts on the pipe and moves to the rings after the client's
  // first call finds the offer (sent by Accept), so everything works before
  // Accept as on a pipe (docs/semantics.md, rows 17 and 18). A program that
  // is not canal sees a 32-byte set-up record first on such a listener's
  // pipe, so keep kPipe for listeners that raw clients use. Windows: not
  // offered yet; the channels use the pipe.
  Transport transport = Transport::kPipe;
  // kSharedMemory: the bytes of each direction's ring, a power of two in
  // kMinRingSize..kMaxRingSize (else InvalidArgument). Messages larger than
  // the ring pass through it in parts.
  size_t ring_size = kDefaultRingSize;
  // kSharedMemory: how long a read or write of this side waits for the
  // peer by polling the ring before it sleeps (0: sleep at once). Waking a
  // sleeping process costs a system call on each side and a scheduler hop;
  // polling costs CPU while it lasts. 0 to 1 s, else InvalidArgument.
  absl::Duration spin = kDefaultSharedMemorySpin;
};

// Which server a client is willing to talk to (anti-squatting). Checked
// right after connecting, before any byte is sent.
struct ExpectedServer {
  enum class Kind {
    kCurrentUserOrAdmin,  // Same user as the client, or SYSTEM / root.
    kUser,                // The user named below, or SYSTEM / root.
    kAnyone,              // No check.
  };
  Kind kind = Kind::kCurrentUserOrAdmin;
  int64_t posix_uid = -1;   // kUser on POSIX.
  std::string windows_sid;  // kUser on Windows, e.g. "S-1-5-21-...-1001".
};

// Options for `Channel::Connect`, `Call` and friends.
struct ConnectOptions {
  // How long to wait while every instance of the listener is busy.
  absl::Duration timeout = absl::Seconds(5);
  // Refuse (PermissionDenied) a server run by someone else.
  ExpectedServer expected_server;
  // Windows: let the server impersonate this client
  // (SECURITY_IMPERSONATION); by default it may only identify it
  // (SECURITY_IDENTIFICATION). No effect on POSIX, which has no
  // impersonation.
  bool allow_impersonation = false;
  // Linux only: allow an abstract-namespace name ("@name").
  bool allow_abstract_namespace = false;
  // As ListenerOptions::max_handles_per_message, for this client's channel.
  int max_handles_per_message = kDefaultMaxHandlesPerMessage;
  // Take the shared-memory transport when the listener offers it
  // (ListenerOptions::transport); false keeps this channel on the pipe.
  bool allow_shared_memory = true;
  // As ListenerOptions::spin, for this client's side of a shared-memory
  // channel.
  absl::Duration spin = kDefaultSharedMemorySpin;
};

// Result of `Channel::Read`.
struct ReadResult {
  size_t size = 0;    // Bytes stored at the front of the caller's buffer.
  bool more = false;  // Message mode: the rest of this message is still unread.
};

// Result of `Channel::Peek`, as PeekNamedPipe reports it.
//
// Message mode, both platforms: a message counts with its whole length as
// soon as it is visible, even while its writer is still sending it (blocked
// on a full pipe): `available` sums the unread bytes of every queued
// message, `message_remaining` is the current message's. Windows sees a
// pending write in full; POSIX counts the length the frame header
// announced, for every message whose header has arrived.
//
// Byte mode: `available` on Windows includes a write still pending in the
// writer (blocked on a full pipe); on POSIX it is what the socket buffers
// hold, since a stream socket cannot show what its peer has yet to send.
//
// `size` copies bytes that are there to copy: on POSIX only bytes that
// arrived, on Windows also bytes of the pending write.
struct PeekResult {
  size_t size = 0;               // Bytes copied into the caller's buffer.
  size_t available = 0;          // Unread payload bytes queued in total, all
                                 // messages (see above).
  size_t message_remaining = 0;  // Unread bytes of the current message (0 in
                                 // byte mode).
};

// The operating-system object behind a channel or listener: a file
// descriptor on POSIX, a HANDLE on Windows.
// `kInvalidNativeHandle` is the value that names none: -1 on POSIX,
// nullptr on Windows.
#ifdef _WIN32
using NativeHandle = void*;
inline constexpr NativeHandle kInvalidNativeHandle = nullptr;
#else
using NativeHandle = int;
inline constexpr NativeHandle kInvalidNativeHandle = -1;
#endif

}  // namespace canal

#endif  // CANAL_TYPES_H_
