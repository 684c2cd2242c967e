// SPDX-License-Identifier: Apache-2.0
// The contract between the shared front end (src/channel.cc,
// src/listener.cc, src/pipe.cc, src/fifo.cc, src/subprocess.cc,
// src/server/) and a platform backend (src/posix/, src/win32/).
//
// The front end validates names, options, modes, directions and other
// arguments, and handles invalid (moved-from) objects; a backend implements
// the I/O. Meson compiles
// exactly one backend, chosen by host_machine.system().
//
// Where each public call goes. A file that does a job in one backend has the
// same name in the other, its code is in namespace internal::posix or
// internal::win32, and a class that implements an interface of this file is
// named after the platform and the interface (PosixChannel, Win32Channel;
// PosixListener, Win32Listener; PosixProcess, Win32Process; PosixServerLoop,
// Win32ServerLoop).
//
//   public call               front end        src/posix/      src/win32/
//   Channel::Connect, Call,   channel.cc       connect.cc      connect.cc
//     WaitForListener
//   Channel::Read, Write,     channel.cc       channel.cc      channel.cc
//     ReadMessage, Transact,
//     Peek, Peer, Close
//   Channel::RunAsClient      channel.cc       (Unimplemented) channel.cc
//   Channel::WriteMessage-    channel.cc       channel.cc      channel.cc
//     WithHandles, ReadMes-
//     sageWithHandles
//   OwnedHandle::reset        handle.cc        handle.cc       handle.cc
//   Listener::Create, Accept, listener.cc      listener.cc     listener.cc
//     Close
//   CreatePipe, AdoptPipeEnd  pipe.cc          pipe.cc         pipe.cc
//   Fifo::Create, OpenRead,   fifo.cc          fifo.cc         fifo.cc
//     OpenWrite, Remove
//   Subprocess::Start, Wait,  subprocess.cc    subprocess.cc   subprocess.cc
//     Kill; Run
//   Server::Start, Shutdown;  server/server.cc server_loop.cc  server_loop.cc
//     Connection::Send, Close
//   (front-end files are in src/)
//
// Shared by those: a name to its native form (src/names.cc; names.cc), native
// errors to statuses (src/errors.cc; error.cc), the listener's published
// limits (meta.cc), access control and peer identity (security.cc),
// descriptors or handles and waiting on them (io.cc), the shared-memory
// transport's memory objects and doorbells (shared_memory.cc,
// doorbell.cc). Backend-only files:
// POSIX poller.h, poller_epoll.cc and poller_poll.cc (the server loop's
// readiness), op_guard.cc (the close/cancel guard and the reader and writer
// roles of the socket and pipe channels) and byte_queue.cc (the socket
// channel's receive buffer).

#ifndef CANAL_SRC_INTERNAL_BACKEND_H_
#define CANAL_SRC_INTERNAL_BACKEND_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/channel.h"
#include "canal/pipe.h"
#include "canal/subprocess.h"
#include "canal/types.h"

namespace canal {
namespace internal {

// Compile-time facts about the backend.
#if defined(_WIN32)
// Native names are `\\.\pipe\` paths, not POSIX paths.
inline constexpr bool kBackendUsesPosixNames = false;
// The system keeps message boundaries.
inline constexpr bool kBackendFramesMessages = false;
// No FIFOs: every Fifo call is Unimplemented.
inline constexpr bool kBackendHasFifos = false;
#else
// Native names are POSIX paths (absolute, or abstract on Linux).
inline constexpr bool kBackendUsesPosixNames = true;
// Message mode is the frames of src/internal/framing.h over a stream.
inline constexpr bool kBackendFramesMessages = true;
// mkfifo.
inline constexpr bool kBackendHasFifos = true;
#endif

// One connected end. All methods may be called from several threads at once,
// except that at most one thread reads and one thread writes at a time
// (the front end does not enforce that; the backends tolerate it without
// crashing).
class ChannelImpl {
 public:
  virtual ~ChannelImpl() = default;

  virtual PipeMode mode() const = 0;
  virtual bool can_read() const = 0;
  virtual bool can_write() const = 0;
  // The name the channel was connected with or accepted on (for messages).
  virtual absl::string_view name() const = 0;
  virtual bool is_open() const = 0;

  // As Channel::Read / Write (one message in message mode) / ReadMessage /
  // Transact / Peek / Peer / Close / native_handle. Mode and direction are
  // already checked; `data.size()` is within the message limit.
  virtual absl::StatusOr<ReadResult> Read(absl::Span<char> buffer,
                                          absl::Duration timeout) = 0;
  // `op` names the public call in error messages ("Write" or
  // "WriteMessage").
  virtual absl::Status Write(absl::string_view op, absl::string_view data,
                             absl::Duration timeout) = 0;
  virtual absl::StatusOr<std::string> ReadMessage(absl::Duration timeout) = 0;
  // `op` names the public call in error messages ("Transact" or "Call").
  virtual absl::StatusOr<std::string> Transact(absl::string_view op,
                                               absl::string_view request,
                                               absl::Duration timeout) = 0;
  virtual absl::StatusOr<PeekResult> Peek(absl::Span<char> buffer) = 0;
  virtual absl::StatusOr<PeerInfo> Peer() = 0;
  virtual void Close() = 0;
  virtual NativeHandle native_handle() const = 0;
  // As Channel::RunAsClient. POSIX has no per-thread impersonation, so the
  // default is Unimplemented.
  virtual absl::Status RunAsClient(absl::FunctionRef<void()> fn);

  // The largest message this side may send.
  virtual size_t max_message_size() const = 0;

  // As Channel::WriteMessageWithHandles (with at least one handle) and
  // ReadMessageWithHandles, on a message-mode channel. Mode, direction,
  // size, the number of handles and each handle are already checked. The
  // defaults, for channels that are never in message mode (anonymous
  // pipes, FIFOs), return FailedPrecondition.
  virtual absl::Status WriteWithHandles(absl::string_view op,
                                        absl::string_view data,
                                        absl::Span<const NativeHandle> handles,
                                        absl::Duration timeout);
  virtual absl::StatusOr<MessageWithHandles> ReadMessageWithHandles(
      absl::Duration timeout);
  // The most handles one message may carry, in either direction.
  virtual size_t max_handles_per_message() const { return 0; }

  // As Channel::transport().
  virtual Transport transport() const { return Transport::kPipe; }

  // The shared-memory transport's set-up over this pipe
  // (src/shm_channel.cc), before any data crosses it, in either mode and
  // whatever the channel's direction (the pipe of a shared-memory listener
  // is always duplex). The defaults, for pipes that never carry it, fail
  // with FailedPrecondition.
  //
  // Client side: the listener said it offers shared memory (in what it
  // publishes for its clients).
  virtual bool shared_memory_offered() const { return false; }
  // Sends the record `data` with duplicates of `handles` (POSIX:
  // SCM_RIGHTS; Windows: DuplicateHandle into the client's process, the
  // values after the record). PermissionDenied, with nothing sent, if the
  // handles may not go to the peer (Windows: a client of another user, or
  // one whose process cannot be opened).
  virtual absl::Status WriteSetup(absl::string_view data,
                                  absl::Span<const NativeHandle> handles,
                                  absl::Duration timeout);
  // Reads a record of exactly `size` bytes sent with at most `handles`
  // handles; DataLoss (every handle that came closed) for anything else.
  // PermissionDenied (Windows) if the values came from a peer of another
  // user: they are not touched. DeadlineExceeded if nothing came in time;
  // with a zero timeout it only looks.
  virtual absl::StatusOr<MessageWithHandles> ReadSetup(size_t size,
                                                       size_t handles,
                                                       absl::Duration timeout);
  // Once the data goes through shared memory, the pipe only tells whether
  // the peer is still there: OK while it holds its end, Unavailable once it
  // closed it or died, Cancelled after Close. Never blocks or consumes.
  virtual absl::Status CheckPeerConnected(absl::string_view op);
};

class ListenerImpl {
 public:
  virtual ~ListenerImpl() = default;
  virtual bool is_open() const = 0;
  virtual absl::string_view name() const = 0;
  virtual const ListenerOptions& options() const = 0;
  // Whether the listener told its clients that it sends each a
  // shared-memory offer (src/internal/shm_channel.h), which Accept must then
  // do.
  virtual bool shared_memory_offered() const { return false; }
  virtual absl::StatusOr<std::unique_ptr<ChannelImpl>> Accept(
      absl::Duration timeout) = 0;
  virtual void Close() = 0;
};

// Backend entry points. `name` has been validated (portable or native for
// this platform); `options` too.
// `op` names the public call in error messages ("Connect" or "Call");
// `options.timeout` bounds the whole connect.
absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendConnect(
    absl::string_view op, absl::string_view name,
    const ConnectOptions& options);
absl::StatusOr<std::unique_ptr<ListenerImpl>> BackendListen(
    absl::string_view name, const ListenerOptions& options);
absl::Status BackendWaitForListener(absl::string_view name,
                                    absl::Duration timeout);

// Handles (canal/handle.h). Closes `handle` (close(2), CloseHandle).
void BackendCloseHandle(NativeHandle handle);
// OK if `handle` is an open descriptor or HANDLE of this process that can
// be sent, else InvalidArgument naming `op`, `name` and the native error.
absl::Status BackendCheckHandle(absl::string_view op, absl::string_view name,
                                NativeHandle handle);

// Anonymous pipes (canal/pipe.h), both ends byte mode and one way.
struct PipeEnds {
  std::unique_ptr<ChannelImpl> read_end;
  std::unique_ptr<ChannelImpl> write_end;
};
absl::StatusOr<PipeEnds> BackendCreatePipe(const PipeOptions& options);
// `end` is kRead or kWrite. InvalidArgument, with `handle` left alone, if
// it is not an open handle; after any other failure `handle` is closed.
absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendAdoptPipeEnd(
    NativeHandle handle, PipeEnd end);

// FIFOs (canal/fifo.h). Where kBackendHasFifos, `path` is not empty and has
// no NUL byte, and `mode` is within 0777; elsewhere nothing was checked and
// every call returns Unimplemented.
absl::Status BackendFifoCreate(absl::string_view path, uint32_t mode);
absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendFifoOpenRead(
    absl::string_view path);
absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendFifoOpenWrite(
    absl::string_view path, absl::Duration timeout);
absl::Status BackendFifoRemove(absl::string_view path);

// canal::Subprocess (src/subprocess.cc: argument checks, Run).

// A started child. The destructor applies `kill_on_destroy` and never
// leaves a zombie (see Subprocess::~Subprocess).
class ProcessImpl {
 public:
  virtual ~ProcessImpl() = default;
  virtual int64_t pid() const = 0;
  virtual absl::StatusOr<ExitStatus> Wait(absl::Duration timeout) = 0;
  virtual absl::Status Kill() = 0;
};

struct StartedProcess {
  std::unique_ptr<ProcessImpl> process;
  Channel stdin_channel;  // Valid for StdioMode::kPipe only.
  Channel stdout_channel;
  Channel stderr_channel;
};

// Starts the child. `argv` and `options` have been checked by the front end
// (non-empty argv without NUL bytes, valid stdio modes, extra channel open,
// posix_fd >= 3).
absl::StatusOr<StartedProcess> BackendStartProcess(
    const std::vector<std::string>& argv, const SubprocessOptions& options);

// canal::Server (src/server/). The server's shared code is platform-free;
// each backend brings the event loop that suits its I/O model.

class ServerLoop;
struct ServerConfig;

// A new event loop for one loop thread of a server configured by `config`
// (which outlives the loop); Init is still to be called. Windows: I/O
// completion ports. POSIX: epoll on Linux, poll() elsewhere; chosen when
// called, so that CANAL_SERVER_LOOP=poll in the environment selects poll()
// on Linux too.
std::unique_ptr<ServerLoop> BackendNewServerLoop(const ServerConfig* config);

// The loop BackendNewServerLoop makes when called now: "iocp", "epoll" or
// "poll".
absl::string_view BackendServerLoopKind();

// The bytes a message-mode canal::Server puts on the wire for one Send of
// `data`: its frame on POSIX; on Windows `data` itself, or an envelope with
// no handles if it begins with the handle envelope's magic, so that a canal
// client reads back exactly what was sent. Throws std::bad_alloc.
std::string BackendServerMessage(absl::string_view data);

// ServerOptions::max_connections = 0: how many clients a server serves at
// once (see include/canal/server.h).
size_t BackendAutomaticMaxConnections();

// A shared-memory object mapped read-write into this process, for the
// shared-memory transport: the handle names the object so that it can be
// passed to the peer (close-on-exec / not inheritable); the mapping stays
// valid after the handle is closed. Destruction unmaps and closes.
class SharedMemoryImpl {
 public:
  virtual ~SharedMemoryImpl() = default;
  // The whole mapping (exactly the size asked for).
  virtual absl::Span<char> memory() const = 0;
  // The object's descriptor or section handle, or kInvalidNativeHandle once
  // CloseHandle has run.
  virtual NativeHandle handle() const = 0;
  // Closes the handle, keeping the mapping (once the peer has its own).
  virtual void CloseHandle() = 0;
};

// Creates an anonymous object of `size` bytes (> 0) and maps it. It never
// has a name another user could open or squat, and nothing of it is left
// behind by a crash: a sealed memfd on Linux, shm_open with a random name,
// O_EXCL and an immediate shm_unlink elsewhere, an unnamed section on
// Windows. ResourceExhausted when the system has no memory or descriptors
// for it; InvalidArgument for a size of 0 or past the address space.
// `name` is the pipe's, for messages.
absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> BackendCreateSharedMemory(
    absl::string_view name, size_t size);

// Maps `size` bytes of an object a peer sent (the handle is taken, and
// closed on failure too). The peer is not trusted: an object smaller than
// `size`, not shared memory at all, or (Linux) one whose size the peer could
// still change under the mapping is refused with FailedPrecondition, so a
// later access can never fault.
absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> BackendMapSharedMemory(
    absl::string_view name, NativeHandle handle, size_t size);

// Sleeping on one of a shared-memory ring's doorbell words (see
// src/internal/shm_ring.h) across processes. Linux: a shared (not private)
// futex on the word itself, which both processes map. Windows has no wait
// on an address shared between processes, so each doorbell is an
// auto-reset event as well, created by the side that creates the memory and
// passed to the peer with it. Other POSIX systems have neither: there a
// wait sleeps in short slices and re-checks the word. The word is in memory
// the peer can write, so a wait may end early or only at its timeout; the
// caller re-checks the ring after every wait, as the ring's protocol says.
class DoorbellImpl {
 public:
  virtual ~DoorbellImpl() = default;
  // Sleeps while `word` still holds `seen`, at most `timeout`, and returns
  // early after a Wake (or, rarely, for no reason).
  virtual void Wait(const std::atomic<uint32_t>& word, uint32_t seen,
                    absl::Duration timeout) = 0;
  // Wakes a Wait on `word` (the peer's, in its process).
  virtual void Wake(const std::atomic<uint32_t>& word) = 0;
  // The event to pass to the peer (Windows), else kInvalidNativeHandle.
  virtual NativeHandle handle() const = 0;
};

// A new doorbell (with its event on Windows). `name` is the pipe's, for
// messages. ResourceExhausted when the system has no event left.
absl::StatusOr<std::unique_ptr<DoorbellImpl>> BackendCreateDoorbell(
    absl::string_view name);

// A watch on a shared-memory channel's pipe, so that a sleeper on the
// rings' doorbells needs no timeout to notice a peer that died (a dead peer
// says nothing in the rings; only its end of the pipe closes). Destroying
// it returns once `on_gone` is not running, and it never runs after.
class PeerWatchImpl {
 public:
  virtual ~PeerWatchImpl() = default;
};

// Runs `on_gone` once, on a thread of the backend's, when the peer's end of
// `pipe` has closed (or failed). It must not block or take locks a caller
// of the watch's destructor may hold. Null where the backend cannot watch
// (Windows, POSIX systems without epoll, a forked child of the process
// that started the watcher thread, no memory or descriptors): the sleeper
// then wakes in slices and looks at the pipe itself.
std::unique_ptr<PeerWatchImpl> BackendWatchPeer(NativeHandle pipe,
                                                std::function<void()> on_gone);

// Whether the watches made in this process still fire: false in a forked
// child of the process that made them (the watcher's thread is not
// copied), so that a channel inherited across fork sleeps in slices.
bool BackendPeerWatchesFire();

// How many CPUs this process may run on now (its affinity mask; at least
// 1). Waiting on shared memory spins only with more than one: on a single
// CPU the peer cannot run while this side spins.
size_t BackendUsableCpus();

// The peer's doorbell, from the event it sent (Windows; the handle is taken
// and closed on failure too; FailedPrecondition if it is not an event). On
// POSIX `handle` must be kInvalidNativeHandle.
absl::StatusOr<std::unique_ptr<DoorbellImpl>> BackendOpenDoorbell(
    absl::string_view name, NativeHandle handle);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_BACKEND_H_
