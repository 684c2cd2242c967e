// SPDX-License-Identifier: Apache-2.0
// Google Benchmark suite: canal beside a raw Unix socket and beside libuv,
// each with its own defaults, the two ends of every connection in two
// processes, measured the same way in the same run. Every benchmark is
// registered as "<Name>/<transport>/<arg>" with transport canal, raw or
// libuv; scripts/bench_ratios.py pairs them and prints canal/raw and
// canal/libuv ratios.
//
//   ByteThroughput/{canal,raw,libuv}/{64,4096,65536}  byte-mode writes,
//                                      bytes/s; the reader reads 64 KiB
//   MessageRate/{canal,raw,libuv}/{64,4096}  one write per message or
//                                      record, messages/s
//   (both with counters waits_per_op and peer_waits_per_op: how often the
//   writer and the reader blocked, per write)
//   RoundTrip/{canal,raw,libuv}/64  ping-pong of 64 bytes; p50_us and
//                                      p99_us counters
//   Call/{canal,raw}/64             connect + transact + close
//
// Defaults against defaults: canal uses ListenerOptions{} (only the mode is
// chosen) and ConnectOptions{}; the raw side is socket/bind/listen/accept/
// connect with no setsockopt; libuv is uv_pipe_bind/uv_listen/
// uv_pipe_connect with no option set. Messages: canal in message mode (a
// frame per Write, a message per Read); raw one send of the record and a
// reader that reads records of exactly that size; libuv one uv_write per
// record and a reader that takes what libuv's read callback hands it.
//
// The process running the benchmark is the client: it connects, and in the
// timed loop writes (throughput) or writes and reads the echo (round trip,
// each one timed for the p50). The peer is this binary started again with
// --canal_bench_peer (see RunPeer): it listens, says "ready" on its stdout,
// serves one connection (Call: connections until its stdin closes), and for
// the throughput benchmarks reports the bytes it received, which the client
// checks against what it sent. Only the client's loop is timed.
//
// POSIX only (fork/exec, Unix sockets, libuv's uv_pipe over them); `canal
// bench` (tools/canal/) measures canal and raw named pipes on Windows.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "canal/canal.h"
#include "uv.h"

namespace {

#ifdef SOCK_CLOEXEC
constexpr int kSocketType = SOCK_STREAM | SOCK_CLOEXEC;
#else
constexpr int kSocketType = SOCK_STREAM;
#endif
#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // SIGPIPE is ignored in main().
#endif

// What every reader asks for at once when it is not reading records; also
// libuv's suggested read size.
constexpr size_t kReadChunk = 64 * 1024;

constexpr char kPeerFlag[] = "--canal_bench_peer";

// argv[0], to start the peer.
const char* g_self = nullptr;

enum class Transport { kCanal, kRaw, kLibuv };

const char* TransportName(Transport t) {
  switch (t) {
    case Transport::kCanal:
      return "canal";
    case Transport::kRaw:
      return "raw";
    case Transport::kLibuv:
      return "libuv";
  }
  return "?";
}

absl::Status Errno(absl::string_view what) {
  const int err = errno;
  return absl::ErrnoToStatus(err, what);
}

absl::Status UvError(absl::string_view what, int rc) {
  return absl::InternalError(absl::StrCat(what, ": ", uv_strerror(rc)));
}

// ---------------------------------------------------------------------------
// Raw socket helpers (both processes).

absl::Status SendAll(int fd, absl::string_view data) {
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

// Reads exactly `size` bytes; OutOfRange at a clean end of stream before
// the first byte.
absl::Status RecvExactly(int fd, char* data, size_t size) {
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::recv(fd, data + got, size - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("recv");
    }
    if (n == 0) {
      return got == 0 ? absl::OutOfRangeError("end of stream")
                      : absl::DataLossError("stream ended inside a record");
    }
    got += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

bool FillAddress(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) return false;
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

absl::StatusOr<int> RawConnect(const std::string& path) {
  sockaddr_un addr;
  if (!FillAddress(path, &addr)) return absl::InvalidArgumentError(path);
  const int fd = ::socket(AF_UNIX, kSocketType, 0);
  if (fd < 0) return Errno("socket");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    absl::Status status = Errno(absl::StrCat("connect ", path));
    ::close(fd);
    return status;
  }
  return fd;
}

int RawAccept(int listen_fd) {
  while (true) {
#ifdef __linux__
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
#else
    const int fd = ::accept(listen_fd, nullptr, nullptr);
#endif
    if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED)) return fd;
  }
}

// ---------------------------------------------------------------------------
// The peer process.

// What the peer does with its connection.
enum class Role {
  kDrainBytes,    // Read kReadChunk at a time until end of stream.
  kDrainRecords,  // Read records (canal: messages) of `size` bytes.
  kEcho,          // Read a record of `size` bytes, write it back.
  kCall,          // Per connection: one request of `size` bytes, its echo.
};

constexpr const char* kRoleNames[] = {"drain-bytes", "drain-records", "echo",
                                      "call"};

bool ParseRole(absl::string_view s, Role* role) {
  for (int i = 0; i < 4; ++i) {
    if (s == kRoleNames[i]) {
      *role = static_cast<Role>(i);
      return true;
    }
  }
  return false;
}

bool ParseTransport(absl::string_view s, Transport* t) {
  for (Transport c : {Transport::kCanal, Transport::kRaw, Transport::kLibuv}) {
    if (s == TransportName(c)) {
      *t = c;
      return true;
    }
  }
  return false;
}

void SayToClient(absl::string_view line) {
  std::string text = absl::StrCat(line, "\n");
  absl::string_view rest = text;
  while (!rest.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

// Calls `stop` once the client closes our stdin (Call: the only way the
// peer learns that the benchmark is over).
std::thread StopOnStdinClosed(std::function<void()> stop) {
  return std::thread([stop = std::move(stop)] {
    char c;
    while (true) {
      const ssize_t n = ::read(STDIN_FILENO, &c, 1);
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    stop();
  });
}

// How often this thread has blocked so far (voluntary context switches):
// a writer that outruns its reader blocks on a full socket, a reader that
// outruns its writer blocks on an empty one, and each wait costs a sleep
// and a wake-up. Reported as counters, to explain a ratio.
int64_t Waits() {
  rusage usage;
#ifdef RUSAGE_THREAD
  if (::getrusage(RUSAGE_THREAD, &usage) != 0) return 0;
#else
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
#endif
  return usage.ru_nvcsw;
}

// The peer's last line: the bytes it received and how often it waited.
std::string Report(uint64_t received) {
  return absl::StrCat(received, " ", Waits());
}

int PeerFailed(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "canal_benchmark peer: %s: %s\n",
               std::string(what).c_str(), status.ToString().c_str());
  return 1;
}

int RunCanalPeer(Role role, size_t size, const std::string& name) {
  canal::ListenerOptions options;
  options.mode = role == Role::kDrainBytes ? canal::PipeMode::kByte
                                           : canal::PipeMode::kMessage;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok()) return PeerFailed("Listener::Create", listener.status());
  SayToClient("ready");
  if (role == Role::kCall) {
    std::thread stopper = StopOnStdinClosed([&] { listener->Close(); });
    while (true) {
      absl::StatusOr<canal::Channel> ch = listener->Accept();
      if (!ch.ok()) break;  // Cancelled by the stopper.
      absl::StatusOr<std::string> request = ch->ReadMessage();
      if (request.ok()) (void)ch->WriteMessage(*request);
    }
    stopper.join();
    return 0;
  }
  absl::StatusOr<canal::Channel> ch = listener->Accept();
  if (!ch.ok()) return PeerFailed("Accept", ch.status());
  listener->Close();
  std::vector<char> buffer(role == Role::kDrainBytes ? kReadChunk : size);
  uint64_t received = 0;
  while (true) {
    absl::StatusOr<canal::ReadResult> r = ch->Read(absl::MakeSpan(buffer));
    if (absl::IsOutOfRange(r.status())) break;
    if (!r.ok()) return PeerFailed("Read", r.status());
    if (role != Role::kDrainBytes && (r->more || r->size != size)) {
      return PeerFailed("Read", absl::DataLossError("unexpected message size"));
    }
    received += r->size;
    if (role == Role::kEcho) {
      absl::Status w = ch->Write(absl::string_view(buffer.data(), r->size));
      if (!w.ok()) return PeerFailed("Write", w);
    }
  }
  SayToClient(Report(received));
  return 0;
}

int RunRawPeer(Role role, size_t size, const std::string& path) {
  sockaddr_un addr;
  if (!FillAddress(path, &addr)) {
    return PeerFailed("bind", absl::InvalidArgumentError(path));
  }
  const int listen_fd = ::socket(AF_UNIX, kSocketType, 0);
  if (listen_fd < 0) return PeerFailed("socket", Errno("socket"));
  if (::bind(listen_fd, reinterpret_cast<const sockaddr*>(&addr),
             sizeof(addr)) != 0 ||
      ::listen(listen_fd, 128) != 0) {
    return PeerFailed("bind/listen", Errno(path));
  }
  SayToClient("ready");
  std::vector<char> buffer(role == Role::kDrainBytes ? kReadChunk : size);
  if (role == Role::kCall) {
    std::thread stopper = StopOnStdinClosed(
        [listen_fd] { ::shutdown(listen_fd, SHUT_RDWR); });  // Wakes accept.
    while (true) {
      const int fd = RawAccept(listen_fd);
      if (fd < 0) break;
      if (RecvExactly(fd, buffer.data(), size).ok()) {
        (void)SendAll(fd, absl::string_view(buffer.data(), size));
      }
      ::close(fd);
    }
    stopper.join();
    ::close(listen_fd);
    ::unlink(path.c_str());
    return 0;
  }
  const int fd = RawAccept(listen_fd);
  if (fd < 0) return PeerFailed("accept", Errno("accept"));
  ::close(listen_fd);
  ::unlink(path.c_str());
  uint64_t received = 0;
  while (true) {
    if (role == Role::kDrainBytes) {
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return PeerFailed("recv", Errno("recv"));
      if (n == 0) break;
      received += static_cast<uint64_t>(n);
      continue;
    }
    absl::Status r = RecvExactly(fd, buffer.data(), size);
    if (absl::IsOutOfRange(r)) break;
    if (!r.ok()) return PeerFailed("recv", r);
    received += size;
    if (role == Role::kEcho) {
      absl::Status w = SendAll(fd, absl::string_view(buffer.data(), size));
      if (!w.ok()) return PeerFailed("send", w);
    }
  }
  ::close(fd);
  SayToClient(Report(received));
  return 0;
}

// The libuv peer: one connection, read with uv_read_start, echoed with one
// uv_write per read callback.
class UvPeer {
 public:
  int Run(Role role, const std::string& path) {
    role_ = role;
    uv_loop_init(&loop_);
    loop_.data = this;
    uv_pipe_init(&loop_, &listen_, 0);
    int rc = uv_pipe_bind(&listen_, path.c_str());
    if (rc == 0) {
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listen_), 128,
                     &UvPeer::OnConnection);
    }
    if (rc != 0) return PeerFailed("uv_pipe_bind/uv_listen", UvError(path, rc));
    SayToClient("ready");
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    ::unlink(path.c_str());
    if (!status_.ok()) return PeerFailed("libuv", status_);
    SayToClient(Report(received_));
    return 0;
  }

 private:
  struct Echo {
    uv_write_t req;  // First: the request pointer is the Echo pointer.
    std::string data;
  };

  static UvPeer* Of(uv_handle_t* h) {
    return static_cast<UvPeer*>(h->loop->data);
  }

  static void OnConnection(uv_stream_t* listen, int status) {
    UvPeer* self = Of(reinterpret_cast<uv_handle_t*>(listen));
    if (status != 0) {
      self->status_ = UvError("connection", status);
      uv_close(reinterpret_cast<uv_handle_t*>(listen), nullptr);
      return;
    }
    uv_pipe_init(&self->loop_, &self->conn_, 0);
    int rc = uv_accept(listen, reinterpret_cast<uv_stream_t*>(&self->conn_));
    uv_close(reinterpret_cast<uv_handle_t*>(listen), nullptr);  // One only.
    if (rc == 0) {
      rc = uv_read_start(
          reinterpret_cast<uv_stream_t*>(&self->conn_),
          [](uv_handle_t* h, size_t, uv_buf_t* buf) {
            UvPeer* peer = Of(h);
            *buf = uv_buf_init(peer->buffer_, sizeof(peer->buffer_));
          },
          &UvPeer::OnRead);
    }
    if (rc != 0) {
      self->status_ = UvError("uv_accept/uv_read_start", rc);
      uv_close(reinterpret_cast<uv_handle_t*>(&self->conn_), nullptr);
    }
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    UvPeer* self = Of(reinterpret_cast<uv_handle_t*>(stream));
    if (nread < 0) {
      if (nread != UV_EOF) {
        self->status_ = UvError("read", static_cast<int>(nread));
      }
      uv_close(reinterpret_cast<uv_handle_t*>(stream), nullptr);
      return;
    }
    self->received_ += static_cast<uint64_t>(nread);
    if (self->role_ != Role::kEcho || nread == 0) return;
    Echo* e = new Echo;
    e->data.assign(buf->base, static_cast<size_t>(nread));
    uv_buf_t out = uv_buf_init(&e->data[0], static_cast<unsigned>(nread));
    const int rc = uv_write(&e->req, stream, &out, 1, [](uv_write_t* req, int) {
      delete reinterpret_cast<Echo*>(req);
    });
    if (rc != 0) {
      delete e;
      self->status_ = UvError("uv_write", rc);
      uv_close(reinterpret_cast<uv_handle_t*>(stream), nullptr);
    }
  }

  Role role_ = Role::kDrainBytes;
  uv_loop_t loop_;
  uv_pipe_t listen_;
  uv_pipe_t conn_;
  uint64_t received_ = 0;
  absl::Status status_;
  char buffer_[kReadChunk];
};

// argv after the flag: ROLE TRANSPORT SIZE ADDRESS.
int RunPeer(int argc, char** argv) {
  Role role;
  Transport transport;
  size_t size = 0;
  if (argc != 4 || !ParseRole(argv[0], &role) ||
      !ParseTransport(argv[1], &transport) ||
      !absl::SimpleAtoi(argv[2], &size) || size == 0) {
    std::fprintf(stderr, "usage: %s ROLE TRANSPORT SIZE ADDRESS\n", kPeerFlag);
    return 2;
  }
  const std::string address = argv[3];
  switch (transport) {
    case Transport::kCanal:
      return RunCanalPeer(role, size, address);
    case Transport::kRaw:
      return RunRawPeer(role, size, address);
    case Transport::kLibuv: {
      if (role == Role::kCall) return 2;  // Not measured.
      auto peer = std::make_unique<UvPeer>();
      return peer->Run(role, address);
    }
  }
  return 2;
}

// ---------------------------------------------------------------------------
// The client side: starting the peer.

bool MakePipe(int fds[2]) {
#ifdef __linux__
  return ::pipe2(fds, O_CLOEXEC) == 0;
#else
  if (::pipe(fds) != 0) return false;
  ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  return true;
#endif
}

// A private directory for one socket; removed with what is left in it.
class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/canal-cb-XXXXXX");
    if (::mkdtemp(&tmpl[0]) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    ::unlink(socket().c_str());
    ::rmdir(path_.c_str());
  }
  bool ok() const { return !path_.empty(); }
  std::string socket() const { return path_ + "/s"; }

 private:
  std::string path_;
};

// The peer process: this binary with kPeerFlag, its stdin a pipe the client
// closes to stop it, its stdout a pipe for "ready" and its final report.
class PeerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<PeerProcess>> Start(
      Role role, Transport transport, size_t size, const std::string& address) {
    std::vector<std::string> args = {"canal_benchmark_peer",
                                     kPeerFlag,
                                     kRoleNames[static_cast<int>(role)],
                                     TransportName(transport),
                                     absl::StrCat(size),
                                     address};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    // argv[0] when it is a path (it is under valgrind, where
    // /proc/self/exe is the tool), else where Linux says this binary is.
    const char* self = g_self;
#ifdef __linux__
    if (std::strchr(self, '/') == nullptr) self = "/proc/self/exe";
#endif
    // Close-on-exec, so that no peer inherits another's pipes; the peer's
    // own ends become its stdin and stdout through dup2, which clears the
    // flag on the copies.
    int control[2];
    int report[2];
    if (!MakePipe(control)) return Errno("pipe");
    if (!MakePipe(report)) {
      absl::Status s = Errno("pipe");
      ::close(control[0]);
      ::close(control[1]);
      return s;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      if (::dup2(control[0], STDIN_FILENO) < 0 ||
          ::dup2(report[1], STDOUT_FILENO) < 0) {
        ::_exit(127);
      }
      ::execv(self, argv.data());
      ::_exit(127);
    }
    const int fork_errno = errno;
    ::close(control[0]);
    ::close(report[1]);
    std::unique_ptr<PeerProcess> peer(
        new PeerProcess(pid, control[1], report[0]));
    if (pid < 0) {
      peer->pid_ = -1;
      errno = fork_errno;
      return Errno("fork");
    }
    absl::StatusOr<std::string> line = peer->ReadLine(absl::Seconds(30));
    if (!line.ok() || *line != "ready") {
      absl::Status exited = peer->Kill();
      return absl::InternalError(
          absl::StrCat("the peer did not start: ",
                       line.ok() ? *line : line.status().ToString(), "; ",
                       exited.ToString()));
    }
    return peer;
  }

  // A peer not finished by then is killed: the benchmark failed, and the
  // peer may be waiting for a client that never comes.
  ~PeerProcess() { (void)Kill(); }

  // Kills the peer and waits for it.
  absl::Status Kill() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    return Finish();
  }

  // Closes the peer's stdin and waits for it to exit. Returns an error if it
  // exited with a failure (its stderr says why).
  absl::Status Finish() {
    if (control_fd_ >= 0) ::close(control_fd_);
    control_fd_ = -1;
    if (pid_ <= 0) return absl::OkStatus();
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (report_fd_ >= 0) ::close(report_fd_);
    report_fd_ = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat("the peer failed (wait status ", status, ")"));
  }

  // The next line the peer writes, without its newline.
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout) {
    std::string line;
    const auto end =
        std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
    while (true) {
      const size_t nl = pending_.find('\n');
      if (nl != std::string::npos) {
        line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      pollfd pfd{report_fd_, POLLIN, 0};
      const int rc =
          ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) return absl::DeadlineExceededError("waiting for the peer");
      char buf[256];
      const ssize_t n = ::read(report_fd_, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::UnavailableError("the peer closed its stdout");
      pending_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  PeerProcess(pid_t pid, int control_fd, int report_fd)
      : pid_(pid), control_fd_(control_fd), report_fd_(report_fd) {}

  pid_t pid_;
  int control_fd_;
  int report_fd_;
  std::string pending_;
};

// ---------------------------------------------------------------------------
// The client side: one connection, whatever the transport.

class Client {
 public:
  virtual ~Client() = default;
  // One write of `data` (canal: one message in message mode), returning
  // once all of it is with the kernel.
  virtual absl::Status Send(absl::string_view data) = 0;
  // Reads exactly `size` bytes (canal: one message of that size).
  virtual absl::Status ReceiveExactly(char* data, size_t size) = 0;
  // Closes the connection: the peer sees end of stream.
  virtual void Close() = 0;
};

class CanalClient : public Client {
 public:
  explicit CanalClient(canal::Channel channel) : channel_(std::move(channel)) {}

  absl::Status Send(absl::string_view data) override {
    return channel_.Write(data);
  }

  absl::Status ReceiveExactly(char* data, size_t size) override {
    size_t got = 0;
    while (got < size) {
      absl::StatusOr<canal::ReadResult> r =
          channel_.Read(absl::MakeSpan(data + got, size - got));
      if (!r.ok()) return r.status();
      if (channel_.mode() == canal::PipeMode::kMessage &&
          (r->more || r->size != size)) {
        return absl::DataLossError("unexpected message size");
      }
      got += r->size;
    }
    return absl::OkStatus();
  }

  void Close() override { channel_.Close(); }

 private:
  canal::Channel channel_;
};

class RawClient : public Client {
 public:
  explicit RawClient(int fd) : fd_(fd) {}
  ~RawClient() override { Close(); }

  absl::Status Send(absl::string_view data) override {
    return SendAll(fd_, data);
  }
  absl::Status ReceiveExactly(char* data, size_t size) override {
    return RecvExactly(fd_, data, size);
  }
  void Close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// libuv as an application would drive it from one thread: uv_write per
// Send, with the loop run until libuv has handed everything to the kernel
// (its write queue is empty), and uv_read_start with the loop run until the
// bytes asked for have come.
class UvClient : public Client {
 public:
  static absl::StatusOr<std::unique_ptr<UvClient>> Connect(
      const std::string& path) {
    std::unique_ptr<UvClient> c(new UvClient);
    uv_loop_init(&c->loop_);
    c->loop_.data = c.get();
    uv_pipe_init(&c->loop_, &c->pipe_, 0);
    c->open_ = true;
    uv_connect_t req;
    req.data = c.get();
    uv_pipe_connect(&req, &c->pipe_, path.c_str(),
                    [](uv_connect_t* r, int status) {
                      static_cast<UvClient*>(r->data)->connect_status_ = status;
                    });
    uv_run(&c->loop_, UV_RUN_DEFAULT);
    if (c->connect_status_ != 0) {
      return UvError(absl::StrCat("uv_pipe_connect ", path),
                     c->connect_status_);
    }
    return c;
  }

  ~UvClient() override {
    Close();
    uv_loop_close(&loop_);
  }

  absl::Status Send(absl::string_view data) override {
    while (free_.empty() && status_.ok()) {
      uv_run(&loop_, UV_RUN_NOWAIT);  // Runs the completed writes' callbacks.
    }
    if (!status_.ok()) return status_;
    WriteReq* w = free_.back();
    free_.pop_back();
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()),
                               static_cast<unsigned>(data.size()));
    const int rc = uv_write(&w->req, stream(), &buf, 1, &UvClient::OnWritten);
    if (rc != 0) {
      free_.push_back(w);
      return UvError("uv_write", rc);
    }
    while (stream()->write_queue_size > 0 && status_.ok()) {
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return status_;
  }

  absl::Status ReceiveExactly(char* data, size_t size) override {
    target_ = data;
    want_ = size;
    got_ = std::min(size, leftover_.size());
    std::memcpy(data, leftover_.data(), got_);
    leftover_.erase(0, got_);
    if (got_ < want_ && status_.ok()) {
      if (!reading_) {
        const int rc = uv_read_start(
            stream(),
            [](uv_handle_t* h, size_t, uv_buf_t* buf) {
              UvClient* self = static_cast<UvClient*>(h->loop->data);
              *buf = uv_buf_init(self->buffer_, sizeof(self->buffer_));
            },
            &UvClient::OnRead);
        if (rc != 0) return UvError("uv_read_start", rc);
        reading_ = true;
      }
      // OnRead stops the loop once the bytes are here.
      uv_run(&loop_, UV_RUN_DEFAULT);
    }
    target_ = nullptr;
    if (!status_.ok()) return status_;
    if (got_ < want_) return absl::InternalError("libuv loop ended early");
    return absl::OkStatus();
  }

  void Close() override {
    if (!open_) return;
    open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);  // Cancelled writes' callbacks, the close.
  }

 private:
  struct WriteReq {
    uv_write_t req;  // First: the request pointer is the WriteReq pointer.
  };
  static constexpr int kRequests = 64;

  UvClient() : requests_(kRequests) {
    for (WriteReq& w : requests_) free_.push_back(&w);
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe_); }

  static void OnWritten(uv_write_t* req, int status) {
    UvClient* self = static_cast<UvClient*>(req->handle->loop->data);
    self->free_.push_back(reinterpret_cast<WriteReq*>(req));
    if (status != 0 && status != UV_ECANCELED && self->status_.ok()) {
      self->status_ = UvError("write", status);
    }
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    UvClient* self = static_cast<UvClient*>(stream->loop->data);
    if (nread < 0) {
      self->status_ = UvError("read", static_cast<int>(nread));
      uv_read_stop(stream);
      self->reading_ = false;
      uv_stop(stream->loop);
      return;
    }
    size_t n = static_cast<size_t>(nread);
    const char* from = buf->base;
    if (self->target_ != nullptr) {
      const size_t take = std::min(n, self->want_ - self->got_);
      std::memcpy(self->target_ + self->got_, from, take);
      self->got_ += take;
      from += take;
      n -= take;
    }
    self->leftover_.append(from, n);
    if (self->got_ == self->want_) uv_stop(stream->loop);
  }

  uv_loop_t loop_;
  uv_pipe_t pipe_;
  bool open_ = false;
  bool reading_ = false;
  int connect_status_ = 0;
  absl::Status status_;
  std::vector<WriteReq> requests_;
  std::vector<WriteReq*> free_;
  char* target_ = nullptr;
  size_t want_ = 0;
  size_t got_ = 0;
  std::string leftover_;
  char buffer_[kReadChunk];
};

std::string UniqueCanalName() {
  static std::atomic<int> counter{0};
  absl::BitGen gen;
  return absl::StrCat("canal-bench-", ::getpid(), "-", counter.fetch_add(1),
                      "-", absl::Hex(absl::Uniform<uint64_t>(gen)));
}

// A peer serving `role` and a client connected to it.
struct Connection {
  TempDir dir;  // Raw and libuv: where the socket is.
  std::unique_ptr<PeerProcess> peer;
  std::unique_ptr<Client> client;
};

absl::Status Connect(Transport transport, Role role, size_t size,
                     Connection* c) {
  std::string address;
  if (transport == Transport::kCanal) {
    address = UniqueCanalName();
  } else {
    if (!c->dir.ok()) return Errno("mkdtemp");
    address = c->dir.socket();
  }
  absl::StatusOr<std::unique_ptr<PeerProcess>> peer =
      PeerProcess::Start(role, transport, size, address);
  if (!peer.ok()) return peer.status();
  c->peer = std::move(*peer);
  switch (transport) {
    case Transport::kCanal: {
      absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(address);
      if (!ch.ok()) return ch.status();
      c->client = std::make_unique<CanalClient>(std::move(*ch));
      break;
    }
    case Transport::kRaw: {
      absl::StatusOr<int> fd = RawConnect(address);
      if (!fd.ok()) return fd.status();
      c->client = std::make_unique<RawClient>(*fd);
      break;
    }
    case Transport::kLibuv: {
      absl::StatusOr<std::unique_ptr<UvClient>> uv = UvClient::Connect(address);
      if (!uv.ok()) return uv.status();
      c->client = std::move(*uv);
      break;
    }
  }
  return absl::OkStatus();
}

void Fail(benchmark::State& state, const absl::Status& status) {
  state.SkipWithError(status.ToString().c_str());
}

// Writes of `size` bytes to a peer that drains them (bytes or records).
void Stream(benchmark::State& state, Transport transport, Role role,
            size_t size) {
  Connection c;
  absl::Status status = Connect(transport, role, size, &c);
  if (!status.ok()) return Fail(state, status);
  const std::string chunk(size, 'x');
  const int64_t waits_before = Waits();
  for (auto _ : state) {
    status = c.client->Send(chunk);
    if (!status.ok()) {
      Fail(state, status);
      break;
    }
  }
  const int64_t waits = Waits() - waits_before;
  c.client->Close();
  const uint64_t sent = static_cast<uint64_t>(state.iterations()) * size;
  absl::StatusOr<std::string> report = c.peer->ReadLine(absl::Seconds(30));
  status = c.peer->Finish();
  if (!status.ok()) return Fail(state, status);
  if (!report.ok()) return Fail(state, report.status());
  const std::vector<std::string> fields = absl::StrSplit(*report, ' ');
  int64_t peer_waits = 0;
  if (fields.size() != 2 || fields[0] != absl::StrCat(sent) ||
      !absl::SimpleAtoi(fields[1], &peer_waits)) {
    return Fail(state, absl::DataLossError(absl::StrCat(
                           "sent ", sent, " bytes, the peer said ", *report)));
  }
  state.SetBytesProcessed(static_cast<int64_t>(sent));
  state.SetItemsProcessed(state.iterations());
  const double ops =
      static_cast<double>(std::max<int64_t>(state.iterations(), 1));
  state.counters["waits_per_op"] = static_cast<double>(waits) / ops;
  state.counters["peer_waits_per_op"] = static_cast<double>(peer_waits) / ops;
}

void ByteThroughput(benchmark::State& state, Transport transport, size_t size) {
  Stream(state, transport, Role::kDrainBytes, size);
}

void MessageRate(benchmark::State& state, Transport transport, size_t size) {
  Stream(state, transport, Role::kDrainRecords, size);
}

double PercentileMicros(std::vector<int64_t>& nanos, double p) {
  if (nanos.empty()) return 0;
  const size_t k =
      static_cast<size_t>(p * static_cast<double>(nanos.size() - 1) + 0.5);
  std::nth_element(nanos.begin(), nanos.begin() + k, nanos.end());
  return static_cast<double>(nanos[k]) / 1e3;
}

// One record of `size` bytes each way per iteration, each timed.
void RoundTrip(benchmark::State& state, Transport transport, size_t size) {
  Connection c;
  absl::Status status = Connect(transport, Role::kEcho, size, &c);
  if (!status.ok()) return Fail(state, status);
  const std::string ping(size, 'p');
  std::string pong(size, '\0');
  std::vector<int64_t> nanos;
  nanos.reserve(static_cast<size_t>(state.max_iterations));
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    status = c.client->Send(ping);
    if (status.ok()) status = c.client->ReceiveExactly(&pong[0], size);
    const auto t1 = std::chrono::steady_clock::now();
    if (!status.ok()) {
      Fail(state, status);
      break;
    }
    nanos.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  c.client->Close();
  status = c.peer->Finish();
  if (!status.ok()) return Fail(state, status);
  if (pong != ping) return Fail(state, absl::DataLossError("wrong echo"));
  state.SetItemsProcessed(state.iterations());
  state.counters["p50_us"] = PercentileMicros(nanos, 0.50);
  state.counters["p99_us"] = PercentileMicros(nanos, 0.99);
}

// Connect, send one request, read the reply, close.
void Call(benchmark::State& state, Transport transport, size_t size) {
  TempDir dir;
  std::string address;
  if (transport == Transport::kCanal) {
    address = UniqueCanalName();
  } else {
    if (!dir.ok()) return Fail(state, Errno("mkdtemp"));
    address = dir.socket();
  }
  absl::StatusOr<std::unique_ptr<PeerProcess>> peer =
      PeerProcess::Start(Role::kCall, transport, size, address);
  if (!peer.ok()) return Fail(state, peer.status());
  const std::string request(size, 'r');
  std::string reply(size, '\0');
  for (auto _ : state) {
    absl::Status status;
    if (transport == Transport::kCanal) {
      absl::StatusOr<std::string> r = canal::Call(address, request);
      status = r.ok() && *r != request ? absl::DataLossError("wrong reply")
                                       : r.status();
    } else {
      absl::StatusOr<int> fd = RawConnect(address);
      status = fd.status();
      if (fd.ok()) {
        status = SendAll(*fd, request);
        if (status.ok()) status = RecvExactly(*fd, &reply[0], size);
        ::close(*fd);
      }
    }
    if (!status.ok()) {
      Fail(state, status);
      break;
    }
  }
  absl::Status finished = (*peer)->Finish();
  if (!finished.ok()) return Fail(state, finished);
  state.SetItemsProcessed(state.iterations());
}

void Register(const char* name,
              void (*fn)(benchmark::State&, Transport, size_t),
              std::vector<Transport> transports, std::vector<size_t> sizes) {
  for (Transport t : transports) {
    for (size_t size : sizes) {
      benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(
          absl::StrCat(name, "/", TransportName(t), "/", size).c_str(),
          [fn, t, size](benchmark::State& state) { fn(state, t, size); });
      // Wall-clock time: the work is shared with the peer process, so the
      // CPU time of this thread alone would flatter whichever side blocks
      // more.
      b->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  g_self = argv[0];
  if (argc >= 2 && absl::string_view(argv[1]) == kPeerFlag) {
    return RunPeer(argc - 2, argv + 2);
  }
  const std::vector<Transport> all = {Transport::kCanal, Transport::kRaw,
                                      Transport::kLibuv};
  Register("ByteThroughput", ByteThroughput, all, {64, 4096, 65536});
  Register("MessageRate", MessageRate, all, {64, 4096});
  Register("RoundTrip", RoundTrip, all, {64});
  Register("Call", Call, {Transport::kCanal, Transport::kRaw}, {64});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
