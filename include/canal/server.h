// SPDX-License-Identifier: Apache-2.0
// canal::Server: an event-driven server for many clients on a few threads.
//
//   canal::ServerOptions options;
//   options.listener.mode = canal::PipeMode::kMessage;
//   canal::ServerHandlers handlers;
//   handlers.on_request = [](canal::Connection& c, absl::string_view request)
//       -> absl::StatusOr<std::string> { return std::string(request); };
//   absl::StatusOr<std::unique_ptr<canal::Server>> server =
//       canal::Server::Start("echo", options, std::move(handlers));
//   if (!server.ok()) return server.status();
//   ...                                  // clients use Call / Transact
//   (*server)->Shutdown(absl::Seconds(1));
//
// The server owns a `Listener` (so its access policy and `authorize`
// callback apply to every client) and one accept thread that hands each new
// client to one of `ServerOptions::threads` loop threads. A loop thread
// serves all of its clients with non-blocking I/O: I/O completion ports on
// Windows, epoll on Linux, poll() on other POSIX systems. `Start` picks the
// loop; on Linux, CANAL_SERVER_LOOP=poll in the environment makes it pick
// poll() instead (the test suite runs the server tests on both loops that
// way; any other value is ignored).
//
// Shared memory. A server whose listener offers shared memory
// (`listener.transport = Transport::kSharedMemory`, duplex) serves with
// another loop, on every platform: its connections move their data out of
// the pipe into memory shared with the client, where non-blocking I/O on
// the pipe cannot follow, so the loop thread serves them through the
// Channel API and each connection costs two threads of its own, one that
// blocks reading from the client and one that blocks writing to it. They
// only move data: the handlers still run on the loop thread exactly as
// described below, and every behaviour described here holds, except
// half-close (see "End of stream").
//
// Threads. Every handler runs on the loop thread that owns the connection,
// one call at a time per connection, and handlers of all connections of
// that loop run one after another: a handler must never block (no
// Channel I/O, no waiting on other clients). Hand slow work to another
// thread and reply from there with `Connection::Send`, which never blocks.
//
// Flow control. Each connection has a bounded outbound queue
// (`ServerOptions::max_queued_bytes`). While a connection's queue holds at
// least that much, `Send` refuses more (ResourceExhausted) and the server
// stops reading from (and dispatching for) that client; it resumes when the
// queue has drained below half. A client that stops reading therefore costs
// at most `max_queued_bytes` plus one Send (and one read chunk) of memory,
// and never slows down the other clients.
//
// End of stream. A client's end of stream ends its requests, not the
// replies: on POSIX a client may shut down only its sending side and keep
// reading (shutdown(SHUT_WR), as socat, `nc -N` and many scripts do after
// their request). The server then stops reading from it, still answers
// every request it had received, flushes everything `Send` accepted, and
// closes the connection (`on_close`: OutOfRange, or DataLoss if the stream
// ended inside a message) once all of it is handed to the system, as
// `Shutdown` drains. `Send` keeps working until then and fails with
// FailedPrecondition afterwards, so a reply a handler sends later from
// another thread may find the connection closed. The flush ends early when
// the client's reading side goes too (it closes, or the send fails): the
// status then says how many queued bytes were not delivered. A client that
// half-closes and never reads makes no progress and is closed after
// `ServerOptions::idle_timeout`. Windows pipes have no half-close: a client
// that closes its end can read nothing more, so the connection ends at once
// (OutOfRange, or Unavailable if a write hit the closed pipe first) and
// what is queued for it is dropped. Nor do shared-memory channels: a
// client's Close ends both directions, so what is still queued for it is
// dropped, and `on_close` gets OutOfRange saying how many queued bytes were
// not delivered.

#ifndef CANAL_SERVER_H_
#define CANAL_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/types.h"

namespace canal {

namespace internal {
class ServerConn;
class ServerCore;
}  // namespace internal

// A handle to one client of a `Server`. Cheap to copy; every copy refers to
// the same connection, and all methods may be called from any thread, also
// after the connection (or the whole server) is gone. A default-constructed
// handle refers to no connection.
class Connection {
 public:
  Connection();

  // A number unique among the connections of one server (starting at 1);
  // 0 for a default-constructed handle.
  uint64_t id() const;

  // Whether the connection is still open: false once the client left, an
  // error ended it, `Close()` was called, or the server shut down.
  bool is_open() const;

  // Who is at the other end, as read when the client was accepted. Empty
  // (`process_id` 0) for a default-constructed handle.
  const PeerInfo& Peer() const;

  // The listener's mode: kMessage connections carry whole messages.
  PipeMode mode() const;

  // Queues `data` for the client and returns at once; never blocks. In
  // message mode `data` is sent as one message (empty messages too); in byte
  // mode it is appended to the stream. Returns:
  //  - ResourceExhausted if the queue already holds
  //    `ServerOptions::max_queued_bytes` or more (the client is not reading
  //    fast enough). One Send may take the queue over the bound, so data
  //    larger than the bound can be sent, and a handler that sends once per
  //    `on_data` call is never refused: the loop stops dispatching for a
  //    connection while its queue is full;
  //  - InvalidArgument in message mode if `data` is larger than the
  //    listener's `max_message_size`;
  //  - FailedPrecondition if the connection is closed, or was accepted on an
  //    inbound listener (clients only write), or the handle is empty.
  absl::Status Send(absl::string_view data);

  // Closes the connection: data queued in the server and not yet handed to
  // the system is dropped, and `on_close` runs (on the loop thread) with
  // Cancelled. Idempotent; no effect on a closed or empty handle.
  void Close();

  // Bytes accepted by `Send` and not yet handed to the system.
  size_t queued_bytes() const;

  // For the server only.
  explicit Connection(std::shared_ptr<internal::ServerConn> conn);

 private:
  std::shared_ptr<internal::ServerConn> conn_;
};

// Options for `Server::Start`.
struct ServerOptions {
  // The listener's options: mode, access, instance limit, access policy,
  // `authorize` callback, message size limit, transport. With
  // Transport::kSharedMemory on a duplex listener the connections use
  // shared memory (see "Shared memory" above: two threads per
  // connection); a client that refuses it (`allow_shared_memory = false`)
  // or cannot map it, and every client when the server cannot create the
  // memory, is served over the pipe by the same loop, as are all clients
  // of an abstract-namespace name (Linux `@name`, which offers no shared
  // memory) (docs/semantics.md, row 18).
  ListenerOptions listener;
  // Loop threads (at least 1). Connections are spread over them round-robin.
  int threads = 1;
  // Per-connection bound of the outbound queue, in bytes (at least 1); see
  // `Connection::Send` and the flow-control notes above.
  size_t max_queued_bytes = 1024 * 1024;
  // How much one read asks the system for (at least 1). In byte mode it is
  // also the largest chunk handed to `on_data`.
  size_t read_chunk_size = 64 * 1024;
  // At most this many clients are served at once (at least 1); 0, the
  // default, picks half of the process's descriptor limit on POSIX (the
  // soft RLIMIT_NOFILE when `Start` runs: 512 of the common 1024), since
  // each connection costs the server a descriptor (and, over shared
  // memory, two threads) and the rest of the process needs some too, and
  // 4096 on Windows. At the cap the server stops
  // accepting until a connection ends: further clients wait as for busy
  // instances, in the order they came (Windows: `Connect` waits for a free
  // instance, up to its timeout, once the listener's few pending instances
  // are taken; POSIX: the connection waits in the kernel's backlog, its
  // request is answered once it is accepted, and `Connect` waits while the
  // backlog is full). No connection is closed to make room, so a flood of
  // new clients cannot push out established ones; clients that only hold a
  // connection are closed by `idle_timeout`. If descriptors run out below
  // the cap (the rest of the process uses them, or the cap was set above
  // the limit), the server neither fails nor spins: it waits until one of
  // its connections ends, retrying at least every half second.
  int max_connections = 0;
  // A connection on which no byte moved in either direction for this long
  // is closed (a little later: within an eighth of the time, at most a
  // second), with DeadlineExceeded in `on_close`. This frees the slots of
  // clients that connect and do nothing, that stop reading while replies
  // are queued, or that half-close and never read. It also ends a
  // connection whose reply a handler owes for longer than this (slow work
  // on another thread): raise it for such servers. On Windows, and over
  // shared memory, progress is seen per completed write, and a message is
  // one write: a client that needs longer than this to read one large
  // message is closed too. Positive; absl::InfiniteDuration() disables it.
  absl::Duration idle_timeout = absl::Minutes(1);
};

// What the server calls. Every handler is optional and runs on a loop
// thread (see "Threads" above); each gets the connection by reference, and
// may copy the handle to keep it.
struct ServerHandlers {
  // A client connected (and passed the listener's checks).
  std::function<void(Connection&)> on_open;
  // Data from a client: one whole message in message mode, the next chunk
  // of the stream (at most `read_chunk_size` bytes) in byte mode. The view
  // is valid only during the call. The server hands no handles to its
  // handlers: a message sent with `Channel::WriteMessageWithHandles` arrives
  // as its data, and its handles are closed in the server's process.
  std::function<void(Connection&, absl::string_view)> on_data;
  // Message mode only, instead of `on_data`: maps one request message to
  // one reply message, which is queued like `Send` does (also when the
  // queue is full because of Sends from other threads). An error closes that
  // connection with the error as its status. Pairs with the client's
  // `Channel::Transact` and `canal::Call`.
  std::function<absl::StatusOr<std::string>(Connection&, absl::string_view)>
      on_request;
  // The connection ended; `status` says why: OutOfRange when the client
  // closed cleanly (after the replies were flushed, see "End of stream"),
  // Unavailable when the connection broke, DataLoss for malformed framing or
  // a stream that ended inside a message (POSIX), ResourceExhausted for a
  // message over `max_message_size` or when memory ran out while serving
  // it, Cancelled after `Connection::Close` or `Server::Shutdown`, the error
  // returned by `on_request`, or Internal when a handler threw (the
  // exception goes no further; one thrown by `on_close` is ignored). Runs
  // exactly once per connection that got `on_open`.
  std::function<void(Connection&, const absl::Status&)> on_close;
};

// A running server. Not copyable or movable; destroy it (or call
// `Shutdown`) to stop.
class Server {
 public:
  // Creates the listener on `name` (a portable or native name, see
  // canal/canal.h) and starts the threads. Fails with InvalidArgument for
  // bad options (threads < 1, a zero bound or chunk size, a negative
  // `max_connections`, an `idle_timeout` that is not positive, `on_request`
  // on a byte-mode listener, both `on_data` and `on_request`), or with the
  // errors of `Listener::Create` (AlreadyExists, PermissionDenied, ...), or
  // ResourceExhausted if the system refuses an event queue or a thread, or
  // memory runs out.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      absl::string_view name, const ServerOptions& options,
      ServerHandlers handlers);

  // Shuts down with no grace period (see `Shutdown`) and waits for the
  // server's threads, so it must not run on one of them (in a handler or
  // the listener's `authorize` callback): call `Shutdown` there instead.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops accepting (the name is released), stops reading from clients,
  // lets data already queued drain for up to `grace`, then closes every
  // connection; each ends with Cancelled (`on_close` runs for each). A
  // connection whose queue is empty is closed at once. From any thread,
  // idempotent; returns once every connection is closed, except when called
  // from a handler or the listener's `authorize` callback, where it only
  // starts the shutdown.
  void Shutdown(absl::Duration grace = absl::ZeroDuration());

  // The name given to `Start`.
  absl::string_view name() const;

  // The event loop `Start` picks when called now: "iocp", "epoll" or "poll"
  // (see CANAL_SERVER_LOOP above). A server whose listener offers shared
  // memory uses its own loop instead (see "Shared memory" above).
  static absl::string_view LoopKind();

  // Connections currently open, over all loop threads.
  size_t connection_count() const;

 private:
  explicit Server(std::unique_ptr<internal::ServerCore> core);
  std::unique_ptr<internal::ServerCore> core_;
};

}  // namespace canal

#endif  // CANAL_SERVER_H_
