// SPDX-License-Identifier: Apache-2.0
// Small portable POSIX helpers shared by the backend: an owning descriptor,
// socket creation with close-on-exec / non-blocking / no-SIGPIPE set on
// every system, poll(2) against a Deadline, and the channels' write loop.
//
// Sockets are created non-blocking (connect and accept need that to detect a
// full backlog / a vanished client without waiting); a PosixChannel then
// makes its connected socket blocking, see channel.h.

#ifndef CANAL_SRC_POSIX_IO_H_
#define CANAL_SRC_POSIX_IO_H_

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "src/internal/deadline.h"

namespace canal {
namespace internal {
namespace posix {

// Flags for send/sendmsg: MSG_NOSIGNAL where it exists. Elsewhere (macOS)
// SO_NOSIGPIPE is set on every socket instead, see SetNoSigPipe.
#ifdef MSG_NOSIGNAL
inline constexpr int kSendFlags = MSG_NOSIGNAL;
#else
inline constexpr int kSendFlags = 0;
#endif

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// close(2) that keeps errno intact (close's own errors are of no use to us:
// the descriptor is gone either way, and retrying on EINTR is unsafe).
void CloseFd(int fd);

// Sets FD_CLOEXEC and O_NONBLOCK. Returns false with errno set on failure.
bool SetCloexecNonblock(int fd);

// Sets or clears O_NONBLOCK with one ioctl(FIONBIO) (the flag belongs to the
// open file description, so it is shared with every dup of `fd`). Returns
// false with errno set on failure.
bool SetNonBlocking(int fd, bool on);

// Sets SO_NOSIGPIPE where the system has it (BSD, macOS); a no-op elsewhere.
void SetNoSigPipe(int fd);

// A non-blocking, close-on-exec, no-SIGPIPE AF_UNIX SOCK_STREAM socket, or -1
// with errno set.
int MakeStreamSocket();

// Best-effort SO_SNDBUF/SO_RCVBUF = `size` (0 keeps the system default).
void SetBufferSizes(int fd, size_t size);

// A pipe whose both ends are non-blocking and close-on-exec. Returns false
// with errno set on failure.
bool MakePipe(int fds[2]);

// Fills `addr` for `path`; the caller has checked the length already.
socklen_t MakeSockaddr(absl::string_view path, sockaddr_un* addr);

// Fills `addr` for the Linux abstract name `abstract` (without the '@'):
// a leading NUL, then the name, no terminator. The caller has checked the
// length.
socklen_t MakeAbstractSockaddr(absl::string_view abstract, sockaddr_un* addr);

// poll(2) until one of `fds` is ready or `deadline` passes; EINTR is retried
// with the time that is left. Returns >0 when ready, 0 on timeout, -1 with
// errno on failure.
int PollUntil(pollfd* fds, nfds_t count, const Deadline& deadline);

// Sleeps for `d`, but never past `deadline`.
void SleepWithin(absl::Duration d, const Deadline& deadline);

// The write loop of the POSIX channels (sockets and pipes): writes `total`
// bytes, `attempt(done)` making one send/write call for the bytes from
// offset `done` on and returning what it returned (errno set on -1).
// Before each attempt `cancelled()` says whether to stop (OK: go on). EINTR
// retries at once; "would block" waits with `wait(done)` (OK: try again,
// else the status to return) before the next attempt; any other errno `err`
// returns `failed(err)`.
template <typename Attempt, typename Wait, typename Failed, typename Cancelled>
absl::Status WriteAll(size_t total, Attempt&& attempt, Wait&& wait,
                      Failed&& failed, Cancelled&& cancelled) {
  size_t done = 0;
  bool wait_first = false;
  while (done < total) {
    if (wait_first) {
      absl::Status waited = wait(done);
      if (!waited.ok()) return waited;
    }
    absl::Status stop = cancelled();
    if (!stop.ok()) return stop;
    const ssize_t n = attempt(done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      wait_first = false;
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) return failed(err);
    wait_first = true;
  }
  return absl::OkStatus();
}

// stat(2) identity of a file, used to check that a path still names the
// file we created before removing it.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool valid = false;
};
FileId FileIdOfFd(int fd);
FileId FileIdOfPath(const std::string& path);  // lstat: links are not followed
inline bool SameFile(const FileId& a, const FileId& b) {
  return a.valid && b.valid && a.dev == b.dev && a.ino == b.ino;
}

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_IO_H_
