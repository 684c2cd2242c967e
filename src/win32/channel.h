// SPDX-License-Identifier: Apache-2.0
// A connected Win32 named-pipe end (client or listener side).

#ifndef CANAL_SRC_WIN32_CHANNEL_H_
#define CANAL_SRC_WIN32_CHANNEL_H_

#include <windows.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/handle.h"
#include "canal/types.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/win32/error.h"
#include "src/win32/io.h"

namespace canal {
namespace internal {
namespace win32 {

// Told when the pipe instance behind an accepted channel has been closed,
// so that the listener can create a replacement instance.
class InstanceOwner {
 public:
  virtual ~InstanceOwner() = default;
  virtual void InstanceClosed() = 0;
};

struct ChannelSetup {
  ScopedHandle pipe;  // Opened with FILE_FLAG_OVERLAPPED, in the right read
                      // mode.
  PipeMode mode = PipeMode::kByte;
  bool can_read = true;
  bool can_write = true;
  bool server = false;  // The listener's end.
  std::string name;
  size_t max_message_size = 0xffffffffu;
  size_t max_handles_per_message = kDefaultMaxHandlesPerMessage;
  std::shared_ptr<InstanceOwner> owner;  // Listener side only.
  // Client side: the listener's section says it sends a shared-memory
  // offer first (src/win32/meta.h).
  bool shared_memory_offered = false;
  // Who is at the other end, when already known (read while connecting or
  // accepting); otherwise Peer() asks the system each time.
  PeerInfo peer;
  bool has_peer = false;
};

class Win32Channel final : public ChannelImpl {
 public:
  static absl::StatusOr<std::unique_ptr<Win32Channel>> Create(
      ChannelSetup setup);
  ~Win32Channel() override;

  PipeMode mode() const override { return mode_; }
  bool can_read() const override { return can_read_; }
  bool can_write() const override { return can_write_; }
  absl::string_view name() const override { return name_; }
  bool is_open() const override;
  size_t max_message_size() const override { return max_message_size_; }
  size_t max_handles_per_message() const override { return max_handles_; }

  absl::StatusOr<ReadResult> Read(absl::Span<char> buffer,
                                  absl::Duration timeout) override;
  absl::Status Write(absl::string_view op, absl::string_view data,
                     absl::Duration timeout) override;
  absl::StatusOr<std::string> ReadMessage(absl::Duration timeout) override;
  absl::Status WriteWithHandles(absl::string_view op, absl::string_view data,
                                absl::Span<const NativeHandle> handles,
                                absl::Duration timeout) override;
  absl::StatusOr<MessageWithHandles> ReadMessageWithHandles(
      absl::Duration timeout) override;
  absl::StatusOr<std::string> Transact(absl::string_view op,
                                       absl::string_view request,
                                       absl::Duration timeout) override;
  absl::StatusOr<PeekResult> Peek(absl::Span<char> buffer) override;
  absl::StatusOr<PeerInfo> Peer() override;
  absl::Status RunAsClient(absl::FunctionRef<void()> fn) override;
  void Close() override;
  NativeHandle native_handle() const override;

  // The shared-memory set-up (backend.h). A set-up record goes on the pipe
  // as an 8-byte header (the handle count, u32 little-endian, then 0), the
  // record, and the handle values, duplicated into the receiver's process
  // (u64 little-endian each): one message in message mode, those bytes in
  // byte mode.
  bool shared_memory_offered() const override { return shm_offered_; }
  absl::Status WriteSetup(absl::string_view data,
                          absl::Span<const NativeHandle> handles,
                          absl::Duration timeout) override;
  absl::StatusOr<MessageWithHandles> ReadSetup(size_t size, size_t handles,
                                               absl::Duration timeout) override;
  absl::Status CheckPeerConnected(absl::string_view op) override;

 private:
  // Marks an operation in flight so that Close() does not close the handle
  // under it; the last operation out closes it.
  class InFlight {
   public:
    explicit InFlight(Win32Channel* channel);
    ~InFlight();
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    bool ok() const { return handle_ != nullptr; }
    HANDLE handle() const { return handle_; }

   private:
    Win32Channel* channel_;
    HANDLE handle_;
  };

  Win32Channel(ChannelSetup setup, ScopedHandle read_event,
               ScopedHandle write_event, ScopedHandle close_event);

  // The two turns a call may need: one reader and one writer at a time
  // (Transact needs both).
  static constexpr int kReadTurn = 1;
  static constexpr int kWriteTurn = 2;

  // Holds turns for the duration of one call. The wait for them is bounded
  // by the call's own deadline (a call queued behind another thread's gets
  // DeadlineExceeded) and ends with Cancelled when the channel is closed.
  class Turns {
   public:
    Turns(Win32Channel* channel, int turns, const Deadline& deadline,
          absl::string_view op);
    ~Turns();
    Turns(const Turns&) = delete;
    Turns& operator=(const Turns&) = delete;
    // OK once the turns are held.
    const absl::Status& status() const { return status_; }

   private:
    Win32Channel* channel_;
    int turns_;
    absl::Status status_;
  };

  absl::StatusOr<ReadResult> DoRead(absl::Span<char> buffer,
                                    absl::Duration timeout);
  absl::Status DoWrite(absl::string_view op, absl::string_view data,
                       absl::Duration timeout);
  // The message's handles go to `*handles` if given, else are closed.
  absl::StatusOr<std::string> DoReadMessage(
      absl::string_view op, absl::Duration timeout,
      std::vector<OwnedHandle>* handles = nullptr);
  absl::Status DoWriteWithHandles(absl::string_view op, absl::string_view data,
                                  absl::Span<const NativeHandle> handles,
                                  absl::Duration timeout);
  // One WriteFile of `data` (a whole message in message mode, escaped if
  // it looks like an envelope), or all of it in byte mode. The caller
  // holds the write turn and an InFlight.
  absl::Status WriteLocked(HANDLE handle, absl::string_view op,
                           absl::string_view data, const Deadline& deadline);

  // Handles (message mode). A message that carries handles is an envelope
  // (see channel.cc): a 16-byte magic, a count, the handle values as the
  // receiver's process knows them, then the data. The peer's process,
  // opened once with PROCESS_DUP_HANDLE and kept open for the channel's
  // life, so that its pid cannot be reused by another process meanwhile.
  absl::StatusOr<HANDLE> PeerProcess(HANDLE pipe, absl::string_view op);
  // Duplicates `handles` into the peer's process (`*peer`, from
  // PeerProcess), appending the values they have there to `*values`. On
  // failure closes every duplicate made and returns the error: Unavailable
  // if the peer has exited, InvalidArgument for a handle that is not one.
  absl::Status DuplicateIntoPeer(HANDLE pipe, absl::string_view op,
                                 absl::Span<const NativeHandle> handles,
                                 HANDLE* peer, std::vector<uint64_t>* values);
  // Closes the handles named by `values` in process `peer`.
  static void CloseInPeer(HANDLE peer, const std::vector<uint64_t>& values);
  // Whether the peer runs as our own user: only then are the handle values
  // of its envelopes used (closed or handed out). Computed once.
  absl::StatusOr<bool> PeerIsSameUser(HANDLE pipe, absl::string_view op);
  // If `*message` (a whole message from its start) is an envelope, replaces
  // it with its data and takes its handles into `*handles` (closing them if
  // `handles` is null). DataLoss for a malformed envelope, more handles
  // than max_handles_ (closing them), or handles from another user (not
  // touched).
  absl::Status Unwrap(HANDLE pipe, absl::string_view op, std::string* message,
                      std::vector<OwnedHandle>* handles);
  // Delivers a whole, unwrapped message to a Read: its front into `buffer`,
  // the rest into the stash.
  ReadResult DeliverWhole(std::string message, absl::Span<char> buffer);
  absl::StatusOr<std::string> DoTransact(absl::string_view op,
                                         absl::string_view request,
                                         absl::Duration timeout);
  absl::StatusOr<PeekResult> DoPeek(absl::Span<char> buffer);
  absl::Status DoWriteSetup(absl::string_view data,
                            absl::Span<const NativeHandle> handles,
                            absl::Duration timeout);
  absl::StatusOr<MessageWithHandles> DoReadSetup(size_t size, size_t handles,
                                                 absl::Duration timeout);
  // Byte mode: reads exactly `size` bytes into `out` within `deadline`;
  // DataLoss if it times out part-way (the stream cannot be resumed).
  absl::Status ReadExactly(HANDLE handle, char* out, size_t size,
                           const Deadline& deadline, absl::string_view op);
  absl::StatusOr<PeerInfo> DoPeer();

  void ReleaseHandle(HANDLE handle);
  absl::Status ClosedError(absl::string_view op) const;
  absl::Status IoError(const IoResult& result, ErrorContext context,
                       absl::string_view op) const;

  // One overlapped ReadFile into `data` (message mode: `more` set for
  // ERROR_MORE_DATA). Byte mode retries zero-byte completions, which are a
  // peer's empty WriteFile and not the end of the stream. The caller holds
  // the read turn.
  absl::StatusOr<ReadResult> ReadChunk(HANDLE handle, char* data, size_t size,
                                       const Deadline& deadline,
                                       absl::string_view op);
  // Reads the rest of the message begun in `*message` (message mode). On
  // failure with bytes consumed (an allocation failure included), keeps
  // them in the stash. The caller holds the read turn.
  absl::Status ReadRestOfMessage(HANDLE handle, std::string* message,
                                 const Deadline& deadline,
                                 absl::string_view op);
  // ResourceExhausted for a message over max_message_size_ (an envelope
  // may exceed it by its header).
  absl::Status CheckMessageSize(size_t size, absl::string_view op,
                                bool envelope) const;
  void Stash(std::string data, bool more);

  const PipeMode mode_;
  const bool can_read_;
  const bool can_write_;
  const bool server_;
  const std::string name_;
  const size_t max_message_size_;
  const size_t max_handles_;
  const std::shared_ptr<InstanceOwner> owner_;
  const PeerInfo peer_;
  const bool has_peer_;
  const bool shm_offered_;
  ScopedHandle read_event_;   // For reads and transactions.
  ScopedHandle write_event_;  // For writes.
  ScopedHandle close_event_;  // Manual reset; set by Close().

  mutable absl::Mutex mu_;
  HANDLE handle_ ABSL_GUARDED_BY(mu_);  // nullptr once closed.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_turns_ ABSL_GUARDED_BY(mu_) = 0;  // kReadTurn | kWriteTurn.

  // Bytes already taken from the pipe but not yet delivered (a read that
  // timed out or was refused half-way through a message), delivered first.
  absl::Mutex stash_mu_;
  std::string stash_ ABSL_GUARDED_BY(stash_mu_);
  bool stash_more_ ABSL_GUARDED_BY(stash_mu_) = false;  // Message continues
                                                        // in the pipe.
  // Changed by the read turn, read by Peek too: the next unread byte (the
  // stash's first, else the pipe's) starts a message, so an envelope there
  // can be recognised.
  std::atomic<bool> at_boundary_{true};

  absl::Mutex peer_mu_;
  ScopedHandle peer_process_ ABSL_GUARDED_BY(peer_mu_);
  bool trust_known_ ABSL_GUARDED_BY(peer_mu_) = false;
  bool same_user_ ABSL_GUARDED_BY(peer_mu_) = false;
};

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_CHANNEL_H_
