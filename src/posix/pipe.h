// SPDX-License-Identifier: Apache-2.0
// The POSIX ChannelImpl for one end of a pipe or FIFO (byte mode, one way),
// used by CreatePipe, Subprocess and Fifo.
//
// shutdown(2) does not work on pipes, so Close() wakes a thread blocked in
// poll() through a private wake descriptor (an eventfd on Linux, a self-pipe
// elsewhere). Operations and Close() share the socket channel's guard
// (op_guard.h): one reader or writer at a time, waiting for its turn no
// longer than its timeout, and the pipe descriptor is closed by the last
// operation to leave, so a number reused by another open() is never
// touched.
//
// Pipes have no MSG_PEEK: Peek moves the queued bytes into `rbuf_`, which
// Read serves first, and kicks the wake descriptor so that a reader asleep
// in poll() notices them.

#ifndef CANAL_SRC_POSIX_PIPE_H_
#define CANAL_SRC_POSIX_PIPE_H_

#include <sys/types.h>

#include <atomic>
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
#include "src/posix/io.h"
#include "src/posix/op_guard.h"

namespace canal {
namespace internal {
namespace posix {

// write(2) that never raises SIGPIPE: EPIPE is returned instead. Does not
// change the process's signal dispositions (SIGPIPE is blocked in this
// thread for the call, and a SIGPIPE the call raised is consumed).
ssize_t WriteNoSigPipe(int fd, const void* data, size_t size);

// pipe2(O_CLOEXEC) (or pipe + FD_CLOEXEC where pipe2 is missing); both ends
// blocking. Returns false with errno set.
bool MakeCloexecPipe(int fds[2]);

class PosixPipeChannel final : public ChannelImpl {
 public:
  // Takes `fd` and makes it non-blocking (and close-on-exec). `read_end`
  // selects the direction. `keep_writer` (FIFO read ends only) is a private
  // write end held until the first byte arrives, so that reads wait for a
  // writer instead of reporting end of stream.
  static absl::StatusOr<std::unique_ptr<PosixPipeChannel>> Create(
      UniqueFd fd, bool read_end, std::string name,
      UniqueFd keep_writer = UniqueFd());
  ~PosixPipeChannel() override;

  PipeMode mode() const override { return PipeMode::kByte; }
  bool can_read() const override { return read_end_; }
  bool can_write() const override { return !read_end_; }
  absl::string_view name() const override { return name_; }
  bool is_open() const override { return !ops_.closed(); }
  size_t max_message_size() const override { return 0xffffffffu; }

  absl::StatusOr<ReadResult> Read(absl::Span<char> buffer,
                                  absl::Duration timeout) override;
  absl::Status Write(absl::string_view op, absl::string_view data,
                     absl::Duration timeout) override;
  absl::StatusOr<std::string> ReadMessage(absl::Duration timeout) override;
  absl::StatusOr<std::string> Transact(absl::string_view op,
                                       absl::string_view request,
                                       absl::Duration timeout) override;
  absl::StatusOr<PeekResult> Peek(absl::Span<char> buffer) override;
  absl::StatusOr<PeerInfo> Peer() override;
  void Close() override;
  NativeHandle native_handle() const override;

 private:
  PosixPipeChannel(UniqueFd fd, bool read_end, std::string name,
                   UniqueFd keep_writer, int wake_read, int wake_write);

  absl::Status Cancelled(absl::string_view op) const {
    return ops_.Cancelled(op);
  }
  void Kick();
  void DrainWake();
  // poll() for `events` on `fd` and the wake descriptor. OK when `fd` is
  // ready or the wake descriptor fired (the caller re-checks), else
  // DeadlineExceeded or the poll error.
  absl::Status WaitFor(absl::string_view op, int fd, short events,
                       const Deadline& deadline);

  const std::string name_;
  const bool read_end_;
  const int wake_read_;   // Polled for POLLIN.
  const int wake_write_;  // Written to wake (same as wake_read_ for eventfd).

  // The pipe descriptor, the reader or writer role and Close(). Mutable:
  // native_handle counts as an operation.
  mutable OpState ops_;

  absl::Mutex buf_mu_;
  std::string rbuf_ ABSL_GUARDED_BY(buf_mu_);  // Taken by Peek, not yet read.
  bool eof_ ABSL_GUARDED_BY(buf_mu_) = false;
  UniqueFd keep_writer_ ABSL_GUARDED_BY(buf_mu_);
};

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_PIPE_H_
