// SPDX-License-Identifier: Apache-2.0
// The Windows server loop: one I/O completion port per loop thread, with
// every accepted pipe HANDLE (opened FILE_FLAG_OVERLAPPED by the listener,
// message read mode on message pipes) associated with it.
//
// Each connection has at most one overlapped ReadFile and one overlapped
// WriteFile outstanding, both issued on the loop thread only (I/O issued by
// a thread is tied to it on older Windows). A message-mode read that ends
// with ERROR_MORE_DATA is continued until the message is whole, so
// on_data/on_request see whole messages. Writes send one queued buffer each
// (one message in message mode), in byte mode at most 64 KiB at a time.
//
// Idle timeout: progress is seen through completions, so a message being
// written counts once the client has taken all of it. Other threads reach
// the loop with
// PostQueuedCompletionStatus (new connections, "look at this connection",
// shutdown).
//
// A connection is closed with Channel::Close (CancelIoEx, CloseHandle); its
// outstanding operations still complete (aborted) through the port, and each
// holds a reference to the connection until then, so the OVERLAPPED and
// buffers stay valid. Run returns only when nothing is outstanding.
//
// Connections waiting for the loop's attention are kept in intrusive lists,
// so that asking for it never allocates (Send and Close must not fail once
// the data is queued). An allocation that fails while serving a connection
// closes only that connection, with ResourceExhausted.

#include <windows.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/internal/little_endian.h"
#include "src/server/server_internal.h"
#include "src/win32/envelope.h"
#include "src/win32/error.h"
#include "src/win32/security.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

constexpr ULONG_PTR kIoKey = 1;
constexpr ULONG_PTR kWakeKey = 2;
constexpr ULONG kMaxEntries = 128;
constexpr size_t kMaxByteWrite = 64 * 1024;
// ServerOptions::max_connections = 0.
constexpr size_t kAutomaticMaxConnections = 4096;

class Win32ServerConn;

struct IoOp {
  OVERLAPPED ov;
  bool is_read = false;
  std::shared_ptr<Win32ServerConn>
      self;  // Set while the operation is outstanding.
};

class Win32ServerConn final : public ServerConn {
 public:
  using ServerConn::ServerConn;

  HANDLE handle = nullptr;
  IoOp read_op;
  IoOp write_op;
  std::vector<char> read_buf;
  // In the loop's inbox of connections to look at.
  LoopInbox<Win32ServerConn>::Link inbox;
  // Loop thread only.
  bool in_pending = false;  // In the loop's own list of the same.
  std::shared_ptr<Win32ServerConn> next_pending;
  bool done = false;
  bool read_pending = false;
  IdleClock::time_point last_read;  // When bytes (or the end) last came.
  std::string msg;  // Message mode: the parts of a message read so far.
  // Whether the client's process runs as this process's user: -1 not yet
  // known (asked the first time it sends handles).
  int same_user = -1;
  // Guarded by mu (read by Send's caller to decide whether to post).
  bool write_pending = false;
};

class Win32ServerLoop final : public ServerLoop {
 public:
  explicit Win32ServerLoop(const ServerConfig* config) : ServerLoop(config) {}

  ~Win32ServerLoop() override {
    if (port_ != nullptr) CloseHandle(port_);
    // Unlink what the lists still hold, so that a Connection handle kept by
    // the user does not keep other connections alive through them.
    while (pending_ != nullptr) {
      std::shared_ptr<Win32ServerConn> conn = std::move(pending_);
      pending_ = std::move(conn->next_pending);
    }
  }

  absl::Status Init() override {
    port_ = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (port_ == nullptr) {
      return Win32Status(GetLastError(), ErrorContext::kGeneric,
                         "Server::Start", config_->name,
                         "CreateIoCompletionPort failed");
    }
    return absl::OkStatus();
  }

  bool OnLoopThread() const override {
    return loop_thread_.load() == std::this_thread::get_id();
  }

  void Adopt(uint64_t id, Channel channel, PeerInfo peer) override {
    inbox_.AddNew(std::make_shared<Win32ServerConn>(
                      id, std::move(channel), std::move(peer), config_, this),
                  [this] { Wake(); });
  }

  void BeginShutdown(absl::Time deadline) override {
    inbox_.RequestShutdown(deadline, [this] { Wake(); });
  }

  void OnQueuedLocked(ServerConn* base) override {
    Win32ServerConn* conn = static_cast<Win32ServerConn*>(base);
    if (conn->write_pending) return;  // Its completion starts the next one.
    if (OnLoopThread() && !conn->done) {
      StartWriteLocked(conn);
    } else {
      Attention(conn);
    }
  }

  void OnCloseRequestedLocked(ServerConn* conn) override {
    Attention(static_cast<Win32ServerConn*>(conn));
  }

  void Run() override {
    loop_thread_.store(std::this_thread::get_id());
    OVERLAPPED_ENTRY entries[kMaxEntries];
    while (true) {
      if (shutting_down_ && conns_.empty() && outstanding_ == 0) break;
      DWORD timeout = INFINITE;
      if (shutting_down_) {
        if (conns_.empty()) {
          timeout = 1000;  // Only cancelled operations are left to reap.
        } else {
          absl::Duration left = deadline_ - absl::Now();
          timeout = left <= absl::ZeroDuration()
                        ? 0
                        : static_cast<DWORD>(std::min<int64_t>(
                              absl::ToInt64Milliseconds(
                                  left + absl::Microseconds(999)),
                              1000 * 1000));
        }
      }
      if (next_sweep_ != IdleClock::time_point::max()) {
        const IdleClock::duration left = next_sweep_ - IdleClock::now();
        const DWORD sweep_ms =
            left <= IdleClock::duration::zero()
                ? 0
                : static_cast<DWORD>(std::min<int64_t>(
                      std::chrono::ceil<std::chrono::milliseconds>(left)
                          .count(),
                      1000 * 1000));
        timeout = timeout == INFINITE ? sweep_ms : std::min(timeout, sweep_ms);
      }
      ULONG count = 0;
      if (!GetQueuedCompletionStatusEx(port_, entries, kMaxEntries, &count,
                                       timeout, FALSE)) {
        count = 0;
      }
      for (ULONG i = 0; i < count; ++i) {
        if (entries[i].lpCompletionKey == kWakeKey) {
          DrainInbox();
          continue;
        }
        IoOp* op = CONTAINING_RECORD(entries[i].lpOverlapped, IoOp, ov);
        std::shared_ptr<Win32ServerConn> conn = std::move(op->self);
        --outstanding_;
        DWORD bytes = 0;
        DWORD error = ERROR_SUCCESS;
        if (!GetOverlappedResult(conn->handle, &op->ov, &bytes, FALSE)) {
          error = GetLastError();
        }
        bytes = entries[i].dwNumberOfBytesTransferred;
        try {
          if (op->is_read) {
            OnReadDone(conn.get(), error, bytes);
          } else {
            OnWriteDone(conn.get(), error, bytes);
          }
        } catch (...) {
          CloseConn(conn.get(), CaughtError(conn.get(), "serving the client"));
        }
      }
      while (pending_ != nullptr) {
        std::shared_ptr<Win32ServerConn> conn = std::move(pending_);
        pending_ = std::move(conn->next_pending);
        conn->in_pending = false;
        UpdateGuarded(conn.get());
      }
      if (shutting_down_) ShutdownStep();
      if (IdleClock::now() >= next_sweep_) SweepIdle();
    }
    loop_thread_.store(std::thread::id());
  }

 private:
  // Wakes the loop thread (called by inbox_, at most once a Drain).
  void Wake() { PostQueuedCompletionStatus(port_, 0, kWakeKey, nullptr); }

  // Asks the loop to re-examine `conn`. Never allocates.
  void Attention(Win32ServerConn* conn) {
    if (OnLoopThread()) {
      if (conn->in_pending) return;
      conn->in_pending = true;
      conn->next_pending = std::move(pending_);
      pending_ =
          std::static_pointer_cast<Win32ServerConn>(conn->shared_from_this());
      return;
    }
    inbox_.AddAttention(conn, [this] { Wake(); });
  }

  void UpdateGuarded(Win32ServerConn* conn) {
    try {
      Update(conn);
    } catch (...) {
      CloseConn(conn, CaughtError(conn, "serving the client"));
    }
  }

  void DrainInbox() {
    const std::optional<absl::Time> shutdown = inbox_.Drain(
        [this](std::shared_ptr<Win32ServerConn> conn) {
          AddConn(std::move(conn));
        },
        [this](Win32ServerConn* conn) { UpdateGuarded(conn); });
    if (shutdown.has_value() && !shutting_down_) {
      shutting_down_ = true;
      deadline_ = *shutdown;
      for (auto& entry : conns_) {
        Win32ServerConn* conn = entry.second.get();
        // No new requests: cancel the outstanding read.
        if (conn->read_pending) CancelIoEx(conn->handle, &conn->read_op.ov);
      }
    }
  }

  void AddConn(std::shared_ptr<Win32ServerConn> conn) {
    Win32ServerConn* raw = conn.get();
    raw->handle = static_cast<HANDLE>(raw->channel.native_handle());
    raw->read_op.is_read = true;
    raw->write_op.is_read = false;
    raw->last_read = IdleClock::now();
    if (has_idle_timeout() && next_sweep_ == IdleClock::time_point::max()) {
      next_sweep_ = raw->last_read + IdleTimeout();
    }
    try {
      raw->read_buf.resize(config_->read_chunk_size);
      conns_.emplace(raw->id, conn);
    } catch (...) {
      // Not served at all: no on_open, so no on_close either.
      Finish(raw, CaughtError(raw, "accepting the connection"),
             /*notify=*/false);
      return;
    }
    absl::Status added;
    if (raw->handle == nullptr) {
      added = ConnError(absl::StatusCode::kUnavailable, *config_, raw->id,
                        "the channel was already closed");
    } else if (CreateIoCompletionPort(raw->handle, port_, kIoKey, 0) ==
               nullptr) {
      added = Win32Status(GetLastError(), ErrorContext::kServerWrite, kServerOp,
                          config_->name,
                          ConnWhat(raw->id, "CreateIoCompletionPort failed"));
    }
    absl::Status opened = NotifyOpen(raw);
    if (added.ok()) added = opened;
    if (!added.ok()) {
      CloseConn(raw, added);
      return;
    }
    UpdateGuarded(raw);
  }

  // Re-examines `conn`: a close request, writes to start, reads to post.
  void Update(Win32ServerConn* conn) {
    if (conn->done) return;
    bool close = false;
    bool read = false;
    absl::Status status;
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      if (conn->close_requested) {
        close = true;
        status = conn->close_status;
      } else {
        if (!conn->write_pending) StartWriteLocked(conn);
        if (conn->paused && QueueDrainedLocked(conn)) conn->paused = false;
        read = !conn->paused && !conn->read_pending && !shutting_down_ &&
               config_->can_read;
      }
    }
    if (close) {
      CloseConn(conn, status);
      return;
    }
    if (read) StartRead(conn);
  }

  // With conn->mu held, on the loop thread.
  void StartWriteLocked(Win32ServerConn* conn) {
    if (conn->write_pending || conn->out.empty() || conn->done) return;
    const std::string& front = conn->out.front();
    ZeroMemory(&conn->write_op.ov, sizeof(OVERLAPPED));
    conn->write_op.self =
        std::static_pointer_cast<Win32ServerConn>(conn->shared_from_this());
    // Byte mode writes at most kMaxByteWrite at a time, so that a client
    // reading a large Send slowly shows progress (the idle timeout sees
    // completions only). A message is one write: its boundary must stay.
    size_t size = front.size() - conn->out_offset;
    if (config_->mode == PipeMode::kByte) size = std::min(size, kMaxByteWrite);
    if (!WriteFile(conn->handle, front.data() + conn->out_offset,
                   static_cast<DWORD>(size), nullptr, &conn->write_op.ov) &&
        GetLastError() != ERROR_IO_PENDING) {
      const DWORD error = GetLastError();
      conn->write_op.self.reset();
      if (!conn->close_requested) {
        conn->close_requested = true;
        conn->close_status = WriteError(conn, error);
        Attention(conn);
      }
      return;
    }
    conn->write_pending = true;
    ++outstanding_;
  }

  void StartRead(Win32ServerConn* conn) {
    ZeroMemory(&conn->read_op.ov, sizeof(OVERLAPPED));
    conn->read_op.self =
        std::static_pointer_cast<Win32ServerConn>(conn->shared_from_this());
    if (!ReadFile(conn->handle, conn->read_buf.data(),
                  static_cast<DWORD>(conn->read_buf.size()), nullptr,
                  &conn->read_op.ov)) {
      const DWORD error = GetLastError();
      if (error != ERROR_IO_PENDING && error != ERROR_MORE_DATA) {
        conn->read_op.self.reset();
        CloseConn(conn, ReadError(conn, error));
        return;
      }
    }
    conn->read_pending = true;
    ++outstanding_;
  }

  absl::Status ReadError(Win32ServerConn* conn, DWORD error) {
    const absl::StatusCode code =
        CodeForWin32Error(error, ErrorContext::kServerRead);
    if (code == absl::StatusCode::kOutOfRange) {
      if (!conn->msg.empty()) {
        return ConnError(absl::StatusCode::kDataLoss, *config_, conn->id,
                         "the pipe closed inside a message");
      }
      return ConnError(absl::StatusCode::kOutOfRange, *config_, conn->id,
                       "the client closed the pipe");
    }
    if (code == absl::StatusCode::kCancelled) {
      return ConnError(absl::StatusCode::kCancelled, *config_, conn->id,
                       "the read was cancelled");
    }
    return Win32Status(error, ErrorContext::kServerRead, kServerOp,
                       config_->name, ConnWhat(conn->id, "ReadFile failed"));
  }

  absl::Status WriteError(Win32ServerConn* conn, DWORD error) {
    return Win32Status(error, ErrorContext::kServerWrite, kServerOp,
                       config_->name, ConnWhat(conn->id, "WriteFile failed"));
  }

  // The most a message may take on the wire: max_message_size, plus the
  // header and values of a handle envelope if it is one (its data alone
  // must then be within the limit).
  size_t MessageLimit(absl::string_view message_so_far) const {
    return config_->max_message_size +
           (StartsWithMagic(message_so_far) ? kEnvelopeMax : 0);
  }

  absl::StatusOr<bool> ClientIsSameUser(Win32ServerConn* conn) {
    if (conn->same_user >= 0) return conn->same_user == 1;
    ULONG pid = 0;
    if (!GetNamedPipeClientProcessId(conn->handle, &pid)) {
      return Win32Status(
          GetLastError(), ErrorContext::kServerRead, kServerOp, config_->name,
          ConnWhat(conn->id, "cannot learn the client's process id"));
    }
    DWORD error = ERROR_SUCCESS;
    absl::StatusOr<std::wstring> theirs = ProcessUserSid(pid, &error);
    absl::StatusOr<std::wstring> ours = CurrentUserSid();
    if (!ours.ok()) return ours.status();
    // A client whose user cannot be read is not trusted.
    conn->same_user = theirs.ok() && *theirs == *ours ? 1 : 0;
    return conn->same_user == 1;
  }

  // Delivers one whole message. The server hands no handles to its
  // handlers, so a message that carries handles (a handle envelope, see
  // src/win32/envelope.h) is delivered as its data, and the handles the
  // client duplicated into this process are closed, so that none stays
  // open here. Their values name handles in this process: only a client of
  // this process's own user can have put them there, so from any other user
  // no value is touched and the connection ends with DataLoss, as a
  // channel's read would.
  absl::Status DispatchMessage(Win32ServerConn* conn,
                               absl::string_view message) {
    if (!StartsWithMagic(message)) return Dispatch(conn, message);
    if (message.size() < kEnvelopeHeader) {
      return ConnError(absl::StatusCode::kDataLoss, *config_, conn->id,
                       "malformed handle envelope: shorter than its header");
    }
    const uint64_t count = GetLe(message.data() + sizeof(kEnvelopeMagic), 4);
    const size_t room = (message.size() - kEnvelopeHeader) / 8;
    if (count > room) {
      return ConnError(absl::StatusCode::kDataLoss, *config_, conn->id,
                       absl::StrCat("malformed handle envelope: it names ",
                                    count, " handles but has room for ", room,
                                    "; none was touched"));
    }
    if (count > 0) {
      absl::StatusOr<bool> same_user = ClientIsSameUser(conn);
      if (!same_user.ok()) return same_user.status();
      if (!*same_user) {
        return ConnError(
            absl::StatusCode::kDataLoss, *config_, conn->id,
            absl::StrCat("the client, running as another user, sent a "
                         "message naming ",
                         count,
                         " handles; they are not trusted and were not "
                         "touched"));
      }
      for (uint64_t i = 0; i < count; ++i) {
        CloseHandle(reinterpret_cast<HANDLE>(static_cast<uintptr_t>(
            GetLe(message.data() + kEnvelopeHeader + 8 * i, 8))));
      }
    }
    const absl::string_view data =
        message.substr(kEnvelopeHeader + 8 * static_cast<size_t>(count));
    if (data.size() > config_->max_message_size) {
      return ConnError(absl::StatusCode::kResourceExhausted, *config_, conn->id,
                       "the client sent a message over the limit");
    }
    return Dispatch(conn, data);
  }

  void OnReadDone(Win32ServerConn* conn, DWORD error, DWORD bytes) {
    conn->read_pending = false;
    if (conn->done) return;
    if (error == ERROR_SUCCESS || error == ERROR_MORE_DATA) {
      conn->last_read = IdleClock::now();
    }
    if (error != ERROR_SUCCESS && error != ERROR_MORE_DATA) {
      if (error == ERROR_OPERATION_ABORTED && shutting_down_) {
        Update(conn);  // Cancelled by the shutdown: keep draining writes.
        return;
      }
      CloseConn(conn, ReadError(conn, error));
      return;
    }
    const absl::string_view chunk(conn->read_buf.data(), bytes);
    absl::Status handled;
    if (config_->mode == PipeMode::kByte) {
      if (bytes > 0) handled = Dispatch(conn, chunk);  // 0: an empty write.
    } else if (error == ERROR_MORE_DATA) {
      conn->msg.append(chunk.data(), chunk.size());
      if (conn->msg.size() > MessageLimit(conn->msg)) {
        CloseConn(
            conn,
            ConnError(absl::StatusCode::kResourceExhausted, *config_, conn->id,
                      absl::StrCat("the client sent a message "
                                   "over the limit of ",
                                   config_->max_message_size, " bytes")));
        return;
      }
      StartRead(conn);  // The rest of the message, whatever the queue.
      return;
    } else if (conn->msg.empty()) {
      handled = DispatchMessage(conn, chunk);
    } else {
      conn->msg.append(chunk.data(), chunk.size());
      if (conn->msg.size() > MessageLimit(conn->msg)) {
        handled =
            ConnError(absl::StatusCode::kResourceExhausted, *config_, conn->id,
                      "the client sent a message over the "
                      "limit");
      } else {
        handled = DispatchMessage(conn, conn->msg);
      }
      std::string().swap(conn->msg);
    }
    if (!handled.ok()) {
      CloseConn(conn, handled);
      return;
    }
    if (conn->done) return;
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      if (QueueFullLocked(conn)) conn->paused = true;
    }
    Update(conn);
  }

  void OnWriteDone(Win32ServerConn* conn, DWORD error, DWORD bytes) {
    bool failed = false;
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      conn->write_pending = false;
      if (conn->done || conn->finished) return;
      if (error != ERROR_SUCCESS) {
        failed = true;
      } else {
        size_t sent = bytes;
        if (sent > 0) conn->last_write = IdleClock::now();
        conn->queued -= std::min(sent, conn->queued);
        const size_t left = conn->out.front().size() - conn->out_offset;
        if (sent >= left) {
          conn->out.pop_front();
          conn->out_offset = 0;
        } else {
          conn->out_offset += sent;
        }
      }
    }
    if (failed) {
      CloseConn(conn, WriteError(conn, error));
      return;
    }
    Update(conn);
  }

  void CloseConn(Win32ServerConn* conn, absl::Status status) {
    if (conn->done) return;
    conn->done = true;
    std::shared_ptr<Win32ServerConn> keep;
    auto it = conns_.find(conn->id);
    if (it != conns_.end()) {
      keep = std::move(it->second);
      conns_.erase(it);
    }
    // Channel::Close cancels the outstanding operations; their completions
    // arrive later and only drop their references.
    Finish(conn, std::move(status));
  }

  void SweepIdle() {
    next_sweep_ = SweepIdleConnections(
        &conns_, [this](Win32ServerConn* conn, absl::Status status) {
          CloseConn(conn, std::move(status));
        });
  }

  // During shutdown: close every drained connection, and all of them once
  // the grace period is over.
  void ShutdownStep() {
    CloseDrainedConnections(
        &conns_, deadline_,
        [](Win32ServerConn* conn) { return conn->queued == 0; },
        [this](Win32ServerConn* conn, absl::Status status) {
          CloseConn(conn, std::move(status));
        });
  }

  HANDLE port_ = nullptr;
  std::atomic<std::thread::id> loop_thread_{};

  // Loop thread only.
  std::unordered_map<uint64_t, std::shared_ptr<Win32ServerConn>> conns_;
  std::shared_ptr<Win32ServerConn> pending_;  // Linked through next_pending.
  size_t outstanding_ = 0;
  bool shutting_down_ = false;
  absl::Time deadline_;
  // The next idle sweep; max(): none due (no timeout, or no connections).
  IdleClock::time_point next_sweep_ = IdleClock::time_point::max();

  // Other threads' way in: new connections, attention, shutdown.
  LoopInbox<Win32ServerConn> inbox_;
};

}  // namespace
}  // namespace win32

std::unique_ptr<ServerLoop> BackendNewServerLoop(const ServerConfig* config) {
  return std::make_unique<win32::Win32ServerLoop>(config);
}

absl::string_view BackendServerLoopKind() { return "iocp"; }

std::string BackendServerMessage(absl::string_view data) {
  return win32::EscapeMessage(data);
}

size_t BackendAutomaticMaxConnections() {
  // Windows has no descriptor limit to stay under: a fixed number.
  return win32::kAutomaticMaxConnections;
}

}  // namespace internal
}  // namespace canal
