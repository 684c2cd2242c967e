// SPDX-License-Identifier: Apache-2.0
// CreatePipe and AdoptPipeEnd for POSIX, and PosixPipeChannel (see
// pipe.h).

#include "src/posix/pipe.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "canal/pipe.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/posix/error.h"

namespace canal {
namespace internal {
namespace posix {

ssize_t WriteNoSigPipe(int fd, const void* data, size_t size) {
#if defined(__APPLE__)
  // F_SETNOSIGPIPE is set on every pipe end canal makes (see Create).
  return ::write(fd, data, size);
#else
  sigset_t pipe_set;
  sigset_t old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  const ssize_t n = ::write(fd, data, size);
  const int err = errno;
  if (n < 0 && err == EPIPE && !was_pending) {
    // Consume the SIGPIPE this write raised for this thread before
    // unblocking it.
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  errno = err;
  return n;
#endif
}

bool MakeCloexecPipe(int fds[2]) {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__)
  return ::pipe2(fds, O_CLOEXEC) == 0;
#else
  // No pipe2 (macOS): between pipe() and fcntl() a fork+exec in another
  // thread may inherit the ends. posix_spawn children of canal itself are
  // not affected (their file actions close everything else where the C
  // library allows it); there is no portable way to close the window.
  if (::pipe(fds) != 0) return false;
  for (int i = 0; i < 2; ++i) {
    const int flags = ::fcntl(fds[i], F_GETFD);
    if (flags < 0 || ::fcntl(fds[i], F_SETFD, flags | FD_CLOEXEC) < 0) {
      CloseFd(fds[0]);
      CloseFd(fds[1]);
      return false;
    }
  }
  return true;
#endif
}

namespace {

bool MakeWake(int* read_fd, int* write_fd) {
#ifdef __linux__
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return false;
  *read_fd = *write_fd = fd;
  return true;
#else
  int fds[2];
  if (!MakePipe(fds)) return false;  // Non-blocking, close-on-exec.
  *read_fd = fds[0];
  *write_fd = fds[1];
  return true;
#endif
}

}  // namespace

absl::StatusOr<std::unique_ptr<PosixPipeChannel>> PosixPipeChannel::Create(
    UniqueFd fd, bool read_end, std::string name, UniqueFd keep_writer) {
  const int fd_flags = ::fcntl(fd.get(), F_GETFD);
  const int fl_flags = ::fcntl(fd.get(), F_GETFL);
  if (fd_flags < 0 || fl_flags < 0 ||
      ::fcntl(fd.get(), F_SETFD, fd_flags | FD_CLOEXEC) < 0 ||
      ::fcntl(fd.get(), F_SETFL, fl_flags | O_NONBLOCK) < 0) {
    return ErrnoError("Open", name, "cannot make the pipe non-blocking", errno);
  }
#ifdef F_SETNOSIGPIPE
  ::fcntl(fd.get(), F_SETNOSIGPIPE, 1);
#endif
  int wake_read = -1;
  int wake_write = -1;
  if (!MakeWake(&wake_read, &wake_write)) {
    return ErrnoError("Open", name, "cannot create the wake descriptor", errno);
  }
  // Not `new` that throws: the wake descriptors would leak.
  std::unique_ptr<PosixPipeChannel> channel(new (std::nothrow) PosixPipeChannel(
      std::move(fd), read_end, std::move(name), std::move(keep_writer),
      wake_read, wake_write));
  if (channel == nullptr) {
    CloseFd(wake_read);
    if (wake_write != wake_read) CloseFd(wake_write);
    return MakeError(absl::StatusCode::kResourceExhausted, "Open", "pipe",
                     "out of memory");
  }
  return channel;
}

PosixPipeChannel::PosixPipeChannel(UniqueFd fd, bool read_end, std::string name,
                                   UniqueFd keep_writer, int wake_read,
                                   int wake_write)
    : name_(std::move(name)),
      read_end_(read_end),
      wake_read_(wake_read),
      wake_write_(wake_write),
      ops_(fd.Release(), name_),
      keep_writer_(std::move(keep_writer)) {}

PosixPipeChannel::~PosixPipeChannel() {
  Close();  // Closes the pipe descriptor: no operation is left.
  CloseFd(wake_read_);
  if (wake_write_ != wake_read_) CloseFd(wake_write_);
}

void PosixPipeChannel::Kick() {
#ifdef __linux__
  const uint64_t one = 1;
  (void)!::write(wake_write_, &one, sizeof(one));
#else
  const char one = 1;
  (void)!::write(wake_write_, &one, 1);
#endif
}

void PosixPipeChannel::DrainWake() {
  char buf[64];
  while (::read(wake_read_, buf, sizeof(buf)) > 0) {
  }
}

absl::Status PosixPipeChannel::WaitFor(absl::string_view op, int fd,
                                       short events, const Deadline& deadline) {
  pollfd fds[2];
  fds[0].fd = fd;
  fds[0].events = events;
  fds[0].revents = 0;
  fds[1].fd = wake_read_;
  fds[1].events = POLLIN;
  fds[1].revents = 0;
  const int n = PollUntil(fds, 2, deadline);
  if (n < 0) return ErrnoError(op, name_, "poll failed", errno);
  if (n == 0) {
    return MakeError(absl::StatusCode::kDeadlineExceeded, op, name_,
                     "timed out");
  }
  if ((fds[1].revents & POLLIN) != 0 && !ops_.closed()) DrainWake();
  return absl::OkStatus();
}

void PosixPipeChannel::Close() {
  // shutdown(2) does not work on pipes: wake the pollers through the wake
  // descriptor instead (sticky: never drained once closed).
  if (!ops_.Close([this](int) { Kick(); })) return;
  absl::MutexLock lock(&buf_mu_);
  keep_writer_.Reset();
}

NativeHandle PosixPipeChannel::native_handle() const {
  OpGuard op(&ops_, "native_handle");
  return op.fd();
}

absl::StatusOr<ReadResult> PosixPipeChannel::Read(absl::Span<char> buffer,
                                                  absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard op(&ops_, "Read", OpState::kReader, deadline);
  if (!op.ok()) return op.status();
  if (buffer.empty()) return ReadResult();
  while (true) {
    if (ops_.closed()) return Cancelled("Read");
    {
      absl::MutexLock lock(&buf_mu_);
      ReadResult result;
      if (!rbuf_.empty()) {
        result.size = std::min(buffer.size(), rbuf_.size());
        std::memcpy(buffer.data(), rbuf_.data(), result.size);
        rbuf_.erase(0, result.size);
        return result;
      }
      if (eof_) {
        return MakeError(absl::StatusCode::kOutOfRange, "Read", name_,
                         "end of stream: every writer closed the pipe");
      }
      const ssize_t n = ::read(op.fd(), buffer.data(), buffer.size());
      if (n > 0) {
        keep_writer_.Reset();  // A writer came: EOF may be reported now.
        result.size = static_cast<size_t>(n);
        return result;
      }
      if (n == 0) {
        eof_ = true;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return ErrnoError(absl::StatusCode::kUnavailable, "Read", name_,
                          "read failed", errno);
      }
    }
    absl::Status waited = WaitFor("Read", op.fd(), POLLIN, deadline);
    if (!waited.ok()) return waited;
  }
}

absl::Status PosixPipeChannel::Write(absl::string_view op_name,
                                     absl::string_view data,
                                     absl::Duration timeout) {
  const Deadline deadline(timeout);
  OpGuard op(&ops_, op_name, OpState::kWriter, deadline);
  if (!op.ok()) return op.status();
  return WriteAll(
      data.size(),
      [&](size_t done) {
        return WriteNoSigPipe(op.fd(), data.data() + done, data.size() - done);
      },
      [&](size_t) { return WaitFor(op_name, op.fd(), POLLOUT, deadline); },
      [&](int err) {
        if (err == EPIPE) {
          return ErrnoError(absl::StatusCode::kUnavailable, op_name, name_,
                            "the reading end is closed", EPIPE);
        }
        return ErrnoError(op_name, name_, "write failed", err);
      },
      [&] { return ops_.closed() ? Cancelled(op_name) : absl::OkStatus(); });
}

absl::StatusOr<std::string> PosixPipeChannel::ReadMessage(absl::Duration) {
  return MakeError(absl::StatusCode::kFailedPrecondition, "ReadMessage", name_,
                   "pipes are byte mode");
}

absl::StatusOr<std::string> PosixPipeChannel::Transact(absl::string_view,
                                                       absl::string_view,
                                                       absl::Duration) {
  return MakeError(absl::StatusCode::kFailedPrecondition, "Transact", name_,
                   "pipes are one-way and byte mode");
}

absl::StatusOr<PeekResult> PosixPipeChannel::Peek(absl::Span<char> buffer) {
  OpGuard op(&ops_, "Peek");
  if (!op.ok()) return op.status();
  absl::MutexLock lock(&buf_mu_);
  int queued = 0;
  if (::ioctl(op.fd(), FIONREAD, &queued) < 0) queued = 0;
  bool pulled = false;
  while (rbuf_.size() < buffer.size() && queued > 0) {
    const size_t want =
        std::min(buffer.size() - rbuf_.size(), static_cast<size_t>(queued));
    const size_t old = rbuf_.size();
    rbuf_.resize(old + want);
    const ssize_t n = ::read(op.fd(), &rbuf_[old], want);
    rbuf_.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n <= 0) break;
    pulled = true;
    queued -= static_cast<int>(n);
  }
  if (pulled) {
    keep_writer_.Reset();
    Kick();  // A reader asleep in poll() must look at rbuf_.
  }
  PeekResult result;
  result.size = std::min(buffer.size(), rbuf_.size());
  std::memcpy(buffer.data(), rbuf_.data(), result.size);
  result.available = rbuf_.size() + static_cast<size_t>(std::max(queued, 0));
  if (result.available == 0 && !keep_writer_.valid()) {
    pollfd p;
    p.fd = op.fd();
    p.events = POLLIN;
    p.revents = 0;
    if (eof_ || (::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0)) {
      return MakeError(absl::StatusCode::kOutOfRange, "Peek", name_,
                       "end of stream: every writer closed the pipe");
    }
  }
  return result;
}

absl::StatusOr<PeerInfo> PosixPipeChannel::Peer() {
  OpGuard op(&ops_, "Peer");
  if (!op.ok()) return op.status();
  return PeerInfo();  // A pipe does not know who is at the other end.
}

absl::StatusOr<PipeEnds> CreatePipe(const PipeOptions& options) {
  int fds[2];
  if (!MakeCloexecPipe(fds)) {
    return ErrnoError("CreatePipe", "pipe", "pipe2 failed", errno);
  }
  UniqueFd read_fd(fds[0]);
  UniqueFd write_fd(fds[1]);
#if defined(__linux__) && defined(F_SETPIPE_SZ)
  if (options.buffer_size > 0) {
    // Best effort: capped by /proc/sys/fs/pipe-max-size for normal users.
    (void)::fcntl(
        write_fd.get(), F_SETPIPE_SZ,
        static_cast<int>(std::min<size_t>(options.buffer_size, 1 << 30)));
  }
#else
  (void)options;
#endif
  auto reader =
      PosixPipeChannel::Create(std::move(read_fd), true, "pipe (read end)");
  if (!reader.ok()) return reader.status();
  auto writer =
      PosixPipeChannel::Create(std::move(write_fd), false, "pipe (write end)");
  if (!writer.ok()) return writer.status();
  PipeEnds ends;
  ends.read_end = *std::move(reader);
  ends.write_end = *std::move(writer);
  return ends;
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> AdoptPipeEnd(NativeHandle handle,
                                                          PipeEnd end) {
  if (handle < 0 || ::fcntl(handle, F_GETFD) < 0) {
    return GuardResources(
        "AdoptPipeEnd", "fd",
        [&]() -> absl::StatusOr<std::unique_ptr<ChannelImpl>> {
          return MakeError(absl::StatusCode::kInvalidArgument, "AdoptPipeEnd",
                           absl::StrCat("fd ", handle),
                           "not an open descriptor");
        });
  }
  // Owned from here on, so that it is closed after any failure, an
  // allocation failure included.
  UniqueFd fd(handle);
  return GuardResources("AdoptPipeEnd", "fd",
                        [&]() -> absl::StatusOr<std::unique_ptr<ChannelImpl>> {
                          std::string name = absl::StrCat("fd ", handle);
                          auto impl = PosixPipeChannel::Create(
                              std::move(fd), end == PipeEnd::kRead,
                              std::move(name));
                          if (!impl.ok()) return impl.status();
                          return std::unique_ptr<ChannelImpl>(*std::move(impl));
                        });
}

}  // namespace posix

absl::StatusOr<PipeEnds> BackendCreatePipe(const PipeOptions& options) {
  return posix::CreatePipe(options);
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendAdoptPipeEnd(
    NativeHandle handle, PipeEnd end) {
  return posix::AdoptPipeEnd(handle, end);
}

}  // namespace internal
}  // namespace canal
