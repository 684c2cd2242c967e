// SPDX-License-Identifier: Apache-2.0
// The platform-independent half of canal::Channel: argument, mode and
// direction checks, so that both backends reject the same misuse with the
// same status.

#include "canal/channel.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/internal/names.h"
#include "src/internal/shm_channel.h"
#include "src/internal/status_macros.h"

namespace canal {
namespace {

absl::Status Invalid(absl::string_view op) {
  return absl::FailedPreconditionError(
      absl::StrCat("canal: ", op,
                   ": the channel is not connected (default-"
                   "constructed or moved from)"));
}

absl::Status NeedMessageMode(absl::string_view op, absl::string_view name) {
  return internal::MakeError(absl::StatusCode::kFailedPrecondition, op, name,
                             "needs a message-mode channel; this one is in "
                             "byte mode");
}

absl::Status NeedDirection(absl::string_view op, absl::string_view name,
                           absl::string_view what) {
  return internal::MakeError(
      absl::StatusCode::kFailedPrecondition, op, name,
      absl::StrCat("this end of the pipe cannot ", what, " (one-way pipe)"));
}

absl::Status CheckSize(absl::string_view op, const internal::ChannelImpl& impl,
                       size_t size) {
  if (impl.mode() == PipeMode::kMessage && size > impl.max_message_size()) {
    return internal::MakeError(
        absl::StatusCode::kInvalidArgument, op, impl.name(),
        absl::StrCat("message of ", size, " bytes exceeds the limit of ",
                     impl.max_message_size(), " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateConnectOptions(absl::string_view op,
                                    absl::string_view name,
                                    const ConnectOptions& options) {
  if (options.max_handles_per_message < 0 ||
      options.max_handles_per_message > kMaxHandlesPerMessageLimit) {
    return internal::MakeError(
        absl::StatusCode::kInvalidArgument, op, name,
        absl::StrCat("max_handles_per_message must be 0..",
                     kMaxHandlesPerMessageLimit, ", got ",
                     options.max_handles_per_message));
  }
  if (options.spin < absl::ZeroDuration() || options.spin > absl::Seconds(1)) {
    return internal::MakeError(
        absl::StatusCode::kInvalidArgument, op, name,
        absl::StrCat("spin must be 0 to 1 s, got ",
                     absl::FormatDuration(options.spin)));
  }
  return absl::OkStatus();
}

absl::Status ValidateName(absl::string_view op, absl::string_view name) {
  internal::NameKind kind;
  return internal::ClassifyName(op, name, internal::kBackendUsesPosixNames,
                                &kind);
}

}  // namespace

namespace internal {
absl::Status ChannelImpl::RunAsClient(absl::FunctionRef<void()> /*fn*/) {
  return MakeError(absl::StatusCode::kUnimplemented, "RunAsClient", name(),
                   "impersonation is not available on this platform (it would "
                   "need seteuid, which changes the whole process); use "
                   "Channel::Peer() to decide what the client may do");
}

absl::Status ChannelImpl::WriteWithHandles(
    absl::string_view op, absl::string_view /*data*/,
    absl::Span<const NativeHandle> /*handles*/, absl::Duration /*timeout*/) {
  return NeedMessageMode(op, name());
}

absl::StatusOr<MessageWithHandles> ChannelImpl::ReadMessageWithHandles(
    absl::Duration /*timeout*/) {
  return NeedMessageMode("ReadMessageWithHandles", name());
}

absl::Status ChannelImpl::WriteSetup(absl::string_view /*data*/,
                                     absl::Span<const NativeHandle> /*handles*/,
                                     absl::Duration /*timeout*/) {
  return MakeError(absl::StatusCode::kFailedPrecondition, "Accept", name(),
                   "this kind of channel cannot carry shared memory");
}

absl::StatusOr<MessageWithHandles> ChannelImpl::ReadSetup(
    size_t /*size*/, size_t /*handles*/, absl::Duration /*timeout*/) {
  return MakeError(absl::StatusCode::kFailedPrecondition, "Connect", name(),
                   "this kind of channel cannot carry shared memory");
}

absl::Status ChannelImpl::CheckPeerConnected(absl::string_view op) {
  return MakeError(absl::StatusCode::kFailedPrecondition, op, name(),
                   "this kind of channel cannot carry shared memory");
}
}  // namespace internal

Channel::Channel() = default;
Channel::~Channel() = default;
Channel::Channel(Channel&& other) noexcept = default;
Channel& Channel::operator=(Channel&& other) noexcept = default;
Channel::Channel(std::unique_ptr<internal::ChannelImpl> impl)
    : impl_(std::move(impl)) {}

absl::StatusOr<Channel> Channel::Connect(absl::string_view name,
                                         const ConnectOptions& options) {
  return internal::GuardResources(
      "Connect", name, [&]() -> absl::StatusOr<Channel> {
        CANAL_RETURN_IF_ERROR(ValidateName("Connect", name));
        CANAL_RETURN_IF_ERROR(ValidateConnectOptions("Connect", name, options));
        CANAL_ASSIGN_OR_RETURN(
            std::unique_ptr<internal::ChannelImpl> impl,
            internal::BackendConnect("Connect", name, options));
        impl = internal::ClientChannel(
            std::move(impl), options.allow_shared_memory, options.spin);
        return Channel(std::move(impl));
      });
}

bool Channel::is_open() const { return impl_ != nullptr && impl_->is_open(); }

PipeMode Channel::mode() const {
  return impl_ ? impl_->mode() : PipeMode::kByte;
}

Transport Channel::transport() const {
  return impl_ ? impl_->transport() : Transport::kPipe;
}

absl::string_view Channel::name() const {
  return impl_ ? impl_->name() : absl::string_view();
}

absl::StatusOr<ReadResult> Channel::Read(absl::Span<char> buffer,
                                         absl::Duration timeout) {
  if (!impl_) return Invalid("Read");
  if (!impl_->can_read()) return NeedDirection("Read", impl_->name(), "read");
  return internal::GuardResources("Read", impl_->name(),
                                  [&] { return impl_->Read(buffer, timeout); });
}

absl::Status Channel::Write(absl::string_view data, absl::Duration timeout) {
  if (!impl_) return Invalid("Write");
  if (!impl_->can_write())
    return NeedDirection("Write", impl_->name(), "write");
  CANAL_RETURN_IF_ERROR(CheckSize("Write", *impl_, data.size()));
  return internal::GuardResources("Write", impl_->name(), [&] {
    return impl_->Write("Write", data, timeout);
  });
}

absl::StatusOr<std::string> Channel::ReadMessage(absl::Duration timeout) {
  if (!impl_) return Invalid("ReadMessage");
  if (impl_->mode() != PipeMode::kMessage) {
    return NeedMessageMode("ReadMessage", impl_->name());
  }
  if (!impl_->can_read()) {
    return NeedDirection("ReadMessage", impl_->name(), "read");
  }
  return internal::GuardResources("ReadMessage", impl_->name(),
                                  [&] { return impl_->ReadMessage(timeout); });
}

absl::Status Channel::WriteMessage(absl::string_view message,
                                   absl::Duration timeout) {
  if (!impl_) return Invalid("WriteMessage");
  if (impl_->mode() != PipeMode::kMessage) {
    return NeedMessageMode("WriteMessage", impl_->name());
  }
  if (!impl_->can_write()) {
    return NeedDirection("WriteMessage", impl_->name(), "write");
  }
  CANAL_RETURN_IF_ERROR(CheckSize("WriteMessage", *impl_, message.size()));
  return internal::GuardResources("WriteMessage", impl_->name(), [&] {
    return impl_->Write("WriteMessage", message, timeout);
  });
}

absl::Status Channel::WriteMessageWithHandles(
    absl::string_view data, absl::Span<const NativeHandle> handles,
    absl::Duration timeout) {
  constexpr absl::string_view kOp = "WriteMessageWithHandles";
  if (!impl_) return Invalid(kOp);
  if (impl_->mode() != PipeMode::kMessage) {
    return NeedMessageMode(kOp, impl_->name());
  }
  if (!impl_->can_write()) return NeedDirection(kOp, impl_->name(), "write");
  CANAL_RETURN_IF_ERROR(CheckSize(kOp, *impl_, data.size()));
  return internal::GuardResources(kOp, impl_->name(), [&]() -> absl::Status {
    if (handles.size() > impl_->max_handles_per_message()) {
      return internal::MakeError(
          absl::StatusCode::kInvalidArgument, kOp, impl_->name(),
          absl::StrCat(handles.size(), " handles exceed the limit of ",
                       impl_->max_handles_per_message(),
                       " per message (max_handles_per_message)"));
    }
    for (size_t i = 0; i < handles.size(); ++i) {
      if (handles[i] == kInvalidNativeHandle) {
        return internal::MakeError(
            absl::StatusCode::kInvalidArgument, kOp, impl_->name(),
            absl::StrCat("handle ", i, " is kInvalidNativeHandle"));
      }
      CANAL_RETURN_IF_ERROR(
          internal::BackendCheckHandle(kOp, impl_->name(), handles[i]));
    }
    if (handles.empty()) return impl_->Write(kOp, data, timeout);
    return impl_->WriteWithHandles(kOp, data, handles, timeout);
  });
}

absl::StatusOr<MessageWithHandles> Channel::ReadMessageWithHandles(
    absl::Duration timeout) {
  constexpr absl::string_view kOp = "ReadMessageWithHandles";
  if (!impl_) return Invalid(kOp);
  if (impl_->mode() != PipeMode::kMessage) {
    return NeedMessageMode(kOp, impl_->name());
  }
  if (!impl_->can_read()) return NeedDirection(kOp, impl_->name(), "read");
  return internal::GuardResources(kOp, impl_->name(), [&] {
    return impl_->ReadMessageWithHandles(timeout);
  });
}

absl::StatusOr<std::string> Channel::Transact(absl::string_view request,
                                              absl::Duration timeout) {
  if (!impl_) return Invalid("Transact");
  if (impl_->mode() != PipeMode::kMessage) {
    return NeedMessageMode("Transact", impl_->name());
  }
  if (!impl_->can_read() || !impl_->can_write()) {
    return NeedDirection("Transact", impl_->name(), "both read and write");
  }
  CANAL_RETURN_IF_ERROR(CheckSize("Transact", *impl_, request.size()));
  return internal::GuardResources("Transact", impl_->name(), [&] {
    return impl_->Transact("Transact", request, timeout);
  });
}

absl::StatusOr<PeekResult> Channel::Peek(absl::Span<char> buffer) const {
  if (!impl_) return Invalid("Peek");
  if (!impl_->can_read()) return NeedDirection("Peek", impl_->name(), "read");
  return internal::GuardResources("Peek", impl_->name(),
                                  [&] { return impl_->Peek(buffer); });
}

absl::StatusOr<PeerInfo> Channel::Peer() const {
  if (!impl_) return Invalid("Peer");
  return internal::GuardResources("Peer", impl_->name(),
                                  [&] { return impl_->Peer(); });
}

absl::Status Channel::RunAsClient(absl::FunctionRef<void()> fn) {
  if (!impl_) return Invalid("RunAsClient");
  return impl_->RunAsClient(fn);
}

void Channel::Close() {
  if (impl_) impl_->Close();
}

NativeHandle Channel::native_handle() const {
  if (!impl_) return kInvalidNativeHandle;
  return impl_->native_handle();
}

absl::StatusOr<std::string> Call(absl::string_view name,
                                 absl::string_view request,
                                 absl::Duration timeout) {
  return Call(name, request, timeout, ConnectOptions());
}

absl::StatusOr<std::string> Call(absl::string_view name,
                                 absl::string_view request,
                                 absl::Duration timeout,
                                 const ConnectOptions& options) {
  // CallNamedPipe: connect, one transaction, close, all within `timeout`,
  // with every error labelled "Call" and checked exactly as Transact checks.
  constexpr absl::string_view kOp = "Call";
  return internal::GuardResources(
      kOp, name, [&]() -> absl::StatusOr<std::string> {
        CANAL_RETURN_IF_ERROR(ValidateName(kOp, name));
        CANAL_RETURN_IF_ERROR(ValidateConnectOptions(kOp, name, options));
        const internal::Deadline deadline(timeout);
        ConnectOptions connect_options = options;
        connect_options.timeout = deadline.remaining();
        CANAL_ASSIGN_OR_RETURN(
            std::unique_ptr<internal::ChannelImpl> impl,
            internal::BackendConnect(kOp, name, connect_options));
        // One request does not pay for setting up shared memory: the
        // offer is refused when Transact settles the transport.
        impl = internal::ClientChannel(std::move(impl), /*allow=*/false,
                                       options.spin);
        if (impl->mode() != PipeMode::kMessage) {
          return NeedMessageMode(kOp, name);
        }
        if (!impl->can_read() || !impl->can_write()) {
          return NeedDirection(kOp, name, "both read and write");
        }
        CANAL_RETURN_IF_ERROR(CheckSize(kOp, *impl, request.size()));
        absl::StatusOr<std::string> reply =
            impl->Transact(kOp, request, deadline.remaining());
        impl->Close();
        return reply;
      });
}

absl::Status WaitForListener(absl::string_view name, absl::Duration timeout) {
  return internal::GuardResources("WaitForListener", name, [&] {
    CANAL_RETURN_IF_ERROR(ValidateName("WaitForListener", name));
    return internal::BackendWaitForListener(name, timeout);
  });
}

}  // namespace canal
