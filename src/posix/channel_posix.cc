#include "src/posix/channel_posix.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/internal/framing.h"
#include "src/posix/error.h"
#include "src/posix/peer_cred.h"

#if defined(__APPLE__)
#include <sys/un.h>  // SOL_LOCAL, LOCAL_PEERPID
#endif

namespace canal {
namespace internal {
namespace {

// How much one recv() asks for when filling the receive buffer.
constexpr size_t kRecvChunk = 64 * 1024;
// A receive buffer this large is freed once it runs empty, so one huge
// message does not pin memory for the rest of the connection.
constexpr size_t kKeepCapacity = 1024 * 1024;
// Peek looks at most at this much of the kernel queue.
constexpr size_t kMaxPeek = 16 * 1024 * 1024;

bool IsWouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// Copies up to `n` bytes starting at logical offset `offset` of the
// concatenation of `parts` into `out`. Returns the number copied.
size_t CopyFromParts(std::initializer_list<absl::string_view> parts,
                     uint64_t offset, char* out, size_t n) {
  size_t copied = 0;
  for (absl::string_view part : parts) {
    if (copied == n) break;
    if (offset >= part.size()) {
      offset -= part.size();
      continue;
    }
    size_t take = std::min<uint64_t>(n - copied, part.size() - offset);
    std::memcpy(out + copied, part.data() + offset, take);
    copied += take;
    offset = 0;
  }
  return copied;
}

}  // namespace

// --- ByteQueue -------------------------------------------------------------

void ByteQueue::Consume(size_t n) {
  begin_ += n;
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (cap_ > kKeepCapacity) {
      buf_.reset();
      cap_ = 0;
    }
  }
}

char* ByteQueue::PrepareWrite(size_t n) {
  if (cap_ - end_ >= n) return buf_.get() + end_;
  const size_t used = size();
  if (cap_ - used >= n && used <= cap_ / 2) {
    // Enough room if the data moves to the front; cheap when little is left.
    std::memmove(buf_.get(), buf_.get() + begin_, used);
  } else {
    size_t new_cap = std::max<size_t>(std::max(cap_ * 2, used + n), kRecvChunk);
    std::unique_ptr<char[]> fresh(new char[new_cap]);
    if (used > 0) std::memcpy(fresh.get(), buf_.get() + begin_, used);
    buf_ = std::move(fresh);
    cap_ = new_cap;
  }
  begin_ = 0;
  end_ = used;
  return buf_.get() + end_;
}

void ByteQueue::Prepend(const char* p, size_t n) {
  if (n == 0) return;
  if (begin_ >= n) {
    begin_ -= n;
    std::memcpy(buf_.get() + begin_, p, n);
    return;
  }
  const size_t used = size();
  const size_t new_cap = std::max<size_t>(used + n, kRecvChunk);
  std::unique_ptr<char[]> fresh(new char[new_cap]);
  std::memcpy(fresh.get(), p, n);
  if (used > 0) std::memcpy(fresh.get() + n, buf_.get() + begin_, used);
  buf_ = std::move(fresh);
  cap_ = new_cap;
  begin_ = 0;
  end_ = used + n;
}

// --- In-flight tracking ----------------------------------------------------

// Registers an operation that uses the descriptor, so that Close() leaves
// closing it to the last operation out, and takes the reader and/or writer
// role, waiting for them no longer than the operation's deadline. On
// failure status() says why (Cancelled or DeadlineExceeded) and fd() is -1.
class PosixChannel::OpGuard {
 public:
  OpGuard(PosixChannel* ch, absl::string_view op, int roles,
          const Deadline& deadline)
      : ch_(ch), roles_(roles) {
    RoleWait wait{ch, roles};
    const bool ready = ch->state_mu_.LockWhenWithDeadline(
        absl::Condition(&PosixChannel::RolesFreeOrClosed, &wait),
        deadline.when());
    if (ch->closed_ || ch->fd_ < 0) {
      status_ = ch->Cancelled(op);
    } else if (!ready) {
      status_ = ch->TimedOut(op, "waiting for another thread's operation on "
                                 "this channel to finish");
    } else {
      ++ch->in_flight_;
      fd_ = ch->fd_;
      if (roles & kReader) ch->reading_ = true;
      if (roles & kWriter) ch->writing_ = true;
    }
    ch->state_mu_.Unlock();
  }
  // For Peek and Peer: no role, never waits.
  OpGuard(PosixChannel* ch, absl::string_view op)
      : OpGuard(ch, op, kNoRole, Deadline(absl::ZeroDuration())) {}
  ~OpGuard() {
    if (fd_ >= 0) ch_->EndOp(roles_);
  }
  OpGuard(const OpGuard&) = delete;
  OpGuard& operator=(const OpGuard&) = delete;
  int fd() const { return fd_; }
  const absl::Status& status() const { return status_; }

 private:
  PosixChannel* ch_;
  int roles_;
  int fd_ = -1;
  absl::Status status_;
};

bool PosixChannel::RolesFreeOrClosed(RoleWait* wait) {
  PosixChannel* ch = wait->channel;
  // Called by absl::Mutex with state_mu_ held.
  ch->state_mu_.AssertReaderHeld();
  if (ch->closed_) return true;
  if ((wait->roles & kReader) && ch->reading_) return false;
  if ((wait->roles & kWriter) && ch->writing_) return false;
  return true;
}

void PosixChannel::EndOp(int roles) {
  int to_close = -1;
  {
    absl::MutexLock lock(&state_mu_);
    if (roles & kReader) reading_ = false;
    if (roles & kWriter) writing_ = false;
    if (--in_flight_ == 0 && closed_ && fd_ >= 0) {
      to_close = fd_;
      fd_ = -1;
    }
  }
  if (to_close >= 0) CloseFd(to_close);
}

PosixChannel::PosixChannel(UniqueFd fd, UniqueFd slot, Params params)
    : name_(std::move(params.name)),
      mode_(params.mode),
      can_read_(params.can_read),
      can_write_(params.can_write),
      max_message_size_(params.max_message_size),
      fd_(fd.Release()),
      slot_(std::move(slot)) {}

PosixChannel::~PosixChannel() { Close(); }

void PosixChannel::Close() {
  int to_close = -1;
  UniqueFd slot;
  {
    absl::MutexLock lock(&state_mu_);
    if (closed_) return;
    closed_ = true;
    closed_flag_.store(true);
    if (fd_ >= 0) {
      // Wakes every thread polling this socket (they then see closed_ and
      // return Cancelled) and tells the peer we are gone. Data already
      // written is still delivered before the peer's end of stream.
      ::shutdown(fd_, SHUT_RDWR);
      if (in_flight_ == 0) {
        to_close = fd_;
        fd_ = -1;
      }
    }
    slot = std::move(slot_);
  }
  if (to_close >= 0) CloseFd(to_close);
  // `slot` closes here, which releases the instance for the next client.
}

NativeHandle PosixChannel::native_handle() const {
  absl::MutexLock lock(&state_mu_);
  return closed_ ? -1 : fd_;
}

void PosixChannel::ReleaseSlot() {
  UniqueFd slot;
  absl::MutexLock lock(&state_mu_);
  slot = std::move(slot_);
}

absl::Status PosixChannel::Cancelled(absl::string_view op) const {
  return MakeError(absl::StatusCode::kCancelled, op, name_,
                   "the channel was closed");
}

absl::Status PosixChannel::TimedOut(absl::string_view op,
                                    absl::string_view what) const {
  return MakeError(absl::StatusCode::kDeadlineExceeded, op, name_,
                   absl::StrCat("timed out ", what));
}

absl::Status PosixChannel::WaitFor(absl::string_view op, int fd, short events,
                                   const Deadline& deadline,
                                   absl::string_view waiting) {
  if (deadline.expired()) return TimedOut(op, waiting);
  pollfd pfd{fd, events, 0};
  int rc = PollUntil(&pfd, 1, deadline);
  if (closed()) return Cancelled(op);
  if (rc == 0) return TimedOut(op, waiting);
  if (rc < 0) {
    const int err = errno;
    return ErrnoError(op, name_, "poll failed", err);
  }
  // Ready, or POLLHUP/POLLERR: the next recv/send reports what happened.
  return absl::OkStatus();
}

// --- Receiving -------------------------------------------------------------

PosixChannel::Pull PosixChannel::PullLocked(int fd, size_t want, int* err) {
  char* p = rbuf_.PrepareWrite(std::max(want, kRecvChunk));
  const size_t room = rbuf_.writable();
  while (true) {
    ssize_t n = ::recv(fd, p, room, 0);
    if (n > 0) {
      rbuf_.Commit(static_cast<size_t>(n));
      return Pull::kGot;
    }
    if (n == 0) return Pull::kEof;
    if (errno == EINTR) continue;
    if (IsWouldBlock(errno)) return Pull::kWouldBlock;
    // A reset is the peer going away with our data unread by it; everything
    // it sent was delivered first, so for us it is simply end of stream.
    if (errno == ECONNRESET) return Pull::kEof;
    *err = errno;
    return Pull::kError;
  }
}

absl::Status PosixChannel::OnPullEndLocked(absl::string_view op, Pull pull,
                                           int err) {
  // Our own shutdown() in Close() also reads as end of stream.
  if (closed()) return Cancelled(op);
  if (pull == Pull::kEof) {
    eof_ = true;
    ReleaseSlot();
    return absl::OkStatus();
  }
  return ErrnoError(op, name_, "recv failed", err);
}

absl::Status PosixChannel::EndOfStreamLocked(absl::string_view op) {
  if (mode_ == PipeMode::kMessage && (cur_active_ || !rbuf_.empty())) {
    read_fail_ = MakeError(absl::StatusCode::kDataLoss, op, name_,
                           "stream ended inside a message");
    return read_fail_;
  }
  return MakeError(absl::StatusCode::kOutOfRange, op, name_,
                   "end of stream: the peer closed the pipe");
}

absl::Status PosixChannel::ParseHeaderLocked(absl::string_view op) {
  if (cur_active_ || rbuf_.size() < kFrameHeaderSize) return absl::OkStatus();
  uint32_t size = 0;
  if (DecodeFrameHeader(reinterpret_cast<const unsigned char*>(rbuf_.data()),
                        &size) != FrameHeaderError::kOk) {
    read_fail_ = MakeError(absl::StatusCode::kDataLoss, op, name_,
                           "malformed frame: the peer is not speaking canal's "
                           "message framing");
    return read_fail_;
  }
  if (size > max_message_size_) {
    // Refused before allocating anything; the stream position is lost, so
    // the channel stays failed.
    read_fail_ = MakeError(
        absl::StatusCode::kResourceExhausted, op, name_,
        absl::StrCat("peer announced a message of ", size,
                     " bytes; the limit is ", max_message_size_));
    return read_fail_;
  }
  rbuf_.Consume(kFrameHeaderSize);
  cur_active_ = true;
  cur_total_ = size;
  cur_delivered_ = 0;
  return absl::OkStatus();
}

void PosixChannel::UnstashLocked() {
  if (!stash_active_) return;
  rbuf_.Prepend(stash_.data(), stash_fill_);
  stash_ = std::string();
  stash_fill_ = 0;
  stash_active_ = false;
}

void PosixChannel::FinishMessageLocked() {
  cur_active_ = false;
  cur_total_ = 0;
  cur_delivered_ = 0;
}

absl::StatusOr<ReadResult> PosixChannel::Read(absl::Span<char> buffer,
                                              absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard guard(this, "Read", kReader, deadline);
  if (!guard.status().ok()) return guard.status();
  if (mode_ == PipeMode::kByte) {
    return ReadBytes("Read", guard.fd(), buffer, deadline);
  }
  return ReadMessagePart("Read", guard.fd(), buffer, deadline);
}

absl::StatusOr<ReadResult> PosixChannel::ReadBytes(absl::string_view op,
                                                   int fd,
                                                   absl::Span<char> buffer,
                                                   const Deadline& deadline) {
  if (buffer.empty()) return ReadResult{0, false};
  while (true) {
    {
      absl::MutexLock lock(&buf_mu_);
      if (closed()) return Cancelled(op);
      if (!rbuf_.empty()) {
        // Left over from a Peek: deliver it first.
        const size_t n = std::min(buffer.size(), rbuf_.size());
        std::memcpy(buffer.data(), rbuf_.data(), n);
        rbuf_.Consume(n);
        return ReadResult{n, false};
      }
      if (eof_) return EndOfStreamLocked(op);
      // Straight into the caller's buffer: no copy on the byte-mode path.
      ssize_t n;
      do {
        n = ::recv(fd, buffer.data(), buffer.size(), 0);
      } while (n < 0 && errno == EINTR);
      if (n > 0) return ReadResult{static_cast<size_t>(n), false};
      const int err = errno;
      if (n == 0 || err == ECONNRESET) {
        absl::Status s = OnPullEndLocked(op, Pull::kEof, 0);
        if (!s.ok()) return s;
        continue;
      }
      if (!IsWouldBlock(err)) return OnPullEndLocked(op, Pull::kError, err);
    }
    absl::Status waited =
        WaitFor(op, fd, POLLIN, deadline, "waiting for data");
    if (!waited.ok()) return waited;
  }
}

absl::StatusOr<ReadResult> PosixChannel::ReadMessagePart(
    absl::string_view op, int fd, absl::Span<char> buffer,
    const Deadline& deadline) {
  while (true) {
    {
      absl::MutexLock lock(&buf_mu_);
      if (closed()) return Cancelled(op);
      if (!read_fail_.ok()) return read_fail_;
      UnstashLocked();
      absl::Status parsed = ParseHeaderLocked(op);
      if (!parsed.ok()) return parsed;
      size_t need;  // Bytes rbuf_ still lacks to answer.
      if (cur_active_) {
        const uint64_t remaining = cur_total_ - cur_delivered_;
        if (buffer.empty()) {
          // Like ReadFile with a zero-length buffer on a message pipe: an
          // empty message is consumed, a non-empty one reported as "more".
          if (remaining == 0) {
            FinishMessageLocked();
            return ReadResult{0, false};
          }
          return ReadResult{0, true};
        }
        const size_t want =
            static_cast<size_t>(std::min<uint64_t>(buffer.size(), remaining));
        if (rbuf_.size() >= want) {
          std::memcpy(buffer.data(), rbuf_.data(), want);
          rbuf_.Consume(want);
          cur_delivered_ += want;
          if (cur_delivered_ == cur_total_) FinishMessageLocked();
          return ReadResult{want, cur_active_};
        }
        need = want - rbuf_.size();
      } else {
        need = kFrameHeaderSize - rbuf_.size();
      }
      if (eof_) return EndOfStreamLocked(op);
      int err = 0;
      Pull pull = PullLocked(fd, need, &err);
      if (pull == Pull::kGot) continue;
      if (pull != Pull::kWouldBlock) {
        absl::Status s = OnPullEndLocked(op, pull, err);
        if (!s.ok()) return s;
        continue;
      }
    }
    absl::Status waited =
        WaitFor(op, fd, POLLIN, deadline, "waiting for a message");
    if (!waited.ok()) return waited;
  }
}

absl::StatusOr<std::string> PosixChannel::ReadMessage(absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard guard(this, "ReadMessage", kReader, deadline);
  if (!guard.status().ok()) return guard.status();
  return ReadWholeMessage("ReadMessage", guard.fd(), deadline);
}

absl::StatusOr<std::string> PosixChannel::ReadWholeMessage(
    absl::string_view op, int fd, const Deadline& deadline) {
  while (true) {
    {
      absl::MutexLock lock(&buf_mu_);
      if (closed()) return Cancelled(op);
      if (!read_fail_.ok()) return read_fail_;
      absl::Status parsed = ParseHeaderLocked(op);
      if (!parsed.ok()) return parsed;
      if (cur_active_) {
        const size_t remaining = static_cast<size_t>(cur_total_ - cur_delivered_);
        if (!stash_active_ && rbuf_.size() >= remaining) {
          // All there already (the common case for small messages).
          std::string result(rbuf_.data(), remaining);
          rbuf_.Consume(remaining);
          FinishMessageLocked();
          return result;
        }
        if (!stash_active_) {
          // One allocation from the header's length; the rest of the
          // message is received straight into it.
          stash_.resize(remaining);
          stash_fill_ = 0;
          stash_active_ = true;
        }
        const size_t from_buf = std::min(rbuf_.size(), remaining - stash_fill_);
        if (from_buf > 0) {
          std::memcpy(&stash_[stash_fill_], rbuf_.data(), from_buf);
          rbuf_.Consume(from_buf);
          stash_fill_ += from_buf;
        }
        bool at_eof = eof_;
        while (stash_fill_ < remaining && !at_eof) {
          ssize_t n = ::recv(fd, &stash_[stash_fill_], remaining - stash_fill_, 0);
          if (n > 0) {
            stash_fill_ += static_cast<size_t>(n);
            continue;
          }
          if (n < 0 && errno == EINTR) continue;
          const int err = n < 0 ? errno : 0;
          if (n < 0 && IsWouldBlock(err)) break;
          absl::Status s = OnPullEndLocked(
              op, (n == 0 || err == ECONNRESET) ? Pull::kEof : Pull::kError,
              err);
          if (!s.ok()) return s;
          at_eof = true;
        }
        if (stash_fill_ == remaining) {
          std::string result = std::move(stash_);
          stash_ = std::string();
          stash_fill_ = 0;
          stash_active_ = false;
          FinishMessageLocked();
          return result;
        }
        if (at_eof) return EndOfStreamLocked(op);
      } else {
        if (eof_) return EndOfStreamLocked(op);
        int err = 0;
        Pull pull = PullLocked(fd, kFrameHeaderSize - rbuf_.size(), &err);
        if (pull == Pull::kGot) continue;
        if (pull != Pull::kWouldBlock) {
          absl::Status s = OnPullEndLocked(op, pull, err);
          if (!s.ok()) return s;
          continue;
        }
      }
    }
    absl::Status waited =
        WaitFor(op, fd, POLLIN, deadline, "waiting for a message");
    if (!waited.ok()) return waited;
  }
}

// --- Sending ---------------------------------------------------------------

absl::Status PosixChannel::Write(absl::string_view data,
                                 absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard guard(this, "Write", kWriter, deadline);
  if (!guard.status().ok()) return guard.status();
  if (mode_ == PipeMode::kByte) {
    return SendBytes("Write", guard.fd(), data, deadline);
  }
  return SendFrame("Write", guard.fd(), data, deadline);
}

absl::Status PosixChannel::SendBytes(absl::string_view op, int fd,
                                     absl::string_view data,
                                     const Deadline& deadline) {
  size_t sent = 0;
  while (sent < data.size()) {
    if (closed()) return Cancelled(op);
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, kSendFlags);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (closed()) return Cancelled(op);
    if (err == EPIPE || err == ECONNRESET) {
      ReleaseSlot();
      return ErrnoError(absl::StatusCode::kUnavailable, op, name_,
                        "the peer closed the pipe", err);
    }
    if (!IsWouldBlock(err)) return ErrnoError(op, name_, "send failed", err);
    absl::Status waited = WaitFor(
        op, fd, POLLOUT, deadline,
        absl::StrCat("waiting for the peer to read, after writing ", sent,
                     " of ", data.size(), " bytes"));
    if (!waited.ok()) return waited;
  }
  return absl::OkStatus();
}

absl::Status PosixChannel::SendFrame(absl::string_view op, int fd,
                                     absl::string_view data,
                                     const Deadline& deadline) {
  if (write_broken_) {
    return MakeError(absl::StatusCode::kFailedPrecondition, op, name_,
                     "the write side was shut down after a message timed out "
                     "part-way");
  }
  unsigned char header[kFrameHeaderSize];
  EncodeFrameHeader(static_cast<uint32_t>(data.size()), header);
  const size_t total = kFrameHeaderSize + data.size();
  size_t sent = 0;
  while (sent < total) {
    if (closed()) return Cancelled(op);
    // Header and payload go out in one sendmsg when the socket has room.
    iovec iov[2];
    int iovcnt = 0;
    if (sent < kFrameHeaderSize) {
      iov[iovcnt].iov_base = header + sent;
      iov[iovcnt].iov_len = kFrameHeaderSize - sent;
      ++iovcnt;
      if (!data.empty()) {
        iov[iovcnt].iov_base = const_cast<char*>(data.data());
        iov[iovcnt].iov_len = data.size();
        ++iovcnt;
      }
    } else {
      const size_t off = sent - kFrameHeaderSize;
      iov[iovcnt].iov_base = const_cast<char*>(data.data() + off);
      iov[iovcnt].iov_len = data.size() - off;
      ++iovcnt;
    }
    msghdr msg;
    std::memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = iovcnt;
    ssize_t n = ::sendmsg(fd, &msg, kSendFlags);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (closed()) return Cancelled(op);
    if (err == EPIPE || err == ECONNRESET) {
      ReleaseSlot();
      return ErrnoError(absl::StatusCode::kUnavailable, op, name_,
                        "the peer closed the pipe", err);
    }
    if (!IsWouldBlock(err)) return ErrnoError(op, name_, "send failed", err);
    absl::Status waited =
        WaitFor(op, fd, POLLOUT, deadline, "waiting for the peer to read");
    if (absl::IsDeadlineExceeded(waited) && sent > 0) {
      // Part of the frame is out. Stopping here would leave the reader
      // waiting for the rest forever, and continuing later would tear the
      // message; ending the stream makes the reader see DataLoss instead.
      ::shutdown(fd, SHUT_WR);
      write_broken_ = true;
      return MakeError(
          absl::StatusCode::kDeadlineExceeded, op, name_,
          absl::StrCat("timed out after sending ", sent, " of ", total,
                       " bytes of a message; the write side was shut down so "
                       "that the reader sees DataLoss rather than a torn "
                       "message"));
    }
    if (!waited.ok()) return waited;
  }
  return absl::OkStatus();
}

// --- Transact, Peek, Peer --------------------------------------------------

absl::StatusOr<std::string> PosixChannel::Transact(absl::string_view request,
                                                   absl::Duration timeout) {
  return TransactWithin("Transact", request, Deadline(timeout));
}

absl::StatusOr<std::string> PosixChannel::TransactWithin(
    absl::string_view op, absl::string_view request, const Deadline& deadline) {
  OpGuard guard(this, op, kReader | kWriter, deadline);
  if (!guard.status().ok()) return guard.status();
  {
    absl::MutexLock lock(&buf_mu_);
    // Like TransactNamedPipe (STATUS_PIPE_BUSY), refuse while anything is
    // unread: the reply would otherwise be confused with an older message.
    if (cur_active_ || stash_active_ || !rbuf_.empty()) {
      return MakeError(absl::StatusCode::kFailedPrecondition, op, name_,
                       "unread data is queued on the channel; read it first");
    }
    int queued = 0;
    if (ioctl(guard.fd(), FIONREAD, &queued) == 0 && queued > 0) {
      return MakeError(absl::StatusCode::kFailedPrecondition, op, name_,
                       absl::StrCat(queued, " bytes of unread data are queued "
                                            "on the channel; read them first"));
    }
  }
  absl::Status sent = SendFrame(op, guard.fd(), request, deadline);
  if (!sent.ok()) return sent;
  return ReadWholeMessage(op, guard.fd(), deadline);
}

absl::StatusOr<PeekResult> PosixChannel::Peek(absl::Span<char> buffer) {
  const absl::string_view op = "Peek";
  OpGuard guard(this, op);
  if (!guard.status().ok()) return guard.status();
  const int fd = guard.fd();
  absl::MutexLock lock(&buf_mu_);
  if (!read_fail_.ok()) return read_fail_;

  // What the kernel holds, looked at with MSG_PEEK: taking it off the socket
  // would leave a reader blocked in poll() on another thread asleep although
  // data had arrived.
  std::string peeked;
  bool eof = eof_;
  if (!eof) {
    int queued = 0;
    size_t want = kRecvChunk;
    if (::ioctl(fd, FIONREAD, &queued) == 0) {
      // With nothing queued, peek one byte anyway to tell "nothing yet"
      // from "the peer finished".
      want = queued > 0 ? std::min<size_t>(static_cast<size_t>(queued), kMaxPeek)
                        : 1;
    }
    peeked.resize(want);
    ssize_t n;
    do {
      n = ::recv(fd, &peeked[0], want, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      peeked.resize(static_cast<size_t>(n));
    } else {
      peeked.clear();
      const int err = n < 0 ? errno : 0;
      if (closed()) return Cancelled(op);
      if (n == 0 || err == ECONNRESET) {
        eof = true;
      } else if (!IsWouldBlock(err)) {
        return ErrnoError(op, name_, "recv failed", err);
      }
    }
  }
  if (closed()) return Cancelled(op);

  const absl::string_view stash(stash_.data(), stash_active_ ? stash_fill_ : 0);
  const absl::string_view queued(rbuf_.data(), rbuf_.size());
  const uint64_t total = stash.size() + queued.size() + peeked.size();
  PeekResult result;

  if (mode_ == PipeMode::kByte) {
    if (total == 0 && eof) {
      return MakeError(absl::StatusCode::kOutOfRange, op, name_,
                       "end of stream: the peer closed the pipe");
    }
    result.size = CopyFromParts({stash, queued, peeked}, 0, buffer.data(),
                                std::min<uint64_t>(buffer.size(), total));
    result.available = static_cast<size_t>(total);
    return result;
  }

  // Message mode: walk the frames in the combined view without consuming.
  if (total == 0 && !cur_active_ && eof) {
    return MakeError(absl::StatusCode::kOutOfRange, op, name_,
                     "end of stream: the peer closed the pipe");
  }
  uint64_t pos = 0;
  bool have_current = false;
  uint64_t available = 0;
  if (cur_active_) {
    const uint64_t remaining = cur_total_ - cur_delivered_;
    const uint64_t arrived = std::min(remaining, total);
    result.size = CopyFromParts({stash, queued, peeked}, 0, buffer.data(),
                                std::min<uint64_t>(buffer.size(), arrived));
    result.message_remaining = static_cast<size_t>(remaining);
    available += arrived;
    pos = remaining;
    have_current = true;
  }
  while (pos + kFrameHeaderSize <= total) {
    unsigned char header[kFrameHeaderSize];
    CopyFromParts({stash, queued, peeked}, pos, reinterpret_cast<char*>(header),
                  kFrameHeaderSize);
    uint32_t size = 0;
    // A bad header is left for Read to report.
    if (DecodeFrameHeader(header, &size) != FrameHeaderError::kOk ||
        size > max_message_size_) {
      break;
    }
    const uint64_t arrived =
        std::min<uint64_t>(size, total - pos - kFrameHeaderSize);
    if (!have_current) {
      result.size = CopyFromParts({stash, queued, peeked},
                                  pos + kFrameHeaderSize, buffer.data(),
                                  std::min<uint64_t>(buffer.size(), arrived));
      result.message_remaining = size;
      have_current = true;
    }
    available += arrived;
    pos += kFrameHeaderSize + size;
  }
  result.available = static_cast<size_t>(available);
  return result;
}

absl::StatusOr<PeerInfo> PosixChannel::Peer() {
  const absl::string_view op = "Peer";
  OpGuard guard(this, op);
  if (!guard.status().ok()) return guard.status();
  // The credentials recorded at connect() (the client) or listen() (the
  // listener), on either side of the socket; still valid after the peer
  // exits.
  PeerCred cred;
  if (!ReadPeerCred(guard.fd(), &cred)) {
    const int err = errno;
    return ErrnoError(absl::StatusCode::kUnavailable, op, name_,
                      "cannot read the peer's credentials", err);
  }
  PeerInfo info = ToPeerInfo(cred);
  return info;
}

}  // namespace internal
}  // namespace canal
