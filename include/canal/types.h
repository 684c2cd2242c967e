// canal: local inter-process communication with Windows named-pipe semantics
// on every OS.
//
// This header holds the plain value types shared by `Channel` and `Listener`:
// modes, options and results. See canal/canal.h for an overview.

#ifndef CANAL_TYPES_H_
#define CANAL_TYPES_H_

#include <cstddef>
#include <cstdint>

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

// Options for `Listener::Create`.
struct ListenerOptions {
  PipeMode mode = PipeMode::kByte;
  PipeAccess access = PipeAccess::kDuplex;
  // At most this many channels connected at once, 1..kMaxInstanceLimit, or
  // kUnlimitedInstances. Further clients wait in `Channel::Connect`.
  int max_instances = kUnlimitedInstances;
  // In/out buffer size hint per instance (SO_SNDBUF/SO_RCVBUF on POSIX,
  // nInBufferSize/nOutBufferSize on Windows). 0 keeps the system default.
  size_t buffer_size = 64 * 1024;
  // The largest message either side may send on a message-mode channel.
  // Must be at least 1.
  size_t max_message_size = 64 * 1024 * 1024;
};

// Options for `Channel::Connect`, `Call` and friends.
struct ConnectOptions {
  // How long to wait while every instance of the listener is busy.
  absl::Duration timeout = absl::Seconds(5);
};

// Result of `Channel::Read`.
struct ReadResult {
  size_t size = 0;    // Bytes stored at the front of the caller's buffer.
  bool more = false;  // Message mode: the rest of this message is still unread.
};

// Result of `Channel::Peek`.
struct PeekResult {
  size_t size = 0;               // Bytes copied into the caller's buffer.
  size_t available = 0;          // Payload bytes queued in total, all messages.
  size_t message_remaining = 0;  // Unread bytes of the current message (0 in
                                 // byte mode).
};

// Who is at the other end of a channel.
struct PeerInfo {
  int64_t process_id = 0;  // The peer's process id, 0 if the system cannot say.
};

// The operating-system object behind a channel or listener: a file
// descriptor on POSIX, a HANDLE on Windows.
#ifdef _WIN32
using NativeHandle = void*;
#else
using NativeHandle = int;
#endif

}  // namespace canal

#endif  // CANAL_TYPES_H_
