// SPDX-License-Identifier: Apache-2.0
// canal's shared-memory transport beside its pipe transport, a raw Unix
// socket and a reference shared-memory ring (bench/raw/ref_ring.h), the two
// ends of every connection in two processes, all measured the same way in
// one run. Linux only (memfd, futex, sched_setaffinity).
//
//   shm_benchmark [--repetitions N] [--min_time SECONDS] [--filter TEXT]
//                 [--side raw|pipe|shm|ring] [--verbose]
//
// The defaults: 9 repetitions of 0.3 s. --side runs one side only, and
// --filter only the cases whose id contains TEXT (msg64, byte64,
// rtt64-pinned, rtt64, byte64k, rtt64-pinned-spin0, rtt64-spin0), e.g. under
// strace -f -c; --verbose prints every run's absolute figures on stderr.
//
// Sides: "raw" (socketpair, one send per write, the kernel's default
// buffers), "pipe" (canal, ListenerOptions::transport kPipe), "shm" (canal,
// kSharedMemory) and "ring" (the reference ring). Each measurement ("case")
// runs every side; a repetition runs every case of every side once, in a
// random order (a new order each repetition), so that a noisy moment of a
// shared machine hits the sides alike. The table gives each side's median
// over the repetitions and its ratio to raw's median.
//
// Cases: 64-byte writes one way (canal in message mode, a message per
// write, and in byte mode), writes/s; 64 KiB byte-mode writes one way,
// bytes/s; a 64-byte round trip (canal in message mode) with both processes
// on one core (sched_setaffinity to the first allowed core, as `taskset -c
// 0` does) and unpinned, p50 of the round-trip time and CPU time per round
// trip (user + system of both processes, getrusage); and the round trips of
// shm and ring again with spin 0, for what the default 50 us spin costs in
// CPU.
//
// Every connection makes one exchange of a write's size each way before
// timing starts: a canal shared-memory channel moves each direction to its
// ring there, and the client checks Channel::transport() on both ends (the
// peer reports its own). The peer is this binary again (--peer): for the
// one-way cases it reports when it saw end of stream, which ends the timed
// span, and the bytes it received, which must be what was sent.
//
// Exits 1 when a goal for canal's shm side (see kGoals) is missed, 2 on a
// usage error, 3 when a measurement failed.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bench/raw/ref_ring.h"
#include "canal/canal.h"

namespace {

constexpr char kPeerFlag[] = "--peer";
// The descriptor the peer finds its socket or memfd on.
constexpr int kPeerFd = 3;
// What a byte-mode reader asks for at once.
constexpr size_t kReadChunk = 64 * 1024;

const char* g_self = "/proc/self/exe";

enum class Side { kRaw, kPipe, kShm, kRing };
constexpr Side kSides[] = {Side::kRaw, Side::kPipe, Side::kShm, Side::kRing};

const char* SideName(Side s) {
  switch (s) {
    case Side::kRaw:
      return "raw";
    case Side::kPipe:
      return "pipe";
    case Side::kShm:
      return "shm";
    case Side::kRing:
      return "ring";
  }
  return "?";
}

std::optional<Side> ParseSide(absl::string_view s) {
  for (Side side : kSides) {
    if (s == SideName(side)) return side;
  }
  return std::nullopt;
}

// What the peer does after the warm-up exchange.
enum class Role {
  kDrainRecords,  // Reads records (canal: messages) of the write size.
  kDrainBytes,    // Reads kReadChunk at a time (canal: byte mode).
  kEcho,          // Reads a record, writes it back (canal: message mode).
};
constexpr const char* kRoleNames[] = {"drain-records", "drain-bytes", "echo"};

std::optional<Role> ParseRole(absl::string_view s) {
  for (int i = 0; i < 3; ++i) {
    if (s == kRoleNames[i]) return static_cast<Role>(i);
  }
  return std::nullopt;
}

absl::Status Errno(absl::string_view what) {
  const int err = errno;
  return absl::ErrnoToStatus(err, what);
}

int64_t NowNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// User + system CPU time of this process so far.
int64_t CpuNs() {
  rusage u;
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return (int64_t{u.ru_utime.tv_sec} + u.ru_stime.tv_sec) * 1000000000 +
         (int64_t{u.ru_utime.tv_usec} + u.ru_stime.tv_usec) * 1000;
}

absl::Status SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("send");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// One end of a connection, whatever the side.
class End {
 public:
  virtual ~End() = default;
  // One write of all of `data` (canal message mode: one message).
  virtual absl::Status Write(absl::string_view data) = 0;
  // Reads exactly `buffer.size()` bytes (canal message mode: one message of
  // that size). OutOfRange at end of stream before the first byte.
  virtual absl::Status ReadExactly(absl::Span<char> buffer) = 0;
  // Byte mode: reads what is there, up to `buffer.size()`; 0 at end of
  // stream.
  virtual absl::StatusOr<size_t> ReadSome(absl::Span<char> buffer) = 0;
  // Ends this end's writing: the peer sees end of stream.
  virtual void Close() = 0;
  // "raw", "pipe", "shared memory" or "ring": what carries the data now.
  virtual std::string Transport() const = 0;
};

class SocketEnd : public End {
 public:
  explicit SocketEnd(int fd) : fd_(fd) {}
  ~SocketEnd() override { Close(); }
  absl::Status Write(absl::string_view data) override {
    return SendAll(fd_, data);
  }
  absl::Status ReadExactly(absl::Span<char> buffer) override {
    size_t got = 0;
    while (got < buffer.size()) {
      absl::StatusOr<size_t> n = ReadSome(buffer.subspan(got));
      if (!n.ok()) return n.status();
      if (*n == 0) {
        return got == 0 ? absl::OutOfRangeError("end of stream")
                        : absl::DataLossError("stream ended in a record");
      }
      got += *n;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> ReadSome(absl::Span<char> buffer) override {
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
  std::string Transport() const override { return "raw"; }

 private:
  int fd_;
};

class CanalEnd : public End {
 public:
  explicit CanalEnd(canal::Channel channel) : channel_(std::move(channel)) {}
  absl::Status Write(absl::string_view data) override {
    return channel_.Write(data);
  }
  absl::Status ReadExactly(absl::Span<char> buffer) override {
    size_t got = 0;
    while (got < buffer.size()) {
      absl::StatusOr<canal::ReadResult> r = channel_.Read(buffer.subspan(got));
      if (!r.ok()) {
        if (absl::IsOutOfRange(r.status()) && got > 0) {
          return absl::DataLossError("stream ended in a record");
        }
        return r.status();
      }
      if (channel_.mode() == canal::PipeMode::kMessage &&
          (r->more || r->size != buffer.size())) {
        return absl::DataLossError("unexpected message size");
      }
      got += r->size;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> ReadSome(absl::Span<char> buffer) override {
    absl::StatusOr<canal::ReadResult> r = channel_.Read(buffer);
    if (absl::IsOutOfRange(r.status())) return 0;
    if (!r.ok()) return r.status();
    return r->size;
  }
  void Close() override { channel_.Close(); }
  std::string Transport() const override {
    return channel_.transport() == canal::Transport::kSharedMemory
               ? "shared memory"
               : "pipe";
  }

 private:
  canal::Channel channel_;
};

class RingEnd : public End {
 public:
  RingEnd(canal_raw::RefRingMemory memory, canal_raw::RefRingSide side,
          absl::Duration spin)
      : memory_(std::move(memory)), end_(&memory_, side, spin) {}
  absl::Status Write(absl::string_view data) override {
    end_.Write(data);
    return absl::OkStatus();
  }
  absl::Status ReadExactly(absl::Span<char> buffer) override {
    if (!end_.ReadExactly(buffer)) {
      return absl::OutOfRangeError("end of stream");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> ReadSome(absl::Span<char> buffer) override {
    return end_.Read(buffer);
  }
  void Close() override {
    if (!closed_) end_.CloseWrite();
    closed_ = true;
  }
  std::string Transport() const override { return "ring"; }

 private:
  canal_raw::RefRingMemory memory_;
  canal_raw::RefRingEnd end_;
  bool closed_ = false;
};

// What the expected transport of a side's ends is called.
const char* ExpectedTransport(Side side) {
  switch (side) {
    case Side::kRaw:
      return "raw";
    case Side::kPipe:
      return "pipe";
    case Side::kShm:
      return "shared memory";
    case Side::kRing:
      return "ring";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// The peer process.

void Say(absl::string_view line) {
  std::string text = absl::StrCat(line, "\n");
  absl::string_view rest = text;
  while (!rest.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

int PeerFailed(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "shm_benchmark peer: %s: %s\n",
               std::string(what).c_str(), status.ToString().c_str());
  return 1;
}

// Serves `end`: the warm-up exchange, then `role` until end of stream.
// Reports "done RECEIVED EOF_NS CPU_NS TRANSPORT": the bytes received after
// the warm-up, the monotonic time of end of stream, the CPU time from the
// warm-up to then, and this end's transport.
int Serve(End& end, Role role, size_t size) {
  std::vector<char> buffer(std::max(size, kReadChunk));
  absl::Status warm = end.ReadExactly(absl::MakeSpan(buffer.data(), size));
  if (warm.ok()) warm = end.Write(absl::string_view(buffer.data(), size));
  if (!warm.ok()) return PeerFailed("warm-up", warm);
  const int64_t cpu0 = CpuNs();
  uint64_t received = 0;
  while (true) {
    if (role == Role::kDrainBytes) {
      absl::StatusOr<size_t> n =
          end.ReadSome(absl::MakeSpan(buffer.data(), kReadChunk));
      if (!n.ok()) return PeerFailed("read", n.status());
      if (*n == 0) break;
      received += *n;
      continue;
    }
    absl::Status r = end.ReadExactly(absl::MakeSpan(buffer.data(), size));
    if (absl::IsOutOfRange(r)) break;
    if (!r.ok()) return PeerFailed("read", r);
    received += size;
    if (role == Role::kEcho) {
      absl::Status w = end.Write(absl::string_view(buffer.data(), size));
      if (!w.ok()) return PeerFailed("write", w);
    }
  }
  const int64_t eof_ns = NowNs();
  const int64_t cpu = CpuNs() - cpu0;
  const std::string transport = end.Transport();
  end.Close();
  Say(absl::StrCat("done ", received, " ", eof_ns, " ", cpu, " ", transport));
  return 0;
}

// argv after the flag: SIDE ROLE SIZE SPIN_NS ADDRESS (canal: the name;
// else unused, the socket or memfd is descriptor kPeerFd).
int RunPeer(int argc, char** argv) {
  std::optional<Side> side = argc == 5 ? ParseSide(argv[0]) : std::nullopt;
  std::optional<Role> role = argc == 5 ? ParseRole(argv[1]) : std::nullopt;
  size_t size = 0;
  int64_t spin_ns = 0;
  if (!side || !role || !absl::SimpleAtoi(argv[2], &size) || size == 0 ||
      !absl::SimpleAtoi(argv[3], &spin_ns)) {
    std::fprintf(stderr, "usage: %s SIDE ROLE SIZE SPIN_NS ADDRESS\n",
                 kPeerFlag);
    return 2;
  }
  const absl::Duration spin = absl::Nanoseconds(spin_ns);
  switch (*side) {
    case Side::kRaw: {
      SocketEnd end(kPeerFd);
      Say("ready");
      return Serve(end, *role, size);
    }
    case Side::kRing: {
      absl::StatusOr<canal_raw::RefRingMemory> memory =
          canal_raw::RefRingMemory::Map(kPeerFd);
      if (!memory.ok()) return PeerFailed("map", memory.status());
      RingEnd end(std::move(*memory), canal_raw::RefRingSide::kSecond, spin);
      Say("ready");
      return Serve(end, *role, size);
    }
    case Side::kPipe:
    case Side::kShm: {
      canal::ListenerOptions options;
      options.mode = *role == Role::kDrainBytes ? canal::PipeMode::kByte
                                                : canal::PipeMode::kMessage;
      options.transport = *side == Side::kShm ? canal::Transport::kSharedMemory
                                              : canal::Transport::kPipe;
      options.spin = spin;
      absl::StatusOr<canal::Listener> listener =
          canal::Listener::Create(argv[4], options);
      if (!listener.ok()) {
        return PeerFailed("Listener::Create", listener.status());
      }
      Say("ready");
      absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(30));
      if (!ch.ok()) return PeerFailed("Accept", ch.status());
      listener->Close();
      CanalEnd end(std::move(*ch));
      return Serve(end, *role, size);
    }
  }
  return 2;
}

// ---------------------------------------------------------------------------
// The client side.

bool MakePipe(int fds[2]) { return ::pipe2(fds, O_CLOEXEC) == 0; }

// The peer: its stdin a pipe closed when the client is done with it (a
// guard: the peer never reads it), its stdout a pipe for its lines, and
// `shared_fd` (socket or memfd; -1: none) as descriptor kPeerFd.
class Peer {
 public:
  static absl::StatusOr<std::unique_ptr<Peer>> Start(Side side, Role role,
                                                     size_t size,
                                                     absl::Duration spin,
                                                     const std::string& address,
                                                     int shared_fd) {
    std::vector<std::string> args = {
        "shm_benchmark_peer",
        kPeerFlag,
        SideName(side),
        kRoleNames[static_cast<int>(role)],
        absl::StrCat(size),
        absl::StrCat(absl::ToInt64Nanoseconds(spin)),
        address.empty() ? std::string("-") : address};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    int report[2];
    if (!MakePipe(report)) return Errno("pipe");
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec. dup2 clears
      // close-on-exec on the copies.
      if (::dup2(report[1], STDOUT_FILENO) < 0) ::_exit(127);
      if (shared_fd == kPeerFd) {
        // dup2 onto itself would keep close-on-exec.
        if (::fcntl(kPeerFd, F_SETFD, 0) != 0) ::_exit(127);
      } else if (shared_fd >= 0 && ::dup2(shared_fd, kPeerFd) < 0) {
        ::_exit(127);
      }
      ::execv(g_self, argv.data());
      ::_exit(127);
    }
    const int fork_errno = errno;
    ::close(report[1]);
    if (pid < 0) {
      ::close(report[0]);
      errno = fork_errno;
      return Errno("fork");
    }
    std::unique_ptr<Peer> peer(new Peer(pid, report[0]));
    absl::StatusOr<std::string> line = peer->ReadLine(absl::Seconds(30));
    if (!line.ok() || *line != "ready") {
      return absl::InternalError(
          absl::StrCat("the peer did not start: ",
                       line.ok() ? *line : line.status().ToString()));
    }
    return peer;
  }

  ~Peer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)Wait();
    }
    if (report_fd_ >= 0) ::close(report_fd_);
  }

  // Waits for the peer to exit; an error unless it exited with 0.
  absl::Status Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat("the peer failed (wait status ", status, ")"));
  }

  absl::StatusOr<std::string> ReadLine(absl::Duration timeout) {
    const int64_t end = NowNs() + absl::ToInt64Nanoseconds(timeout);
    while (true) {
      const size_t nl = pending_.find('\n');
      if (nl != std::string::npos) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        return line;
      }
      const int64_t left_ms = std::max<int64_t>(0, (end - NowNs()) / 1000000);
      pollfd pfd{report_fd_, POLLIN, 0};
      const int rc = ::poll(&pfd, 1, static_cast<int>(left_ms));
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
  Peer(pid_t pid, int report_fd) : pid_(pid), report_fd_(report_fd) {}
  pid_t pid_;
  int report_fd_;
  std::string pending_;
};

std::string UniqueCanalName() {
  static int counter = 0;
  absl::BitGen gen;
  return absl::StrCat("canal-shmbench-", ::getpid(), "-", counter++, "-",
                      absl::Hex(absl::Uniform<uint64_t>(gen)));
}

// A measurement, run for each side.
struct Case {
  std::string id;     // For --filter and the table.
  std::string title;  // For the table.
  Role role;
  size_t size;
  bool pinned;
  absl::Duration spin;      // canal's and the ring's (both ends).
  std::vector<Side> sides;  // Which sides run it.
};

// One side's figures in one repetition of a case.
struct Sample {
  double writes_per_second = 0;  // One-way cases.
  double bytes_per_second = 0;   // One-way cases.
  double p50_us = 0;             // Round trips.
  double mean_us = 0;            // Round trips.
  double max_us = 0;             // Round trips: the slowest.
  double cpu_us_per_op = 0;      // Both processes, per write or round trip.
  uint64_t ops = 0;              // Writes or round trips timed.
};

// Pins this process (and so the peer it starts) to one core while alive.
class Pin {
 public:
  explicit Pin(bool pin) {
    if (!pin) return;
    if (::sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &saved_)) ++cpu;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    active_ = ::sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  ~Pin() {
    if (active_) ::sched_setaffinity(0, sizeof(saved_), &saved_);
  }
  bool failed_to_pin(bool wanted) const { return wanted && !active_; }

 private:
  cpu_set_t saved_;
  bool active_ = false;
};

absl::StatusOr<Sample> RunOnce(const Case& c, Side side,
                               absl::Duration min_time) {
  Pin pin(c.pinned);
  if (pin.failed_to_pin(c.pinned)) return Errno("sched_setaffinity");
  std::unique_ptr<End> client;
  std::unique_ptr<Peer> peer;
  switch (side) {
    case Side::kRaw: {
      int fds[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        return Errno("socketpair");
      }
      absl::StatusOr<std::unique_ptr<Peer>> p =
          Peer::Start(side, c.role, c.size, c.spin, "", fds[1]);
      ::close(fds[1]);
      client = std::make_unique<SocketEnd>(fds[0]);
      if (!p.ok()) return p.status();
      peer = std::move(*p);
      break;
    }
    case Side::kRing: {
      absl::StatusOr<canal_raw::RefRingMemory> memory =
          canal_raw::RefRingMemory::Create();
      if (!memory.ok()) return memory.status();
      absl::StatusOr<std::unique_ptr<Peer>> p =
          Peer::Start(side, c.role, c.size, c.spin, "", memory->fd());
      if (!p.ok()) return p.status();
      peer = std::move(*p);
      client = std::make_unique<RingEnd>(
          std::move(*memory), canal_raw::RefRingSide::kFirst, c.spin);
      break;
    }
    case Side::kPipe:
    case Side::kShm: {
      const std::string name = UniqueCanalName();
      absl::StatusOr<std::unique_ptr<Peer>> p =
          Peer::Start(side, c.role, c.size, c.spin, name, -1);
      if (!p.ok()) return p.status();
      peer = std::move(*p);
      canal::ConnectOptions options;
      options.spin = c.spin;
      absl::StatusOr<canal::Channel> ch =
          canal::Channel::Connect(name, options);
      if (!ch.ok()) return ch.status();
      client = std::make_unique<CanalEnd>(std::move(*ch));
      break;
    }
  }
  const std::string data(c.size, 'x');
  std::string reply(c.size, '\0');
  absl::Status status = client->Write(data);
  if (status.ok()) status = client->ReadExactly(absl::MakeSpan(reply));
  if (!status.ok()) return status;
  if (client->Transport() != ExpectedTransport(side)) {
    return absl::InternalError(absl::StrCat("client end on ",
                                            client->Transport(), ", not ",
                                            ExpectedTransport(side)));
  }
  const int64_t budget = absl::ToInt64Nanoseconds(min_time);
  std::vector<int64_t> trips;
  uint64_t writes = 0;
  const int64_t cpu0 = CpuNs();
  const int64_t start = NowNs();
  int64_t end = start;
  if (c.role == Role::kEcho) {
    trips.reserve(1 << 20);
    while (status.ok() && end - start < budget) {
      const int64_t t0 = end;
      status = client->Write(data);
      if (status.ok()) status = client->ReadExactly(absl::MakeSpan(reply));
      end = NowNs();
      trips.push_back(end - t0);
    }
  } else {
    while (status.ok()) {
      for (int i = 0; i < 16 && status.ok(); ++i) {
        status = client->Write(data);
        ++writes;
      }
      if (NowNs() - start >= budget) break;
    }
  }
  const int64_t client_cpu = CpuNs() - cpu0;
  if (!status.ok()) return status;
  client->Close();
  absl::StatusOr<std::string> line = peer->ReadLine(absl::Seconds(60));
  if (!line.ok()) return line.status();
  absl::Status exited = peer->Wait();
  if (!exited.ok()) return exited;
  // "done RECEIVED EOF_NS CPU_NS TRANSPORT..."
  std::vector<std::string> f = absl::StrSplit(*line, absl::MaxSplits(' ', 4));
  uint64_t received = 0;
  int64_t eof_ns = 0, peer_cpu = 0;
  if (f.size() != 5 || f[0] != "done" || !absl::SimpleAtoi(f[1], &received) ||
      !absl::SimpleAtoi(f[2], &eof_ns) || !absl::SimpleAtoi(f[3], &peer_cpu)) {
    return absl::InternalError(absl::StrCat("bad peer report: ", *line));
  }
  if (f[4] != ExpectedTransport(side)) {
    return absl::InternalError(
        absl::StrCat("peer end on ", f[4], ", not ", ExpectedTransport(side)));
  }
  Sample s;
  if (c.role == Role::kEcho) {
    if (received != trips.size() * c.size) {
      return absl::DataLossError("the peer received other than was sent");
    }
    std::sort(trips.begin(), trips.end());
    s.p50_us = trips[trips.size() / 2] / 1e3;
    s.mean_us = (end - start) / 1e3 / trips.size();
    s.max_us = trips.back() / 1e3;
    s.cpu_us_per_op = (client_cpu + peer_cpu) / 1e3 / trips.size();
  } else {
    if (received != writes * c.size) {
      return absl::DataLossError(absl::StrCat(
          "the peer received ", received, " bytes, sent ", writes * c.size));
    }
    // Until the peer had everything: what was buffered counts too.
    const double seconds = (eof_ns - start) / 1e9;
    s.writes_per_second = writes / seconds;
    s.bytes_per_second = writes * c.size / seconds;
    s.cpu_us_per_op = (client_cpu + peer_cpu) / 1e3 / writes;
  }
  s.ops = c.role == Role::kEcho ? trips.size() : writes;
  return s;
}

std::vector<Case> AllCases() {
  const std::vector<Side> all(std::begin(kSides), std::end(kSides));
  const std::vector<Side> spinning = {Side::kShm, Side::kRing};
  const absl::Duration spin = canal::kDefaultSharedMemorySpin;
  return {
      {"msg64", "(a) 64 B one way, message mode, writes/s", Role::kDrainRecords,
       64, false, spin, all},
      {"byte64", "(a) 64 B one way, byte mode, writes/s", Role::kDrainBytes, 64,
       false, spin, all},
      {"rtt64-pinned", "(b) round trip 64 B, one core, p50", Role::kEcho, 64,
       true, spin, all},
      {"rtt64", "(c) round trip 64 B, unpinned, p50", Role::kEcho, 64, false,
       spin, all},
      {"byte64k", "(d) 64 KiB one way, byte mode, bytes/s", Role::kDrainBytes,
       64 * 1024, false, spin, all},
      {"rtt64-pinned-spin0", "round trip 64 B, one core, spin 0", Role::kEcho,
       64, true, absl::ZeroDuration(), spinning},
      {"rtt64-spin0", "round trip 64 B, unpinned, spin 0", Role::kEcho, 64,
       false, absl::ZeroDuration(), spinning},
  };
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The spread of `v` around its median: the median absolute deviation as a
// fraction of the median.
double Spread(const std::vector<double>& v) {
  const double m = Median(v);
  if (m == 0) return 0;
  std::vector<double> d;
  for (double x : v) d.push_back(std::fabs(x - m));
  return Median(d) / m;
}

// A goal for shm's ratio to raw in one case: at least or at most `bound`.
struct Goal {
  const char* case_id;
  bool at_least;
  double bound;
};
constexpr Goal kGoals[] = {
    {"msg64", true, 3.0},         {"byte64", true, 3.0},
    {"rtt64-pinned", false, 0.6}, {"rtt64", false, 0.25},
    {"byte64k", true, 1.3},
};

int Usage() {
  std::fprintf(
      stderr,
      "usage: shm_benchmark [--repetitions N] [--side raw|pipe|shm|ring] "
      "[--min_time SECONDS] [--filter TEXT] [--verbose]\n");
  return 2;
}

int RunAll(int argc, char** argv) {
  int repetitions = 9;
  double min_time = 0.3;
  std::string filter;
  bool verbose = false;
  std::optional<Side> only_side;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--repetitions" && has_value) {
      if (!absl::SimpleAtoi(argv[++i], &repetitions)) return Usage();
    } else if (a == "--min_time" && has_value) {
      if (!absl::SimpleAtod(argv[++i], &min_time)) return Usage();
    } else if (a == "--filter" && has_value) {
      filter = argv[++i];
    } else if (a == "--side" && has_value) {
      only_side = ParseSide(argv[++i]);
      if (!only_side) return Usage();
    } else if (a == "--verbose") {
      verbose = true;
    } else {
      return Usage();
    }
  }
  if (repetitions < 1 || min_time <= 0) return Usage();
  std::vector<Case> cases;
  for (Case& c : AllCases()) {
    if (absl::StrContains(c.id, filter)) cases.push_back(std::move(c));
  }
  struct Run {
    size_t case_index;
    Side side;
  };
  std::vector<Run> runs;
  for (size_t i = 0; i < cases.size(); ++i) {
    for (Side side : cases[i].sides) {
      if (!only_side || side == *only_side) runs.push_back({i, side});
    }
  }
  std::map<std::pair<size_t, Side>, std::vector<Sample>> samples;
  std::mt19937 shuffle(std::random_device{}());
  const int64_t t0 = NowNs();
  for (int rep = 0; rep < repetitions; ++rep) {
    std::shuffle(runs.begin(), runs.end(), shuffle);
    for (const Run& r : runs) {
      absl::StatusOr<Sample> s =
          RunOnce(cases[r.case_index], r.side, absl::Seconds(min_time));
      if (!s.ok()) {
        std::fprintf(stderr, "shm_benchmark: %s/%s: %s\n",
                     cases[r.case_index].id.c_str(), SideName(r.side),
                     s.status().ToString().c_str());
        return 3;
      }
      samples[{r.case_index, r.side}].push_back(*s);
      if (verbose) {
        std::fprintf(stderr,
                     "%s/%s: %llu ops, %.0f writes/s, p50 %.2f us, mean %.2f"
                     " us, max %.0f us, CPU %.2f us per op\n",
                     cases[r.case_index].id.c_str(), SideName(r.side),
                     static_cast<unsigned long long>(s->ops),
                     s->writes_per_second, s->p50_us, s->mean_us, s->max_us,
                     s->cpu_us_per_op);
      }
    }
    std::fprintf(stderr, "%sshm_benchmark: repetition %d of %d done",
                 verbose ? "" : "\r", rep + 1, repetitions);
    if (verbose) std::fprintf(stderr, "\n");
  }
  if (!verbose) std::fprintf(stderr, "\n");
  std::printf(
      "%d interleaved repetitions of %.2f s per case and side, %.0f s"
      " in all; medians, ratio = side / raw (spread: median absolute"
      " deviation / median)\n\n",
      repetitions, min_time, (NowNs() - t0) / 1e9);

  auto median_of = [&](size_t ci, Side side,
                       double Sample::*field) -> std::optional<double> {
    auto it = samples.find({ci, side});
    if (it == samples.end()) return std::nullopt;
    std::vector<double> v;
    for (const Sample& s : it->second) v.push_back(s.*field);
    return Median(v);
  };
  auto spread_of = [&](size_t ci, Side side, double Sample::*field) {
    std::vector<double> v;
    for (const Sample& s : samples[{ci, side}]) v.push_back(s.*field);
    return Spread(v);
  };
  int missed = 0;
  int judged = 0;
  std::printf("%-44s %7s %7s %7s %8s   %s\n", "ratio to raw (median)", "pipe",
              "shm", "ring", "goal", "met? (spread raw/pipe/shm/ring)");
  auto row = [&](size_t ci, const char* label, double Sample::*field,
                 const Goal* goal) {
    const std::optional<double> raw = median_of(ci, Side::kRaw, field);
    std::string line = absl::StrFormat("%-44s", label);
    for (Side side : {Side::kPipe, Side::kShm, Side::kRing}) {
      const std::optional<double> v = median_of(ci, side, field);
      if (v && raw && *raw > 0) {
        absl::StrAppendFormat(&line, " %6.2fx", *v / *raw);
      } else {
        absl::StrAppend(&line, "       -");
      }
    }
    std::string verdict = "-";
    if (goal != nullptr) {
      const std::optional<double> shm = median_of(ci, Side::kShm, field);
      const double ratio = shm && raw && *raw > 0 ? *shm / *raw : 0;
      const bool met =
          goal->at_least ? ratio >= goal->bound : ratio <= goal->bound;
      ++judged;
      if (!met) ++missed;
      absl::StrAppendFormat(&line, " %s%5.2f",
                            goal->at_least ? ">=" : "<=", goal->bound);
      verdict = met ? "yes" : "MISSED";
    } else {
      absl::StrAppend(&line, "        ");
    }
    std::string spreads;
    for (Side side : kSides) {
      if (samples.count({ci, side}) == 0) {
        absl::StrAppend(&spreads, spreads.empty() ? "" : "/", "-");
        continue;
      }
      absl::StrAppendFormat(&spreads, "%s%.0f%%", spreads.empty() ? "" : "/",
                            100 * spread_of(ci, side, field));
    }
    std::printf("%s   %-6s (%s)\n", line.c_str(), verdict.c_str(),
                spreads.c_str());
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    const Goal* goal = nullptr;
    for (const Goal& g : kGoals) {
      if (c.id == g.case_id) goal = &g;
    }
    if (c.role == Role::kEcho) {
      if (samples.count({ci, Side::kRaw}) != 0) {
        row(ci, c.title.c_str(), &Sample::p50_us, goal);
        row(ci, absl::StrCat("  same, mean").c_str(), &Sample::mean_us,
            nullptr);
        row(ci, absl::StrCat("  same, CPU per round trip").c_str(),
            &Sample::cpu_us_per_op, nullptr);
      }
    } else {
      row(ci, c.title.c_str(),
          c.size >= kReadChunk ? &Sample::bytes_per_second
                               : &Sample::writes_per_second,
          goal);
      row(ci, "  same, CPU per write", &Sample::cpu_us_per_op, nullptr);
    }
  }
  // The spin's CPU cost: CPU per round trip with the default spin over spin
  // 0, the same side and placement.
  std::printf(
      "\nCPU per round trip, spin %s / spin 0 (same side, same "
      "placement):\n",
      absl::FormatDuration(canal::kDefaultSharedMemorySpin).c_str());
  for (const auto& [with, without] : {std::pair<const char*, const char*>{
                                          "rtt64-pinned", "rtt64-pinned-spin0"},
                                      {"rtt64", "rtt64-spin0"}}) {
    std::optional<size_t> a, b;
    for (size_t ci = 0; ci < cases.size(); ++ci) {
      if (cases[ci].id == with) a = ci;
      if (cases[ci].id == without) b = ci;
    }
    if (!a || !b) continue;
    for (Side side : {Side::kShm, Side::kRing}) {
      const std::optional<double> x =
          median_of(*a, side, &Sample::cpu_us_per_op);
      const std::optional<double> y =
          median_of(*b, side, &Sample::cpu_us_per_op);
      const std::optional<double> raw =
          median_of(*a, Side::kRaw, &Sample::cpu_us_per_op);
      const std::optional<double> p50 = median_of(*b, side, &Sample::p50_us);
      const std::optional<double> raw_p50 =
          median_of(*a, Side::kRaw, &Sample::p50_us);
      if (!x || !y || *y <= 0) continue;
      std::printf(
          "  %-14s %-5s %5.2fx   (CPU vs raw: spin %.2fx, spin 0 %.2fx;"
          " p50 vs raw with spin 0: %.2fx)\n",
          with, SideName(side), *x / *y, raw ? *x / *raw : 0,
          raw ? *y / *raw : 0, p50 && raw_p50 ? *p50 / *raw_p50 : 0);
    }
  }
  std::printf("\ngoals for shm met: %d of %d\n", judged - missed, judged);
  return missed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && absl::string_view(argv[1]) == kPeerFlag) {
    return RunPeer(argc - 2, argv + 2);
  }
  return RunAll(argc, argv);
}
