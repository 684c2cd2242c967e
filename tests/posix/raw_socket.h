// SPDX-License-Identifier: Apache-2.0
// Plain Unix-socket peers for the POSIX-only tests: what any program that
// does not use canal does with a socket path, and the frame header a hostile
// peer forges.

#ifndef CANAL_TESTS_POSIX_RAW_SOCKET_H_
#define CANAL_TESTS_POSIX_RAW_SOCKET_H_

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace canal_test {

// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership: the caller closes the descriptor.
  [[nodiscard]] int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Hang guard for plain sockets: blocking reads and writes give up after
// `timeout` (whole seconds).
inline void SetIoTimeouts(int fd, absl::Duration timeout = absl::Seconds(10)) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(timeout));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

inline bool FillAddress(const std::string& path, sockaddr_un* addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) return false;
  memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

// A plain stream socket bound to `path` (listening if `listen_too`), or an
// invalid Fd with errno set.
inline Fd BindUnixSocket(const std::string& path, bool listen_too) {
  sockaddr_un addr;
  if (!FillAddress(path, &addr)) {
    errno = ENAMETOOLONG;
    return Fd();
  }
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Fd();
  }
  if (listen_too && listen(fd.get(), 16) != 0) return Fd();
  return fd;
}

// A raw peer (not canal) connected to `path`: a plain blocking stream
// socket without I/O timeouts, as a careless or hostile program has it; -1
// (errno set) on failure. The caller closes it.
inline int ConnectRawPeer(const std::string& path) {
  sockaddr_un addr;
  if (!FillAddress(path, &addr)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return -1;
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    return -1;
  }
  return fd.release();
}

// A plain stream socket connected to `path` with the hang guard
// (SetIoTimeouts), or an invalid Fd.
inline Fd ConnectUnixSocket(const std::string& path) {
  Fd fd(ConnectRawPeer(path));
  if (fd.valid()) SetIoTimeouts(fd.get());
  return fd;
}

// The header of one POSIX message-mode frame as canal writes it: `magic`
// ("CNL1") and the payload size, little-endian. Written out here, not taken
// from the library, so that a change to the wire format fails a test.
inline std::string FrameHeader(uint32_t size,
                               absl::string_view magic = "CNL1") {
  std::string h(magic.data(), magic.size());
  for (int i = 0; i < 4; ++i) h.push_back(static_cast<char>(size >> (8 * i)));
  return h;
}

// Accepts one connection on a listening socket, waiting at most 10 s.
inline Fd AcceptUnixSocket(int listen_fd) {
  pollfd p{};
  p.fd = listen_fd;
  p.events = POLLIN;
  if (poll(&p, 1, 10000) != 1) return Fd();
  Fd fd(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (fd.valid()) SetIoTimeouts(fd.get());
  return fd;
}

// Writes all of `data`; false on error.
inline bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads exactly `size` bytes (blocking); shorter on end of stream or error.
inline std::string ReadAll(int fd, size_t size) {
  std::string out(size, '\0');
  size_t got = 0;
  while (got < size) {
    const ssize_t n = read(fd, &out[got], size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

inline bool IsSocket(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace canal_test

#endif  // CANAL_TESTS_POSIX_RAW_SOCKET_H_
