// SPDX-License-Identifier: Apache-2.0
#include "src/posix/io.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/time/clock.h"

namespace canal {
namespace internal {
namespace posix {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) CloseFd(fd_);
  fd_ = fd;
}

void CloseFd(int fd) {
  const int saved = errno;
  ::close(fd);
  errno = saved;
}

bool SetCloexecNonblock(int fd) {
  int fd_flags = ::fcntl(fd, F_GETFD);
  if (fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) < 0) {
    return false;
  }
  int fl_flags = ::fcntl(fd, F_GETFL);
  if (fl_flags < 0 || ::fcntl(fd, F_SETFL, fl_flags | O_NONBLOCK) < 0) {
    return false;
  }
  return true;
}

bool SetNonBlocking(int fd, bool on) {
  int value = on ? 1 : 0;
  return ::ioctl(fd, FIONBIO, &value) == 0;
}

void SetNoSigPipe([[maybe_unused]] int fd) {
#ifdef SO_NOSIGPIPE
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
}

int MakeStreamSocket() {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
#else
  // No atomic flags (macOS): a concurrent fork+exec may inherit the socket
  // for a moment; there is no better portable option.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (!SetCloexecNonblock(fd)) {
    CloseFd(fd);
    return -1;
  }
#endif
  SetNoSigPipe(fd);
  return fd;
}

void SetBufferSizes(int fd, size_t size) {
  if (size == 0) return;
  // A hint, as on Windows: the kernel clamps (and Linux doubles) the value,
  // and a refusal is not worth failing the connection for.
  int value = static_cast<int>(size);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof(value));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof(value));
}

bool MakePipe(int fds[2]) {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__)
  return ::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0;
#else
  if (::pipe(fds) != 0) return false;
  if (!SetCloexecNonblock(fds[0]) || !SetCloexecNonblock(fds[1])) {
    CloseFd(fds[0]);
    CloseFd(fds[1]);
    return false;
  }
  return true;
#endif
}

socklen_t MakeSockaddr(absl::string_view path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.data(), path.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                1);
}

socklen_t MakeAbstractSockaddr(absl::string_view abstract, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path + 1, abstract.data(), abstract.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 +
                                abstract.size());
}

int PollUntil(pollfd* fds, nfds_t count, const Deadline& deadline) {
  while (true) {
    for (nfds_t i = 0; i < count; ++i) fds[i].revents = 0;
    int rc = ::poll(fds, count, static_cast<int>(deadline.remaining_ms()));
    if (rc > 0) return rc;
    if (rc == 0) {
      // poll's millisecond rounding is upwards, but be safe against an early
      // return: only report a timeout once the deadline really passed.
      if (deadline.expired()) return 0;
      continue;
    }
    if (errno != EINTR) return -1;
  }
}

void SleepWithin(absl::Duration d, const Deadline& deadline) {
  absl::Duration left = deadline.remaining();
  absl::SleepFor(d < left ? d : left);
}

FileId FileIdOfFd(int fd) {
  FileId id;
  struct stat st;
  if (::fstat(fd, &st) == 0) {
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.valid = true;
  }
  return id;
}

FileId FileIdOfPath(const std::string& path) {
  FileId id;
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.valid = true;
  }
  return id;
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
