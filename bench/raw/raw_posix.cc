// SPDX-License-Identifier: Apache-2.0
// The raw POSIX primitives: a Unix stream socket pair and a raw Unix-socket
// request/reply server.

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "bench/raw/raw.h"

namespace canal_raw {
namespace {

// Descriptors are close-on-exec from birth where the system can (a child
// started meanwhile by another thread must not inherit them).
#ifdef SOCK_CLOEXEC
constexpr int kSocketType = SOCK_STREAM | SOCK_CLOEXEC;
#else
constexpr int kSocketType = SOCK_STREAM;
#endif

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // macOS: SIGPIPE is ignored by the callers.
#endif

absl::Status Errno(absl::string_view what) {
  const int err = errno;
  return absl::ErrnoToStatus(err, absl::StrCat("raw ", what));
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), kSendFlags);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("send");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Reads exactly `buffer.size()` bytes; returns 0 at a clean end of stream.
absl::StatusOr<size_t> ReadExactly(int fd, absl::Span<char> buffer) {
  size_t got = 0;
  while (got < buffer.size()) {
    const ssize_t n = ::recv(fd, buffer.data() + got, buffer.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("recv");
    }
    if (n == 0) {
      if (got == 0) return 0;
      return absl::DataLossError("raw recv: stream ended inside a message");
    }
    got += static_cast<size_t>(n);
  }
  return got;
}

class SocketEnd : public StreamEnd {
 public:
  SocketEnd(int fd, bool message_mode) : fd_(fd), message_mode_(message_mode) {}
  ~SocketEnd() override { Close(); }

  absl::Status Send(absl::string_view data) override {
    return WriteAll(fd_, data);
  }

  absl::StatusOr<size_t> Receive(absl::Span<char> buffer) override {
    if (message_mode_) return ReadExactly(fd_, buffer);
    while (true) {
      const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return Errno("recv");
    }
  }

  void Close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string TransportName() const override { return RawPrimitiveName(); }

 private:
  int fd_;
  bool message_mode_;
};

void SetBuffers(int fd, size_t size) {
  if (size == 0) return;
  const int value = static_cast<int>(size);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof(value));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof(value));
}

class PosixCallServer : public RawCallServer {
 public:
  PosixCallServer(std::string dir, std::string path, int listen_fd,
                  size_t request_size)
      : dir_(std::move(dir)),
        path_(std::move(path)),
        listen_fd_(listen_fd),
        request_size_(request_size),
        thread_([this] { Serve(); }) {}

  ~PosixCallServer() override {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  absl::Status Call(absl::string_view request, std::string* reply) override {
    const int fd = ::socket(AF_UNIX, kSocketType, 0);
    if (fd < 0) return Errno("socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    absl::Status status;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) !=
        0) {
      status = Errno("connect");
    } else {
      status = WriteAll(fd, request);
      if (status.ok()) {
        reply->resize(request.size());
        absl::StatusOr<size_t> n =
            ReadExactly(fd, absl::MakeSpan(&(*reply)[0], reply->size()));
        if (!n.ok()) status = n.status();
      }
    }
    ::close(fd);
    return status;
  }

 private:
  void Serve() {
    std::string buffer(request_size_, '\0');
    while (true) {
#ifdef __linux__
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
#else
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
#endif
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down
      }
      absl::StatusOr<size_t> n =
          ReadExactly(fd, absl::MakeSpan(&buffer[0], buffer.size()));
      if (n.ok() && *n == buffer.size()) (void)WriteAll(fd, buffer);
      ::close(fd);
    }
  }

  std::string dir_;
  std::string path_;
  int listen_fd_;
  size_t request_size_;
  std::thread thread_;
};

}  // namespace

const char* RawPrimitiveName() { return "unix socketpair"; }

absl::StatusOr<StreamPair> MakeRawPair(const PairOptions& options) {
  const bool message_mode = options.message_mode;
  const size_t buffer_size = options.buffer_size;
  int fds[2];
  if (::socketpair(AF_UNIX, kSocketType, 0, fds) != 0) {
    return Errno("socketpair");
  }
  SetBuffers(fds[0], buffer_size);
  SetBuffers(fds[1], buffer_size);
  StreamPair pair;
  pair.server = std::make_unique<SocketEnd>(fds[0], message_mode);
  pair.client = std::make_unique<SocketEnd>(fds[1], message_mode);
  return pair;
}

absl::StatusOr<std::unique_ptr<RawCallServer>> RawCallServer::Start(
    size_t request_size) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir =
      absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/canal-raw-XXXXXX");
  if (::mkdtemp(&dir[0]) == nullptr) return Errno("mkdtemp");
  std::string path = dir + "/s";
  const int fd = ::socket(AF_UNIX, kSocketType, 0);
  if (fd < 0) return Errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    ::close(fd);
    return absl::InvalidArgumentError("raw: socket path too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 128) != 0) {
    absl::Status status = Errno("bind/listen");
    ::close(fd);
    ::rmdir(dir.c_str());
    return status;
  }
  return std::unique_ptr<RawCallServer>(
      new PosixCallServer(std::move(dir), std::move(path), fd, request_size));
}

}  // namespace canal_raw
