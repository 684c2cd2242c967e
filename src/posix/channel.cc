// SPDX-License-Identifier: Apache-2.0
#include "src/posix/channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/internal/framing.h"
#include "src/internal/status_macros.h"
#include "src/posix/error.h"
#include "src/posix/security.h"

#if defined(__APPLE__)
#include <sys/un.h>  // SOL_LOCAL, LOCAL_PEERPID
#endif

// Received descriptors are close-on-exec from their creation where the
// system can do it atomically (Linux, the BSDs); elsewhere right after.
#if defined(MSG_CMSG_CLOEXEC)
#define CANAL_HAVE_MSG_CMSG_CLOEXEC 1
#else
#define CANAL_HAVE_MSG_CMSG_CLOEXEC 0
#endif

namespace canal {
namespace internal {
namespace posix {
namespace {

#if CANAL_HAVE_MSG_CMSG_CLOEXEC
constexpr int kRecvCloexec = MSG_CMSG_CLOEXEC;
#else
constexpr int kRecvCloexec = 0;
void SetCloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}
#endif

// A frame up to this size (header included) is copied into one buffer and
// sent with send(2): sendmsg(2) costs noticeably more per call than send
// for small messages (measured on Linux 6.x: about 0.75x the message rate
// at 64 bytes, even with a single iovec), more than the copy.
constexpr size_t kCoalesceMax = 16 * 1024 + kFrameHeaderSize;
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

PosixChannel::PosixChannel(UniqueFd fd, UniqueFd slot, Params params)
    : name_(std::move(params.name)),
      mode_(params.mode),
      can_read_(params.can_read),
      can_write_(params.can_write),
      max_message_size_(params.max_message_size),
      ops_(fd.Release(), name_),
      slot_(std::move(slot)),
      decoder_(params.max_message_size),
      max_handles_(params.max_handles_per_message),
      shm_offered_(params.shared_memory_offered) {
  decoder_.set_max_handles(static_cast<uint32_t>(max_handles_));
  if (mode_ == PipeMode::kMessage && can_read_) {
    // Without this buffer the kernel closes every descriptor that arrives
    // (and flags MSG_CTRUNC, which is then DataLoss): nothing leaks either
    // way.
    const size_t len =
        CMSG_SPACE(std::max<size_t>(max_handles_, 1) * sizeof(int));
    cmsg_buf_.reset(new (std::nothrow) char[len]);
    if (cmsg_buf_ != nullptr) cmsg_len_ = len;
  }
  // Blocking, so that a read or write with an infinite timeout is a single
  // syscall; every call that must not block passes MSG_DONTWAIT. A failure
  // only costs speed: every path also copes with EAGAIN.
  OpGuard guard(&ops_, "Open");
  if (guard.ok()) SetNonBlocking(guard.fd(), false);
}

PosixChannel::~PosixChannel() { Close(); }

void PosixChannel::Close() {
  const bool first = ops_.Close([](int fd) {
    // Wakes every thread polling or blocked in recv/send on this socket
    // (they then see the closed flag and return Cancelled) and tells the
    // peer we are gone. Data already written is still delivered before the
    // peer's end of stream.
    ::shutdown(fd, SHUT_RDWR);
  });
  // Closing the slot releases the instance for the next client.
  if (first) ReleaseSlot();
  // Descriptors received and not delivered are closed with the channel (a
  // reader still in recvmsg closes what it gets, seeing the closed flag).
  std::lock_guard<std::mutex> lock(buf_mu_);
  fd_batches_.clear();
  message_fds_.clear();
}

absl::Status PosixChannel::SendFailure(absl::string_view op, int err) {
  if (closed()) return Cancelled(op);
  if (err == EPIPE || err == ECONNRESET) {
    ReleaseSlot();
    return ErrnoError(absl::StatusCode::kUnavailable, op, name_,
                      "the peer closed the pipe", err);
  }
  if (!IsWouldBlock(err)) return ErrnoError(op, name_, "send failed", err);
  return absl::OkStatus();
}

NativeHandle PosixChannel::native_handle() const {
  // An operation of its own, so the descriptor cannot be closed meanwhile.
  OpGuard guard(&ops_, "native_handle");
  if (guard.fd() < 0) return -1;
  // The descriptor stays in blocking mode: whoever needs non-blocking calls
  // on it (canal::Server's event loop) passes MSG_DONTWAIT. Our own calls
  // also cope with a descriptor someone made non-blocking (EAGAIN -> poll).
  return guard.fd();
}

void PosixChannel::ReleaseSlot() {
  UniqueFd slot;
  std::lock_guard<std::mutex> lock(slot_mu_);
  slot = std::move(slot_);
}

absl::Status PosixChannel::WaitFor(absl::string_view op, int fd, short events,
                                   const Deadline& deadline,
                                   absl::string_view waiting) {
  // No early return on an expired deadline: a zero (or spent) timeout still
  // polls once, so data or room that is already there is used.
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

absl::Status PosixChannel::ReceiveLocked(absl::string_view op, int fd,
                                         const Deadline& deadline,
                                         absl::string_view waiting,
                                         size_t rbuf_room, char* direct,
                                         size_t direct_len, size_t* direct_got,
                                         bool* poll_first) {
  *direct_got = 0;
  if (*poll_first) {
    // Waits with buf_mu_ released, so Peek never waits for us. The receive
    // state cannot change meanwhile: only the reader role (us) changes it.
    buf_mu_.unlock();
    absl::Status waited = WaitFor(op, fd, POLLIN, deadline, waiting);
    buf_mu_.lock();
    if (!waited.ok()) return waited;
  }
  // The target memory is set up under the lock: beyond the decoder's
  // committed bytes and beyond rbuf_'s, where Peek never reads.
  iovec iov[2];
  int iovcnt = 0;
  if (direct_len > 0) {
    iov[iovcnt].iov_base = direct;
    iov[iovcnt].iov_len = direct_len;
    ++iovcnt;
  }
  if (rbuf_room > 0) {
    char* room = rbuf_.PrepareWrite(rbuf_room);
    if (room == nullptr) {
      return MakeError(absl::StatusCode::kResourceExhausted, op, name_,
                       absl::StrCat("out of memory for a receive buffer of ",
                                    rbuf_.size() + rbuf_room, " bytes"));
    }
    iov[iovcnt].iov_base = room;
    iov[iovcnt].iov_len = rbuf_.writable();
    ++iovcnt;
  }
  const size_t room =
      direct_len + (rbuf_room > 0 ? iov[iovcnt - 1].iov_len : 0);
  // With an infinite deadline the blocking recv is the wait (Close() wakes
  // it through shutdown); otherwise never block in recv.
  const int flags = deadline.infinite() ? 0 : MSG_DONTWAIT;
  receiving_ = true;
  buf_mu_.unlock();
  // Always recvmsg with a control buffer: a plain recv would have the
  // kernel close descriptors that arrive, and the frame that claims them
  // could no longer be told from one whose sender lied. Descriptors are
  // close-on-exec from their creation.
  msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = iov;
  msg.msg_iovlen = iovcnt;
  msg.msg_control = cmsg_buf_.get();
  msg.msg_controllen = cmsg_len_;
  const ssize_t n = ::recvmsg(fd, &msg, flags | kRecvCloexec);
  const int err = n < 0 ? errno : 0;
  buf_mu_.lock();
  receiving_ = false;
  const size_t got = n > 0 ? static_cast<size_t>(n) : 0;
  if (n > 0) {
    *direct_got = std::min(got, direct_len);
    rbuf_.Commit(got - *direct_got);
    likely_buffered_ = got == room;
    *poll_first = !deadline.infinite() && !likely_buffered_;
  }
  absl::Status taken = TakeDescriptorsLocked(op, &msg, got);
  received_total_ += got;
  if (!taken.ok()) return taken;
  if (n > 0) return absl::OkStatus();
  if (n < 0 && err == EINTR) return absl::OkStatus();  // The caller loops.
  if (n < 0 && IsWouldBlock(err)) {
    // A finite deadline, or a descriptor made non-blocking again by
    // native_handle(): wait for data, then receive.
    likely_buffered_ = false;
    *poll_first = true;
    return absl::OkStatus();
  }
  return OnRecvEndLocked(op, n, err);
}

absl::Status PosixChannel::TakeDescriptorsLocked(absl::string_view op,
                                                 msghdr* msg, size_t got) {
  // Into UniqueFds first, so that every path below closes what it drops.
  std::vector<UniqueFd> fds;
  bool alloc_failed = false;
  if (msg->msg_controllen > 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr;
         c = CMSG_NXTHDR(msg, c)) {
      // Other control messages (credentials a peer pushed, say) hold no
      // resource of ours; they are ignored.
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* data = CMSG_DATA(c);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, data + i * sizeof(int), sizeof(int));
        UniqueFd owned(received);
#if !CANAL_HAVE_MSG_CMSG_CLOEXEC
        SetCloexec(received);
#endif
        if (alloc_failed) continue;  // Closed at once.
        try {
          fds.push_back(std::move(owned));
        } catch (const std::bad_alloc&) {
          alloc_failed = true;
        }
      }
    }
  }
  if ((msg->msg_flags & MSG_CTRUNC) != 0) {
    return HandlesFailedLocked(
        op, absl::StrCat("the peer sent more handles with one message than "
                         "the limit of ",
                         max_handles_,
                         " (max_handles_per_message); the control data "
                         "was truncated (MSG_CTRUNC), and every handle that "
                         "arrived was closed"));
  }
  if (alloc_failed) {
    fd_batches_.clear();
    message_fds_.clear();
    read_fail_ = MakeError(absl::StatusCode::kResourceExhausted, op, name_,
                           "out of memory for received handles; they were "
                           "closed");
    return read_fail_;
  }
  if (fds.empty() || closed() || !read_fail_.ok()) return absl::OkStatus();
  FdBatch batch;
  batch.start = received_total_;
  batch.end = received_total_ + got;
  batch.fds = std::move(fds);
  fd_batches_.push_back(std::move(batch));  // May throw: the fds close.
  return absl::OkStatus();
}

absl::Status PosixChannel::HandlesFailedLocked(absl::string_view op,
                                               absl::string_view what) {
  fd_batches_.clear();
  message_fds_.clear();
  read_fail_ = MakeError(absl::StatusCode::kDataLoss, op, name_, what);
  return read_fail_;
}

void PosixChannel::BeforeDecodeLocked() {
  if (!decoder_.mid_frame()) header_offset_ = received_total_ - rbuf_.size();
  headers_before_ = decoder_.headers_taken();
  in_message_before_ = decoder_.in_message();
}

absl::Status PosixChannel::AfterDecodeLocked(absl::string_view op) {
  if (decoder_.failed()) {
    fd_batches_.clear();
    message_fds_.clear();
    return absl::OkStatus();  // The caller reports the decoder's error.
  }
  const bool header_taken = decoder_.headers_taken() != headers_before_;
  if (header_taken) {
    const uint64_t at = header_offset_;
    const uint32_t claimed = decoder_.last_header_handles();
    frame_end_ = at + decoder_.last_frame_size();
    message_fds_.clear();
    if (!fd_batches_.empty() && fd_batches_.front().end <= at) {
      return HandlesFailedLocked(
          op, absl::StrCat("the peer sent ", fd_batches_.front().fds.size(),
                           " handles that no message claims"));
    }
    if (claimed > 0) {
      if (fd_batches_.empty() || fd_batches_.front().start > at) {
        return HandlesFailedLocked(
            op, absl::StrCat("a message claims ", claimed,
                             " handles but none came with it"));
      }
      FdBatch& batch = fd_batches_.front();
      if (batch.fds.size() != claimed) {
        return HandlesFailedLocked(
            op, absl::StrCat("a message claims ", claimed, " handles but ",
                             batch.fds.size(), " came with it"));
      }
      message_fds_ = std::move(batch.fds);
      fd_batches_.pop_front();
    }
  }
  const bool finished =
      (in_message_before_ || header_taken) && !decoder_.in_message();
  if (finished && !fd_batches_.empty() &&
      fd_batches_.front().end <= frame_end_) {
    // Every header that starts in the bytes that brought them was taken.
    return HandlesFailedLocked(
        op, absl::StrCat("the peer sent ", fd_batches_.front().fds.size(),
                         " handles that no message claims"));
  }
  return absl::OkStatus();
}

absl::Status PosixChannel::OnRecvEndLocked(absl::string_view op, ssize_t n,
                                           int err) {
  // Our own shutdown() in Close() also reads as end of stream.
  if (closed()) return Cancelled(op);
  // A reset is the peer going away with our data unread by it; everything
  // it sent was delivered first, so for us it is simply end of stream.
  if (n == 0 || err == ECONNRESET) {
    eof_ = true;
    ReleaseSlot();
    return absl::OkStatus();
  }
  return ErrnoError(op, name_, "recv failed", err);
}

absl::Status PosixChannel::EndOfStreamLocked(absl::string_view op) {
  if (mode_ == PipeMode::kMessage &&
      decoder_.EndOfStream(rbuf_.size()) != FrameError::kNone) {
    return FramingFailedLocked(op);
  }
  return MakeError(absl::StatusCode::kOutOfRange, op, name_,
                   "end of stream: the peer closed the pipe");
}

absl::Status PosixChannel::FramingFailedLocked(absl::string_view op) {
  // The position in the stream is lost: the channel stays failed, and no
  // descriptor can be matched to a message any more.
  fd_batches_.clear();
  message_fds_.clear();
  read_fail_ = decoder_.ErrorStatus(op, name_);
  return read_fail_;
}

absl::Status PosixChannel::MessageTooBigForMemory(absl::string_view op) const {
  return MakeError(
      absl::StatusCode::kResourceExhausted, op, name_,
      absl::StrCat("out of memory for a message of ", decoder_.message_size(),
                   " bytes (", decoder_.body_size(),
                   " arrived); it can still be read in parts with Read"));
}

absl::StatusOr<ReadResult> PosixChannel::Read(absl::Span<char> buffer,
                                              absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard guard(&ops_, "Read", OpState::kReader, deadline);
  if (!guard.status().ok()) return guard.status();
  if (mode_ == PipeMode::kByte) {
    return ReadBytes("Read", guard.fd(), buffer, deadline);
  }
  return ReadMessagePart("Read", guard.fd(), buffer, deadline);
}

absl::StatusOr<ReadResult> PosixChannel::ReadBytes(absl::string_view op, int fd,
                                                   absl::Span<char> buffer,
                                                   const Deadline& deadline) {
  if (buffer.empty()) return ReadResult{0, false};
  if (closed()) return Cancelled(op);
  // rbuf_ and eof_ change only in the reader role, which we hold, so reading
  // them without buf_mu_ is race-free; buf_mu_ is needed only to change them.
  if (!rbuf_.empty() || eof_) {
    std::lock_guard<std::mutex> lock(buf_mu_);
    if (!rbuf_.empty()) {
      // Byte mode never buffers today (reads go straight to the caller and
      // Peek uses MSG_PEEK); kept so that buffered bytes always come first.
      const size_t n = std::min(buffer.size(), rbuf_.size());
      std::memcpy(buffer.data(), rbuf_.data(), n);
      rbuf_.Consume(n);
      return ReadResult{n, false};
    }
    if (eof_) return EndOfStreamLocked(op);
  }
  // Straight into the caller's buffer, without buf_mu_: the bytes are
  // consumed the moment recv takes them, which is what Peek sees, so no
  // bookkeeping is needed. Infinite deadline: one blocking recv, woken by
  // Close()'s shutdown. Otherwise poll first unless data is probably queued.
  const int flags = deadline.infinite() ? 0 : MSG_DONTWAIT;
  bool poll_first = !deadline.infinite() && !likely_buffered_;
  while (true) {
    if (poll_first) {
      absl::Status waited =
          WaitFor(op, fd, POLLIN, deadline, "waiting for data");
      if (!waited.ok()) return waited;
    }
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), flags);
    if (n > 0) {
      likely_buffered_ = static_cast<size_t>(n) == buffer.size();
      return ReadResult{static_cast<size_t>(n), false};
    }
    const int err = n < 0 ? errno : 0;
    if (n < 0 && err == EINTR) {
      if (closed()) return Cancelled(op);
      continue;
    }
    if (n < 0 && IsWouldBlock(err)) {
      // A finite deadline, or a descriptor made non-blocking again by
      // native_handle().
      likely_buffered_ = false;
      poll_first = true;
      continue;
    }
    std::lock_guard<std::mutex> lock(buf_mu_);
    absl::Status s = OnRecvEndLocked(op, n, err);
    if (!s.ok()) return s;
    return EndOfStreamLocked(op);
  }
}

absl::StatusOr<ReadResult> PosixChannel::ReadMessagePart(
    absl::string_view op, int fd, absl::Span<char> buffer,
    const Deadline& deadline) {
  bool poll_first = !deadline.infinite() && !likely_buffered_;
  std::lock_guard<std::mutex> lock(buf_mu_);
  while (true) {
    if (closed()) return Cancelled(op);
    if (!read_fail_.ok()) return read_fail_;
    // The decoder takes what it uses from the front of `input`; rbuf_
    // drops the same bytes once, before returning or receiving.
    absl::string_view input(rbuf_.data(), rbuf_.size());
    BeforeDecodeLocked();
    const bool in_message = decoder_.ParseHeader(&input);
    if (decoder_.failed()) return FramingFailedLocked(op);
    // A Read delivers data only: the message's descriptors are closed once
    // it is finished.
    auto part_done = [&](size_t n) -> absl::StatusOr<ReadResult> {
      rbuf_.Consume(rbuf_.size() - input.size());
      absl::Status handles = AfterDecodeLocked(op);
      if (!handles.ok()) return handles;
      if (!decoder_.in_message()) message_fds_.clear();
      return ReadResult{n, decoder_.in_message()};
    };
    size_t need;  // Bytes still missing to answer.
    if (in_message) {
      const uint64_t remaining = decoder_.message_remaining();
      if (buffer.empty()) {
        // Like ReadFile with a zero-length buffer on a message pipe: an
        // empty message is consumed, a non-empty one reported as "more".
        if (remaining == 0) decoder_.ReadPart(&input, buffer);
        absl::StatusOr<ReadResult> done = part_done(0);
        if (!done.ok()) return done;
        return ReadResult{0, remaining != 0};
      }
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(buffer.size(), remaining));
      const uint64_t available = decoder_.part_available(input);
      if (available >= want) {
        const size_t n = decoder_.ReadPart(&input, buffer.subspan(0, want));
        return part_done(n);
      }
      need = static_cast<size_t>(want - available);
    } else {
      need = 1;  // The rest of a header: whatever the next recv brings.
    }
    if (input.size() != rbuf_.size()) {
      rbuf_.Consume(rbuf_.size() - input.size());
    }
    absl::Status handles = AfterDecodeLocked(op);
    if (!handles.ok()) return handles;
    if (eof_) return EndOfStreamLocked(op);
    // Up to 64 KiB at once, so several small frames usually come with one
    // recv; more only as bytes arrive (rbuf_ at most doubles per receive).
    // Bytes are delivered only once `want` of them are here: a timed-out
    // Read consumes nothing.
    size_t unused = 0;
    absl::Status received =
        ReceiveLocked(op, fd, deadline, "waiting for a message",
                      std::max(kRecvChunk, std::min(need, rbuf_.size())),
                      nullptr, 0, &unused, &poll_first);
    if (!received.ok()) return received;
  }
}

absl::StatusOr<std::string> PosixChannel::ReadMessage(absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard guard(&ops_, "ReadMessage", OpState::kReader, deadline);
  if (!guard.status().ok()) return guard.status();
  return ReadWholeMessage("ReadMessage", guard.fd(), deadline);
}

absl::StatusOr<MessageWithHandles> PosixChannel::ReadMessageWithHandles(
    absl::Duration timeout) {
  constexpr absl::string_view kOp = "ReadMessageWithHandles";
  const Deadline deadline(timeout);
  OpGuard guard(&ops_, kOp, OpState::kReader, deadline);
  if (!guard.status().ok()) return guard.status();
  std::vector<UniqueFd> fds;
  absl::StatusOr<std::string> data =
      ReadWholeMessage(kOp, guard.fd(), deadline, &fds);
  if (!data.ok()) return data.status();
  MessageWithHandles result;
  result.data = *std::move(data);
  result.handles.reserve(fds.size());
  for (UniqueFd& fd : fds) result.handles.emplace_back(fd.Release());
  return result;
}

absl::StatusOr<std::string> PosixChannel::ReadWholeMessage(
    absl::string_view op, int fd, const Deadline& deadline,
    std::vector<UniqueFd>* handles) {
  bool poll_first = !deadline.infinite() && !likely_buffered_;
  std::lock_guard<std::mutex> lock(buf_mu_);
  while (true) {
    if (closed()) return Cancelled(op);
    if (!read_fail_.ok()) return read_fail_;
    // Whole messages already received cost no allocation beyond the
    // result; a message that is still arriving is assembled in the
    // decoder, which grows with the bytes received, never with the length
    // the peer announced.
    absl::string_view input(rbuf_.data(), rbuf_.size());
    std::string message;
    BeforeDecodeLocked();
    const FrameDecoder::Result result = decoder_.Next(&input, &message);
    if (input.size() != rbuf_.size()) {
      rbuf_.Consume(rbuf_.size() - input.size());
    }
    absl::Status claimed = AfterDecodeLocked(op);
    if (!claimed.ok()) return claimed;
    switch (result) {
      case FrameDecoder::Result::kMessage:
        if (handles != nullptr) {
          handles->swap(message_fds_);
        }
        message_fds_.clear();
        return message;
      case FrameDecoder::Result::kError:
        return FramingFailedLocked(op);
      case FrameDecoder::Result::kNoMemory:
        decoder_.Trim();
        return MessageTooBigForMemory(op);
      case FrameDecoder::Result::kNeedMore:
        break;  // rbuf_ is empty now.
    }
    if (eof_) return EndOfStreamLocked(op);
    size_t got = 0;
    absl::Status received;
    if (decoder_.in_message()) {
      // The rest of the message straight into the decoder's buffer, and,
      // once that covers the whole rest, what follows it into rbuf_, with
      // one recvmsg.
      absl::Span<char> room;
      if (!decoder_.BodyRoom(&room)) {
        decoder_.Trim();
        return MessageTooBigForMemory(op);
      }
      const bool covers_rest = room.size() == decoder_.body_missing();
      received = ReceiveLocked(op, fd, deadline, "waiting for a message",
                               covers_rest ? kRecvChunk : 0, room.data(),
                               room.size(), &got, &poll_first);
      decoder_.CommitBody(got);
    } else {
      received = ReceiveLocked(op, fd, deadline, "waiting for a message",
                               kRecvChunk, nullptr, 0, &got, &poll_first);
    }
    if (!received.ok()) {
      // Keep what arrived (a later read continues the message) but nothing
      // more: room reserved for bytes that did not come is freed.
      decoder_.Trim();
      return received;
    }
  }
}

// --- Sending ---------------------------------------------------------------

absl::Status PosixChannel::Write(absl::string_view op, absl::string_view data,
                                 absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard guard(&ops_, op, OpState::kWriter, deadline);
  if (!guard.status().ok()) return guard.status();
  if (mode_ == PipeMode::kByte)
    return SendBytes(op, guard.fd(), data, deadline);
  return SendFrame(op, guard.fd(), data, deadline);
}

absl::Status PosixChannel::WriteWithHandles(
    absl::string_view op, absl::string_view data,
    absl::Span<const NativeHandle> handles, absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard guard(&ops_, op, OpState::kWriter, deadline);
  if (!guard.status().ok()) return guard.status();
  return SendFrame(op, guard.fd(), data, deadline, handles);
}

absl::Status PosixChannel::SendBytes(absl::string_view op, int fd,
                                     absl::string_view data,
                                     const Deadline& deadline) {
  // Infinite deadline: one blocking send writes everything (Close()'s
  // shutdown makes it fail with EPIPE). Otherwise try, then poll.
  const int flags = kSendFlags | (deadline.infinite() ? 0 : MSG_DONTWAIT);
  return WriteAll(
      data.size(),
      [&](size_t sent) {
        return ::send(fd, data.data() + sent, data.size() - sent, flags);
      },
      [&](size_t sent) {
        return WaitFor(
            op, fd, POLLOUT, deadline,
            absl::StrCat("waiting for the peer to read, after writing ", sent,
                         " of ", data.size(), " bytes"));
      },
      [&](int err) { return SendFailure(op, err); },
      [&] { return closed() ? Cancelled(op) : absl::OkStatus(); });
}

absl::Status PosixChannel::SendFrame(absl::string_view op, int fd,
                                     absl::string_view data,
                                     const Deadline& deadline,
                                     absl::Span<const int> fds) {
  if (write_broken_) {
    return MakeError(absl::StatusCode::kFailedPrecondition, op, name_,
                     "the write side was shut down after a message timed out "
                     "part-way");
  }
  // Frames without descriptors keep the plain 8-byte header, byte for
  // byte what every canal peer expects.
  unsigned char header[kHandleFrameHeaderSize];
  size_t header_size = kFrameHeaderSize;
  if (fds.empty()) {
    EncodeFrameHeader(static_cast<uint32_t>(data.size()), header);
  } else {
    EncodeHandleFrameHeader(static_cast<uint32_t>(data.size()),
                            static_cast<uint32_t>(fds.size()), header);
    header_size = kHandleFrameHeaderSize;
  }
  // The descriptors ride on the first sendmsg that sends anything, so the
  // kernel attaches them to the header's first byte.
  std::unique_ptr<char[]> control;
  size_t control_len = 0;
  if (!fds.empty()) {
    control_len = CMSG_SPACE(fds.size() * sizeof(int));
    control.reset(new char[control_len]);
    std::memset(control.get(), 0, control_len);
  }
  const size_t total = header_size + data.size();
  const int flags = kSendFlags | (deadline.infinite() ? 0 : MSG_DONTWAIT);
  const bool coalesced = total <= kCoalesceMax;
  if (coalesced) {
    // The writer role owns sbuf_; allocated once, on the first such write.
    if (!sbuf_) sbuf_.reset(new char[kCoalesceMax]);
    std::memcpy(sbuf_.get(), header, header_size);
    if (!data.empty()) {
      std::memcpy(sbuf_.get() + header_size, data.data(), data.size());
    }
  }
  auto attempt = [&](size_t sent) -> ssize_t {
    const bool with_fds = !fds.empty() && sent == 0;
    if (coalesced && !with_fds) {
      return ::send(fd, sbuf_.get() + sent, total - sent, flags);
    }
    // Header and payload go out in one sendmsg.
    iovec iov[2];
    int iovcnt = 0;
    if (coalesced) {
      iov[iovcnt].iov_base = sbuf_.get() + sent;
      iov[iovcnt].iov_len = total - sent;
      ++iovcnt;
    } else if (sent < header_size) {
      iov[iovcnt].iov_base = header + sent;
      iov[iovcnt].iov_len = header_size - sent;
      ++iovcnt;
      if (!data.empty()) {
        iov[iovcnt].iov_base = const_cast<char*>(data.data());
        iov[iovcnt].iov_len = data.size();
        ++iovcnt;
      }
    } else {
      const size_t off = sent - header_size;
      iov[iovcnt].iov_base = const_cast<char*>(data.data() + off);
      iov[iovcnt].iov_len = data.size() - off;
      ++iovcnt;
    }
    msghdr msg;
    std::memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = iovcnt;
    if (with_fds) {
      msg.msg_control = control.get();
      msg.msg_controllen = control_len;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    return ::sendmsg(fd, &msg, flags);
  };
  auto wait = [&](size_t sent) {
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
                       " bytes of a message; the write side was shut down "
                       "so that the reader sees DataLoss rather than a "
                       "torn message"));
    }
    return waited;
  };
  return WriteAll(
      total, attempt, wait, [&](int err) { return SendFailure(op, err); },
      [&] { return closed() ? Cancelled(op) : absl::OkStatus(); });
}

// --- Transact, Peek, Peer --------------------------------------------------

absl::StatusOr<std::string> PosixChannel::Transact(absl::string_view op,
                                                   absl::string_view request,
                                                   absl::Duration timeout) {
  return TransactWithin(op, request, Deadline(timeout));
}

absl::StatusOr<std::string> PosixChannel::TransactWithin(
    absl::string_view op, absl::string_view request, const Deadline& deadline) {
  OpGuard guard(&ops_, op, OpState::kReader | OpState::kWriter, deadline);
  if (!guard.status().ok()) return guard.status();
  {
    std::lock_guard<std::mutex> lock(buf_mu_);
    // Like TransactNamedPipe (STATUS_PIPE_BUSY), refuse while anything is
    // unread: the reply would otherwise be confused with an older message.
    if (decoder_.mid_frame() || !rbuf_.empty()) {
      return MakeError(absl::StatusCode::kFailedPrecondition, op, name_,
                       "unread data is queued on the channel; read it first");
    }
    int queued = 0;
    if (ioctl(guard.fd(), FIONREAD, &queued) == 0 && queued > 0) {
      return MakeError(absl::StatusCode::kFailedPrecondition, op, name_,
                       absl::StrCat(queued,
                                    " bytes of unread data are queued "
                                    "on the channel; read them first"));
    }
  }
  absl::Status sent = SendFrame(op, guard.fd(), request, deadline);
  if (!sent.ok()) return sent;
  absl::StatusOr<std::string> reply =
      ReadWholeMessage(op, guard.fd(), deadline);
  if (absl::IsOutOfRange(reply.status())) {
    // The stream ended cleanly before the reply began: as on Windows, where
    // TransactNamedPipe fails with ERROR_BROKEN_PIPE or
    // ERROR_PIPE_NOT_CONNECTED, the transaction is Unavailable (a stream
    // ending inside the reply is DataLoss, from ReadWholeMessage).
    return MakeError(absl::StatusCode::kUnavailable, op, name_,
                     "the peer closed the pipe before replying");
  }
  return reply;
}

absl::StatusOr<PeekResult> PosixChannel::Peek(absl::Span<char> buffer) {
  const absl::string_view op = "Peek";
  OpGuard guard(&ops_, op);
  if (!guard.status().ok()) return guard.status();
  const int fd = guard.fd();
  std::lock_guard<std::mutex> lock(buf_mu_);
  if (!read_fail_.ok()) return read_fail_;

  // What the kernel holds, looked at with MSG_PEEK: taking it off the socket
  // would leave a reader blocked in poll() on another thread asleep although
  // data had arrived. Not while the reader is in a recv into rbuf_ or the
  // decoder's memory (message mode): bytes may then be between the kernel's
  // queue and the committed ones, so the two cannot be combined; the
  // committed bytes are a consistent (slightly older) view, and end of
  // stream is left for the reader to record. A byte-mode reader receives
  // straight into its caller's buffer, which consumes the bytes at once, so
  // there is no such gap there (and receiving_ is never set).
  std::string peeked;
  bool eof = eof_;
  if (!eof && !receiving_) {
    int queued = 0;
    size_t want = kRecvChunk;
    if (::ioctl(fd, FIONREAD, &queued) == 0) {
      // With nothing queued, peek one byte anyway to tell "nothing yet"
      // from "the peer finished".
      want = queued > 0
                 ? std::min<size_t>(static_cast<size_t>(queued), kMaxPeek)
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

  const absl::string_view queued(rbuf_.data(), rbuf_.size());
  PeekResult result;

  if (mode_ == PipeMode::kByte) {
    const uint64_t total = queued.size() + peeked.size();
    if (total == 0 && eof) {
      return MakeError(absl::StatusCode::kOutOfRange, op, name_,
                       "end of stream: the peer closed the pipe");
    }
    result.size = CopyFromParts({queued, peeked}, 0, buffer.data(),
                                std::min<uint64_t>(buffer.size(), total));
    result.available = static_cast<size_t>(total);
    return result;
  }

  // Message mode: what the decoder holds, then the frames in rbuf_ and the
  // kernel's queue, without consuming. As PeekNamedPipe does for a writer
  // that is still sending, every message whose header is visible counts
  // with its announced length, arrived or not; only arrived bytes are
  // copied.
  if (!decoder_.mid_frame() && queued.empty() && peeked.empty() && eof) {
    return MakeError(absl::StatusCode::kOutOfRange, op, name_,
                     "end of stream: the peer closed the pipe");
  }
  const FrameSurvey survey = decoder_.Survey({queued, peeked}, buffer);
  constexpr uint64_t kMaxSize = std::numeric_limits<size_t>::max();
  result.size = survey.copied;
  result.available = static_cast<size_t>(std::min(survey.available, kMaxSize));
  result.message_remaining =
      static_cast<size_t>(std::min(survey.message_remaining, kMaxSize));
  return result;
}

absl::StatusOr<PeerInfo> PosixChannel::Peer() {
  const absl::string_view op = "Peer";
  OpGuard guard(&ops_, op);
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

}  // namespace posix
}  // namespace internal
}  // namespace canal

namespace canal {
namespace internal {
namespace posix {

// --- The shared-memory transport's set-up ----------------------------------
//
// Raw bytes on the socket, before any frame or user byte: both sides know
// each record's size, so nothing is read past it.

absl::Status PosixChannel::WriteSetup(absl::string_view data,
                                      absl::Span<const NativeHandle> handles,
                                      absl::Duration timeout) {
  constexpr absl::string_view kOp = "Accept";
  const Deadline deadline(timeout);
  OpGuard guard(&ops_, kOp, OpState::kWriter, deadline);
  if (!guard.status().ok()) return guard.status();
  const int fd = guard.fd();
  size_t sent = 0;
  std::vector<char> control;
  if (!handles.empty()) {
    control.assign(CMSG_SPACE(handles.size() * sizeof(int)), 0);
  }
  while (sent < data.size()) {
    iovec iov{const_cast<char*>(data.data() + sent), data.size() - sent};
    msghdr msg;
    std::memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // The descriptors ride on the first byte.
    if (sent == 0 && !control.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(handles.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), handles.data(), handles.size() * sizeof(int));
    }
    const ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    const int err = n < 0 ? errno : EPIPE;
    if (err == EINTR) continue;
    if (IsWouldBlock(err)) {
      CANAL_RETURN_IF_ERROR(WaitFor(kOp, fd, POLLOUT, deadline,
                                    "sending the shared-memory set-up"));
      continue;
    }
    if (closed()) return Cancelled(kOp);
    return ErrnoError(absl::StatusCode::kUnavailable, kOp, name_,
                      "cannot send the shared-memory set-up", err);
  }
  return absl::OkStatus();
}

absl::StatusOr<MessageWithHandles> PosixChannel::ReadSetup(
    size_t size, size_t handles, absl::Duration timeout) {
  constexpr absl::string_view kOp = "Connect";
  const Deadline deadline(timeout);
  OpGuard guard(&ops_, kOp, OpState::kReader, deadline);
  if (!guard.status().ok()) return guard.status();
  const int fd = guard.fd();
  MessageWithHandles result;
  result.data.resize(size);
  const size_t control_len =
      CMSG_SPACE(std::max<size_t>(handles, 1) * sizeof(int));
  std::vector<char> control(control_len);
  size_t got = 0;
  bool truncated = false;
  while (got < size) {
    iovec iov{&result.data[got], size - got};
    msghdr msg;
    std::memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | kRecvCloexec);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (IsWouldBlock(err)) {
        absl::Status waited = WaitFor(kOp, fd, POLLIN, deadline,
                                      "waiting for the shared-memory set-up");
        if (absl::IsDeadlineExceeded(waited) && got > 0) {
          // Part of the record is gone from the socket: the stream cannot
          // be resumed.
          return MakeError(absl::StatusCode::kDataLoss, kOp, name_,
                           absl::StrCat("timed out after ", got, " of ", size,
                                        " bytes of the shared-memory set-up"));
        }
        CANAL_RETURN_IF_ERROR(waited);
        continue;
      }
      if (closed()) return Cancelled(kOp);
      return ErrnoError(absl::StatusCode::kUnavailable, kOp, name_,
                        "cannot read the shared-memory set-up", err);
    }
    // Every descriptor that came is owned (and so closed on any failure).
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
#if !CANAL_HAVE_MSG_CMSG_CLOEXEC
        SetCloexec(received);
#endif
        result.handles.emplace_back(received);
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) truncated = true;
    if (n == 0) {
      if (closed()) return Cancelled(kOp);
      return MakeError(absl::StatusCode::kUnavailable, kOp, name_,
                       absl::StrCat("the peer closed the connection during "
                                    "the shared-memory set-up (after ",
                                    got, " of ", size, " bytes)"));
    }
    got += static_cast<size_t>(n);
  }
  if (truncated || result.handles.size() > handles) {
    return MakeError(
        absl::StatusCode::kDataLoss, kOp, name_,
        absl::StrCat("the shared-memory set-up came with more "
                     "than ",
                     handles, " descriptors; every one was closed"));
  }
  return result;
}

absl::Status PosixChannel::CheckPeerConnected(absl::string_view op) {
  OpGuard guard(&ops_, op);
  if (!guard.status().ok()) return guard.status();
  pollfd pfd{guard.fd(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, 0);
  } while (rc < 0 && errno == EINTR);
  if (closed()) return Cancelled(op);
  if (rc <= 0) return absl::OkStatus();
  if ((pfd.revents & (POLLHUP | POLLERR)) == 0) {
    // Readable: end of stream, or bytes a peer should not have sent
    // (ignored: the data goes through the rings).
    char byte;
    ssize_t n;
    do {
      n = ::recv(guard.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0 || (n < 0 && IsWouldBlock(errno))) return absl::OkStatus();
  }
  return MakeError(absl::StatusCode::kUnavailable, op, name_,
                   "the peer closed the channel (its end of the socket is "
                   "gone)");
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
