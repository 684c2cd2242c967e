// SPDX-License-Identifier: Apache-2.0
// canal::Fifo for POSIX (src/fifo.cc checks the arguments): mkfifo, and
// non-blocking opens so that no call hangs in open(2) without a peer.
//
// The path may be in a directory that others can write, so after mkfifo
// nothing is done through the path again but opening it once without
// following a link: the mode is set through that descriptor, and only if it
// is the FIFO we just made (ours, a FIFO, one link). OpenRead's private
// write end is opened through the read end's descriptor, so it is the same
// FIFO even if the path is swapped in between.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/posix/error.h"
#include "src/posix/io.h"
#include "src/posix/pipe.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

// Opens `path` with `flags` (plus non-blocking, close-on-exec, no
// controlling tty, no following a link at the path) and checks that it is a
// FIFO. Returns -1 with errno set on an open failure; -2 if it is not a
// FIFO (a socket, which open(2) refuses with ENXIO, included).
int OpenFifo(const std::string& path, int flags) {
  int fd;
  do {
    fd = ::open(path.c_str(),
                flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    struct stat st;
    // ENXIO is also "a FIFO without a reader" for a writer: tell them apart.
    if (err == ENXIO && ::lstat(path.c_str(), &st) == 0 &&
        !S_ISFIFO(st.st_mode)) {
      return -2;
    }
    errno = err;
    return -1;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    CloseFd(fd);
    return -2;
  }
  return fd;
}

absl::Status NotAFifo(absl::string_view op, absl::string_view path) {
  return MakeError(absl::StatusCode::kInvalidArgument, op, path, "not a FIFO");
}

// The error of a failed OpenFifo (-1, errno `err`).
absl::Status OpenError(absl::string_view op, absl::string_view path,
                       absl::string_view what, int err) {
  if (err == ELOOP) {
    return ErrnoError(absl::StatusCode::kInvalidArgument, op, path,
                      "the path is a symbolic link, which canal "
                      "does not follow (open the FIFO it names)",
                      err);
  }
  return ErrnoError(op, path, what, err);
}

// Gives the FIFO that mkfifo just made at `path` exactly `mode`, through a
// descriptor, and only if the path still names it.
absl::Status SetNewFifoMode(const std::string& path, mode_t mode) {
  constexpr absl::string_view kOp = "Fifo::Create";
  bool path_only = false;
  int fd = -1;
#if defined(O_PATH)
  // O_PATH opens no end of the FIFO (a read end, even for a moment, would
  // let a writer waiting for a reader in).
  fd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  path_only = fd >= 0;
#endif
  if (fd < 0) {
    fd = ::open(path.c_str(),
                O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  }
  if (fd < 0) {
    const int err = errno;
    return ErrnoError(absl::StatusCode::kPermissionDenied, kOp, path,
                      "the FIFO was replaced right after mkfifo "
                      "(can others write its directory?)",
                      err);
  }
  UniqueFd owned(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode) ||
      st.st_uid != ::geteuid() || st.st_nlink != 1) {
    return MakeError(absl::StatusCode::kPermissionDenied, kOp, path,
                     "the FIFO was replaced right after mkfifo "
                     "(can others write its directory?); nothing "
                     "at the path was changed");
  }
  if ((st.st_mode & 07777) == mode) return absl::OkStatus();
  int rc = -1;
  if (path_only) {
    // fchmod does not take an O_PATH descriptor; its /proc link does, and
    // names the very file the descriptor holds, not the path.
    rc = ::chmod(absl::StrCat("/proc/self/fd/", fd).c_str(), mode);
    if (rc != 0 && errno == ENOENT) {
      // No /proc: open the FIFO itself, and make sure it is the same one.
      UniqueFd opened(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW |
                                               O_CLOEXEC | O_NOCTTY));
      struct stat again;
      if (opened.valid() && ::fstat(opened.get(), &again) == 0 &&
          again.st_dev == st.st_dev && again.st_ino == st.st_ino) {
        rc = ::fchmod(opened.get(), mode);
      } else {
        errno = EPERM;
      }
    }
  } else {
    rc = ::fchmod(fd, mode);
  }
  if (rc != 0) {
    const int err = errno;
    // Remove our FIFO, not whatever the path names by now.
    if (SameFile(FileIdOfFd(fd), FileIdOfPath(path))) {
      ::unlink(path.c_str());
    }
    return ErrnoError(kOp, path, "chmod failed", err);
  }
  return absl::OkStatus();
}

// Opens a write end of the FIFO that `read_fd` is a read end of: through
// /proc/self/fd where there is one (the descriptor names the file, whatever
// the path names by now), else through the path, checked to be the same
// FIFO.
absl::StatusOr<UniqueFd> OpenOwnWriteEnd(int read_fd, absl::string_view path) {
  constexpr absl::string_view kOp = "Fifo::OpenRead";
  // The /proc entry is a link by nature: followed on purpose.
  const std::string self = absl::StrCat("/proc/self/fd/", read_fd);
  int fd;
  do {
    fd = ::open(self.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0 && errno == ENOENT) fd = OpenFifo(std::string(path), O_WRONLY);
  if (fd == -2) {
    return MakeError(absl::StatusCode::kPermissionDenied, kOp, path,
                     "the FIFO was replaced while it was opened "
                     "(can others write its directory?)");
  }
  if (fd < 0) {
    return OpenError(kOp, path, "cannot open the FIFO's write side", errno);
  }
  UniqueFd write_fd(fd);
  if (!SameFile(FileIdOfFd(fd), FileIdOfFd(read_fd))) {
    return MakeError(absl::StatusCode::kPermissionDenied, kOp, path,
                     "the FIFO was replaced while it was opened "
                     "(can others write its directory?)");
  }
  return write_fd;
}

}  // namespace

absl::Status FifoCreate(absl::string_view path, uint32_t mode) {
  const std::string p(path);
  if (::mkfifo(p.c_str(), static_cast<mode_t>(mode)) != 0) {
    const int err = errno;
    if (err == EEXIST) {
      return ErrnoError(absl::StatusCode::kAlreadyExists, "Fifo::Create", path,
                        "something already exists at the path", err);
    }
    return ErrnoError("Fifo::Create", path, "mkfifo failed", err);
  }
  // mkfifo applies the umask; the caller asked for exactly `mode`.
  return SetNewFifoMode(p, static_cast<mode_t>(mode));
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> FifoOpenRead(
    absl::string_view path) {
  const std::string p(path);
  const int fd = OpenFifo(p, O_RDONLY);
  if (fd == -2) return NotAFifo("Fifo::OpenRead", path);
  if (fd < 0) return OpenError("Fifo::OpenRead", path, "open failed", errno);
  UniqueFd read_fd(fd);
  // A private write end, held until the first byte arrives: without it a
  // read before any writer opened the FIFO would return 0 (end of stream).
  // Opening the write end cannot fail with ENXIO: we are a reader.
  absl::StatusOr<UniqueFd> keep = OpenOwnWriteEnd(fd, path);
  if (!keep.ok()) return keep.status();
  auto impl =
      PosixPipeChannel::Create(std::move(read_fd), true, p, *std::move(keep));
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<ChannelImpl>(*std::move(impl));
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> FifoOpenWrite(
    absl::string_view path, absl::Duration timeout) {
  const std::string p(path);
  const Deadline deadline(timeout);
  absl::Duration backoff = absl::Milliseconds(1);
  while (true) {
    const int fd = OpenFifo(p, O_WRONLY);
    if (fd >= 0) {
      auto impl = PosixPipeChannel::Create(UniqueFd(fd), false, p);
      if (!impl.ok()) return impl.status();
      return std::unique_ptr<ChannelImpl>(*std::move(impl));
    }
    if (fd == -2) return NotAFifo("Fifo::OpenWrite", path);
    const int err = errno;
    // A directory cannot be opened for writing (EISDIR): not a FIFO.
    if (err == EISDIR) return NotAFifo("Fifo::OpenWrite", path);
    if (err != ENXIO)
      return OpenError("Fifo::OpenWrite", path, "open failed", err);
    // ENXIO: no reader has the FIFO open yet.
    if (deadline.expired()) {
      return ErrnoError(absl::StatusCode::kDeadlineExceeded, "Fifo::OpenWrite",
                        path, "no reader opened the FIFO in time", err);
    }
    SleepWithin(backoff, deadline);
    backoff = std::min(backoff * 2, absl::Milliseconds(20));
  }
}

absl::Status FifoRemove(absl::string_view path) {
  const std::string p(path);
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) {
    return ErrnoError("Fifo::Remove", path, "lstat failed", errno);
  }
  if (!S_ISFIFO(st.st_mode)) {
    return MakeError(absl::StatusCode::kFailedPrecondition, "Fifo::Remove",
                     path, "not a FIFO; left in place");
  }
  if (::unlink(p.c_str()) != 0) {
    return ErrnoError("Fifo::Remove", path, "unlink failed", errno);
  }
  return absl::OkStatus();
}

}  // namespace posix

absl::Status BackendFifoCreate(absl::string_view path, uint32_t mode) {
  return posix::FifoCreate(path, mode);
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendFifoOpenRead(
    absl::string_view path) {
  return posix::FifoOpenRead(path);
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendFifoOpenWrite(
    absl::string_view path, absl::Duration timeout) {
  return posix::FifoOpenWrite(path, timeout);
}

absl::Status BackendFifoRemove(absl::string_view path) {
  return posix::FifoRemove(path);
}

}  // namespace internal
}  // namespace canal
