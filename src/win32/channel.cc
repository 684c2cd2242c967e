// SPDX-License-Identifier: Apache-2.0
#include "src/win32/channel.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/internal/little_endian.h"
#include "src/internal/status_macros.h"
#include "src/win32/envelope.h"
#include "src/win32/security.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

// First read of a message of unknown size; ERROR_MORE_DATA plus
// PeekNamedPipe then give the exact size of the rest.
constexpr size_t kFirstChunk = 4096;
// The most one ReadFile / WriteFile moves (a DWORD count).
constexpr size_t kMaxIo = 0x40000000;

// Closes `remote` in `process` (a handle we duplicated there).
void CloseRemote(HANDLE process, HANDLE remote) {
  DuplicateHandle(process, remote, nullptr, nullptr, 0, FALSE,
                  DUPLICATE_CLOSE_SOURCE);
}

}  // namespace

// --- InFlight ---------------------------------------------------------------

Win32Channel::InFlight::InFlight(Win32Channel* channel)
    : channel_(channel), handle_(nullptr) {
  absl::MutexLock lock(&channel_->mu_);
  if (channel_->closed_ || channel_->handle_ == nullptr) return;
  ++channel_->in_flight_;
  handle_ = channel_->handle_;
}

Win32Channel::InFlight::~InFlight() {
  if (handle_ == nullptr) return;
  HANDLE to_close = nullptr;
  {
    absl::MutexLock lock(&channel_->mu_);
    --channel_->in_flight_;
    if (channel_->closed_ && channel_->in_flight_ == 0 &&
        channel_->handle_ != nullptr) {
      to_close = channel_->handle_;
      channel_->handle_ = nullptr;
    }
  }
  if (to_close != nullptr) channel_->ReleaseHandle(to_close);
}

// --- Turns ------------------------------------------------------------------

Win32Channel::Turns::Turns(Win32Channel* channel, int turns,
                           const Deadline& deadline, absl::string_view op)
    : channel_(channel), turns_(0) {
  absl::MutexLock lock(&channel_->mu_);
  auto free_or_closed = [channel,
                         turns]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(channel->mu_) {
    return channel->closed_ || (channel->busy_turns_ & turns) == 0;
  };
  const bool free = channel_->mu_.AwaitWithDeadline(
      absl::Condition(&free_or_closed), deadline.when());
  if (channel_->closed_) {
    status_ = channel_->ClosedError(op);
    return;
  }
  if (!free) {
    status_ =
        MakeError(absl::StatusCode::kDeadlineExceeded, op, channel_->name_,
                  "timed out waiting for another thread's call on "
                  "this channel to finish");
    return;
  }
  channel_->busy_turns_ |= turns;
  turns_ = turns;
}

Win32Channel::Turns::~Turns() {
  if (turns_ == 0) return;
  absl::MutexLock lock(&channel_->mu_);
  channel_->busy_turns_ &= ~turns_;
}

// --- Win32Channel ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Win32Channel>> Win32Channel::Create(
    ChannelSetup setup) {
  ScopedHandle read_event(NewEvent(true));
  ScopedHandle write_event(NewEvent(true));
  ScopedHandle close_event(NewEvent(true));
  if (!read_event.valid() || !write_event.valid() || !close_event.valid()) {
    const DWORD error = GetLastError();
    const std::string name = setup.name;
    const bool server = setup.server;
    std::shared_ptr<InstanceOwner> owner = setup.owner;
    setup.pipe.reset();
    if (server && owner != nullptr) owner->InstanceClosed();
    return Win32Status(error, ErrorContext::kGeneric, "CreateEvent", name);
  }
  // On an allocation failure the instance must still be reported closed.
  const bool server = setup.server;
  std::shared_ptr<InstanceOwner> owner = setup.owner;
  Win32Channel* channel = new (std::nothrow)
      Win32Channel(std::move(setup), std::move(read_event),
                   std::move(write_event), std::move(close_event));
  if (channel == nullptr) {
    // `setup` was not moved from: the constructor never ran.
    setup.pipe.reset();
    if (server && owner != nullptr) owner->InstanceClosed();
    return OutOfResources(server ? "Accept" : "Connect", setup.name,
                          "out of memory");
  }
  return std::unique_ptr<Win32Channel>(channel);
}

Win32Channel::Win32Channel(ChannelSetup setup, ScopedHandle read_event,
                           ScopedHandle write_event, ScopedHandle close_event)
    : mode_(setup.mode),
      can_read_(setup.can_read),
      can_write_(setup.can_write),
      server_(setup.server),
      name_(std::move(setup.name)),
      max_message_size_(setup.max_message_size),
      max_handles_(setup.max_handles_per_message),
      owner_(std::move(setup.owner)),
      peer_(std::move(setup.peer)),
      has_peer_(setup.has_peer),
      shm_offered_(setup.shared_memory_offered),
      read_event_(std::move(read_event)),
      write_event_(std::move(write_event)),
      close_event_(std::move(close_event)),
      handle_(setup.pipe.release()) {}

Win32Channel::~Win32Channel() { Close(); }

bool Win32Channel::is_open() const {
  absl::MutexLock lock(&mu_);
  return !closed_;
}

NativeHandle Win32Channel::native_handle() const {
  absl::MutexLock lock(&mu_);
  return handle_;
}

void Win32Channel::Close() {
  HANDLE to_close = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    SetEvent(close_event_.get());
    if (handle_ != nullptr) {
      // Wakes every operation blocked on the handle, whichever thread
      // issued it; FinishIo also watches close_event_ for an operation that
      // is issued just after this.
      CancelIoEx(handle_, nullptr);
      if (in_flight_ == 0) {
        to_close = handle_;
        handle_ = nullptr;
      }
    }
  }
  if (to_close != nullptr) ReleaseHandle(to_close);
}

void Win32Channel::ReleaseHandle(HANDLE handle) {
  // Neither DisconnectNamedPipe nor FlushFileBuffers: the first would throw
  // away what the peer has not read yet, the second would block until it
  // has. After CloseHandle the peer still reads everything queued, then gets
  // ERROR_BROKEN_PIPE.
  CloseHandle(handle);
  if (server_ && owner_ != nullptr) owner_->InstanceClosed();
}

absl::Status Win32Channel::ClosedError(absl::string_view op) const {
  return MakeError(absl::StatusCode::kCancelled, op, name_,
                   "the channel was closed");
}

absl::Status Win32Channel::IoError(const IoResult& result, ErrorContext context,
                                   absl::string_view op) const {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return ClosedError(op);
  }
  if (result.timed_out) {
    return MakeError(absl::StatusCode::kDeadlineExceeded, op, name_,
                     "timed out");
  }
  if (result.cancelled) return ClosedError(op);
  return Win32Status(result.error, context, op, name_);
}

void Win32Channel::Stash(std::string data, bool more) {
  absl::MutexLock lock(&stash_mu_);
  // Only ever called with the stash drained (reads take from it first).
  stash_ = std::move(data);
  stash_more_ = more;
}

absl::Status Win32Channel::CheckMessageSize(size_t size, absl::string_view op,
                                            bool envelope) const {
  // An envelope's header does not count against the limit (its data is
  // checked once unwrapped).
  if (size <= max_message_size_ ||
      (envelope && size - max_message_size_ <= kEnvelopeMax)) {
    return absl::OkStatus();
  }
  return MakeError(
      absl::StatusCode::kResourceExhausted, op, name_,
      absl::StrCat("the peer sent a message of ", size,
                   " bytes, over the limit of ", max_message_size_, " bytes"));
}

absl::StatusOr<ReadResult> Win32Channel::ReadChunk(HANDLE handle, char* data,
                                                   size_t size,
                                                   const Deadline& deadline,
                                                   absl::string_view op) {
  const DWORD want = static_cast<DWORD>(std::min(size, kMaxIo));
  while (true) {
    OVERLAPPED ov;
    std::memset(&ov, 0, sizeof(ov));
    ov.hEvent = read_event_.get();
    ResetEvent(ov.hEvent);
    const BOOL started = ReadFile(handle, data, want, nullptr, &ov);
    const DWORD start_error = started ? ERROR_SUCCESS : GetLastError();
    const IoResult result = FinishIo(handle, &ov, started, start_error,
                                     close_event_.get(), deadline);
    if (!result.completed()) {
      return IoError(result, ErrorContext::kRead, op);
    }
    if (mode_ == PipeMode::kByte && result.bytes == 0 && want > 0) {
      // A peer's zero-length WriteFile; a byte stream has no empty reads.
      if (deadline.expired()) {
        return MakeError(absl::StatusCode::kDeadlineExceeded, op, name_,
                         "timed out");
      }
      continue;
    }
    ReadResult read;
    read.size = result.bytes;
    read.more = result.error == ERROR_MORE_DATA;
    return read;
  }
}

absl::StatusOr<ReadResult> Win32Channel::Read(absl::Span<char> buffer,
                                              absl::Duration timeout) {
  return NoThrow("Read", name_, [&] { return DoRead(buffer, timeout); });
}

absl::StatusOr<ReadResult> Win32Channel::DoRead(absl::Span<char> buffer,
                                                absl::Duration timeout) {
  const Deadline deadline(timeout);
  Turns turns(this, kReadTurn, deadline, "Read");
  if (!turns.status().ok()) return turns.status();
  if (mode_ == PipeMode::kMessage && at_boundary_) {
    bool whole_from_stash = false;
    {
      absl::MutexLock lock(&stash_mu_);
      whole_from_stash = !stash_.empty();
    }
    // The stash holds the start of a message (a read that failed part-way
    // kept it): read it whole, since it may be an envelope.
    if (whole_from_stash) {
      absl::StatusOr<std::string> whole = DoReadMessage("Read", timeout);
      if (!whole.ok()) return whole.status();
      return DeliverWhole(*std::move(whole), buffer);
    }
  }
  {
    absl::MutexLock lock(&stash_mu_);
    if (!stash_.empty()) {
      ReadResult read;
      read.size = std::min(buffer.size(), stash_.size());
      std::memcpy(buffer.data(), stash_.data(), read.size);
      stash_.erase(0, read.size);
      if (mode_ == PipeMode::kMessage) {
        read.more = !stash_.empty() || stash_more_;
        if (stash_.empty()) stash_more_ = false;
        at_boundary_ = !read.more;
      }
      return read;
    }
  }
  InFlight op(this);
  if (!op.ok()) return ClosedError("Read");
  if (buffer.empty() && mode_ == PipeMode::kByte) return ReadResult();
  absl::StatusOr<ReadResult> read =
      ReadChunk(op.handle(), buffer.data(), buffer.size(), deadline, "Read");
  if (!read.ok() || mode_ != PipeMode::kMessage) return read;
  // The start of a message that may be an envelope (its first bytes are
  // the magic's, as far as they go): read it whole and unwrap it. A read
  // with no buffer took nothing, so the message's first bytes are peeked:
  // only an envelope is read whole then, and any other message stays in the
  // pipe (its writer stays blocked, as the read consumes nothing).
  bool maybe_envelope = false;
  if (buffer.empty()) {
    char first[sizeof(kEnvelopeMagic)];
    DWORD got = 0;
    maybe_envelope = read->more &&
                     PeekNamedPipe(op.handle(), first, sizeof(first), &got,
                                   nullptr, nullptr) &&
                     got == sizeof(first) &&
                     std::memcmp(first, kEnvelopeMagic, sizeof(first)) == 0;
  } else {
    const size_t head = std::min(read->size, sizeof(kEnvelopeMagic));
    maybe_envelope = (read->size >= sizeof(kEnvelopeMagic) || read->more) &&
                     std::memcmp(buffer.data(), kEnvelopeMagic, head) == 0;
  }
  if (!maybe_envelope) {
    at_boundary_ = !read->more;
    return read;
  }
  std::string whole(buffer.data(), read->size);
  if (read->more) {
    absl::Status rest =
        ReadRestOfMessage(op.handle(), &whole, deadline, "Read");
    if (!rest.ok()) return rest;  // The stash keeps the message's start.
  }
  absl::Status unwrapped = Unwrap(op.handle(), "Read", &whole, nullptr);
  if (!unwrapped.ok()) return unwrapped;
  return DeliverWhole(std::move(whole), buffer);
}

ReadResult Win32Channel::DeliverWhole(std::string message,
                                      absl::Span<char> buffer) {
  ReadResult read;
  read.size = std::min(buffer.size(), message.size());
  if (read.size > 0) std::memcpy(buffer.data(), message.data(), read.size);
  read.more = read.size < message.size();
  at_boundary_ = !read.more;
  if (read.more) {
    message.erase(0, read.size);
    Stash(std::move(message), false);
  }
  return read;
}

absl::Status Win32Channel::ReadRestOfMessage(HANDLE handle,
                                             std::string* message,
                                             const Deadline& deadline,
                                             absl::string_view op) {
  while (true) {
    // The first bytes too while none were read, to see whether the message
    // is an envelope (whose header is allowed beyond max_message_size).
    char head[sizeof(kEnvelopeMagic)];
    DWORD head_got = 0;
    DWORD left = 0;
    const bool at_start = message->empty();
    if (!PeekNamedPipe(handle, at_start ? head : nullptr,
                       at_start ? sizeof(head) : 0, &head_got, nullptr,
                       &left)) {
      left = head_got = 0;
    }
    left += head_got;  // What is left after the bytes peeked, plus those.
    const bool envelope =
        mode_ == PipeMode::kMessage &&
        (at_start ? head_got == sizeof(head) &&
                        std::memcmp(head, kEnvelopeMagic, sizeof(head)) == 0
                  : StartsWithMagic(*message));
    const size_t chunk = left > 0 ? left : kFirstChunk;
    const size_t old_size = message->size();
    if (!CheckMessageSize(old_size + left, op, envelope).ok()) {
      if (old_size > 0) Stash(std::move(*message), true);
      return CheckMessageSize(old_size + left, op, envelope);
    }
    try {
      message->resize(old_size + chunk);
    } catch (const std::bad_alloc&) {
      // What was read stays readable; the rest is still in the pipe.
      if (old_size > 0) Stash(std::move(*message), true);
      return OutOfResources(op, name_,
                            absl::StrCat("out of memory for a message of ",
                                         old_size + chunk, " bytes or more"));
    }
    absl::StatusOr<ReadResult> read =
        ReadChunk(handle, &(*message)[old_size], chunk, deadline, op);
    if (!read.ok()) {
      message->resize(old_size);
      // Nothing may be lost: keep what was taken for the next read.
      if (old_size > 0) Stash(std::move(*message), true);
      return read.status();
    }
    message->resize(old_size + read->size);
    if (!read->more) return absl::OkStatus();
    const bool is_envelope = StartsWithMagic(*message);
    if (!CheckMessageSize(message->size(), op, is_envelope).ok()) {
      const size_t size = message->size();
      Stash(std::move(*message), true);
      return CheckMessageSize(size, op, is_envelope);
    }
  }
}

absl::StatusOr<std::string> Win32Channel::ReadMessage(absl::Duration timeout) {
  return NoThrow("ReadMessage", name_,
                 [&] { return DoReadMessage("ReadMessage", timeout); });
}

absl::StatusOr<MessageWithHandles> Win32Channel::ReadMessageWithHandles(
    absl::Duration timeout) {
  constexpr absl::string_view kOp = "ReadMessageWithHandles";
  return NoThrow(kOp, name_, [&]() -> absl::StatusOr<MessageWithHandles> {
    MessageWithHandles result;
    absl::StatusOr<std::string> data =
        DoReadMessage(kOp, timeout, &result.handles);
    if (!data.ok()) return data.status();
    result.data = *std::move(data);
    return result;
  });
}

absl::StatusOr<std::string> Win32Channel::DoReadMessage(
    absl::string_view op_name, absl::Duration timeout,
    std::vector<OwnedHandle>* handles) {
  const Deadline deadline(timeout);
  // DoRead calls this with the read turn already held.
  const bool nested = op_name == "Read";
  Turns turns(this, nested ? 0 : kReadTurn, deadline, op_name);
  if (!turns.status().ok()) return turns.status();
  const bool from_start = at_boundary_;
  std::string message;
  bool more = true;
  {
    absl::MutexLock lock(&stash_mu_);
    if (!stash_.empty()) {
      message = std::move(stash_);
      stash_.clear();
      more = stash_more_;
      stash_more_ = false;
    }
  }
  if (!more) {
    // The rest of a message a Read began (already unwrapped).
    at_boundary_ = true;
    return message;
  }
  InFlight op(this);
  if (!op.ok()) return ClosedError(op_name);
  absl::Status status =
      ReadRestOfMessage(op.handle(), &message, deadline, op_name);
  if (!status.ok()) return status;
  at_boundary_ = true;
  if (from_start) {
    absl::Status unwrapped = Unwrap(op.handle(), op_name, &message, handles);
    if (!unwrapped.ok()) return unwrapped;
  }
  return message;
}

absl::Status Win32Channel::Write(absl::string_view op, absl::string_view data,
                                 absl::Duration timeout) {
  return NoThrow(op, name_, [&] { return DoWrite(op, data, timeout); });
}

absl::Status Win32Channel::DoWrite(absl::string_view op_name,
                                   absl::string_view data,
                                   absl::Duration timeout) {
  const Deadline deadline(timeout);
  Turns turns(this, kWriteTurn, deadline, op_name);
  if (!turns.status().ok()) return turns.status();
  InFlight op(this);
  if (!op.ok()) return ClosedError(op_name);
  if (mode_ == PipeMode::kMessage && StartsWithMagic(data)) {
    return WriteLocked(op.handle(), op_name, MakeEnvelope({}, data), deadline);
  }
  return WriteLocked(op.handle(), op_name, data, deadline);
}

absl::Status Win32Channel::WriteLocked(HANDLE handle, absl::string_view op_name,
                                       absl::string_view data,
                                       const Deadline& deadline) {
  // A zero-length WriteFile on a byte pipe would wake the reader with an
  // empty read; a stream has nothing to send.
  if (data.empty() && mode_ == PipeMode::kByte) return absl::OkStatus();
  size_t done = 0;
  do {
    const size_t rest = data.size() - done;
    // A message is exactly one WriteFile (the front end bounds its size).
    const DWORD chunk = static_cast<DWORD>(
        mode_ == PipeMode::kMessage ? rest : std::min(rest, kMaxIo));
    OVERLAPPED ov;
    std::memset(&ov, 0, sizeof(ov));
    ov.hEvent = write_event_.get();
    ResetEvent(ov.hEvent);
    const BOOL started =
        WriteFile(handle, data.data() + done, chunk, nullptr, &ov);
    const DWORD start_error = started ? ERROR_SUCCESS : GetLastError();
    const IoResult result = FinishIo(handle, &ov, started, start_error,
                                     close_event_.get(), deadline);
    if (!result.completed()) {
      return IoError(result, ErrorContext::kWrite, op_name);
    }
    if (mode_ == PipeMode::kMessage) {
      if (result.bytes != chunk) {
        return MakeError(absl::StatusCode::kUnavailable, op_name, name_,
                         absl::StrCat("only ", result.bytes, " of ", chunk,
                                      " bytes of the message were written"));
      }
      break;
    }
    if (result.bytes == 0) {
      return MakeError(absl::StatusCode::kUnavailable, op_name, name_,
                       "the pipe accepted no data");
    }
    done += result.bytes;
  } while (done < data.size());
  return absl::OkStatus();
}

absl::Status Win32Channel::WriteWithHandles(
    absl::string_view op, absl::string_view data,
    absl::Span<const NativeHandle> handles, absl::Duration timeout) {
  return NoThrow(op, name_, [&] {
    return DoWriteWithHandles(op, data, handles, timeout);
  });
}

absl::StatusOr<HANDLE> Win32Channel::PeerProcess(HANDLE pipe,
                                                 absl::string_view op) {
  absl::MutexLock lock(&peer_mu_);
  if (peer_process_.valid()) return peer_process_.get();
  ULONG pid = 0;
  const BOOL ok = server_ ? GetNamedPipeClientProcessId(pipe, &pid)
                          : GetNamedPipeServerProcessId(pipe, &pid);
  if (!ok) {
    return Win32Status(GetLastError(), ErrorContext::kGeneric, op, name_,
                       "cannot learn the peer's process id");
  }
  // SYNCHRONIZE as well, to tell a peer that has exited from a refusal.
  ScopedHandle process(
      OpenProcess(PROCESS_DUP_HANDLE | SYNCHRONIZE, FALSE, pid));
  if (!process.valid()) {
    process.reset(OpenProcess(PROCESS_DUP_HANDLE, FALSE, pid));
  }
  if (!process.valid()) {
    const DWORD error = GetLastError();
    return MakeError(absl::StatusCode::kPermissionDenied, op, name_,
                     absl::StrCat("cannot open the peer's process (pid ", pid,
                                  ") to duplicate handles into it: ",
                                  DescribeWin32Error(error)));
  }
  // The pid was read before the process was opened: had the peer ended in
  // between and its pid gone to another process, the pipe would now report
  // no pid or another one. Kept open from here, the pid cannot be reused.
  ULONG again = 0;
  const BOOL still = server_ ? GetNamedPipeClientProcessId(pipe, &again)
                             : GetNamedPipeServerProcessId(pipe, &again);
  if (!still || again != pid) {
    return MakeError(absl::StatusCode::kUnavailable, op, name_,
                     "the peer's process changed while it was opened");
  }
  peer_process_ = std::move(process);
  return peer_process_.get();
}

absl::Status Win32Channel::DuplicateIntoPeer(
    HANDLE pipe, absl::string_view op, absl::Span<const NativeHandle> handles,
    HANDLE* peer, std::vector<uint64_t>* values) {
  absl::StatusOr<HANDLE> process = PeerProcess(pipe, op);
  if (!process.ok()) return process.status();
  *peer = *process;
  values->reserve(handles.size());
  for (size_t i = 0; i < handles.size(); ++i) {
    HANDLE remote = nullptr;
    if (!DuplicateHandle(GetCurrentProcess(), handles[i], *peer, &remote, 0,
                         FALSE, DUPLICATE_SAME_ACCESS)) {
      const DWORD error = GetLastError();
      CloseInPeer(*peer, *values);
      values->clear();
      if (WaitForSingleObject(*peer, 0) == WAIT_OBJECT_0) {
        return MakeError(absl::StatusCode::kUnavailable, op, name_,
                         absl::StrCat("the peer's process has exited (",
                                      DescribeWin32Error(error), ")"));
      }
      return MakeError(error == ERROR_INVALID_HANDLE
                           ? absl::StatusCode::kInvalidArgument
                           : CodeForWin32Error(error, ErrorContext::kGeneric),
                       op, name_,
                       absl::StrCat("cannot duplicate handle ", i,
                                    " into the peer's process: ",
                                    DescribeWin32Error(error)));
    }
    values->push_back(
        static_cast<uint64_t>(reinterpret_cast<uintptr_t>(remote)));
  }
  return absl::OkStatus();
}

void Win32Channel::CloseInPeer(HANDLE peer,
                               const std::vector<uint64_t>& values) {
  for (uint64_t v : values) {
    CloseRemote(peer, reinterpret_cast<HANDLE>(static_cast<uintptr_t>(v)));
  }
}

absl::Status Win32Channel::DoWriteWithHandles(
    absl::string_view op_name, absl::string_view data,
    absl::Span<const NativeHandle> handles, absl::Duration timeout) {
  const Deadline deadline(timeout);
  Turns turns(this, kWriteTurn, deadline, op_name);
  if (!turns.status().ok()) return turns.status();
  InFlight op(this);
  if (!op.ok()) return ClosedError(op_name);
  HANDLE peer = nullptr;
  std::vector<uint64_t> values;
  CANAL_RETURN_IF_ERROR(
      DuplicateIntoPeer(op.handle(), op_name, handles, &peer, &values));
  // Duplicates live in the peer from here: every failure closes them there.
  auto undo = [&] { CloseInPeer(peer, values); };
  std::string envelope;
  try {
    envelope = MakeEnvelope(values, data);
  } catch (const std::bad_alloc&) {
    undo();
    throw;
  }
  absl::Status written = WriteLocked(op.handle(), op_name, envelope, deadline);
  if (!written.ok()) undo();
  return written;
}

absl::StatusOr<bool> Win32Channel::PeerIsSameUser(HANDLE pipe,
                                                  absl::string_view op) {
  absl::MutexLock lock(&peer_mu_);
  if (trust_known_) return same_user_;
  ULONG pid = 0;
  const BOOL ok = server_ ? GetNamedPipeClientProcessId(pipe, &pid)
                          : GetNamedPipeServerProcessId(pipe, &pid);
  if (!ok) {
    return Win32Status(GetLastError(), ErrorContext::kGeneric, op, name_,
                       "cannot learn the peer's process id");
  }
  DWORD error = ERROR_SUCCESS;
  absl::StatusOr<std::wstring> theirs = ProcessUserSid(pid, &error);
  absl::StatusOr<std::wstring> ours = CurrentUserSid();
  if (!ours.ok()) return ours.status();
  // A peer whose user cannot be read is not trusted.
  same_user_ = theirs.ok() && *theirs == *ours;
  trust_known_ = true;
  return same_user_;
}

absl::Status Win32Channel::Unwrap(HANDLE pipe, absl::string_view op,
                                  std::string* message,
                                  std::vector<OwnedHandle>* handles) {
  if (!StartsWithMagic(*message)) return absl::OkStatus();
  if (message->size() < kEnvelopeHeader) {
    return MakeError(absl::StatusCode::kDataLoss, op, name_,
                     "malformed handle envelope: shorter than its header");
  }
  const uint64_t count = GetLe(message->data() + 16, 4);
  if (count == 0) {
    message->erase(0, kEnvelopeHeader);
    return CheckMessageSize(message->size(), op, false);
  }
  const size_t room = (message->size() - kEnvelopeHeader) / 8;
  if (room < count) {
    return MakeError(
        absl::StatusCode::kDataLoss, op, name_,
        absl::StrCat("malformed handle envelope: it names ", count,
                     " handles but has room for ", room, "; none was touched"));
  }
  // The values name handles in our process. Only a peer running as our
  // own user may have put them there; from anyone else a value could name
  // any handle we hold, so none is used, not even to close it.
  absl::StatusOr<bool> same_user = PeerIsSameUser(pipe, op);
  if (!same_user.ok()) return same_user.status();
  if (!*same_user) {
    return MakeError(absl::StatusCode::kDataLoss, op, name_,
                     absl::StrCat("the peer, running as another user, sent a "
                                  "message naming ",
                                  count,
                                  " handles; they are not trusted and were "
                                  "not touched"));
  }
  std::vector<OwnedHandle> got;
  got.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    got.emplace_back(reinterpret_cast<HANDLE>(static_cast<uintptr_t>(
        GetLe(message->data() + kEnvelopeHeader + 8 * i, 8))));
  }
  if (count > max_handles_) {
    return MakeError(absl::StatusCode::kDataLoss, op, name_,
                     absl::StrCat("the peer sent a message with ", count,
                                  " handles; the limit is ", max_handles_,
                                  " (max_handles_per_message); they were "
                                  "closed"));
  }
  message->erase(0, kEnvelopeHeader + 8 * static_cast<size_t>(count));
  if (message->size() > max_message_size_) {
    return CheckMessageSize(message->size(), op, false);  // Handles closed.
  }
  if (handles != nullptr) *handles = std::move(got);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Win32Channel::Transact(absl::string_view op,
                                                   absl::string_view request,
                                                   absl::Duration timeout) {
  return NoThrow(op, name_, [&] { return DoTransact(op, request, timeout); });
}

absl::StatusOr<std::string> Win32Channel::DoTransact(absl::string_view op,
                                                     absl::string_view request,
                                                     absl::Duration timeout) {
  const Deadline deadline(timeout);
  // Both turns at once, so that a Transact never holds one while it waits
  // for the other.
  Turns turns(this, kReadTurn | kWriteTurn, deadline, op);
  if (!turns.status().ok()) return turns.status();
  {
    absl::MutexLock lock(&stash_mu_);
    if (!stash_.empty()) {
      return MakeError(absl::StatusCode::kFailedPrecondition, op, name_,
                       "part of a message is still unread");
    }
  }
  InFlight io(this);
  if (!io.ok()) return ClosedError(op);
  std::string escaped;
  if (StartsWithMagic(request)) {
    escaped = MakeEnvelope({}, request);
    request = escaped;
  }
  std::string reply(kFirstChunk, '\0');
  OVERLAPPED ov;
  std::memset(&ov, 0, sizeof(ov));
  ov.hEvent = read_event_.get();
  ResetEvent(ov.hEvent);
  // TransactNamedPipe takes a non-const input buffer but only reads it.
  const BOOL started =
      TransactNamedPipe(io.handle(), const_cast<char*>(request.data()),
                        static_cast<DWORD>(request.size()), &reply[0],
                        static_cast<DWORD>(reply.size()), nullptr, &ov);
  const DWORD start_error = started ? ERROR_SUCCESS : GetLastError();
  const IoResult result = FinishIo(io.handle(), &ov, started, start_error,
                                   close_event_.get(), deadline);
  if (!result.completed()) {
    if (result.error == ERROR_BAD_PIPE) {
      // Wine reports a transaction on a pipe whose peer has gone as
      // ERROR_BAD_PIPE; report what PeekNamedPipe says about the pipe.
      DWORD total = 0;
      if (!PeekNamedPipe(io.handle(), nullptr, 0, nullptr, &total, nullptr)) {
        IoResult broken = result;
        broken.error = GetLastError();
        return IoError(broken, ErrorContext::kWrite, op);
      }
    }
    return IoError(result, ErrorContext::kTransact, op);
  }
  reply.resize(result.bytes);
  if (result.error == ERROR_MORE_DATA) {
    absl::Status status = ReadRestOfMessage(io.handle(), &reply, deadline, op);
    if (!status.ok()) return status;
  }
  // A reply with handles gives its data; its handles are closed.
  absl::Status unwrapped = Unwrap(io.handle(), op, &reply, nullptr);
  if (!unwrapped.ok()) return unwrapped;
  return reply;
}

absl::StatusOr<PeekResult> Win32Channel::Peek(absl::Span<char> buffer) {
  return NoThrow("Peek", name_, [&] { return DoPeek(buffer); });
}

absl::StatusOr<PeekResult> Win32Channel::DoPeek(absl::Span<char> buffer) {
  InFlight op(this);
  if (!op.ok()) return ClosedError("Peek");
  absl::MutexLock lock(&stash_mu_);
  PeekResult peek;
  if (!stash_.empty()) {
    peek.size = std::min(buffer.size(), stash_.size());
    std::memcpy(buffer.data(), stash_.data(), peek.size);
  }
  // In message mode only the current message is copied: a complete stashed
  // message is the current one.
  const bool from_pipe =
      stash_.empty() || mode_ == PipeMode::kByte || stash_more_;
  const size_t room = from_pipe ? buffer.size() - peek.size : 0;
  DWORD copied = 0;
  DWORD total = 0;
  DWORD left = 0;
  if (!PeekNamedPipe(
          op.handle(), room > 0 ? buffer.data() + peek.size : nullptr,
          static_cast<DWORD>(std::min(room, kMaxIo)), &copied, &total, &left)) {
    const DWORD error = GetLastError();
    if (stash_.empty()) {
      return Win32Status(error, ErrorContext::kRead, "Peek", name_);
    }
    copied = total = left = 0;  // The peer is gone; the stash is all there is.
  }
  const char* peeked = buffer.data() + peek.size;
  const bool maybe_envelope =
      copied >= sizeof(kEnvelopeMagic)
          ? std::memcmp(peeked, kEnvelopeMagic, sizeof(kEnvelopeMagic)) == 0
          : copied == std::min(room, kMaxIo) &&
                static_cast<size_t>(left) + copied >= kEnvelopeHeader &&
                (copied == 0 ||
                 std::memcmp(peeked, kEnvelopeMagic, copied) == 0);
  if (from_pipe && stash_.empty() && mode_ == PipeMode::kMessage &&
      at_boundary_.load(std::memory_order_relaxed) && maybe_envelope) {
    // The current message may be an envelope: show its data, not its
    // header (later messages' envelopes still count in `available`).
    std::string head;
    const size_t want = std::min<size_t>(
        static_cast<size_t>(left) + copied,
        kEnvelopeMax + std::min(buffer.size(), kMaxIo - kEnvelopeMax));
    head.resize(want);
    DWORD head_copied = 0;
    if (want >= kEnvelopeHeader &&
        PeekNamedPipe(op.handle(), &head[0], static_cast<DWORD>(want),
                      &head_copied, &total, &left)) {
      head.resize(head_copied);
      const uint64_t count =
          head.size() >= kEnvelopeHeader ? GetLe(head.data() + 16, 4) : 0;
      const size_t skip = kEnvelopeHeader + 8 * static_cast<size_t>(count);
      if (StartsWithMagic(head) && count <= kMaxHandlesPerMessageLimit &&
          head.size() >= skip) {
        copied =
            static_cast<DWORD>(std::min(buffer.size(), head.size() - skip));
        if (copied > 0) std::memcpy(buffer.data(), head.data() + skip, copied);
        left = static_cast<DWORD>(head_copied - skip - copied + left);
        total -= static_cast<DWORD>(skip);
      }
    }
  }
  if (from_pipe) peek.size += copied;
  peek.available = stash_.size() + total;
  if (mode_ == PipeMode::kMessage) {
    // lpBytesLeftThisMessage is what remains after the bytes peeked.
    const size_t pipe_remaining = static_cast<size_t>(left) + copied;
    peek.message_remaining =
        stash_.empty() ? pipe_remaining
                       : stash_.size() + (stash_more_ ? pipe_remaining : 0);
  }
  return peek;
}

absl::StatusOr<PeerInfo> Win32Channel::Peer() {
  return NoThrow("Peer", name_, [&] { return DoPeer(); });
}

absl::StatusOr<PeerInfo> Win32Channel::DoPeer() {
  InFlight op(this);
  if (!op.ok()) return ClosedError("Peer");
  if (has_peer_) return peer_;
  ULONG pid = 0;
  const BOOL ok = server_ ? GetNamedPipeClientProcessId(op.handle(), &pid)
                          : GetNamedPipeServerProcessId(op.handle(), &pid);
  if (!ok) {
    return Win32Status(GetLastError(), ErrorContext::kGeneric, "Peer", name_);
  }
  PeerInfo info;
  info.process_id = static_cast<int64_t>(pid);
  DWORD error = ERROR_SUCCESS;
  absl::StatusOr<std::wstring> sid = ProcessUserSid(pid, &error);
  if (sid.ok()) info.user_sid = SidToUtf8(*sid);
  return info;
}

absl::Status Win32Channel::RunAsClient(absl::FunctionRef<void()> fn) {
  if (!server_) {
    return MakeError(absl::StatusCode::kFailedPrecondition, "RunAsClient",
                     name_,
                     "needs a listener-side channel (from Accept); this one "
                     "was connected as a client");
  }
  InFlight op(this);
  if (!op.ok()) return ClosedError("RunAsClient");
  return Impersonate(op.handle(), fn, name_);
}

// --- The shared-memory transport's set-up ----------------------------------

namespace {

constexpr size_t kSetupHeader = 8;

}  // namespace

absl::Status Win32Channel::WriteSetup(absl::string_view data,
                                      absl::Span<const NativeHandle> handles,
                                      absl::Duration timeout) {
  return NoThrow("Accept", name_,
                 [&] { return DoWriteSetup(data, handles, timeout); });
}

absl::Status Win32Channel::DoWriteSetup(absl::string_view data,
                                        absl::Span<const NativeHandle> handles,
                                        absl::Duration timeout) {
  constexpr absl::string_view kOp = "Accept";
  const Deadline deadline(timeout);
  Turns turns(this, kWriteTurn, deadline, kOp);
  if (!turns.status().ok()) return turns.status();
  InFlight op(this);
  if (!op.ok()) return ClosedError(kOp);
  std::vector<uint64_t> values;
  HANDLE peer = nullptr;
  if (!handles.empty()) {
    // A client of another user would not trust the values (it could not
    // tell them from values naming any of its handles), so it would hold
    // them, untouched, until it exits: such a client is not sent any.
    absl::StatusOr<bool> same_user = PeerIsSameUser(op.handle(), kOp);
    if (!same_user.ok()) return same_user.status();
    if (!*same_user) {
      return MakeError(absl::StatusCode::kPermissionDenied, kOp, name_,
                       "the client runs as another user; no handles are "
                       "duplicated into its process");
    }
    CANAL_RETURN_IF_ERROR(
        DuplicateIntoPeer(op.handle(), kOp, handles, &peer, &values));
  }
  auto undo = [&] { CloseInPeer(peer, values); };
  std::string record;
  try {
    record.assign(kSetupHeader + data.size() + 8 * values.size(), '\0');
  } catch (const std::bad_alloc&) {
    undo();
    throw;
  }
  PutLe(&record[0], values.size(), 4);
  std::memcpy(&record[kSetupHeader], data.data(), data.size());
  for (size_t v = 0; v < values.size(); ++v) {
    PutLe(&record[kSetupHeader + data.size() + 8 * v], values[v], 8);
  }
  absl::Status written = WriteLocked(op.handle(), kOp, record, deadline);
  if (!written.ok()) undo();
  return written;
}

absl::Status Win32Channel::ReadExactly(HANDLE handle, char* out, size_t size,
                                       const Deadline& deadline,
                                       absl::string_view op) {
  size_t got = 0;
  while (got < size) {
    absl::StatusOr<ReadResult> read =
        ReadChunk(handle, out + got, size - got, deadline, op);
    if (!read.ok()) {
      if (absl::IsDeadlineExceeded(read.status()) && got > 0) {
        return MakeError(absl::StatusCode::kDataLoss, op, name_,
                         absl::StrCat("timed out after ", got, " of ", size,
                                      " bytes of the shared-memory set-up"));
      }
      return read.status();
    }
    got += read->size;
  }
  return absl::OkStatus();
}

absl::StatusOr<MessageWithHandles> Win32Channel::ReadSetup(
    size_t size, size_t handles, absl::Duration timeout) {
  return NoThrow("Connect", name_, [&] {
    absl::StatusOr<MessageWithHandles> got =
        DoReadSetup(size, handles, timeout);
    // The end of the pipe, as the set-up hook reports it.
    if (absl::IsOutOfRange(got.status())) {
      return absl::StatusOr<MessageWithHandles>(
          MakeError(absl::StatusCode::kUnavailable, "Connect", name_,
                    absl::StrCat("the peer closed the connection during the "
                                 "shared-memory set-up (",
                                 got.status().message(), ")")));
    }
    return got;
  });
}

absl::StatusOr<MessageWithHandles> Win32Channel::DoReadSetup(
    size_t size, size_t handles, absl::Duration timeout) {
  constexpr absl::string_view kOp = "Connect";
  const Deadline deadline(timeout);
  Turns turns(this, kReadTurn, deadline, kOp);
  if (!turns.status().ok()) return turns.status();
  InFlight op(this);
  if (!op.ok()) return ClosedError(kOp);
  // With no time to wait (a call that only looks whether the offer came),
  // nothing is read until all of it is there; it comes in one write, so
  // the reads below then find it and need no more time than a moment.
  Deadline within = deadline;
  if (deadline.expired()) {
    char head[kSetupHeader];
    DWORD copied = 0;
    DWORD available = 0;
    if (!PeekNamedPipe(op.handle(), head, sizeof(head), &copied, &available,
                       nullptr)) {
      return Win32Status(GetLastError(), ErrorContext::kRead, kOp, name_,
                         "cannot look for the shared-memory set-up");
    }
    size_t need = kSetupHeader + size;
    if (copied == sizeof(head)) {
      need += 8 * std::min<size_t>(GetLe(head, 4), handles);
    }
    if (available < need) {
      return MakeError(absl::StatusCode::kDeadlineExceeded, kOp, name_,
                       "the shared-memory set-up has not come yet");
    }
    within = Deadline(absl::Seconds(1));
  }
  const size_t most = kSetupHeader + size + 8 * handles;
  std::string record(most, '\0');
  size_t count = 0;
  if (mode_ == PipeMode::kMessage) {
    absl::StatusOr<ReadResult> read =
        ReadChunk(op.handle(), &record[0], most, within, kOp);
    if (!read.ok()) return read.status();
    count = static_cast<size_t>(GetLe(record.data(), 4));
    // A longer message is not read on: the channel is unusable anyway, and
    // a hostile one could be gigabytes.
    if (read->more || read->size < kSetupHeader || count > handles ||
        GetLe(record.data() + 4, 4) != 0 ||
        read->size != kSetupHeader + size + 8 * count) {
      return MakeError(absl::StatusCode::kDataLoss, kOp, name_,
                       "malformed shared-memory set-up message; no handle "
                       "value in it was touched");
    }
  } else {
    CANAL_RETURN_IF_ERROR(
        ReadExactly(op.handle(), &record[0], kSetupHeader, within, kOp));
    count = static_cast<size_t>(GetLe(record.data(), 4));
    if (count > handles || GetLe(record.data() + 4, 4) != 0) {
      return MakeError(absl::StatusCode::kDataLoss, kOp, name_,
                       "malformed shared-memory set-up header; no handle "
                       "value in it was touched");
    }
    absl::Status rest = ReadExactly(op.handle(), &record[kSetupHeader],
                                    size + 8 * count, within, kOp);
    if (absl::IsDeadlineExceeded(rest)) {
      // The header is gone from the pipe: the stream cannot be resumed.
      return MakeError(absl::StatusCode::kDataLoss, kOp, name_,
                       "timed out after the header of the shared-memory "
                       "set-up");
    }
    CANAL_RETURN_IF_ERROR(rest);
  }
  MessageWithHandles result;
  if (count > 0) {
    // As for envelopes: only values from a peer of our own user are used.
    absl::StatusOr<bool> same_user = PeerIsSameUser(op.handle(), kOp);
    if (!same_user.ok()) return same_user.status();
    if (!*same_user) {
      return MakeError(absl::StatusCode::kPermissionDenied, kOp, name_,
                       "the listener runs as another user; the handle "
                       "values of its shared-memory set-up were not "
                       "touched");
    }
    result.handles.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      result.handles.emplace_back(
          reinterpret_cast<HANDLE>(static_cast<uintptr_t>(
              GetLe(&record[kSetupHeader + size + 8 * i], 8))));
    }
  }
  result.data = record.substr(kSetupHeader, size);
  return result;
}

absl::Status Win32Channel::CheckPeerConnected(absl::string_view op) {
  InFlight flight(this);
  if (!flight.ok()) return ClosedError(op);
  DWORD available = 0;
  if (PeekNamedPipe(flight.handle(), nullptr, 0, nullptr, &available,
                    nullptr)) {
    return absl::OkStatus();
  }
  const DWORD error = GetLastError();
  if (!is_open()) return ClosedError(op);
  return MakeError(absl::StatusCode::kUnavailable, op, name_,
                   "the peer closed the channel (its end of the pipe is "
                   "gone)",
                   DescribeWin32Error(error));
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
