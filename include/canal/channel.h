// SPDX-License-Identifier: Apache-2.0
// canal::Channel: one connected end of a pipe.
//
//   absl::StatusOr<canal::Channel> ch = canal::Channel::Connect("my-service");
//   if (!ch.ok()) return ch.status();
//   absl::StatusOr<std::string> reply = ch->Transact("ping", absl::Seconds(1));
//
// A channel comes from `Channel::Connect` (client side) or `Listener::Accept`
// (listener side). It is a move-only value; destroying it closes it. One
// thread may read while another writes, and `Close()` may be called from any
// thread to wake both with `Cancelled`.
//
// A situation gives the same code on every platform (docs/semantics.md has
// the error table, and the few situations only one platform has): NotFound
// (no such listener),
// DeadlineExceeded (timeout), OutOfRange (the peer finished: end of stream),
// Unavailable (the connection broke), Cancelled (closed by `Close()`),
// FailedPrecondition (wrong mode or direction, or an invalid channel),
// InvalidArgument (bad name or argument), PermissionDenied, ResourceExhausted
// (the peer announced a message larger than allowed, or memory ran out: no
// call throws), DataLoss (the peer sent malformed framing, or handles that
// do not match its messages).

#ifndef CANAL_CHANNEL_H_
#define CANAL_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/handle.h"
#include "canal/types.h"

namespace canal {

namespace internal {
class ChannelImpl;
}  // namespace internal

class Channel {
 public:
  // Connects to the listener called `name` (a portable name or a native one,
  // see canal/canal.h). Waits up to `options.timeout` while every instance is
  // busy. Fails with NotFound if no listener has the name, DeadlineExceeded if
  // it stays busy, InvalidArgument for a malformed name, PermissionDenied if
  // the system refuses access.
  static absl::StatusOr<Channel> Connect(absl::string_view name,
                                         const ConnectOptions& options = {});

  // An invalid channel: every operation fails with FailedPrecondition.
  Channel();
  ~Channel();
  Channel(Channel&& other) noexcept;
  Channel& operator=(Channel&& other) noexcept;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Whether this channel was connected and has not been closed or moved from.
  bool is_open() const;

  // The mode chosen by the listener. kByte for an invalid channel.
  PipeMode mode() const;

  // The name this channel was connected with (or accepted on).
  absl::string_view name() const;

  // How this channel carries its data (see ListenerOptions::transport).
  // kPipe for an invalid channel.
  Transport transport() const;

  // Reads up to `buffer.size()` bytes. Byte mode: blocks until at least one
  // byte is there and returns what is queued, `more` always false. Message
  // mode: returns the next message, or its first `buffer.size()` bytes with
  // `more` set, and later reads continue the same message. Returns
  // OutOfRange once the peer has finished and everything was read,
  // DeadlineExceeded after `timeout` (nothing consumed), Cancelled if closed,
  // FailedPrecondition on a channel that cannot read.
  absl::StatusOr<ReadResult> Read(
      absl::Span<char> buffer,
      absl::Duration timeout = absl::InfiniteDuration());

  // Writes all of `data` (byte mode) or sends `data` as one message (message
  // mode). Returns Unavailable if the peer is gone, DeadlineExceeded after
  // `timeout`, InvalidArgument for a message over the maximum size,
  // Cancelled if closed, FailedPrecondition on a channel that cannot write.
  absl::Status Write(absl::string_view data,
                     absl::Duration timeout = absl::InfiniteDuration());

  // Reads one whole message. FailedPrecondition on a byte-mode channel;
  // otherwise the errors of `Read`.
  absl::StatusOr<std::string> ReadMessage(
      absl::Duration timeout = absl::InfiniteDuration());

  // Sends one message. FailedPrecondition on a byte-mode channel; otherwise
  // the errors of `Write`.
  absl::Status WriteMessage(absl::string_view message,
                            absl::Duration timeout = absl::InfiniteDuration());

  // Sends `data` as one message together with duplicates of `handles`
  // (descriptors on POSIX, HANDLEs on Windows), which arrive in the peer's
  // process as handles of its own. The caller keeps ownership of
  // `handles`: they are duplicated, never consumed. With no handles this is
  // WriteMessage. POSIX: the descriptors travel as SCM_RIGHTS. Windows:
  // they are duplicated into the peer's process with DuplicateHandle
  // (DUPLICATE_SAME_ACCESS) and named in the message; if the write then
  // fails, the duplicates are closed in the peer again. Returns
  // FailedPrecondition on a byte-mode channel or one that cannot write;
  // InvalidArgument for more handles than `max_handles_per_message`
  // (ListenerOptions / ConnectOptions), for a handle that is not open, or
  // for a message over the maximum size; PermissionDenied (Windows) if the
  // peer's process cannot be opened for duplication; otherwise the errors
  // of `Write`.
  absl::Status WriteMessageWithHandles(
      absl::string_view data, absl::Span<const NativeHandle> handles,
      absl::Duration timeout = absl::InfiniteDuration());

  // Reads one whole message and the handles sent with it (none for a
  // message sent by WriteMessage or Write). Every received handle is owned
  // by the result; on POSIX each descriptor is close-on-exec from its
  // creation (MSG_CMSG_CLOEXEC). Returns FailedPrecondition on a byte-mode
  // channel; DataLoss, with every handle that arrived closed, if the peer
  // sent more handles than `max_handles_per_message`, (POSIX) descriptors
  // that no message claims or not as many as a message claims, after which
  // the channel stays failed, or (Windows) a malformed envelope or one from
  // a peer running as another user, whose handle values are never used;
  // otherwise the errors of `ReadMessage`.
  //
  // ReadMessage, Read and Transact deliver a message that carries handles
  // like any other (its data only) and close its handles, so nothing
  // leaks; Peek reports its data.
  absl::StatusOr<MessageWithHandles> ReadMessageWithHandles(
      absl::Duration timeout = absl::InfiniteDuration());

  // Sends `request` as one message and reads one reply message, like
  // TransactNamedPipe. `timeout` covers both. Returns FailedPrecondition on
  // a byte-mode or one-way channel, or while anything is unread (part of a
  // message or whole ones); InvalidArgument for a request over the maximum
  // size; Unavailable if the peer closed the pipe before replying (or the
  // connection broke while sending); DeadlineExceeded after `timeout` (the
  // request may have gone out); Cancelled if closed; ResourceExhausted for a
  // reply over the maximum size, or when memory runs out; DataLoss (POSIX
  // only) if the stream ends inside the reply or its framing is malformed.
  absl::StatusOr<std::string> Transact(
      absl::string_view request,
      absl::Duration timeout = absl::InfiniteDuration());

  // Copies queued data into `buffer` without consuming it; never blocks.
  // In message mode only bytes of the current message are copied. Returns
  // OutOfRange if nothing is queued and the peer has finished.
  absl::StatusOr<PeekResult> Peek(absl::Span<char> buffer = {}) const;

  // Who is at the other end.
  absl::StatusOr<PeerInfo> Peer() const;

  // Runs `fn` with the rights of the connected client, on a listener-side
  // channel. Windows: under ImpersonateNamedPipeClient, always reverted
  // afterwards; if impersonation fails (for instance because the client did
  // not set `ConnectOptions::allow_impersonation`) `fn` is not run and the
  // error is returned. POSIX: Unimplemented (impersonation would need
  // seteuid, which changes the whole process); use `Peer()` instead.
  // Windows: FailedPrecondition on a client-side channel, PermissionDenied
  // (with the native error) when impersonation fails. POSIX: Unimplemented
  // on every channel.
  absl::Status RunAsClient(absl::FunctionRef<void()> fn);

  // Closes the channel. Idempotent; safe while other threads are blocked in
  // Read or Write on it, which then return Cancelled.
  void Close();

  // The underlying descriptor or HANDLE, or -1 / nullptr if not open. Owned
  // by the channel.
  NativeHandle native_handle() const;

  // For the backends only.
  explicit Channel(std::unique_ptr<internal::ChannelImpl> impl);

 private:
  std::unique_ptr<internal::ChannelImpl> impl_;
};

// Connects to `name`, sends `request` as one message, reads one reply and
// closes, like CallNamedPipe. `timeout` covers the whole call, including
// waiting for a busy listener. Every error names the operation "Call".
// Returns what `Connect` returns (NotFound, DeadlineExceeded while every
// instance stays busy, InvalidArgument for a malformed name,
// PermissionDenied); FailedPrecondition if the listener is in byte mode or
// one-way; InvalidArgument for a request over the listener's
// max_message_size; then what `Transact` returns once connected
// (Unavailable if the listener closed without replying, DeadlineExceeded,
// ResourceExhausted, DataLoss on POSIX).
absl::StatusOr<std::string> Call(absl::string_view name,
                                 absl::string_view request,
                                 absl::Duration timeout = absl::Seconds(5));

// As above, with the security options of `options` (its `timeout` is
// ignored: `timeout` covers the whole call).
absl::StatusOr<std::string> Call(absl::string_view name,
                                 absl::string_view request,
                                 absl::Duration timeout,
                                 const ConnectOptions& options);

// Waits until a `Connect` to `name` could succeed, like WaitNamedPipe.
// Returns OK as soon as an instance is free, NotFound at once if no listener
// has the name, DeadlineExceeded if it stays busy past `timeout`.
absl::Status WaitForListener(absl::string_view name, absl::Duration timeout);

}  // namespace canal

#endif  // CANAL_CHANNEL_H_
