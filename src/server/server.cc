// SPDX-License-Identifier: Apache-2.0
// canal::Server: the listener, the accept thread, the loop threads and the
// parts of a connection that do not depend on the event loop. See
// server_internal.h for the structure.

#include "canal/server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "canal/listener.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/internal/framing.h"
#include "src/internal/shm_channel.h"
#include "src/server/server_internal.h"

namespace canal {
namespace internal {
namespace {

// How long the accept thread waits after a failed Accept (unless one of the
// server's connections ends first), doubling up to the maximum while the
// failures last.
constexpr absl::Duration kFirstAcceptBackoff = absl::Milliseconds(10);
constexpr absl::Duration kMaxAcceptBackoff = absl::Milliseconds(500);

// Byte mode: small Sends are appended to the last queued buffer (never the
// front one, which a write may be using) up to this size.
constexpr size_t kCoalesceLimit = 64 * 1024;

// A Server::Start error. Never throws: out of memory, the bare code.
absl::Status StartError(absl::StatusCode code, absl::string_view name,
                        absl::string_view what) noexcept {
  try {
    return MakeError(code, "Server::Start", name, what);
  } catch (...) {
    return absl::Status(code, "");
  }
}

absl::Status InvalidOption(absl::string_view name, absl::string_view what) {
  return MakeError(absl::StatusCode::kInvalidArgument, "Server::Start", name,
                   what);
}

}  // namespace

std::string ConnWhat(uint64_t id, absl::string_view what) {
  return absl::StrCat("connection ", id, ": ", what);
}

absl::Status ConnError(absl::StatusCode code, absl::string_view name,
                       uint64_t id, absl::string_view what) noexcept {
  try {
    return MakeError(code, kServerOp, name, ConnWhat(id, what));
  } catch (...) {
    return absl::Status(code, "");  // No message: nothing to allocate.
  }
}

// --- ServerConn -------------------------------------------------------------

ServerConn::ServerConn(uint64_t id_in, Channel channel_in, PeerInfo peer_in,
                       const ServerConfig* config_in, ServerLoop* loop_in)
    : id(id_in),
      peer(std::move(peer_in)),
      params(config_in->conn_params),
      config(config_in),
      loop(loop_in),
      channel(std::move(channel_in)) {}

ServerConn::~ServerConn() = default;

absl::Status ServerConn::Send(absl::string_view data, bool force) {
  if (!params->can_write) {
    return ConnError(absl::StatusCode::kFailedPrecondition, params->name, id,
                     "Send on an inbound listener (clients only write)");
  }
  const bool message = params->mode == PipeMode::kMessage;
  if (message && data.size() > params->max_message_size) {
    return ConnError(
        absl::StatusCode::kInvalidArgument, params->name, id,
        absl::StrCat("message of ", data.size(), " bytes exceeds the limit of ",
                     params->max_message_size, " bytes"));
  }
  // A message is built outside the lock: the backend's wire form (a frame,
  // or on Windows the data escaped if it could pass for a handle envelope).
  std::string wire_message;
  if (message && !params->raw_messages) {
    try {
      wire_message = BackendServerMessage(data);
    } catch (const std::bad_alloc&) {
      return ConnError(
          absl::StatusCode::kResourceExhausted, params->name, id,
          absl::StrCat("out of memory queueing ", data.size(), " bytes"));
    }
  }
  const size_t wire =
      message && !params->raw_messages ? wire_message.size() : data.size();
  std::lock_guard<std::mutex> lock(mu);
  if (finished || close_requested) {
    return ConnError(absl::StatusCode::kFailedPrecondition, params->name, id,
                     "the connection is closed");
  }
  if (!force && queued >= params->max_queued_bytes) {
    return ConnError(
        absl::StatusCode::kResourceExhausted, params->name, id,
        absl::StrCat("the outbound queue is full: it holds ", queued,
                     " bytes, max_queued_bytes is ", params->max_queued_bytes,
                     " (the client is not reading fast enough)"));
  }
  // Copying the data is the only allocation; the queue is left as it was
  // if it fails (string and deque insertions are all-or-nothing).
  try {
    if (!message) {
      if (data.empty()) return absl::OkStatus();
      if (out.size() >= 2 &&
          out.back().size() + data.size() <= kCoalesceLimit) {
        out.back().append(data.data(), data.size());
      } else {
        out.emplace_back(data);
      }
    } else if (params->raw_messages) {
      out.emplace_back(data);
    } else {
      out.push_back(std::move(wire_message));
    }
  } catch (const std::bad_alloc&) {
    return ConnError(
        absl::StatusCode::kResourceExhausted, params->name, id,
        absl::StrCat("out of memory queueing ", data.size(), " bytes"));
  }
  queued += wire;
  loop->OnQueuedLocked(this);
  return absl::OkStatus();
}

void ServerConn::RequestClose(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu);
  if (finished || close_requested) return;
  close_requested = true;
  close_status = std::move(status);
  loop->OnCloseRequestedLocked(this);
}

bool ServerConn::is_open() const {
  std::lock_guard<std::mutex> lock(mu);
  return !finished && !close_requested;
}

size_t ServerConn::queued_bytes() const {
  std::lock_guard<std::mutex> lock(mu);
  return queued;
}

// --- ServerLoop (shared parts) -----------------------------------------------

absl::Status ServerLoop::CaughtError(const ServerConn* conn,
                                     absl::string_view what) {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return ConnError(absl::StatusCode::kResourceExhausted, *config_, conn->id,
                     absl::StrCat("out of memory in ", what));
  } catch (const std::exception& e) {
    return ConnError(absl::StatusCode::kInternal, *config_, conn->id,
                     absl::StrCat(what, " threw: ", e.what()));
  } catch (...) {
    return ConnError(absl::StatusCode::kInternal, *config_, conn->id,
                     absl::StrCat(what, " threw an exception"));
  }
}

absl::Status ServerLoop::NotifyOpen(ServerConn* conn) {
  ++open_;
  if (!config_->handlers.on_open) return absl::OkStatus();
  try {
    Connection handle(conn->shared_from_this());
    config_->handlers.on_open(handle);
  } catch (...) {
    return CaughtError(conn, "on_open");
  }
  return absl::OkStatus();
}

absl::Status ServerLoop::Dispatch(ServerConn* conn, absl::string_view data) {
  const ServerHandlers& h = config_->handlers;
  if (h.on_request) {
    absl::StatusOr<std::string> reply;
    try {
      Connection handle(conn->shared_from_this());
      reply = h.on_request(handle, data);
    } catch (...) {
      return CaughtError(conn, "on_request");
    }
    if (!reply.ok()) return reply.status();
    absl::Status sent = conn->Send(*reply, /*force=*/true);
    // A reply to a connection closed meanwhile is simply dropped.
    if (!sent.ok() && sent.code() != absl::StatusCode::kFailedPrecondition) {
      return sent;
    }
  } else if (h.on_data) {
    try {
      Connection handle(conn->shared_from_this());
      h.on_data(handle, data);
    } catch (...) {
      return CaughtError(conn, "on_data");
    }
  }
  return absl::OkStatus();
}

void ServerLoop::Finish(ServerConn* conn, absl::Status status, bool notify) {
  {
    std::lock_guard<std::mutex> lock(conn->mu);
    if (conn->finished) return;
    conn->finished = true;
    if (conn->close_requested) status = conn->close_status;
    conn->out.clear();
    conn->out_offset = 0;
    conn->queued = 0;
  }
  conn->channel.Close();
  config_->slots->Release();
  if (!notify) return;
  --open_;
  if (config_->handlers.on_close) {
    // Nothing to report an exception to: the connection is gone already.
    try {
      Connection handle(conn->shared_from_this());
      config_->handlers.on_close(handle, status);
    } catch (...) {
    }
  }
}

absl::Status ServerLoop::IdleError(const ServerConn* conn) const {
  return ConnError(
      absl::StatusCode::kDeadlineExceeded, *config_, conn->id,
      absl::StrCat("closed after ", absl::FormatDuration(config_->idle_timeout),
                   " without a byte moving either way (idle_timeout)"));
}

IdleClock::duration ServerLoop::IdleTimeout() const {
  // At most a century, so that adding it to a time point cannot overflow.
  return std::chrono::duration_cast<IdleClock::duration>(
      absl::ToChronoNanoseconds(
          std::min(config_->idle_timeout, absl::Hours(24 * 365 * 100))));
}

IdleClock::duration ServerLoop::IdleSlack() const {
  return std::max<IdleClock::duration>(
      std::chrono::milliseconds(1),
      std::min<IdleClock::duration>(IdleTimeout() / 8,
                                    std::chrono::seconds(1)));
}

// --- ConnectionSlots ------------------------------------------------------

bool ConnectionSlots::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return stopped_ || used_ < limit_; });
  if (stopped_) return false;
  ++used_;
  return true;
}

void ConnectionSlots::Release() {
  std::lock_guard<std::mutex> lock(mu_);
  if (used_ > 0) --used_;
  ++released_;
  cv_.notify_all();
}

bool ConnectionSlots::WaitForRelease(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t seen = released_;
  cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
               [&] { return stopped_ || released_ != seen; });
  return !stopped_;
}

void ConnectionSlots::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  cv_.notify_all();
}

bool ServerLoop::QueueFullLocked(const ServerConn* conn) {
  return conn->queued >= conn->params->max_queued_bytes;
}

bool ServerLoop::QueueDrainedLocked(const ServerConn* conn) {
  return conn->queued < (conn->params->max_queued_bytes + 1) / 2;
}

// --- ServerCore
// ---------------------------------------------------------------

class ServerCore {
 public:
  ServerCore(ServerConfig config, Listener listener, size_t max_connections)
      : config_(std::move(config)),
        listener_(std::move(listener)),
        slots_(max_connections) {
    config_.slots = &slots_;
  }

  ~ServerCore() { Shutdown(absl::ZeroDuration()); }

  // Creates the loops and starts every thread. On failure the threads
  // already started are stopped by the destructor.
  absl::Status Start(int threads) {
    try {
      for (int i = 0; i < threads; ++i) {
        std::unique_ptr<ServerLoop> loop = config_.channel_loop
                                               ? NewChannelLoop(&config_)
                                               : BackendNewServerLoop(&config_);
        absl::Status init = loop->Init();
        if (!init.ok()) return init;
        loops_.push_back(std::move(loop));
      }
      loop_threads_.reserve(loops_.size());
      for (auto& loop : loops_) {
        ServerLoop* raw = loop.get();
        loop_threads_.emplace_back([raw] { raw->Run(); });
      }
      accept_thread_ = std::thread([this] { AcceptLoop(); });
    } catch (const std::system_error& e) {
      return StartError(absl::StatusCode::kResourceExhausted, config_.name,
                        absl::StrCat("cannot start a thread (", e.what(), ")"));
    } catch (const std::bad_alloc&) {
      return StartError(absl::StatusCode::kResourceExhausted, config_.name,
                        "out of memory");
    }
    return absl::OkStatus();
  }

  void Shutdown(absl::Duration grace) {
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      first = !stopping_;
      stopping_ = true;
    }
    // From the listener's authorize callback, which runs on the accept
    // thread: that thread cannot be waited for; it drops whatever it
    // accepts from now on and ends by itself.
    const bool on_accept_thread =
        accept_thread_id_.load() == std::this_thread::get_id();
    if (first) {
      listener_.Close();  // Wakes Accept with Cancelled.
      slots_.Stop();      // Wakes a wait for a free slot or a back-off.
      if (!on_accept_thread) JoinAcceptThread();
      const absl::Time deadline = absl::Now() + grace;
      for (auto& loop : loops_) loop->BeginShutdown(deadline);
    }
    if (on_accept_thread) return;  // Only start.
    for (auto& loop : loops_) {
      if (loop->OnLoopThread()) return;  // From a handler: only start.
    }
    JoinAcceptThread();  // If the first call came from the accept thread.
    std::lock_guard<std::mutex> join_lock(join_mu_);
    for (std::thread& t : loop_threads_) {
      if (t.joinable()) t.join();
    }
  }

  size_t connection_count() const {
    size_t n = 0;
    for (const auto& loop : loops_) n += loop->open_count();
    return n;
  }

  const std::string& name() const { return config_.name; }

 private:
  void JoinAcceptThread() {
    std::lock_guard<std::mutex> join_lock(join_mu_);
    if (accept_thread_.joinable()) accept_thread_.join();
  }

  // Accepts while a connection slot is free. At the cap it waits for a
  // connection to end, leaving new clients waiting as for busy instances.
  void AcceptLoop() {
    accept_thread_id_.store(std::this_thread::get_id());
    size_t next_loop = 0;
    uint64_t next_id = 1;
    absl::Duration backoff = kFirstAcceptBackoff;
    while (slots_.Acquire()) {
      bool adopted = false;
      bool stop = false;
      // Nothing may leave this thread: an exception (from the listener's
      // authorize callback, or out of memory) counts as a failed accept.
      try {
        absl::StatusOr<Channel> channel = listener_.Accept();
        if (!channel.ok()) {
          std::lock_guard<std::mutex> lock(mu_);
          stop = stopping_ ||
                 channel.status().code() == absl::StatusCode::kCancelled;
        } else if (Stopping()) {
          stop = true;  // The loops may be gone; the client sees the end.
        } else {
          absl::StatusOr<PeerInfo> peer = channel->Peer();
          // If this throws, the channel is closed and the client sees the
          // end of the stream.
          loops_[next_loop]->Adopt(next_id++, *std::move(channel),
                                   peer.ok() ? *std::move(peer) : PeerInfo());
          next_loop = (next_loop + 1) % loops_.size();
          adopted = true;
        }
      } catch (...) {
      }
      if (adopted) {
        backoff = kFirstAcceptBackoff;
        continue;
      }
      slots_.Release();
      if (stop) return;
      // A failure: out of descriptors (other parts of the process use
      // them, or the cap is above what the limit allows), out of memory, a
      // peer that left while being checked. Never spin: wait until one of
      // our connections ends (which frees a descriptor) or the back-off
      // passes, doubling it while the failures last.
      if (!slots_.WaitForRelease(backoff)) return;
      backoff = std::min(backoff * 2, kMaxAcceptBackoff);
    }
  }

  ServerConfig config_;
  Listener listener_;
  ConnectionSlots slots_;
  std::vector<std::unique_ptr<ServerLoop>> loops_;
  std::vector<std::thread> loop_threads_;
  std::thread accept_thread_;
  std::atomic<std::thread::id> accept_thread_id_{};

  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  std::mutex mu_;
  bool stopping_ = false;  // Guarded by mu_.
  std::mutex join_mu_;
};

}  // namespace internal

// --- Connection
// ----------------------------------------------------------------

Connection::Connection() = default;
Connection::Connection(std::shared_ptr<internal::ServerConn> conn)
    : conn_(std::move(conn)) {}

uint64_t Connection::id() const { return conn_ ? conn_->id : 0; }

bool Connection::is_open() const { return conn_ && conn_->is_open(); }

const PeerInfo& Connection::Peer() const {
  static const PeerInfo* const kEmpty = new PeerInfo();
  return conn_ ? conn_->peer : *kEmpty;
}

PipeMode Connection::mode() const {
  return conn_ ? conn_->params->mode : PipeMode::kByte;
}

absl::Status Connection::Send(absl::string_view data) {
  if (!conn_) {
    return absl::FailedPreconditionError(
        "canal: Connection::Send: the handle refers to no connection");
  }
  return conn_->Send(data, /*force=*/false);
}

void Connection::Close() {
  if (!conn_) return;
  conn_->RequestClose(internal::ConnError(absl::StatusCode::kCancelled,
                                          conn_->params->name, conn_->id,
                                          "closed by Connection::Close"));
}

size_t Connection::queued_bytes() const {
  return conn_ ? conn_->queued_bytes() : 0;
}

// --- Server
// ---------------------------------------------------------------------

Server::Server(std::unique_ptr<internal::ServerCore> core)
    : core_(std::move(core)) {}

Server::~Server() = default;  // ~ServerCore shuts down with no grace.

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    absl::string_view name, const ServerOptions& options,
    ServerHandlers handlers) {
  // Threads are created (and can fail) inside ServerCore::Start, which
  // turns that into a status; this is for allocations anywhere else.
  auto start = [&]() -> absl::StatusOr<std::unique_ptr<Server>> {
    if (options.threads < 1) {
      return internal::InvalidOption(name, "threads must be at least 1");
    }
    if (options.max_queued_bytes == 0 || options.read_chunk_size == 0) {
      return internal::InvalidOption(
          name, "max_queued_bytes and read_chunk_size must be at least 1");
    }
    if (options.max_connections < 0) {
      return internal::InvalidOption(
          name, "max_connections must be at least 1, or 0 for the default");
    }
    if (options.idle_timeout <= absl::ZeroDuration()) {
      return internal::InvalidOption(
          name,
          "idle_timeout must be positive (absl::InfiniteDuration() for none)");
    }
    if (handlers.on_request && handlers.on_data) {
      return internal::InvalidOption(name,
                                     "set on_data or on_request, not both");
    }
    if (handlers.on_request && options.listener.mode != PipeMode::kMessage) {
      return internal::InvalidOption(
          name, "on_request needs a message-mode listener");
    }
    absl::StatusOr<Listener> listener =
        Listener::Create(name, options.listener);
    if (!listener.ok()) return listener.status();

    internal::ServerConfig config;
    config.name = std::string(name);
    config.mode = options.listener.mode;
    config.can_read = options.listener.access != PipeAccess::kOutbound;
    config.can_write = options.listener.access != PipeAccess::kInbound;
    config.max_message_size = options.listener.max_message_size;
    config.max_queued_bytes = options.max_queued_bytes;
    config.read_chunk_size = options.read_chunk_size;
    config.idle_timeout = options.idle_timeout;
    // The backends' loops do their own I/O on the pipe's handle, which
    // cannot follow data moved into shared memory: such a listener's
    // connections are served through the Channel API.
    config.channel_loop = internal::OffersSharedMemory(options.listener);
    config.handlers = std::move(handlers);
    auto params = std::make_shared<internal::ConnParams>();
    params->name = config.name;
    params->mode = config.mode;
    params->can_write = config.can_write;
    params->max_message_size = config.max_message_size;
    params->max_queued_bytes = config.max_queued_bytes;
    params->raw_messages = config.channel_loop;
    config.conn_params = std::move(params);

    const size_t max_connections =
        options.max_connections > 0
            ? static_cast<size_t>(options.max_connections)
            : internal::BackendAutomaticMaxConnections();
    auto core = std::make_unique<internal::ServerCore>(
        std::move(config), *std::move(listener), max_connections);
    absl::Status started = core->Start(options.threads);
    if (!started.ok()) return started;
    return std::unique_ptr<Server>(new Server(std::move(core)));
  };
  try {
    return start();
  } catch (const std::bad_alloc&) {
    return internal::StartError(absl::StatusCode::kResourceExhausted, name,
                                "out of memory");
  } catch (const std::exception& e) {
    return internal::StartError(absl::StatusCode::kInternal, name, e.what());
  }
}

void Server::Shutdown(absl::Duration grace) { core_->Shutdown(grace); }

absl::string_view Server::name() const { return core_->name(); }

absl::string_view Server::LoopKind() {
  return internal::BackendServerLoopKind();
}

size_t Server::connection_count() const { return core_->connection_count(); }

}  // namespace canal
