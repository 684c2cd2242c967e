// SPDX-License-Identifier: Apache-2.0
// The POSIX server loop: readiness-based non-blocking I/O on the accepted
// Unix sockets, with epoll (Linux) or poll(2) underneath (see poller.h),
// chosen when the loop is made: epoll on Linux unless CANAL_SERVER_LOOP=poll
// is in the environment (so that the test suite runs the server tests on
// the poll() loop of the other POSIX systems too), poll() elsewhere.
//
// Reading: one recv of up to read_chunk_size into a per-loop scratch buffer
// per readiness event (level-triggered, so a busy client cannot starve the
// others). Byte mode hands the chunk to on_data as is. Message mode decodes
// CNL1 frames with the connection's FrameDecoder (src/internal/framing.h),
// straight out of the scratch buffer: a message that arrived whole is
// dispatched from there, and only a frame that continues in a later recv is
// kept, by the decoder.
//
// Writing: Send appends to the connection's queue and tries one sendmsg at
// once from the calling thread (under the connection's mutex); whatever the
// socket does not take waits for EPOLLOUT/POLLOUT, which the loop asks for
// only while the queue is not empty.
//
// End of stream: a client may shut down only its sending side and keep
// reading (shutdown(SHUT_WR): socat, `nc -N`, scripts). So the client's end
// of stream stops the reading, not the connection: the requests already
// received are still answered and everything Send accepted is still
// flushed, and the connection closes (OutOfRange, or DataLoss if the stream
// ended inside a message) once the queue is empty. The flush ends early if
// the client's reading side goes too (a hang-up, or a send failing with
// EPIPE): the status then says how many bytes were not delivered. A client
// that half-closes and never reads is closed by the idle timeout.
//
// Other threads reach the loop through an inbox (new connections, "look at
// this connection", shutdown) and a self-pipe that wakes it. Connections
// waiting for the loop's attention are kept in intrusive lists, so that
// asking for it never allocates (Send and Close must not fail once the
// data is queued); a connection closed during an event batch is kept alive
// the same way until the batch is over.
//
// Memory: the decoder's buffer grows with the bytes that arrive (at most
// twice those plus one read chunk), never with the size a header
// announces, so a client pays for what it sends. An allocation that fails
// closes only the connection it was for, with ResourceExhausted.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/internal/framing.h"
#include "src/posix/error.h"
#include "src/posix/io.h"
#include "src/posix/poller.h"
#include "src/server/server_internal.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

// No SIGPIPE (MSG_NOSIGNAL, or SO_NOSIGPIPE set by canal where that flag
// is missing), and never block.
constexpr int kLoopSendFlags = kSendFlags | MSG_DONTWAIT;

constexpr int kMaxIov = 64;

// What the decoder may reserve ahead of the bytes that arrived: nothing
// worth counting, so that a connection's message buffer grows with what the
// client sent (at most twice that), whatever size its header announced.
constexpr size_t kDecoderReceiveRoom = 1;
// Between messages a connection keeps at most this much decoder memory for
// the next one; more (a large message just dispatched) is freed.
constexpr size_t kKeepDecoderMemory = FrameDecoder::kKeepStageCapacity;

// Whether a loop made now uses epoll (see the top of the file).
bool UseEpoll() {
#if defined(__linux__)
  const char* loop = std::getenv("CANAL_SERVER_LOOP");
  return loop == nullptr || std::strcmp(loop, "poll") != 0;
#else
  return false;
#endif
}

class PosixServerConn final : public ServerConn {
 public:
  PosixServerConn(uint64_t id, Channel channel, PeerInfo peer,
                  const ServerConfig* config, ServerLoop* loop)
      : ServerConn(id, std::move(channel), std::move(peer), config, loop),
        decoder(config->max_message_size, kDecoderReceiveRoom) {}

  int fd = -1;
  // Guarded by mu: the client's end of stream was read (see the top).
  bool input_closed = false;
  // In the loop's inbox of connections to look at.
  LoopInbox<PosixServerConn>::Link inbox;
  // Loop thread only.
  bool in_pending = false;  // In the loop's own list of the same.
  std::shared_ptr<PosixServerConn> next_pending;
  std::shared_ptr<PosixServerConn>
      next_dead;  // Closed during the current batch.
  bool done = false;
  bool reg_read = false;
  bool reg_write = false;
  IdleClock::time_point last_read;  // When bytes (or the end) last came.
  // Message mode: bytes read but not yet offered to the decoder (dispatching
  // stopped before them), and the decoder, which keeps a frame that
  // continues in a later read.
  std::string in;
  FrameDecoder decoder;
};

class PosixServerLoop final : public ServerLoop {
 public:
  PosixServerLoop(const ServerConfig* config, bool use_epoll)
      : ServerLoop(config),
        use_epoll_(use_epoll),
        scratch_(new char[config->read_chunk_size]) {}

  ~PosixServerLoop() override {
    if (wake_read_ >= 0) ::close(wake_read_);
    if (wake_write_ >= 0) ::close(wake_write_);
    // Unlink what the lists still hold, so that a Connection handle kept by
    // the user does not keep other connections alive through them.
    while (pending_ != nullptr) {
      std::shared_ptr<PosixServerConn> conn = std::move(pending_);
      pending_ = std::move(conn->next_pending);
    }
    ClearGraveyard();
  }

  absl::Status Init() override {
#if defined(__linux__)
    poller_ = use_epoll_ ? NewEpollPoller() : NewPollPoller();
#else
    poller_ = NewPollPoller();
#endif
    absl::Status init = poller_->Init(config_->name);
    if (!init.ok()) return init;
    // Non-blocking and close-on-exec from birth (pipe2 where the system has
    // it): a child that another thread forks must not inherit it.
    int fds[2];
    if (!MakePipe(fds)) {
      return ErrnoError(absl::StatusCode::kResourceExhausted, "Server::Start",
                        config_->name, "cannot create the loop's wake-up pipe",
                        errno);
    }
    wake_read_ = fds[0];
    wake_write_ = fds[1];
    return poller_->Add(wake_read_, &wake_tag_, true, false);
  }

  bool OnLoopThread() const override {
    return loop_thread_.load() == std::this_thread::get_id();
  }

  void Adopt(uint64_t id, Channel channel, PeerInfo peer) override {
    inbox_.AddNew(std::make_shared<PosixServerConn>(
                      id, std::move(channel), std::move(peer), config_, this),
                  [this] { Wake(); });
  }

  void BeginShutdown(absl::Time deadline) override {
    inbox_.RequestShutdown(deadline, [this] { Wake(); });
  }

  void OnQueuedLocked(ServerConn* base) override {
    PosixServerConn* conn = static_cast<PosixServerConn*>(base);
    if (conn->input_closed) {
      // Draining after the client's end of stream: the loop flushes and
      // decides when it is over.
      Attention(conn);
      return;
    }
    // Try to hand the data to the socket right away (non-blocking). If the
    // client is gone, the loop's next flush fails the same way and decides
    // how the connection ended (HandleEvent).
    absl::Status flushed = FlushLocked(conn);
    if (!flushed.ok()) {
      Attention(conn);
      return;
    }
    if (conn->queued > 0 || (conn->paused && QueueDrainedLocked(conn))) {
      Attention(conn);
    }
  }

  void OnCloseRequestedLocked(ServerConn* conn) override {
    Attention(static_cast<PosixServerConn*>(conn));
  }

  void Run() override {
    loop_thread_.store(std::this_thread::get_id());
    std::vector<PollEvent> events;
    while (true) {
      if (shutting_down_ && conns_.empty()) break;
      int timeout_ms = -1;
      if (shutting_down_) {
        absl::Duration left = deadline_ - absl::Now();
        timeout_ms =
            left <= absl::ZeroDuration()
                ? 0
                : static_cast<int>(std::min<int64_t>(
                      absl::ToInt64Milliseconds(left + absl::Microseconds(999)),
                      1000 * 1000));
      }
      if (next_sweep_ != IdleClock::time_point::max()) {
        const IdleClock::duration left = next_sweep_ - IdleClock::now();
        const int sweep_ms =
            left <= IdleClock::duration::zero()
                ? 0
                : static_cast<int>(std::min<int64_t>(
                      std::chrono::ceil<std::chrono::milliseconds>(left)
                          .count(),
                      1000 * 1000));
        timeout_ms = timeout_ms < 0 ? sweep_ms : std::min(timeout_ms, sweep_ms);
      }
      poller_->Wait(timeout_ms, &events);
      for (const PollEvent& ev : events) {
        if (ev.tag == &wake_tag_) {
          DrainInbox();
          continue;
        }
        PosixServerConn* conn = static_cast<PosixServerConn*>(ev.tag);
        if (conn->done) continue;
        HandleEventGuarded(conn, ev);
      }
      // Connections touched from handlers on this thread.
      while (pending_ != nullptr) {
        std::shared_ptr<PosixServerConn> conn = std::move(pending_);
        pending_ = std::move(conn->next_pending);
        conn->in_pending = false;
        UpdateGuarded(conn.get());
      }
      if (shutting_down_) ShutdownStep();
      if (IdleClock::now() >= next_sweep_) SweepIdle();
      ClearGraveyard();
    }
    loop_thread_.store(std::thread::id());
  }

 private:
  // Wakes the loop thread (called by inbox_, at most once a Drain).
  void Wake() {
    char byte = 1;
    while (::write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
    }
  }

  // Asks the loop to re-examine `conn` (interest, close request, resume).
  // Never allocates.
  void Attention(PosixServerConn* conn) {
    if (OnLoopThread()) {
      if (conn->in_pending) return;
      conn->in_pending = true;
      conn->next_pending = std::move(pending_);
      pending_ =
          std::static_pointer_cast<PosixServerConn>(conn->shared_from_this());
      return;
    }
    inbox_.AddAttention(conn, [this] { Wake(); });
  }

  void ClearGraveyard() {
    // One at a time: a long chain must not recurse in the destructors.
    while (graveyard_ != nullptr) {
      std::shared_ptr<PosixServerConn> next = std::move(graveyard_->next_dead);
      graveyard_ = std::move(next);
    }
  }

  void DrainInbox() {
    char buf[64];
    while (::read(wake_read_, buf, sizeof(buf)) > 0) {
    }
    const std::optional<absl::Time> shutdown = inbox_.Drain(
        [this](std::shared_ptr<PosixServerConn> conn) {
          AddConn(std::move(conn));
        },
        [this](PosixServerConn* conn) { UpdateGuarded(conn); });
    if (shutdown.has_value() && !shutting_down_) {
      shutting_down_ = true;
      deadline_ = *shutdown;
    }
  }

  void AddConn(std::shared_ptr<PosixServerConn> conn) {
    conn->fd = conn->channel.native_handle();
    conn->last_read = IdleClock::now();
    if (has_idle_timeout() && next_sweep_ == IdleClock::time_point::max()) {
      next_sweep_ = conn->last_read + IdleTimeout();
    }
    PosixServerConn* raw = conn.get();
    try {
      conns_.emplace(raw->id, conn);
    } catch (...) {
      // Not served at all: no on_open, so no on_close either.
      Finish(raw, CaughtError(raw, "accepting the connection"),
             /*notify=*/false);
      return;
    }
    absl::Status added = NotifyOpen(raw);
    if (added.ok()) {
      added = raw->fd < 0 ? ConnError(absl::StatusCode::kUnavailable, *config_,
                                      raw->id, "the channel was already closed")
                          : poller_->Add(raw->fd, raw, false, false);
      if (!added.ok()) raw->fd = -1;
    }
    if (!added.ok()) {
      CloseConn(raw, added);
      return;
    }
    UpdateGuarded(raw);
  }

  // HandleEvent and Update with every exception (allocation failures while
  // reading or parsing) turned into the end of that connection.
  void HandleEventGuarded(PosixServerConn* conn, const PollEvent& ev) {
    try {
      HandleEvent(conn, ev);
    } catch (...) {
      CloseConn(conn, CaughtError(conn, "reading from the client"));
    }
  }

  void UpdateGuarded(PosixServerConn* conn) {
    try {
      Update(conn);
    } catch (...) {
      CloseConn(conn, CaughtError(conn, "reading from the client"));
    }
  }

  void HandleEvent(PosixServerConn* conn, const PollEvent& ev) {
    if (ev.readable && conn->reg_read) {
      HandleReadable(conn);
      if (conn->done) return;
    }
    if (ev.writable || ev.error) {
      absl::Status flushed;
      bool resume = false;
      bool empty = false;
      bool input_closed = false;
      size_t left = 0;
      {
        std::lock_guard<std::mutex> lock(conn->mu);
        flushed = FlushLocked(conn);
        empty = conn->queued == 0;
        left = conn->queued;
        input_closed = conn->input_closed;
        if (flushed.ok() && conn->paused && QueueDrainedLocked(conn)) {
          conn->paused = false;
          resume = true;
        }
      }
      if (input_closed && (!flushed.ok() || ev.error)) {
        // The client's reading side is gone too, after its end of stream:
        // what is still queued can no longer reach it.
        CloseConn(conn, EndOfInputStatus(conn, left));
        return;
      }
      if (!flushed.ok()) {
        // The client is gone. If its stream had ended (we had not read that
        // far: the queue was full), it finished and left; otherwise the
        // connection broke.
        CloseConn(conn,
                  StreamEnded(conn) ? EndOfInputStatus(conn, left) : flushed);
        return;
      }
      if (ev.error && !ev.readable && (empty || !conn->reg_read)) {
        // A hang-up that reading will not report (we are not reading, or
        // there is nothing to read): the connection is gone.
        CloseConn(conn, ConnError(absl::StatusCode::kUnavailable, *config_,
                                  conn->id, "the connection broke"));
        return;
      }
      if (resume) ProcessInput(conn, absl::string_view());
      if (conn->done) return;
    }
    Update(conn);
  }

  // Whether all that is left to read from the client is its end of stream
  // (or the reset that stands for it).
  bool StreamEnded(PosixServerConn* conn) {
    char byte;
    ssize_t n;
    do {
      n = ::recv(conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  // How a connection ends after the client's end of stream: OutOfRange, or
  // DataLoss if the stream ended inside a message; `undelivered` queued
  // bytes could not be sent.
  absl::Status EndOfInputStatus(const PosixServerConn* conn,
                                size_t undelivered) {
    // Once the end of stream has been read, `in` holds at most an
    // incomplete frame (reading happens only while not paused, and then
    // every complete frame has been dispatched).
    bool input_closed;
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      input_closed = conn->input_closed;
    }
    const bool inside = input_closed && config_->mode == PipeMode::kMessage &&
                        (conn->decoder.mid_frame() || !conn->in.empty());
    absl::string_view what =
        inside ? "stream ended inside a message" : "the client closed the pipe";
    if (undelivered == 0) {
      return ConnError(
          inside ? absl::StatusCode::kDataLoss : absl::StatusCode::kOutOfRange,
          *config_, conn->id, what);
    }
    return ConnError(
        inside ? absl::StatusCode::kDataLoss : absl::StatusCode::kOutOfRange,
        *config_, conn->id,
        absl::StrCat(what, "; ", undelivered,
                     " queued bytes were not delivered (the client stopped "
                     "reading)"));
  }

  void HandleReadable(PosixServerConn* conn) {
    ssize_t n;
    do {
      n = ::recv(conn->fd, scratch_.get(), config_->read_chunk_size,
                 MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err != ECONNRESET) {
        CloseConn(conn, ErrnoError(absl::StatusCode::kUnavailable, kServerOp,
                                   config_->name,
                                   ConnWhat(conn->id, "recv failed"), err));
        return;
      }
      n = 0;  // A reset after the peer's last data is its end of stream.
    }
    conn->last_read = IdleClock::now();
    if (n == 0) {
      // Stop reading; Update (at the end of HandleEvent) closes the
      // connection once what was received is answered and the queue is
      // flushed (see the top of the file).
      std::lock_guard<std::mutex> lock(conn->mu);
      conn->input_closed = true;
      return;
    }
    const absl::string_view data(scratch_.get(), static_cast<size_t>(n));
    if (config_->mode == PipeMode::kByte) {
      absl::Status handled = Dispatch(conn, data);
      if (!handled.ok()) {
        CloseConn(conn, handled);
        return;
      }
      MustStop(conn);  // Pauses reading if the queue is now full.
      return;
    }
    ProcessInput(conn, data);
  }

  // Whether dispatching for `conn` must stop for now: closing, shutting
  // down, or its queue is full (then it is paused).
  bool MustStop(PosixServerConn* conn) {
    if (conn->done || shutting_down_) return true;
    std::lock_guard<std::mutex> lock(conn->mu);
    if (conn->close_requested) return true;
    if (QueueFullLocked(conn)) {
      conn->paused = true;
      return true;
    }
    return false;
  }

  // Message mode: decodes frames from conn->in followed by `data`, and
  // dispatches every complete message until the connection must stop. What
  // is left is kept in conn->in.
  void ProcessInput(PosixServerConn* conn, absl::string_view data) {
    if (config_->mode != PipeMode::kMessage) return;
    absl::string_view buf = data;
    bool from_in = false;
    if (!conn->in.empty()) {
      conn->in.append(data.data(), data.size());
      buf = conn->in;
      from_in = true;
    }
    while (!buf.empty() && !MustStop(conn)) {
      absl::string_view message;
      const FrameDecoder::Result result = conn->decoder.Next(&buf, &message);
      if (result == FrameDecoder::Result::kNeedMore) break;  // All taken.
      if (result == FrameDecoder::Result::kError) {
        CloseConn(conn, ConnError(conn->decoder.ErrorCode(), *config_, conn->id,
                                  conn->decoder.DescribeError()));
        return;
      }
      if (result == FrameDecoder::Result::kNoMemory) {
        CloseConn(
            conn,
            ConnError(absl::StatusCode::kResourceExhausted, *config_, conn->id,
                      absl::StrCat("out of memory for a message of ",
                                   conn->decoder.message_size(), " bytes")));
        return;
      }
      // `message` is valid until the next call on the decoder.
      absl::Status handled = Dispatch(conn, message);
      if (!handled.ok()) {
        CloseConn(conn, handled);
        return;
      }
    }
    if (conn->done) return;
    if (!conn->decoder.mid_frame() &&
        conn->decoder.memory_held() > kKeepDecoderMemory) {
      conn->decoder.Trim();
    }
    if (from_in) {
      conn->in.erase(0, conn->in.size() - buf.size());
    } else {
      conn->in.assign(buf.data(), buf.size());
    }
  }

  // Re-examines `conn`: a close request, a queue drained enough to resume,
  // the end of a drain after the client's end of stream, and what to wait
  // for.
  void Update(PosixServerConn* conn) {
    if (conn->done) return;
    bool close = false;
    bool resume = false;
    absl::Status status;
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      if (conn->close_requested) {
        close = true;
        status = conn->close_status;
      } else if (conn->paused && QueueDrainedLocked(conn)) {
        conn->paused = false;
        resume = true;
      }
    }
    if (close) {
      CloseConn(conn, status);
      return;
    }
    if (resume) {
      ProcessInput(conn, absl::string_view());
      if (conn->done) return;
    }
    bool want_read;
    bool want_write;
    bool drained;
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      want_write = conn->queued > 0;
      want_read = !conn->paused && !shutting_down_ && !conn->input_closed;
      // Every request received was dispatched (not paused) and every reply
      // handed to the system.
      drained = conn->input_closed && !conn->paused && conn->queued == 0 &&
                !conn->close_requested;
    }
    if (drained && !shutting_down_) {
      CloseConn(conn, EndOfInputStatus(conn, 0));
      return;
    }
    if (want_read != conn->reg_read || want_write != conn->reg_write) {
      conn->reg_read = want_read;
      conn->reg_write = want_write;
      poller_->Modify(conn->fd, conn, want_read, want_write);
    }
  }

  // Sends as much of the queue as the socket takes. With conn->mu held.
  absl::Status FlushLocked(PosixServerConn* conn) {
    while (conn->queued > 0 && !conn->finished) {
      iovec iov[kMaxIov];
      int count = 0;
      size_t offset = conn->out_offset;
      for (const std::string& buf : conn->out) {
        if (count == kMaxIov) break;
        iov[count].iov_base = const_cast<char*>(buf.data()) + offset;
        iov[count].iov_len = buf.size() - offset;
        offset = 0;
        ++count;
      }
      msghdr mh{};
      mh.msg_iov = iov;
      mh.msg_iovlen = count;
      ssize_t n = ::sendmsg(conn->fd, &mh, kLoopSendFlags);
      if (n < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return absl::OkStatus();
        return ErrnoError(absl::StatusCode::kUnavailable, kServerOp,
                          config_->name, ConnWhat(conn->id, "send failed"),
                          err);
      }
      size_t sent = static_cast<size_t>(n);
      if (sent > 0) conn->last_write = IdleClock::now();
      conn->queued -= sent;
      while (sent > 0) {
        const size_t left = conn->out.front().size() - conn->out_offset;
        if (sent >= left) {
          sent -= left;
          conn->out.pop_front();
          conn->out_offset = 0;
        } else {
          conn->out_offset += sent;
          sent = 0;
        }
      }
    }
    return absl::OkStatus();
  }

  void CloseConn(PosixServerConn* conn, absl::Status status) {
    if (conn->done) return;
    conn->done = true;
    if (conn->fd >= 0) poller_->Remove(conn->fd);
    auto it = conns_.find(conn->id);
    if (it != conns_.end()) {
      // Freed after the batch: events of this batch may still name it.
      it->second->next_dead = std::move(graveyard_);
      graveyard_ = std::move(it->second);
      conns_.erase(it);
    }
    Finish(conn, std::move(status));
  }

  void SweepIdle() {
    next_sweep_ = SweepIdleConnections(
        &conns_, [this](PosixServerConn* conn, absl::Status status) {
          CloseConn(conn, std::move(status));
        });
  }

  // During shutdown: close every drained connection, and all of them once
  // the grace period is over.
  void ShutdownStep() {
    CloseDrainedConnections(
        &conns_, deadline_,
        [](PosixServerConn* conn) { return conn->queued == 0; },
        [this](PosixServerConn* conn, absl::Status status) {
          CloseConn(conn, std::move(status));
        });
    for (auto& entry : conns_) UpdateGuarded(entry.second.get());
  }

  const bool use_epoll_;
  std::unique_ptr<char[]> scratch_;
  std::unique_ptr<Poller> poller_;
  int wake_read_ = -1;
  int wake_write_ = -1;
  char wake_tag_ = 0;
  std::atomic<std::thread::id> loop_thread_{};

  // Loop thread only.
  std::unordered_map<uint64_t, std::shared_ptr<PosixServerConn>> conns_;
  std::shared_ptr<PosixServerConn> pending_;    // Linked through next_pending.
  std::shared_ptr<PosixServerConn> graveyard_;  // Linked through next_dead.
  bool shutting_down_ = false;
  absl::Time deadline_;
  // The next idle sweep; max(): none due (no timeout, or no connections).
  IdleClock::time_point next_sweep_ = IdleClock::time_point::max();

  // Other threads' way in: new connections, attention, shutdown.
  LoopInbox<PosixServerConn> inbox_;
};

}  // namespace
}  // namespace posix

std::unique_ptr<ServerLoop> BackendNewServerLoop(const ServerConfig* config) {
  return std::make_unique<posix::PosixServerLoop>(config, posix::UseEpoll());
}

absl::string_view BackendServerLoopKind() {
  return posix::UseEpoll() ? "epoll" : "poll";
}

std::string BackendServerMessage(absl::string_view data) {
  std::string frame;
  frame.reserve(kFrameHeaderSize + data.size());
  unsigned char header[kFrameHeaderSize];
  EncodeFrameHeader(static_cast<uint32_t>(data.size()), header);
  frame.append(reinterpret_cast<const char*>(header), kFrameHeaderSize);
  frame.append(data.data(), data.size());
  return frame;
}

size_t BackendAutomaticMaxConnections() {
  // Half of the soft descriptor limit: each connection costs the server one
  // descriptor, and the rest of the process needs some too.
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) {
    return size_t{1} << 20;
  }
  return std::max<size_t>(1, static_cast<size_t>(lim.rlim_cur) / 2);
}

}  // namespace internal
}  // namespace canal
