// SPDX-License-Identifier: Apache-2.0
// The parts of canal::Server shared by its event loops.
//
//  - ServerCore (server.cc): the listener, the accept thread, the loops, and
//    Shutdown.
//  - ServerConn: one client. Its outbound queue and close request are
//    guarded by `mu` and touched by any thread (Connection::Send/Close); the
//    rest belongs to the loop thread that owns it.
//  - ServerLoop: one loop thread. Each backend implements it in its
//    server_loop.cc (src/posix/: readiness, with epoll or poll() chosen at
//    run time, see poller.h; src/win32/: completions) and makes it through
//    BackendNewServerLoop (src/internal/backend.h).
//    A server whose listener offers shared memory (ListenerOptions::
//    transport) uses the channel loop instead (channel_loop.cc, made by
//    NewChannelLoop), on every platform: its connections' data moves out of
//    the pipe, so it serves them through the Channel API, with a reader
//    and a writer thread per connection.
//  - LoopInbox: how other threads reach a loop thread, shared by all the
//    loops.
//
// Exceptions. None may leave a server thread or a public call: allocation
// failures (std::bad_alloc) become ResourceExhausted (a failed Send returns
// it, a loop closes the connection it was working for with it), exceptions
// thrown by handlers close their connection with Internal, and thread
// creation failures make Start return ResourceExhausted. Paths that must
// not fail at all once data is queued (waking the loop for a connection)
// use intrusive lists instead of allocating.
//
// The backends' loops never call the Channel's blocking Read/Write: they
// do their own non-blocking I/O on `channel.native_handle()` and keep the
// Channel only as the owner of the descriptor/HANDLE, closing it with
// Channel::Close(). The channel loop does all of its I/O through the
// Channel.
// std::mutex (not absl::Mutex) keeps ThreadSanitizer runs meaningful with
// an uninstrumented Abseil.

#ifndef CANAL_SRC_SERVER_SERVER_INTERNAL_H_
#define CANAL_SRC_SERVER_SERVER_INTERNAL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/channel.h"
#include "canal/server.h"
#include "canal/types.h"

namespace canal {
namespace internal {

// The clock of idle timeouts (monotonic, unlike absl::Now).
using IdleClock = std::chrono::steady_clock;

// The connection cap (ServerOptions::max_connections). The accept thread
// takes a slot before each Accept, waiting while none is free; the loop
// that serves a connection gives its slot back when the connection ends.
class ConnectionSlots {
 public:
  explicit ConnectionSlots(size_t limit) : limit_(limit) {}

  // Waits for a free slot and takes it. False (nothing taken) once Stop
  // was called.
  bool Acquire();
  void Release();
  // Waits until a slot is released, `timeout` passes or Stop is called.
  // False once Stop was called.
  bool WaitForRelease(absl::Duration timeout);
  void Stop();

 private:
  const size_t limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t used_ = 0;        // Guarded by mu_.
  uint64_t released_ = 0;  // Guarded by mu_: releases so far.
  bool stopped_ = false;   // Guarded by mu_.
};

// What a connection needs to answer its own methods. Shared by the server
// and every ServerConn, so that a Connection handle kept after its Server is
// destroyed still answers (mode(), Send's error) without touching the
// server's memory.
struct ConnParams {
  std::string name;
  PipeMode mode = PipeMode::kByte;
  bool can_write = true;
  size_t max_message_size = 0;
  size_t max_queued_bytes = 0;
  // Message mode: queue each message as its data, which the channel loop
  // writes with Channel::WriteMessage, instead of the backend's wire form
  // (BackendServerMessage).
  bool raw_messages = false;
};

// Everything a loop needs to know about the server, fixed at Start.
struct ServerConfig {
  std::string name;
  PipeMode mode = PipeMode::kByte;
  bool can_read = true;   // The listener side may read (not kOutbound).
  bool can_write = true;  // The listener side may write (not kInbound).
  size_t max_message_size = 0;
  size_t max_queued_bytes = 0;
  size_t read_chunk_size = 0;
  // InfiniteDuration(): none.
  absl::Duration idle_timeout = absl::InfiniteDuration();
  // Serve with the channel loop (NewChannelLoop), not the backend's.
  bool channel_loop = false;
  ServerHandlers handlers;
  // Owned by the server; every connection holds one slot until it ends.
  ConnectionSlots* slots = nullptr;
  // The fields above that connections need, for them to share.
  std::shared_ptr<const ConnParams> conn_params;
};

// The status for an error on connection `id` of the server `name`. Never
// throws: out of memory, it returns the bare code.
absl::Status ConnError(absl::StatusCode code, absl::string_view name,
                       uint64_t id, absl::string_view what) noexcept;
inline absl::Status ConnError(absl::StatusCode code, const ServerConfig& config,
                              uint64_t id, absl::string_view what) noexcept {
  return ConnError(code, config.name, id, what);
}

class ServerLoop;

class ServerConn : public std::enable_shared_from_this<ServerConn> {
 public:
  ServerConn(uint64_t id, Channel channel, PeerInfo peer,
             const ServerConfig* config, ServerLoop* loop);
  virtual ~ServerConn();

  // Connection::Send. `force` skips the queue bound (on_request replies).
  absl::Status Send(absl::string_view data, bool force);
  // Connection::Close and errors found by other threads: asks the loop to
  // close the connection with `status` (the first request wins).
  void RequestClose(absl::Status status);
  bool is_open() const;
  size_t queued_bytes() const;

  const uint64_t id;
  const PeerInfo peer;
  // Outlives the server (see ConnParams).
  const std::shared_ptr<const ConnParams> params;
  // Both valid only while the connection is not finished: the loop finishes
  // every connection before the server frees them, and every use of them
  // from outside the loop thread checks `finished` under `mu` first.
  const ServerConfig* const config;
  ServerLoop* const loop;

  // Owned by the loop thread.
  Channel channel;

  mutable std::mutex mu;
  // Guarded by mu. `finished`: the loop has closed it; no loop access after.
  bool finished = false;
  bool close_requested = false;
  absl::Status close_status;
  // Outbound queue: whole buffers (POSIX message mode: frame header and
  // payload in one), the first `out_offset` bytes of the front one sent.
  std::deque<std::string> out;
  size_t out_offset = 0;
  size_t queued = 0;  // Unsent bytes, all buffers.
  // Set while the loop has stopped reading because of a full queue.
  bool paused = false;
  // When bytes last left the queue for the system (idle timeout).
  IdleClock::time_point last_write = IdleClock::now();
};

// One loop thread and the connections it owns.
class ServerLoop {
 public:
  explicit ServerLoop(const ServerConfig* config) : config_(config) {}
  virtual ~ServerLoop() = default;

  // Creates the event queue. Called once, before Run.
  virtual absl::Status Init() = 0;
  // The thread body: serves until a shutdown finished every connection.
  virtual void Run() = 0;
  // From the accept thread: serve `channel` from now on.
  virtual void Adopt(uint64_t id, Channel channel, PeerInfo peer) = 0;
  // From any thread: stop reading, drain queues until `deadline`, then close
  // everything with Cancelled and make Run return.
  virtual void BeginShutdown(absl::Time deadline) = 0;
  // From ServerConn with `conn->mu` held: data was queued (start writing),
  // or a close was requested.
  virtual void OnQueuedLocked(ServerConn* conn) = 0;
  virtual void OnCloseRequestedLocked(ServerConn* conn) = 0;
  // Whether the calling thread is this loop's thread.
  virtual bool OnLoopThread() const = 0;

  size_t open_count() const { return open_.load(); }

 protected:
  // Runs on_open. Call once the connection is registered. Returns a non-OK
  // status if the handler threw (the caller then closes the connection).
  absl::Status NotifyOpen(ServerConn* conn);
  // Hands one whole message (message mode) or chunk (byte mode) to the
  // handlers. Returns a non-OK status if on_request failed, its reply could
  // not be queued, or a handler threw (the caller then closes the connection
  // with it).
  absl::Status Dispatch(ServerConn* conn, absl::string_view data);
  // Marks the connection finished (no more Sends), closes its Channel and
  // runs on_close with the close request's status if one was made, else
  // `status`. `notify`: whether on_open ran (else on_close does not).
  void Finish(ServerConn* conn, absl::Status status, bool notify = true);
  // The status for an exception caught while serving `conn`: `what` says
  // what was running. Call only from a catch block.
  absl::Status CaughtError(const ServerConn* conn, absl::string_view what);
  // Whether the connection's queue is at or over the bound (pause reading)
  // and whether it has drained below half of it (resume).
  static bool QueueFullLocked(const ServerConn* conn);
  static bool QueueDrainedLocked(const ServerConn* conn);
  // Idle timeout. Whether there is one, the status a connection idle since
  // `last_activity` is closed with, and how late a check may come: an
  // eighth of the timeout, at most a second (so that a loop with many
  // connections checks them all at most that often).
  bool has_idle_timeout() const {
    return config_->idle_timeout != absl::InfiniteDuration();
  }
  absl::Status IdleError(const ServerConn* conn) const;
  IdleClock::duration IdleSlack() const;
  IdleClock::duration IdleTimeout() const;

  // The two steps every loop takes over all of its connections. `conns`
  // maps ids to shared_ptrs of the loop's connection type (with `mu`,
  // `last_read` and `last_write`); `close(conn, status)` closes one and may
  // erase its entry. Neither allocates.
  //
  // Closes every connection on which nothing moved for the idle timeout,
  // and returns when the next sweep is due: when the next connection could
  // be, but not sooner than IdleSlack from now (so that a busy loop with
  // many connections does not sweep them all over and over); max() if none
  // could be.
  template <typename Conns, typename Close>
  IdleClock::time_point SweepIdleConnections(Conns* conns, Close close) {
    const IdleClock::time_point now = IdleClock::now();
    const IdleClock::duration timeout = IdleTimeout();
    IdleClock::time_point earliest = IdleClock::time_point::max();
    for (auto it = conns->begin(); it != conns->end();) {
      auto conn = (it++)->second;  // A reference while `close` erases it.
      IdleClock::time_point last;
      {
        std::lock_guard<std::mutex> lock(conn->mu);
        last = std::max(conn->last_read, conn->last_write);
      }
      if (now - last >= timeout) {
        close(conn.get(), IdleError(conn.get()));
      } else {
        earliest = std::min(earliest, last + timeout);
      }
    }
    return earliest == IdleClock::time_point::max()
               ? earliest
               : std::max(earliest, now + IdleSlack());
  }
  // During a shutdown: closes with Cancelled every connection for which
  // `drained(conn)` (called with `conn->mu` held) is true, and all of them
  // once `deadline` has passed.
  template <typename Conns, typename Drained, typename Close>
  void CloseDrainedConnections(Conns* conns, absl::Time deadline,
                               Drained drained, Close close) {
    const bool expired = absl::Now() >= deadline;
    for (auto it = conns->begin(); it != conns->end();) {
      auto conn = (it++)->second;  // A reference while `close` erases it.
      bool done;
      {
        std::lock_guard<std::mutex> lock(conn->mu);
        done = expired || drained(conn.get());
      }
      if (done) {
        close(conn.get(), ConnError(absl::StatusCode::kCancelled, *config_,
                                    conn->id, "the server shut down"));
      }
    }
  }

  const ServerConfig* const config_;
  std::atomic<size_t> open_{0};
};

// How other threads reach a loop thread: the connections handed to it, the
// connections that want its attention (data queued, a close requested) and
// the shutdown request. The loop thread takes everything at once with
// Drain. `Conn` (a ServerConn) carries a `Link inbox;` member, so that
// asking for attention never allocates (Send and Close must not fail once
// the data is queued).
//
// `wake` (a callable, one per posting call) wakes the loop thread, which
// then calls Drain. It runs with the inbox's mutex held (so it must not
// block or take the inbox again), and only once until the next Drain.
// The mutex comes after any ServerConn::mu.
template <typename Conn>
class LoopInbox {
 public:
  // Conn's inbox membership. Guarded by the inbox's mutex.
  struct Link {
    bool queued = false;
    std::shared_ptr<Conn> next;
  };

  LoopInbox() = default;
  LoopInbox(const LoopInbox&) = delete;
  LoopInbox& operator=(const LoopInbox&) = delete;

  ~LoopInbox() {
    // Unlink the attention list one at a time, so that a Connection handle
    // kept by the user does not keep other connections alive through it,
    // and a long list does not recurse in the destructors.
    while (attention_ != nullptr) {
      std::shared_ptr<Conn> conn = std::move(attention_);
      attention_ = std::move(conn->inbox.next);
    }
  }

  // From the accept thread: hands `conn` to the loop. Throws std::bad_alloc
  // if the list cannot grow (`conn` is then dropped).
  template <typename Wake>
  void AddNew(std::shared_ptr<Conn> conn, Wake wake) {
    std::lock_guard<std::mutex> lock(mu_);
    fresh_.push_back(std::move(conn));
    WakeLocked(wake);
  }

  // From a thread other than the loop's: asks the loop to look at `conn`.
  // Never allocates.
  template <typename Wake>
  void AddAttention(Conn* conn, Wake wake) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!conn->inbox.queued) {
      conn->inbox.queued = true;
      conn->inbox.next = std::move(attention_);
      attention_ = std::static_pointer_cast<Conn>(conn->shared_from_this());
    }
    WakeLocked(wake);
  }

  // From any thread: asks the loop to shut down by `deadline`.
  template <typename Wake>
  void RequestShutdown(absl::Time deadline, Wake wake) {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    deadline_ = deadline;
    WakeLocked(wake);
  }

  // On the loop thread, once woken: passes each new connection to
  // `on_new(std::shared_ptr<Conn>)`, then each connection that asked for
  // attention to `on_attention(Conn*)` (it may ask again meanwhile).
  // Returns the shutdown deadline once a shutdown was requested (on every
  // later call too), else nullopt.
  template <typename OnNew, typename OnAttention>
  std::optional<absl::Time> Drain(OnNew&& on_new, OnAttention&& on_attention) {
    std::vector<std::shared_ptr<Conn>> fresh;
    std::shared_ptr<Conn> attention;
    bool shutdown = false;
    absl::Time deadline;
    {
      std::lock_guard<std::mutex> lock(mu_);
      wake_pending_ = false;
      fresh.swap(fresh_);
      attention = std::move(attention_);
      shutdown = shutdown_;
      deadline = deadline_;
    }
    for (auto& conn : fresh) on_new(std::move(conn));
    while (attention != nullptr) {
      std::shared_ptr<Conn> conn = std::move(attention);
      {
        std::lock_guard<std::mutex> lock(mu_);
        attention = std::move(conn->inbox.next);
        conn->inbox.queued = false;
      }
      on_attention(conn.get());
    }
    if (!shutdown) return std::nullopt;
    return deadline;
  }

 private:
  template <typename Wake>
  void WakeLocked(const Wake& wake) {
    if (wake_pending_) return;
    wake_pending_ = true;
    wake();
  }

  std::mutex mu_;
  bool wake_pending_ = false;                 // Guarded by mu_.
  std::vector<std::shared_ptr<Conn>> fresh_;  // Guarded by mu_.
  // Guarded by mu_; linked through Conn::inbox.next.
  std::shared_ptr<Conn> attention_;
  bool shutdown_ = false;  // Guarded by mu_.
  absl::Time deadline_;    // Guarded by mu_.
};

// The platform-free loop that serves its connections through the Channel
// API (channel_loop.cc), for listeners that offer shared memory.
std::unique_ptr<ServerLoop> NewChannelLoop(const ServerConfig* config);

// The operation named in the errors of a running server's connections.
inline constexpr absl::string_view kServerOp = "Server";

// "connection <id>: <what>": what an error on connection `id` says after
// the operation and the server's name. The backends pass it to their error
// functions (src/posix/error.h, src/win32/error.h), which add the native
// error.
std::string ConnWhat(uint64_t id, absl::string_view what);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_SERVER_SERVER_INTERNAL_H_
