// SPDX-License-Identifier: Apache-2.0
// The POSIX ChannelImpl: one connected AF_UNIX SOCK_STREAM socket.
//
// Byte mode is the plain stream, with no handshake and no framing, so any
// Unix-socket program interoperates. Message mode carries frames (see
// src/internal/framing.h) over the same kind of socket.
//
// Syscalls: the descriptor is made BLOCKING when the channel is built, so
// that the hot paths cost what the raw primitive costs:
//  - a Read/ReadMessage/Write with an infinite timeout is one blocking
//    recv/send(msg) (Close() wakes it: its shutdown(SHUT_RDWR) makes a
//    blocked recv return 0 and a blocked send fail with EPIPE, and both then
//    see the closed flag and return Cancelled);
//  - with a finite timeout every call carries MSG_DONTWAIT and waits in
//    poll(2) against the Deadline: a read polls first unless the previous
//    recv filled its buffer (then data is probably queued), a write tries
//    first;
//  - Peek uses MSG_PEEK | MSG_DONTWAIT and never blocks.
// Every call is also correct on a non-blocking descriptor (EAGAIN leads to
// poll), which is what native_handle() hands out: the descriptor goes back
// to O_NONBLOCK once someone takes it (canal::Server's event loop does its
// own non-blocking I/O on it, and the flag is shared with every dup).
//
// Bytes taken off the socket but not yet delivered stay in `rbuf_` (and, in
// message mode, in the frame decoder, src/internal/framing.h), which is how
// a timed-out read consumes nothing visible and how a message is never
// delivered torn. Message mode receives up to 64 KiB at a time, so one recv
// usually brings several small frames; ReadMessage receives a large
// message's payload straight into the decoder's memory (a staging buffer,
// then the string that becomes the result; once that covers the rest of
// the message, whatever follows it goes into rbuf_ with the same recvmsg).
// Memory follows the bytes that arrived, never the length the peer
// announced, and after a timeout only what arrived is kept.
//
// Threads: one reader and one writer may run at once (the "reader" and
// "writer" roles of op_guard.h, taken with one compare-and-swap; a second
// reader sleeps at most its own timeout); Peek takes no role, only
// buf_mu_ briefly, never blocks, and never takes bytes off the socket (it
// uses MSG_PEEK), so it cannot leave a reader asleep in poll() or recv().
// The receive state (rbuf_, the decoder, eof_) is changed
// only by the thread holding the reader role, always under buf_mu_, so Peek
// reads a consistent snapshot under buf_mu_; the reader never holds buf_mu_
// while it waits (in poll or in a blocking recv): it prepares the target
// memory under the lock (beyond what Peek reads), receives with the lock
// released, and commits the bytes under the lock again. While such a recv
// is in progress (`receiving_`), bytes may have left the kernel's queue
// without being committed yet, so Peek then reports only what is committed
// and never reads the kernel's queue or its end of stream: combining the
// two could skip the bytes in transit (copying the wrong bytes in message
// mode) or report OutOfRange before the last bytes are delivered.
// Close() may come from any thread: it shuts the socket down, which wakes
// every poll() and blocking recv/send, and the descriptor is closed by the
// last operation to leave, so a number reused by another open() is never
// touched.

#ifndef CANAL_SRC_POSIX_CHANNEL_H_
#define CANAL_SRC_POSIX_CHANNEL_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/types.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/framing.h"
#include "src/posix/byte_queue.h"
#include "src/posix/io.h"
#include "src/posix/op_guard.h"

namespace canal {
namespace internal {
namespace posix {

class PosixChannel final : public ChannelImpl {
 public:
  struct Params {
    std::string name;
    PipeMode mode = PipeMode::kByte;
    bool can_read = true;
    bool can_write = true;
    size_t max_message_size = 64 * 1024 * 1024;
    size_t max_handles_per_message = kDefaultMaxHandlesPerMessage;
    // Client side: the listener's metadata says transport=shm.
    bool shared_memory_offered = false;
  };

  // Takes ownership of the connected `fd` (made blocking here) and, on the
  // client side of a listener with an instance limit, of the locked slot
  // file.
  PosixChannel(UniqueFd fd, UniqueFd slot, Params params);
  ~PosixChannel() override;

  PipeMode mode() const override { return mode_; }
  bool can_read() const override { return can_read_; }
  bool can_write() const override { return can_write_; }
  absl::string_view name() const override { return name_; }
  bool is_open() const override { return !closed(); }
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
  void Close() override;
  NativeHandle native_handle() const override;
  bool shared_memory_offered() const override { return shm_offered_; }
  absl::Status WriteSetup(absl::string_view data,
                          absl::Span<const NativeHandle> handles,
                          absl::Duration timeout) override;
  absl::StatusOr<MessageWithHandles> ReadSetup(size_t size, size_t handles,
                                               absl::Duration timeout) override;
  absl::Status CheckPeerConnected(absl::string_view op) override;

 private:
  bool closed() const { return ops_.closed(); }
  absl::Status Cancelled(absl::string_view op) const {
    return ops_.Cancelled(op);
  }
  absl::Status TimedOut(absl::string_view op, absl::string_view what) const {
    return ops_.TimedOut(op, what);
  }
  // The peer finished: release the instance slot early (the connection can
  // never carry data again, so the instance is as good as free).
  void ReleaseSlot();
  // Classifies a send() that failed with `err` (not EINTR): Cancelled after
  // Close(), Unavailable once the peer is gone (releasing the instance
  // slot), another error status, or OK for "would block" (wait, retry).
  absl::Status SendFailure(absl::string_view op, int err);

  // Waits for `events` on `fd`; OK when ready, DeadlineExceeded/Cancelled/
  // the poll error otherwise. Called with no lock held.
  absl::Status WaitFor(absl::string_view op, int fd, short events,
                       const Deadline& deadline, absl::string_view waiting);

  absl::StatusOr<ReadResult> ReadBytes(absl::string_view op, int fd,
                                       absl::Span<char> buffer,
                                       const Deadline& deadline);
  absl::StatusOr<ReadResult> ReadMessagePart(absl::string_view op, int fd,
                                             absl::Span<char> buffer,
                                             const Deadline& deadline);
  // The message's descriptors go to `*handles` if given, else are closed.
  absl::StatusOr<std::string> ReadWholeMessage(
      absl::string_view op, int fd, const Deadline& deadline,
      std::vector<UniqueFd>* handles = nullptr);
  absl::StatusOr<std::string> TransactWithin(absl::string_view op,
                                             absl::string_view request,
                                             const Deadline& deadline);
  absl::Status SendBytes(absl::string_view op, int fd, absl::string_view data,
                         const Deadline& deadline);
  // Callers hold the writer role. With `fds`, a "CNLH" frame whose first
  // sendmsg carries them as SCM_RIGHTS.
  absl::Status SendFrame(absl::string_view op, int fd, absl::string_view data,
                         const Deadline& deadline,
                         absl::Span<const int> fds = {});

  // Helpers with buf_mu_ held, for the thread holding the reader role.
  //
  // Receives more bytes: first into `direct[0, direct_len)` if given (the
  // rest of a message ReadMessage is assembling in the decoder), then, if
  // `rbuf_room` > 0, into rbuf_'s free space (at least `rbuf_room` bytes of
  // it). Waits first when `*poll_first` (and sets it after EAGAIN).
  // Releases buf_mu_ while it waits and receives. Returns OK after
  // receiving something (`*direct_got` bytes went to `direct`, the rest is
  // committed to rbuf_) or after recording end of stream in eof_;
  // otherwise the status to return.
  absl::Status ReceiveLocked(absl::string_view op, int fd,
                             const Deadline& deadline,
                             absl::string_view waiting, size_t rbuf_room,
                             char* direct, size_t direct_len,
                             size_t* direct_got, bool* poll_first);
  // Turns a failed recv into the status to return, or OK after recording
  // end of stream (n == 0 or ECONNRESET).
  absl::Status OnRecvEndLocked(absl::string_view op, ssize_t n, int err);
  // Status for end of stream given what is buffered.
  absl::Status EndOfStreamLocked(absl::string_view op);
  // Records the decoder's error in the sticky read_fail_ and returns it.
  absl::Status FramingFailedLocked(absl::string_view op);
  // Records a DataLoss about descriptors in read_fail_, closes every
  // descriptor received and not delivered, and returns it.
  absl::Status HandlesFailedLocked(absl::string_view op,
                                   absl::string_view what);
  // Takes the descriptors of one recvmsg (`msg`, which brought bytes
  // [received_total_, received_total_ + got) of the stream) into
  // fd_batches_, closing them if the channel is closed. Non-OK (and
  // sticky) for truncated control data or when memory runs out.
  absl::Status TakeDescriptorsLocked(absl::string_view op, msghdr* msg,
                                     size_t got);
  // Around each decoder call that may take a header or finish a message:
  // the first records where a header would start; the second attaches
  // descriptors to a header just taken and checks that none are left
  // unclaimed behind a finished message (DataLoss otherwise).
  void BeforeDecodeLocked();
  absl::Status AfterDecodeLocked(absl::string_view op);
  // ResourceExhausted: the current message cannot be assembled in memory.
  absl::Status MessageTooBigForMemory(absl::string_view op) const;

  const std::string name_;
  const PipeMode mode_;
  const bool can_read_;
  const bool can_write_;
  const size_t max_message_size_;

  // Lock order: buf_mu_, then slot_mu_. std::mutex rather than
  // absl::Mutex: buf_mu_ is taken once or twice per Read, and an absl::Mutex
  // built without NDEBUG (as Debian ships it) runs deadlock detection on
  // every Lock, which cost more than the syscall itself. Members below say
  // which mutex guards them (the annotations need a capability-annotated
  // mutex type).
  std::mutex buf_mu_;
  // Guards slot_.
  std::mutex slot_mu_;

  // The descriptor, the roles and Close() (op_guard.h). Mutable: taking no
  // role (native_handle) still counts as an operation.
  mutable OpState ops_;
  UniqueFd slot_;

  // Receive side, guarded by buf_mu_ (and changed only by the reader role).
  // Message mode: rbuf_ holds bytes received but not yet given to the
  // decoder, which holds the current message's state (and, for a
  // ReadMessage in progress, the part of it that arrived, assembled in a
  // buffer that becomes the result without a copy). The decoder's bytes
  // logically precede rbuf_.
  ByteQueue rbuf_;
  FrameDecoder decoder_;
  bool eof_ = false;
  absl::Status read_fail_;
  // The reader is in a recv whose bytes are not committed yet (see above).
  bool receiving_ = false;

  // Descriptors (SCM_RIGHTS), guarded by buf_mu_. The kernel attaches a
  // sendmsg's descriptors to its first byte and ends a recvmsg after the
  // bytes that carry them, so each recvmsg brings at most one batch, which
  // belongs to the "CNLH" header that starts inside the bytes that recvmsg
  // brought (a canal sender starts every such sendmsg with the header).
  // Batches wait here, in arrival order, until the decoder takes their
  // header; one that a header does not claim is DataLoss.
  struct FdBatch {
    uint64_t start = 0;  // Stream offsets of the bytes of its recvmsg.
    uint64_t end = 0;
    std::vector<UniqueFd> fds;
  };
  std::deque<FdBatch> fd_batches_;
  // The current (or just finished) message's descriptors.
  std::vector<UniqueFd> message_fds_;
  // Bytes received from the socket in total (stream offset of the next).
  uint64_t received_total_ = 0;
  // Stream offset where the next header starts, and the end of the frame
  // of the last header taken.
  uint64_t header_offset_ = 0;
  uint64_t frame_end_ = 0;
  // BeforeDecodeLocked's snapshot of the decoder.
  uint64_t headers_before_ = 0;
  bool in_message_before_ = false;
  // Control buffer for recvmsg, room for max_handles_ descriptors (at
  // least one, so that any descriptor over the limit shows as MSG_CTRUNC).
  std::unique_ptr<char[]> cmsg_buf_;
  size_t cmsg_len_ = 0;
  const size_t max_handles_;
  const bool shm_offered_;

  // Owned by the reader role: the last recv filled all the room it was
  // given, so more is probably queued (a finite-timeout read then tries
  // recv before poll).
  bool likely_buffered_ = false;

  // Send side, owned by the writer role: set after a message write timed
  // out part-way.
  bool write_broken_ = false;
  // Header and payload of a small frame, contiguous for one send(2).
  std::unique_ptr<char[]> sbuf_;
};

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_CHANNEL_H_
