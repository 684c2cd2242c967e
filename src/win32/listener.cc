// SPDX-License-Identifier: Apache-2.0
#include "src/win32/listener.h"

#include <windows.h>

#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/internal/shm_channel.h"
#include "src/win32/channel.h"
#include "src/win32/error.h"
#include "src/win32/io.h"
#include "src/win32/meta.h"
#include "src/win32/names.h"
#include "src/win32/security.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

// Instances kept with ConnectNamedPipe outstanding. Each client that
// connects is replaced at once by the listener thread.
constexpr size_t kPendingTarget = 4;
// With unlimited instances, at most this many connected clients wait for
// Accept; further clients see busy instances and wait in Connect.
constexpr size_t kMaxBacklog = 250;
// nDefaultTimeOut: what WaitNamedPipe(NMPWAIT_USE_DEFAULT_WAIT) waits.
constexpr DWORD kDefaultWaitMs = 50;
// How long an Accept whose deadline has passed waits for a client that has
// already connected to be handed over by the listener thread (one round of
// it, or the completion of the client's ConnectNamedPipe under Wine).
constexpr int kConnectedWaitMs = 250;
// How soon the listener thread retries a failed CreateNamedPipeW (or an
// allocation that failed).
constexpr DWORD kRetryMs = 10;
// The most handles one WaitForMultipleObjects takes.
constexpr size_t kMaxWaitHandles = MAXIMUM_WAIT_OBJECTS;

// Who is at the client end of the server end `pipe`. The user is read from
// the client process's token; empty if that process cannot be opened.
PeerInfo ClientPeerInfo(HANDLE pipe) {
  PeerInfo peer;
  ULONG pid = 0;
  if (!GetNamedPipeClientProcessId(pipe, &pid)) return peer;
  peer.process_id = static_cast<int64_t>(pid);
  DWORD error = ERROR_SUCCESS;
  absl::StatusOr<std::wstring> sid = ProcessUserSid(pid, &error);
  if (sid.ok()) peer.user_sid = SidToUtf8(*sid);
  return peer;
}

// One pipe instance owned by the listener.
struct Instance {
  ScopedHandle pipe;
  ScopedHandle event;  // Manual reset, for `ov`.
  OVERLAPPED ov;
};

}  // namespace

// State shared by the listener, its thread and the channels it accepted
// (which report the end of their pipe instance through InstanceClosed).
class ListenerState final : public InstanceOwner,
                            public std::enable_shared_from_this<ListenerState> {
 public:
  ListenerState(std::string name, std::wstring path,
                const ListenerOptions& options, ListenerSecurity security,
                ScopedHandle wake_event)
      : name_(std::move(name)),
        path_(std::move(path)),
        options_(options),
        security_(std::move(security)),
        wake_event_(std::move(wake_event)) {}

  ~ListenerState() override { CloseInstances(); }
  ListenerState(const ListenerState&) = delete;
  ListenerState& operator=(const ListenerState&) = delete;

  const std::string& name() const { return name_; }
  const ListenerOptions& options() const { return options_; }

  // Creates the first instance, which claims the name.
  absl::Status Start();
  // The listener thread: waits for connections and keeps the pool full.
  void Run();
  absl::StatusOr<std::unique_ptr<ChannelImpl>> Accept(absl::Duration timeout);
  // Returns whether this call closed it. Clients get NotFound from now on:
  // the published section says "closed".
  bool Close();
  // Blocks until no thread is inside Accept (after Close, they all leave
  // with Cancelled, once an authorisation callback in progress returns).
  void WaitForAcceptsToLeave();
  // Closes the instances not handed out (after the thread has stopped).
  void CloseInstances();
  bool closed() const {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

  void InstanceClosed() override {
    absl::MutexLock lock(&mu_);
    --live_;
    SetEvent(wake_event_.get());
  }
  // Drops an instance that was taken out of the pool and will not become
  // a channel.
  void DropTaken(std::unique_ptr<Instance> instance) {
    absl::MutexLock lock(&mu_);
    DropInstance(std::move(instance));
    SetEvent(wake_event_.get());  // Room for another instance, maybe.
  }

  // The security attributes for every CreateNamedPipeW: the protected DACL
  // of the access policy (src/win32/security.h), on every instance.
  SECURITY_ATTRIBUTES* security_attributes() {
    return security_.pipe->attributes();
  }

 private:
  // CreateNamedPipeW with the listener's options; INVALID_HANDLE_VALUE and
  // GetLastError() on failure.
  HANDLE CreateInstance(bool first);
  // Pending instances still listening (neither completed nor connected).
  size_t CountListening() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Issues ConnectNamedPipe on a fresh instance and files it as pending or
  // ready; closes it if that fails (or if there is no memory to file it).
  // Returns whether it was filed as pending, that is whether it listens: a
  // client may have connected before ConnectNamedPipe, in a burst often.
  bool StartConnect(std::unique_ptr<Instance> instance)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Files `instance` in `list`; on an allocation failure cancels its
  // ConnectNamedPipe (if `pending`) and drops it instead.
  template <typename List>
  void File(List* list, std::unique_ptr<Instance> instance, bool pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves completed connections to ready_.
  void Poll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates instances until kPendingTarget are pending, within the limits.
  // Returns false if that is not done yet, so that the thread goes on soon:
  // a burst of clients took every instance it made as soon as it was made
  // (the thread must not then sleep with none listening), or
  // CreateNamedPipeW failed (or memory ran out): Windows counts a closed
  // channel's instance against nMaxInstances until its client has closed its
  // end too (an instance goes with its last handle; Wine frees it with the
  // server's), and nothing signals that.
  bool Replenish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropInstance(std::unique_ptr<Instance> instance)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A peer refused by the authorisation callback: disconnects it and
  // listens again on the same instance, so that the name stays held (or
  // drops the instance if enough others are listening).
  void Refuse(std::unique_ptr<Instance> instance);
  // Whether a pending instance's ConnectNamedPipe has completed (a client
  // connected, or came and went) but Poll has not looked at it yet.
  bool AnyPendingConnected() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One round of the listener thread: returns the WaitForMultipleObjects
  // timeout for the next round.
  DWORD RunOnce(std::vector<HANDLE>* handles, DWORD timeout);
  // Turns the instance popped by Accept into a channel.
  absl::StatusOr<std::unique_ptr<ChannelImpl>> MakeChannel(
      std::unique_ptr<Instance> instance, PeerInfo peer);
  const std::string name_;
  const std::wstring path_;
  const ListenerOptions options_;
  // Kept (and freed) with the state: every instance is created with it.
  ListenerSecurity security_;
  ScopedHandle wake_event_;  // Auto reset: the pool needs attention.

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Instance>> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<std::unique_ptr<Instance>> ready_ ABSL_GUARDED_BY(mu_);
  // Pipe instances in existence: pending, ready, and accepted channels not
  // yet closed. Never more than max_instances.
  int live_ ABSL_GUARDED_BY(mu_) = 0;
  // Threads inside Accept.
  int accepting_ ABSL_GUARDED_BY(mu_) = 0;
  // See src/win32/meta.h. Kept until the state is gone, that is until the
  // last accepted channel is, so that clients who find only those
  // channels' instances learn that the listener is closed.
  std::unique_ptr<PublishedMeta> meta_ ABSL_GUARDED_BY(mu_);
};

HANDLE ListenerState::CreateInstance(bool first) {
  DWORD open_mode = FILE_FLAG_OVERLAPPED;
  switch (options_.access) {
    case PipeAccess::kDuplex:
      open_mode |= PIPE_ACCESS_DUPLEX;
      break;
    case PipeAccess::kInbound:
      open_mode |= PIPE_ACCESS_INBOUND;
      break;
    case PipeAccess::kOutbound:
      open_mode |= PIPE_ACCESS_OUTBOUND;
      break;
  }
  // Refuses a name another listener holds (Windows; Wine does not enforce
  // it, see Start()).
  if (first) open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
  DWORD pipe_mode = PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS;
  pipe_mode |= options_.mode == PipeMode::kMessage
                   ? PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE
                   : PIPE_TYPE_BYTE | PIPE_READMODE_BYTE;
  const DWORD max_instances = options_.max_instances == kUnlimitedInstances
                                  ? PIPE_UNLIMITED_INSTANCES
                                  : static_cast<DWORD>(options_.max_instances);
  // "System default" means a buffer, as CreatePipe's default does (see
  // kDefaultPipeBufferSize).
  const DWORD buffer_size = options_.buffer_size == 0
                                ? kDefaultPipeBufferSize
                                : static_cast<DWORD>(options_.buffer_size);
  return CreateNamedPipeW(path_.c_str(), open_mode, pipe_mode, max_instances,
                          buffer_size, buffer_size, kDefaultWaitMs,
                          security_attributes());
}

absl::Status ListenerState::Start() {
  absl::StatusOr<std::wstring> own_sid = CurrentUserSid();
  if (!own_sid.ok()) return own_sid.status();
  // FILE_FLAG_FIRST_PIPE_INSTANCE is what refuses a held name on Windows.
  // Wine does not enforce it, so look first: WaitNamedPipe neither connects
  // to nor disturbs the other listener, and says ERROR_FILE_NOT_FOUND at
  // once when no instance exists.
  const bool free_instance = WaitNamedPipeW(path_.c_str(), 1);
  const DWORD wait_error = free_instance ? ERROR_SUCCESS : GetLastError();
  if (free_instance || wait_error == ERROR_SEM_TIMEOUT ||
      wait_error == ERROR_PIPE_BUSY) {
    // Windows keeps a pipe, and so its name, while any of its instances is
    // open: a closed listener's accepted channels (and, on Windows, their
    // clients) still have theirs. Joining that pipe would give this
    // listener the old one's mode, limit and DACL, so the name stays taken
    // until they close.
    if (!free_instance &&
        ListenerLiveness(path_, {*own_sid}) == Liveness::kClosed) {
      return MakeError(absl::StatusCode::kAlreadyExists, "Listen", name_,
                       "the pipe of an earlier listener of this name, now "
                       "closed, is still open (channels it accepted, or "
                       "their clients, still use it); close them first");
    }
    return MakeError(absl::StatusCode::kAlreadyExists, "Listen", name_,
                     free_instance
                         ? "a listener already holds this name"
                         : "a listener already holds this name (all its "
                           "instances are busy)");
  }
  ScopedHandle pipe(CreateInstance(true));
  if (!pipe.valid()) {
    return Win32Status(GetLastError(), ErrorContext::kListen, "Listen", name_);
  }
  auto instance = std::make_unique<Instance>();
  instance->pipe = std::move(pipe);
  instance->event.reset(NewEvent(true));
  if (!instance->event.valid()) {
    return Win32Status(GetLastError(), ErrorContext::kGeneric, "Listen", name_);
  }
  // Published once the name is ours, so that a refused second listener
  // cannot overwrite it; one made by someone else is not trusted.
  absl::StatusOr<std::unique_ptr<PublishedMeta>> meta = PublishedMeta::Publish(
      path_, name_, static_cast<uint32_t>(options_.max_message_size),
      OffersSharedMemory(options_), security_.meta->attributes(), *own_sid);
  if (!meta.ok()) return meta.status();
  absl::MutexLock lock(&mu_);
  pending_.reserve(2 * kPendingTarget);
  meta_ = *std::move(meta);
  ++live_;
  StartConnect(std::move(instance));
  Replenish();
  return absl::OkStatus();
}

bool ListenerState::StartConnect(std::unique_ptr<Instance> instance) {
  // A client that connected and left before ConnectNamedPipe gives
  // ERROR_NO_DATA: disconnect and listen again on the same instance (a few
  // times at most), so the name stays held.
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::memset(&instance->ov, 0, sizeof(instance->ov));
    instance->ov.hEvent = instance->event.get();
    ResetEvent(instance->ov.hEvent);
    const BOOL ok = ConnectNamedPipe(instance->pipe.get(), &instance->ov);
    const DWORD error = ok ? ERROR_SUCCESS : GetLastError();
    if (ok || error == ERROR_PIPE_CONNECTED) {
      // Connected already (a client came before ConnectNamedPipe).
      File(&ready_, std::move(instance), false);
      return false;
    }
    if (error == ERROR_IO_PENDING) {
      const size_t before = pending_.size();
      File(&pending_, std::move(instance), true);
      return pending_.size() > before;
    }
    if (error != ERROR_NO_DATA) break;
    DisconnectNamedPipe(instance->pipe.get());
  }
  DropInstance(std::move(instance));
  return false;
}

template <typename List>
void ListenerState::File(List* list, std::unique_ptr<Instance> instance,
                         bool pending) {
  try {
    list->push_back(std::move(instance));
    return;
  } catch (const std::bad_alloc&) {
    // push_back had no effect: `instance` is still ours.
  }
  if (pending) {
    // The OVERLAPPED lives in the instance: finish the I/O before freeing.
    CancelIoEx(instance->pipe.get(), &instance->ov);
    DWORD bytes = 0;
    GetOverlappedResult(instance->pipe.get(), &instance->ov, &bytes, TRUE);
  }
  DropInstance(std::move(instance));
}

void ListenerState::DropInstance(std::unique_ptr<Instance> instance) {
  instance.reset();
  --live_;
}

void ListenerState::Poll() {
  for (size_t i = 0; i < pending_.size();) {
    Instance& instance = *pending_[i];
    if (WaitForSingleObject(instance.event.get(), 0) != WAIT_OBJECT_0) {
      ++i;
      continue;
    }
    std::unique_ptr<Instance> done = std::move(pending_[i]);
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    DWORD bytes = 0;
    if (GetOverlappedResult(done->pipe.get(), &done->ov, &bytes, FALSE) ||
        GetLastError() == ERROR_PIPE_CONNECTED) {
      File(&ready_, std::move(done), false);
    } else {
      // The client came and went (ERROR_NO_DATA / ERROR_BROKEN_PIPE):
      // listen again on the same instance.
      DisconnectNamedPipe(done->pipe.get());
      StartConnect(std::move(done));
    }
  }
}

bool ListenerState::AnyPendingConnected() const {
  for (const auto& instance : pending_) {
    if (WaitForSingleObject(instance->event.get(), 0) == WAIT_OBJECT_0) {
      return true;
    }
    // The client's CreateFile can return before the server's
    // ConnectNamedPipe completes (Wine signals the completion later); the
    // instance already answers PeekNamedPipe then, where a listening one
    // fails.
    DWORD available = 0;
    if (PeekNamedPipe(instance->pipe.get(), nullptr, 0, nullptr, &available,
                      nullptr)) {
      return true;
    }
  }
  return false;
}

size_t ListenerState::CountListening() const {
  size_t listening = 0;
  for (const auto& instance : pending_) {
    if (WaitForSingleObject(instance->event.get(), 0) == WAIT_OBJECT_0) {
      continue;
    }
    DWORD available = 0;
    if (PeekNamedPipe(instance->pipe.get(), nullptr, 0, nullptr, &available,
                      nullptr)) {
      continue;  // Connected; its completion is still to be signalled.
    }
    ++listening;
  }
  return listening;
}

bool ListenerState::Replenish() {
  const bool limited = options_.max_instances != kUnlimitedInstances;
  // Instances whose client connected but whose ConnectNamedPipe has not
  // completed yet (Wine signals it late, much later under load) listen for
  // nobody: they do not count, or clients would find every instance busy
  // until the completions came.
  size_t listening = CountListening();
  // Bounded so that a failing CreateNamedPipeW cannot spin.
  for (size_t attempt = 0; attempt < 2 * kPendingTarget; ++attempt) {
    if (closed_ || listening >= kPendingTarget) return true;
    if (pending_.size() >= 4 * kPendingTarget) return true;
    if (limited && live_ >= options_.max_instances) return true;
    if (!limited && ready_.size() >= kMaxBacklog) return true;
    std::unique_ptr<Instance> instance(new (std::nothrow) Instance());
    if (instance == nullptr) return false;  // Out of memory: retry soon.
    // With no instance left (max_instances = 1 and its channel just
    // closed) the name may have been free for a moment: claim it as a
    // first instance again, so that a squatter who took it makes this fail
    // (and retry) instead of this listener joining the squatter's pipe.
    instance->pipe.reset(CreateInstance(live_ == 0));
    instance->event.reset(NewEvent(true));
    // On failure (out of resources; ERROR_PIPE_BUSY while the client of a
    // closed channel still holds its end, see Replenish's comment; or
    // ERROR_ACCESS_DENIED for a first instance while that client keeps the
    // old pipe alive) try again a little later.
    if (!instance->pipe.valid() || !instance->event.valid()) return false;
    ++live_;
    if (StartConnect(std::move(instance))) ++listening;
  }
  return closed_ || listening >= kPendingTarget;
}

void ListenerState::Run() {
  std::vector<HANDLE> handles;
  // The first round looks at once: clients may have taken the instances
  // Start made before this thread began.
  DWORD timeout = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
    }
    try {
      timeout = RunOnce(&handles, timeout);
    } catch (const std::bad_alloc&) {
      // Nothing was lost (every allocation below leaves the pool as it
      // was when it fails); look again soon.
      WaitForSingleObject(wake_event_.get(), kRetryMs);
      timeout = kRetryMs;
    }
  }
}

DWORD ListenerState::RunOnce(std::vector<HANDLE>* handles, DWORD timeout) {
  if (handles->capacity() < kMaxWaitHandles) handles->reserve(kMaxWaitHandles);
  handles->clear();
  handles->push_back(wake_event_.get());
  bool all = true;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return timeout;
    for (const auto& instance : pending_) {
      if (handles->size() == kMaxWaitHandles) {
        all = false;  // The rest are polled, below, every kRetryMs.
        break;
      }
      handles->push_back(instance->event.get());
    }
  }
  WaitForMultipleObjects(static_cast<DWORD>(handles->size()), handles->data(),
                         FALSE, all ? timeout : kRetryMs);
  absl::MutexLock lock(&mu_);
  if (closed_) return timeout;
  Poll();
  if (!Replenish()) return kRetryMs;
  // A connected instance whose completion has not come is looked at again
  // soon rather than waited for.
  return CountListening() < pending_.size() ? kRetryMs : INFINITE;
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> ListenerState::Accept(
    absl::Duration timeout) {
  const Deadline deadline(timeout);
  {
    absl::MutexLock lock(&mu_);
    ++accepting_;
  }
  struct Leave {
    ListenerState* state;
    ~Leave() {
      absl::MutexLock lock(&state->mu_);
      --state->accepting_;
    }
  } leave{this};
  bool refused_one = false;
  while (true) {
    std::unique_ptr<Instance> instance;
    {
      absl::MutexLock lock(&mu_);
      auto ready_or_closed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closed_ || !ready_.empty();
      };
      // A flood of refused peers must not hold Accept past its deadline:
      // after a refusal the deadline is checked even if more are ready.
      if (!closed_ && refused_one && deadline.expired()) {
        return MakeError(absl::StatusCode::kDeadlineExceeded, "Accept", name_,
                         "timed out (every peer that came was refused by "
                         "the authorisation callback)");
      }
      mu_.AwaitWithDeadline(absl::Condition(&ready_or_closed), deadline.when());
      if (!closed_ && ready_.empty() && AnyPendingConnected()) {
        // A client connected just now (or before a zero timeout began) and
        // the listener thread has yet to move its instance to ready_. It is
        // already there for the caller, so wait for that round instead of
        // timing out. The thread wakes when the instance's event is set; this
        // call cannot take the instance itself, since the thread waits on
        // that event handle without the lock. Bounded in case the thread is
        // starved or the client has already left again.
        auto moved = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return closed_ || !ready_.empty();
        };
        SetEvent(wake_event_.get());
        mu_.AwaitWithTimeout(absl::Condition(&moved),
                             absl::Milliseconds(kConnectedWaitMs));
      }
      if (closed_) {
        return MakeError(absl::StatusCode::kCancelled, "Accept", name_,
                         "the listener was closed");
      }
      if (ready_.empty()) {
        return MakeError(absl::StatusCode::kDeadlineExceeded, "Accept", name_,
                         "timed out");
      }
      instance = std::move(ready_.front());
      ready_.pop_front();
      SetEvent(wake_event_.get());  // Room for another instance, maybe.
    }
    // From here the instance is this call's: it must become a channel or be
    // dropped, whatever happens (an allocation failure, or an exception of
    // the authorisation callback, which passes through).
    PeerInfo peer;
    try {
      peer = ClientPeerInfo(instance->pipe.get());
      if (options_.authorize) {
        // Called without the lock: the callback may take its time.
        const absl::Status allowed = options_.authorize(peer);
        if (!allowed.ok()) {
          Refuse(std::move(instance));
          refused_one = true;
          continue;
        }
      }
    } catch (...) {
      if (instance != nullptr) DropTaken(std::move(instance));
      throw;
    }
    if (this->closed()) {
      // Closed while the callback ran: Accept calls return Cancelled.
      DropTaken(std::move(instance));
      return MakeError(absl::StatusCode::kCancelled, "Accept", name_,
                       "the listener was closed");
    }
    return MakeChannel(std::move(instance), std::move(peer));
  }
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> ListenerState::MakeChannel(
    std::unique_ptr<Instance> instance, PeerInfo peer) {
  ChannelSetup setup;
  setup.pipe = std::move(instance->pipe);
  instance.reset();
  setup.mode = options_.mode;
  setup.can_read = options_.access != PipeAccess::kOutbound;
  setup.can_write = options_.access != PipeAccess::kInbound;
  setup.server = true;
  setup.max_message_size = options_.max_message_size;
  setup.max_handles_per_message =
      static_cast<size_t>(options_.max_handles_per_message);
  // From here Win32Channel::Create reports the instance's end.
  setup.owner = shared_from_this();
  setup.peer = std::move(peer);
  setup.has_peer = true;
  try {
    setup.name = name_;
  } catch (const std::bad_alloc&) {
    setup.pipe.reset();
    InstanceClosed();
    throw;
  }
  absl::StatusOr<std::unique_ptr<Win32Channel>> channel =
      Win32Channel::Create(std::move(setup));
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<ChannelImpl>(std::move(*channel));
}

void ListenerState::WaitForAcceptsToLeave() {
  absl::MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return accepting_ == 0;
  };
  mu_.Await(absl::Condition(&none));
}

void ListenerState::Refuse(std::unique_ptr<Instance> instance) {
  // The refused client sees the pipe disconnected: its reads end
  // (OutOfRange) and its writes fail (Unavailable). Nothing it sent is
  // read.
  DisconnectNamedPipe(instance->pipe.get());
  absl::MutexLock lock(&mu_);
  // Enough instances listen already (a flood of refused peers must not
  // grow the pool past what one wait can watch).
  if (closed_ || pending_.size() >= kPendingTarget) {
    DropInstance(std::move(instance));
    SetEvent(wake_event_.get());
    return;
  }
  StartConnect(std::move(instance));
  SetEvent(wake_event_.get());  // Wait on the instance's event again.
}

bool ListenerState::Close() {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  closed_ = true;
  if (meta_ != nullptr) meta_->MarkClosed();
  SetEvent(wake_event_.get());
  return true;
}

void ListenerState::CloseInstances() {
  // Runs from the destructor too, so it must not allocate (a new deque
  // would): the instances are closed in place, under the lock. The
  // listener thread has stopped, so nothing else waits for it.
  absl::MutexLock lock(&mu_);
  for (auto& instance : pending_) {
    CancelIoEx(instance->pipe.get(), &instance->ov);
    DWORD bytes = 0;
    GetOverlappedResult(instance->pipe.get(), &instance->ov, &bytes, TRUE);
  }
  live_ -= static_cast<int>(pending_.size() + ready_.size());
  pending_.clear();
  // Clients connected but never accepted see the pipe broken.
  ready_.clear();
}

// --- Win32Listener -----------------------------------------------------------

absl::StatusOr<std::unique_ptr<Win32Listener>> Win32Listener::Create(
    absl::string_view name, const ListenerOptions& options) {
  absl::StatusOr<std::wstring> path = PipePath("Listen", name);
  if (!path.ok()) return path.status();
  ScopedHandle wake_event(NewEvent(false));
  if (!wake_event.valid()) {
    return Win32Status(GetLastError(), ErrorContext::kGeneric, "Listen", name);
  }
  absl::StatusOr<ListenerSecurity> security =
      BuildListenerSecurity(name, options.access_policy);
  if (!security.ok()) return security.status();
  auto state = std::make_shared<ListenerState>(
      std::string(name), *std::move(path), options, *std::move(security),
      std::move(wake_event));
  absl::Status started = state->Start();
  if (!started.ok()) return started;
  std::unique_ptr<Win32Listener> listener(new (std::nothrow)
                                              Win32Listener(state));
  if (listener == nullptr) {
    state->Close();
    return OutOfResources("Listen", name, "out of memory");
  }
  absl::MutexLock lock(&listener->thread_mu_);
  try {
    listener->thread_ = std::thread([state]() { state->Run(); });
  } catch (const std::exception&) {
    // std::system_error (no thread) or std::bad_alloc: no listener.
    state->Close();
    return OutOfResources("Listen", name, "cannot start the listener's thread");
  }
  return listener;
}

Win32Listener::Win32Listener(std::shared_ptr<ListenerState> state)
    : state_(std::move(state)) {}

Win32Listener::~Win32Listener() {
  Close();
  // A thread blocked in Accept has been woken with Cancelled; nothing of
  // this listener may go away before it has left.
  state_->WaitForAcceptsToLeave();
}

bool Win32Listener::is_open() const { return !state_->closed(); }

absl::string_view Win32Listener::name() const { return state_->name(); }

const ListenerOptions& Win32Listener::options() const {
  return state_->options();
}

bool Win32Listener::shared_memory_offered() const {
  return OffersSharedMemory(state_->options());
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> Win32Listener::Accept(
    absl::Duration timeout) {
  // The call holds the state itself: a destructor running meanwhile waits
  // for it to leave (WaitForAcceptsToLeave), then drops only its own
  // reference.
  std::shared_ptr<ListenerState> state = state_;
  return NoThrow("Accept", state->name(),
                 [&] { return state->Accept(timeout); });
}

void Win32Listener::Close() {
  state_->Close();
  std::thread thread;
  {
    absl::MutexLock lock(&thread_mu_);
    thread.swap(thread_);
  }
  if (thread.joinable()) {
    thread.join();
    state_->CloseInstances();
  }
}

}  // namespace win32

absl::StatusOr<std::unique_ptr<ListenerImpl>> BackendListen(
    absl::string_view name, const ListenerOptions& options) {
  return win32::NoThrow(
      "Listen", name, [&]() -> absl::StatusOr<std::unique_ptr<ListenerImpl>> {
        absl::StatusOr<std::unique_ptr<win32::Win32Listener>> listener =
            win32::Win32Listener::Create(name, options);
        if (!listener.ok()) return listener.status();
        return std::unique_ptr<ListenerImpl>(std::move(*listener));
      });
}

}  // namespace internal
}  // namespace canal
