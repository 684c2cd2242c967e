// The POSIX ChannelImpl: one connected AF_UNIX SOCK_STREAM socket.
//
// Byte mode is the plain stream, with no handshake and no framing, so any
// Unix-socket program interoperates. Message mode carries frames (see
// src/internal/framing.h) over the same kind of socket.
//
// The descriptor is non-blocking; every wait is poll(2) against a Deadline.
// Bytes taken off the socket but not yet delivered stay in `rbuf_` (and, for
// a ReadMessage in progress, in `stash_`), which is how a timed-out read
// consumes nothing visible and how a message is never delivered torn.
//
// Threads: one reader and one writer may run at once (the "reader" and
// "writer" roles, taken under state_mu_ with the operation's deadline, so a
// second reader waits at most its own timeout); Peek takes no role, only
// buf_mu_ briefly, never blocks, and never takes bytes off the socket (it
// uses MSG_PEEK), so it cannot leave a reader asleep in poll().
// Close() may come from any thread: it shuts the socket down, which wakes
// every poll(), and the descriptor is closed by the last operation to leave,
// so a number reused by another open() is never touched.

#ifndef CANAL_SRC_POSIX_CHANNEL_POSIX_H_
#define CANAL_SRC_POSIX_CHANNEL_POSIX_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/types.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/posix/fd_util.h"

namespace canal {
namespace internal {

// A growable FIFO of bytes with cheap consumption from the front.
class ByteQueue {
 public:
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  const char* data() const { return buf_.get() + begin_; }
  // Drops `n` bytes from the front.
  void Consume(size_t n);
  // Room for at least `n` more bytes at the back; returns where they go.
  char* PrepareWrite(size_t n);
  size_t writable() const { return cap_ - end_; }
  void Commit(size_t n) { end_ += n; }
  // Puts `n` bytes back in front (rare: after an interrupted ReadMessage).
  void Prepend(const char* p, size_t n);

 private:
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

class PosixChannel final : public ChannelImpl {
 public:
  struct Params {
    std::string name;
    PipeMode mode = PipeMode::kByte;
    bool can_read = true;
    bool can_write = true;
    size_t max_message_size = 64 * 1024 * 1024;
  };

  // Takes ownership of the connected, non-blocking `fd` and, on the client
  // side of a listener with an instance limit, of the locked slot file.
  PosixChannel(UniqueFd fd, UniqueFd slot, Params params);
  ~PosixChannel() override;

  PipeMode mode() const override { return mode_; }
  bool can_read() const override { return can_read_; }
  bool can_write() const override { return can_write_; }
  absl::string_view name() const override { return name_; }
  bool is_open() const override { return !closed_flag_.load(); }
  size_t max_message_size() const override { return max_message_size_; }

  absl::StatusOr<ReadResult> Read(absl::Span<char> buffer,
                                  absl::Duration timeout) override;
  absl::Status Write(absl::string_view data, absl::Duration timeout) override;
  absl::StatusOr<std::string> ReadMessage(absl::Duration timeout) override;
  absl::StatusOr<std::string> Transact(absl::string_view request,
                                       absl::Duration timeout) override;
  absl::StatusOr<PeekResult> Peek(absl::Span<char> buffer) override;
  absl::StatusOr<PeerInfo> Peer() override;
  void Close() override;
  NativeHandle native_handle() const override;

  // Transact within an existing deadline, with errors labelled `op` (Call).
  absl::StatusOr<std::string> TransactWithin(absl::string_view op,
                                             absl::string_view request,
                                             const Deadline& deadline);

 private:
  class OpGuard;
  enum Role { kNoRole = 0, kReader = 1, kWriter = 2 };
  struct RoleWait {
    PosixChannel* channel;
    int roles;
  };
  static bool RolesFreeOrClosed(RoleWait* wait);
  enum class Pull { kGot, kWouldBlock, kEof, kError };

  bool closed() const { return closed_flag_.load(); }
  absl::Status Cancelled(absl::string_view op) const;
  absl::Status TimedOut(absl::string_view op, absl::string_view what) const;
  // The peer finished: release the instance slot early (the connection can
  // never carry data again, so the instance is as good as free).
  void ReleaseSlot();
  void EndOp(int roles);

  // Waits for `events` on `fd`; OK when ready, DeadlineExceeded/Cancelled/
  // the poll error otherwise.
  absl::Status WaitFor(absl::string_view op, int fd, short events,
                       const Deadline& deadline, absl::string_view waiting);

  absl::StatusOr<ReadResult> ReadBytes(absl::string_view op, int fd,
                                       absl::Span<char> buffer,
                                       const Deadline& deadline);
  absl::StatusOr<ReadResult> ReadMessagePart(absl::string_view op, int fd,
                                             absl::Span<char> buffer,
                                             const Deadline& deadline);
  absl::StatusOr<std::string> ReadWholeMessage(absl::string_view op, int fd,
                                               const Deadline& deadline);
  absl::Status SendBytes(absl::string_view op, int fd, absl::string_view data,
                         const Deadline& deadline);
  // Callers hold the writer role.
  absl::Status SendFrame(absl::string_view op, int fd, absl::string_view data,
                         const Deadline& deadline);

  // Helpers with buf_mu_ held.
  Pull PullLocked(int fd, size_t want, int* err)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(buf_mu_);
  // Turns a Pull result that is not kGot/kWouldBlock into the status to
  // return (or OK to loop again, after recording end of stream).
  absl::Status OnPullEndLocked(absl::string_view op, Pull pull, int err)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(buf_mu_);
  // Parses the next frame header if one is complete in rbuf_. Sets the
  // sticky read_fail_ on a bad one.
  absl::Status ParseHeaderLocked(absl::string_view op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(buf_mu_);
  // Status for end of stream given what is buffered.
  absl::Status EndOfStreamLocked(absl::string_view op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(buf_mu_);
  void UnstashLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(buf_mu_);
  void FinishMessageLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(buf_mu_);

  const std::string name_;
  const PipeMode mode_;
  const bool can_read_;
  const bool can_write_;
  const size_t max_message_size_;

  // Lock order: buf_mu_, then state_mu_.
  absl::Mutex buf_mu_;
  mutable absl::Mutex state_mu_;

  std::atomic<bool> closed_flag_{false};
  bool closed_ ABSL_GUARDED_BY(state_mu_) = false;
  int fd_ ABSL_GUARDED_BY(state_mu_);
  int in_flight_ ABSL_GUARDED_BY(state_mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(state_mu_) = false;  // Reader role taken.
  bool writing_ ABSL_GUARDED_BY(state_mu_) = false;  // Writer role taken.
  UniqueFd slot_ ABSL_GUARDED_BY(state_mu_);

  // Receive side.
  ByteQueue rbuf_ ABSL_GUARDED_BY(buf_mu_);
  bool eof_ ABSL_GUARDED_BY(buf_mu_) = false;
  absl::Status read_fail_ ABSL_GUARDED_BY(buf_mu_);
  // Message mode: the current message, once its header was taken.
  bool cur_active_ ABSL_GUARDED_BY(buf_mu_) = false;
  uint64_t cur_total_ ABSL_GUARDED_BY(buf_mu_) = 0;
  uint64_t cur_delivered_ ABSL_GUARDED_BY(buf_mu_) = 0;
  // ReadMessage receives the rest of the current message straight into
  // `stash_` (allocated once from the header), which then becomes the
  // result without a copy. Its first `stash_fill_` bytes are valid and
  // logically precede rbuf_.
  bool stash_active_ ABSL_GUARDED_BY(buf_mu_) = false;
  std::string stash_ ABSL_GUARDED_BY(buf_mu_);
  size_t stash_fill_ ABSL_GUARDED_BY(buf_mu_) = 0;

  // Send side, owned by the writer role: set after a message write timed
  // out part-way.
  bool write_broken_ = false;
};

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_CHANNEL_POSIX_H_
