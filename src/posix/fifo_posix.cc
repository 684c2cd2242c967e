// canal::Fifo for POSIX: mkfifo, and non-blocking opens so that no call
// hangs in open(2) without a peer.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "canal/fifo.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/posix/error.h"
#include "src/posix/fd_util.h"
#include "src/posix/pipe_posix.h"

namespace canal {
namespace {

absl::Status CheckPath(absl::string_view op, absl::string_view path) {
  if (path.empty() || path.find('\0') != absl::string_view::npos) {
    return internal::MakeError(absl::StatusCode::kInvalidArgument, op, path,
                               "the path is empty or contains a NUL byte");
  }
  return absl::OkStatus();
}

// Opens `path` with `flags` (plus non-blocking, close-on-exec, no
// controlling tty) and checks that it is a FIFO. Returns -1 with errno set
// on an open failure; -2 if it is not a FIFO.
int OpenFifo(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -1;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    internal::CloseFd(fd);
    return -2;
  }
  return fd;
}

absl::Status NotAFifo(absl::string_view op, absl::string_view path) {
  return internal::MakeError(absl::StatusCode::kInvalidArgument, op, path,
                             "not a FIFO");
}

}  // namespace

static absl::Status FifoCreate(absl::string_view path, uint32_t mode) {
  if (absl::Status s = CheckPath("Fifo::Create", path); !s.ok()) return s;
  if ((mode & ~0777u) != 0) {
    return internal::MakeError(absl::StatusCode::kInvalidArgument,
                               "Fifo::Create", path,
                               "mode must be a subset of 0777");
  }
  const std::string p(path);
  if (::mkfifo(p.c_str(), static_cast<mode_t>(mode)) != 0) {
    const int err = errno;
    if (err == EEXIST) {
      return internal::ErrnoError(absl::StatusCode::kAlreadyExists,
                                  "Fifo::Create", path,
                                  "something already exists at the path", err);
    }
    return internal::ErrnoError("Fifo::Create", path, "mkfifo failed", err);
  }
  // mkfifo applies the umask; the caller asked for exactly `mode`. (Only
  // the owner can chmod, and it is ours.)
  if (::chmod(p.c_str(), static_cast<mode_t>(mode)) != 0) {
    const int err = errno;
    ::unlink(p.c_str());
    return internal::ErrnoError("Fifo::Create", path, "chmod failed", err);
  }
  return absl::OkStatus();
}

static absl::StatusOr<Channel> FifoOpenRead(absl::string_view path) {
  if (absl::Status s = CheckPath("Fifo::OpenRead", path); !s.ok()) return s;
  const std::string p(path);
  const int fd = OpenFifo(p, O_RDONLY);
  if (fd == -2) return NotAFifo("Fifo::OpenRead", path);
  if (fd < 0) {
    return internal::ErrnoError("Fifo::OpenRead", path, "open failed", errno);
  }
  internal::UniqueFd read_fd(fd);
  // A private write end, held until the first byte arrives: without it a
  // read before any writer opened the FIFO would return 0 (end of stream).
  // Opening the write end cannot fail with ENXIO: we are a reader.
  const int keep = OpenFifo(p, O_WRONLY);
  if (keep < 0) {
    return internal::ErrnoError("Fifo::OpenRead", path,
                                "cannot open the FIFO's write side", errno);
  }
  auto impl = internal::FdPipeChannel::Create(
      std::move(read_fd), true, p, internal::UniqueFd(keep));
  if (!impl.ok()) return impl.status();
  return Channel(*std::move(impl));
}

static absl::StatusOr<Channel> FifoOpenWrite(absl::string_view path,
                                             absl::Duration timeout) {
  if (absl::Status s = CheckPath("Fifo::OpenWrite", path); !s.ok()) return s;
  const std::string p(path);
  const internal::Deadline deadline(timeout);
  absl::Duration backoff = absl::Milliseconds(1);
  while (true) {
    const int fd = OpenFifo(p, O_WRONLY);
    if (fd >= 0) {
      auto impl = internal::FdPipeChannel::Create(internal::UniqueFd(fd),
                                                  false, p);
      if (!impl.ok()) return impl.status();
      return Channel(*std::move(impl));
    }
    if (fd == -2) return NotAFifo("Fifo::OpenWrite", path);
    const int err = errno;
    if (err == EINTR) continue;
    // A directory cannot be opened for writing (EISDIR): not a FIFO.
    if (err == EISDIR) return NotAFifo("Fifo::OpenWrite", path);
    if (err != ENXIO) {
      return internal::ErrnoError("Fifo::OpenWrite", path, "open failed", err);
    }
    // ENXIO: no reader has the FIFO open yet.
    if (deadline.expired()) {
      return internal::ErrnoError(absl::StatusCode::kDeadlineExceeded,
                                  "Fifo::OpenWrite", path,
                                  "no reader opened the FIFO in time", err);
    }
    internal::SleepWithin(backoff, deadline);
    backoff = std::min(backoff * 2, absl::Milliseconds(20));
  }
}

static absl::Status FifoRemove(absl::string_view path) {
  if (absl::Status s = CheckPath("Fifo::Remove", path); !s.ok()) return s;
  const std::string p(path);
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) {
    return internal::ErrnoError("Fifo::Remove", path, "lstat failed", errno);
  }
  if (!S_ISFIFO(st.st_mode)) {
    return internal::MakeError(absl::StatusCode::kFailedPrecondition,
                               "Fifo::Remove", path,
                               "not a FIFO; left in place");
  }
  if (::unlink(p.c_str()) != 0) {
    return internal::ErrnoError("Fifo::Remove", path, "unlink failed", errno);
  }
  return absl::OkStatus();
}

// The public functions: no allocation failure escapes as an exception.
absl::Status Fifo::Create(absl::string_view path, uint32_t mode) {
  return internal::GuardResources("Fifo::Create", path,
                                  [&] { return FifoCreate(path, mode); });
}
absl::StatusOr<Channel> Fifo::OpenRead(absl::string_view path) {
  return internal::GuardResources("Fifo::OpenRead", path,
                                  [&] { return FifoOpenRead(path); });
}
absl::StatusOr<Channel> Fifo::OpenWrite(absl::string_view path,
                                        absl::Duration timeout) {
  return internal::GuardResources(
      "Fifo::OpenWrite", path, [&] { return FifoOpenWrite(path, timeout); });
}
absl::Status Fifo::Remove(absl::string_view path) {
  return internal::GuardResources("Fifo::Remove", path,
                                  [&] { return FifoRemove(path); });
}

}  // namespace canal
