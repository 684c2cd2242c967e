// SPDX-License-Identifier: Apache-2.0
// The channel loop: a ServerLoop that serves its connections only through
// the public Channel API, for the listeners whose channels move their data
// into shared memory (ListenerOptions::transport), where the backends'
// loops, which do their own non-blocking I/O on the pipe, cannot follow.
// Platform-free.
//
// Threads. The loop thread (Run) owns the connections and runs every
// handler, one after another, as the other loops do. Each connection adds
// two threads that block in the channel: a reader, which reads one message
// (message mode) or one chunk of up to read_chunk_size (byte mode) and
// hands it to the loop thread, and a writer, which drains the outbound
// queue with Channel::WriteMessage / Channel::Write. Closing the channel
// (Finish) wakes both with Cancelled; the loop then joins them.
//
// Flow control. The reader hands over one item at a time and reads the
// next only once the loop has taken it, and the loop takes none while the
// connection is paused (its queue full) or the server shuts down: a client
// then costs at most one read item beyond the queue, as on the other loops.
//
// Progress, for the idle timeout: the reader counts each part it reads
// (message mode reads each message in parts of read_chunk_size), the
// writer each piece it writes (byte mode writes at most kWritePiece at a
// time; a message is one write, as on Windows).
//
// End of stream. As on the other loops the client's end of stream ends the
// requests: what was read is answered, the queue is flushed and the
// connection closes with OutOfRange (DataLoss inside a message). Through
// the Channel API a client cannot half-close, and closing a shared-memory
// channel ends both directions, so what is queued for a client that closed
// cannot reach it: the writer fails and the status says how many bytes
// were not delivered.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/channel.h"
#include "src/server/server_internal.h"

namespace canal {
namespace internal {
namespace {

// Byte mode: the most one Write hands to the channel, so that the idle
// timeout sees a slow reader's progress and queued_bytes() goes down as it
// reads.
constexpr size_t kWritePiece = 64 * 1024;

class ChannelConn final : public ServerConn {
 public:
  using ServerConn::ServerConn;

  // In the loop's inbox of connections to look at.
  LoopInbox<ChannelConn>::Link inbox;

  // Guarded by mu.
  // What the reader read and the loop has not taken yet.
  bool has_inbound = false;
  std::string inbound;
  // The reader ended: at the client's end of stream (`input_ended`, with
  // OutOfRange or DataLoss in `input_status`), or on an error that closes
  // the connection at once (`input_failed`).
  bool input_ended = false;
  bool input_failed = false;
  absl::Status input_status;
  // The writer stopped on an error.
  bool output_failed = false;
  absl::Status output_status;
  // The writer holds a buffer taken from `out` (queued still counts it).
  bool in_flight = false;
  // The loop wants to hear when the queue is empty (draining after the end
  // of stream, or for a shutdown).
  bool want_drained = false;
  // The loop closes the connection: both threads end.
  bool stop = false;
  // When bytes (or the end) last came from the client.
  IdleClock::time_point last_read = IdleClock::now();
  std::condition_variable reader_cv;  // has_inbound went false, or stop.
  std::condition_variable writer_cv;  // out got a buffer, or stop.

  // Loop thread only.
  bool done = false;
  std::thread reader;
  std::thread writer;
};

class ChannelLoop final : public ServerLoop {
 public:
  explicit ChannelLoop(const ServerConfig* config) : ServerLoop(config) {}

  absl::Status Init() override { return absl::OkStatus(); }

  bool OnLoopThread() const override {
    return loop_thread_.load() == std::this_thread::get_id();
  }

  void Adopt(uint64_t id, Channel channel, PeerInfo peer) override {
    inbox_.AddNew(std::make_shared<ChannelConn>(id, std::move(channel),
                                                std::move(peer), config_, this),
                  [this] { Wake(); });
  }

  void BeginShutdown(absl::Time deadline) override {
    inbox_.RequestShutdown(deadline, [this] { Wake(); });
  }

  void OnQueuedLocked(ServerConn* conn) override {
    static_cast<ChannelConn*>(conn)->writer_cv.notify_one();
  }

  void OnCloseRequestedLocked(ServerConn* conn) override {
    Attention(static_cast<ChannelConn*>(conn));
  }

  void Run() override {
    loop_thread_.store(std::this_thread::get_id());
    while (true) {
      if (shutting_down_ && conns_.empty()) break;
      WaitForWake();
      DrainInbox();
      if (shutting_down_) ShutdownStep();
      if (IdleClock::now() >= next_sweep_) {
        // Out of memory for an idle connection's status: the next turn
        // tries again.
        try {
          SweepIdle();
        } catch (...) {
        }
      }
    }
    loop_thread_.store(std::thread::id());
  }

 private:
  // Wakes the loop thread (called by inbox_, at most once a Drain).
  void Wake() {
    std::lock_guard<std::mutex> lock(wake_mu_);
    woken_ = true;
    wake_cv_.notify_one();
  }

  // Sleeps until woken, the next idle sweep or the shutdown deadline.
  void WaitForWake() {
    IdleClock::time_point until = next_sweep_;
    if (shutting_down_) {
      const absl::Duration left =
          std::max(deadline_ - absl::Now(), absl::ZeroDuration());
      until = std::min(
          until,
          IdleClock::now() +
              std::chrono::duration_cast<IdleClock::duration>(
                  absl::ToChronoNanoseconds(std::min(
                      left + absl::Microseconds(999), absl::Hours(24 * 365)))));
    }
    std::unique_lock<std::mutex> lock(wake_mu_);
    if (until == IdleClock::time_point::max()) {
      wake_cv_.wait(lock, [this] { return woken_; });
    } else {
      wake_cv_.wait_until(lock, until, [this] { return woken_; });
    }
    woken_ = false;
  }

  // Asks the loop thread to look at `conn`. Never allocates.
  void Attention(ChannelConn* conn) {
    inbox_.AddAttention(conn, [this] { Wake(); });
  }

  void DrainInbox() {
    const std::optional<absl::Time> shutdown = inbox_.Drain(
        [this](std::shared_ptr<ChannelConn> conn) { AddConn(std::move(conn)); },
        [this](ChannelConn* conn) { UpdateGuarded(conn); });
    if (shutdown.has_value() && !shutting_down_) {
      shutting_down_ = true;
      deadline_ = *shutdown;
    }
  }

  void AddConn(std::shared_ptr<ChannelConn> conn) {
    ChannelConn* raw = conn.get();
    {
      std::lock_guard<std::mutex> lock(raw->mu);
      raw->last_read = IdleClock::now();
      raw->last_write = raw->last_read;
    }
    if (has_idle_timeout() && next_sweep_ == IdleClock::time_point::max()) {
      next_sweep_ = IdleClock::now() + IdleTimeout();
    }
    try {
      conns_.emplace(raw->id, conn);
    } catch (...) {
      // Not served at all: no on_open, so no on_close either.
      Finish(raw, CaughtError(raw, "accepting the connection"),
             /*notify=*/false);
      return;
    }
    absl::Status opened = NotifyOpen(raw);
    if (opened.ok() && !raw->channel.is_open()) {
      opened = ConnError(absl::StatusCode::kUnavailable, *config_, raw->id,
                         "the channel was already closed");
    }
    if (opened.ok()) opened = StartThreads(raw);
    if (!opened.ok()) {
      CloseConn(raw, opened);
      return;
    }
    UpdateGuarded(raw);
  }

  // Starts the connection's reader and writer. ResourceExhausted if the
  // system refuses a thread (or memory runs out); the caller then closes
  // the connection, which stops a thread already started.
  absl::Status StartThreads(ChannelConn* conn) {
    try {
      if (config_->can_read) {
        conn->reader = std::thread([this, conn] { ReaderGuarded(conn); });
      }
      if (config_->can_write) {
        conn->writer = std::thread([this, conn] { WriterGuarded(conn); });
      }
    } catch (const std::system_error& e) {
      return ConnError(
          absl::StatusCode::kResourceExhausted, *config_, conn->id,
          absl::StrCat("cannot start a thread for the connection (", e.what(),
                       ")"));
    } catch (...) {
      return CaughtError(conn, "starting the connection's threads");
    }
    return absl::OkStatus();
  }

  // --- The reader and the writer (their own threads) ----------------------

  void ReaderGuarded(ChannelConn* conn) {
    absl::Status failed;
    try {
      Reader(conn);
      return;
    } catch (...) {
      failed = CaughtError(conn, "reading from the client");
    }
    std::lock_guard<std::mutex> lock(conn->mu);
    if (conn->stop) return;
    conn->input_failed = true;
    conn->input_status = std::move(failed);
    Attention(conn);
  }

  void Reader(ChannelConn* conn) {
    const bool message_mode = config_->mode == PipeMode::kMessage;
    const size_t chunk = config_->read_chunk_size;
    std::string buffer;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(conn->mu);
        conn->reader_cv.wait(
            lock, [conn] { return conn->stop || !conn->has_inbound; });
        if (conn->stop) return;
      }
      // Message mode reads the message in parts (see the top of the file);
      // byte mode reads one chunk.
      buffer.clear();
      absl::Status status;
      bool own_status = false;  // `status` names the server already.
      bool inside = false;      // Part of a message was read.
      while (true) {
        const size_t before = buffer.size();
        buffer.resize(before + chunk);
        absl::StatusOr<ReadResult> got =
            conn->channel.Read(absl::MakeSpan(&buffer[before], chunk));
        if (!got.ok()) {
          buffer.resize(before);
          status = got.status();
          break;
        }
        buffer.resize(before + got->size);
        {
          std::lock_guard<std::mutex> lock(conn->mu);
          if (conn->stop) return;
          conn->last_read = IdleClock::now();
        }
        if (message_mode && buffer.size() > config_->max_message_size) {
          status = ConnError(
              absl::StatusCode::kResourceExhausted, *config_, conn->id,
              absl::StrCat("the client sent a message over the limit of ",
                           config_->max_message_size, " bytes"));
          own_status = true;
          break;
        }
        if (!message_mode || !got->more) break;
        inside = true;
      }
      std::lock_guard<std::mutex> lock(conn->mu);
      if (conn->stop) return;
      if (status.ok()) {
        conn->inbound.swap(buffer);
        conn->has_inbound = true;
        Attention(conn);
        continue;
      }
      conn->last_read = IdleClock::now();
      if (absl::IsOutOfRange(status)) {
        conn->input_ended = true;
        conn->input_status =
            inside ? ConnError(absl::StatusCode::kDataLoss, *config_, conn->id,
                               "stream ended inside a message")
                   : ConnError(absl::StatusCode::kOutOfRange, *config_,
                               conn->id, "the client closed the channel");
      } else {
        // Cancelled only comes from our own Close (then `stop` is set).
        conn->input_failed = true;
        conn->input_status =
            own_status
                ? std::move(status)
                : ConnError(status.code(), *config_, conn->id,
                            absl::StrCat("read failed: ", status.message()));
      }
      Attention(conn);
      return;
    }
  }

  void WriterGuarded(ChannelConn* conn) {
    absl::Status failed;
    try {
      Writer(conn);
      return;
    } catch (...) {
      failed = CaughtError(conn, "writing to the client");
    }
    std::lock_guard<std::mutex> lock(conn->mu);
    conn->in_flight = false;
    if (conn->stop) return;
    conn->output_failed = true;
    conn->output_status = std::move(failed);
    Attention(conn);
  }

  void Writer(ChannelConn* conn) {
    const bool message_mode = config_->mode == PipeMode::kMessage;
    std::unique_lock<std::mutex> lock(conn->mu);
    while (true) {
      conn->writer_cv.wait(lock,
                           [conn] { return conn->stop || !conn->out.empty(); });
      if (conn->stop) return;
      std::string buffer = std::move(conn->out.front());
      conn->out.pop_front();
      conn->out_offset = 0;
      conn->in_flight = true;
      absl::string_view rest = buffer;
      absl::Status written;
      do {
        const absl::string_view piece =
            message_mode ? rest : rest.substr(0, kWritePiece);
        lock.unlock();
        written = message_mode ? conn->channel.WriteMessage(piece)
                               : conn->channel.Write(piece);
        lock.lock();
        if (conn->stop) {
          conn->in_flight = false;
          return;
        }
        if (!written.ok()) break;
        rest.remove_prefix(piece.size());
        // `finished` set `queued` to 0 (only with `stop`, handled above).
        conn->queued -= piece.size();
        conn->last_write = IdleClock::now();
        if (conn->paused && QueueDrainedLocked(conn)) Attention(conn);
      } while (!rest.empty());
      conn->in_flight = false;
      if (!written.ok()) {
        conn->output_failed = true;
        conn->output_status =
            ConnError(written.code(), *config_, conn->id,
                      absl::StrCat("write failed: ", written.message()));
        Attention(conn);
        return;
      }
      if (conn->want_drained && conn->out.empty()) Attention(conn);
    }
  }

  // --- The loop thread ------------------------------------------------------

  void UpdateGuarded(ChannelConn* conn) {
    try {
      Update(conn);
    } catch (...) {
      CloseConn(conn, CaughtError(conn, "serving the client"));
    }
  }

  // Looks at `conn`: a close request, the threads' news, a queue drained
  // enough to resume, the next item to dispatch, the end of a drain.
  void Update(ChannelConn* conn) {
    if (conn->done) return;
    std::optional<absl::Status> close;
    bool output_failed = false;
    bool input_ended = false;
    size_t undelivered = 0;
    std::string data;
    bool dispatch = false;
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      if (conn->close_requested) {
        close = conn->close_status;
      } else if (conn->input_failed && !shutting_down_) {
        // (A shutdown has stopped the reading: ShutdownStep closes the
        // connection with Cancelled.)
        close = conn->input_status;
      } else if (conn->output_failed) {
        output_failed = true;
        input_ended = conn->input_ended;
        undelivered = conn->queued;
        close = input_ended ? conn->input_status : conn->output_status;
      } else {
        if (conn->paused && QueueDrainedLocked(conn)) conn->paused = false;
        if (conn->has_inbound && !conn->paused && !shutting_down_) {
          data.swap(conn->inbound);
          conn->has_inbound = false;
          conn->reader_cv.notify_one();
          dispatch = true;
        } else if (conn->input_ended && !conn->has_inbound && !shutting_down_) {
          // Every request was dispatched: close once the replies are out.
          if (conn->out.empty() && !conn->in_flight) {
            close = conn->input_status;
          } else {
            conn->want_drained = true;
          }
        }
      }
    }
    if (close.has_value()) {
      if (output_failed) {
        // The client can no longer read. If its stream had ended, it
        // finished and left (it may have closed while requests we had not
        // read yet were waiting: Peek still sees them then); otherwise the
        // connection broke.
        const bool ended =
            input_ended || absl::IsOutOfRange(conn->channel.Peek().status());
        if (ended) {
          close = EndOfInputStatus(
              conn, input_ended ? close->code() : absl::StatusCode::kOutOfRange,
              undelivered);
        }
      }
      CloseConn(conn, *std::move(close));
      return;
    }
    if (!dispatch) return;
    absl::Status handled = Dispatch(conn, data);
    if (!handled.ok()) {
      CloseConn(conn, handled);
      return;
    }
    std::lock_guard<std::mutex> lock(conn->mu);
    if (QueueFullLocked(conn)) conn->paused = true;
    // The reader may have handed over the next item meanwhile, or ended:
    // its Attention brings the loop back.
  }

  // How a connection ends after the client's end of stream (`code`:
  // OutOfRange, or DataLoss inside a message) when `undelivered` queued
  // bytes could not be sent.
  absl::Status EndOfInputStatus(const ChannelConn* conn, absl::StatusCode code,
                                size_t undelivered) {
    return ConnError(
        code, *config_, conn->id,
        absl::StrCat(code == absl::StatusCode::kDataLoss
                         ? "stream ended inside a message"
                         : "the client closed the channel",
                     "; ", undelivered,
                     " queued bytes were not delivered (the client closed "
                     "its channel, which ends both directions)"));
  }

  // Tells the connection's threads to end and wakes them from the
  // connection's own waits (Finish's Channel::Close wakes them from the
  // channel's).
  static void Stop(ChannelConn* conn) {
    std::lock_guard<std::mutex> lock(conn->mu);
    conn->stop = true;
    conn->reader_cv.notify_all();
    conn->writer_cv.notify_all();
  }

  void CloseConn(ChannelConn* conn, absl::Status status) {
    if (conn->done) return;
    conn->done = true;
    Stop(conn);
    Finish(conn, std::move(status));
    if (conn->reader.joinable()) conn->reader.join();
    if (conn->writer.joinable()) conn->writer.join();
    conns_.erase(conn->id);  // May free `conn`.
  }

  void SweepIdle() {
    next_sweep_ = SweepIdleConnections(
        &conns_, [this](ChannelConn* conn, absl::Status status) {
          CloseConn(conn, std::move(status));
        });
  }

  // During shutdown: closes every drained connection, and all of them once
  // the grace period is over; the others' writers say when they drained.
  void ShutdownStep() {
    CloseDrainedConnections(
        &conns_, deadline_,
        [](ChannelConn* conn) {
          const bool drained = conn->out.empty() && !conn->in_flight;
          if (!drained) conn->want_drained = true;
          return drained;
        },
        [this](ChannelConn* conn, absl::Status status) {
          CloseConn(conn, std::move(status));
        });
  }

  std::atomic<std::thread::id> loop_thread_{};
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool woken_ = false;  // Guarded by wake_mu_.

  // Loop thread only.
  std::unordered_map<uint64_t, std::shared_ptr<ChannelConn>> conns_;
  bool shutting_down_ = false;
  absl::Time deadline_;
  // The next idle sweep; max(): none due (no timeout, or no connections).
  IdleClock::time_point next_sweep_ = IdleClock::time_point::max();

  // Other threads' way in: new connections, attention, shutdown.
  LoopInbox<ChannelConn> inbox_;
};

}  // namespace

std::unique_ptr<ServerLoop> NewChannelLoop(const ServerConfig* config) {
  return std::make_unique<ChannelLoop>(config);
}

}  // namespace internal
}  // namespace canal
