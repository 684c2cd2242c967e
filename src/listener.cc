// SPDX-License-Identifier: Apache-2.0
// The platform-independent half of canal::Listener: option checks shared by
// both backends.

#include "canal/listener.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/internal/framing.h"
#include "src/internal/names.h"
#include "src/internal/deadline.h"
#include "src/internal/shm_channel.h"
#include "src/internal/status_macros.h"

namespace canal {
namespace {

absl::Status ValidateOptions(absl::string_view name,
                             const ListenerOptions& options) {
  auto bad = [&](absl::string_view what) {
    return internal::MakeError(absl::StatusCode::kInvalidArgument, "Listen",
                               name, what);
  };
  if (options.mode != PipeMode::kByte && options.mode != PipeMode::kMessage) {
    return bad("unknown PipeMode");
  }
  if (options.access != PipeAccess::kDuplex &&
      options.access != PipeAccess::kInbound &&
      options.access != PipeAccess::kOutbound) {
    return bad("unknown PipeAccess");
  }
  if (options.max_instances < 0 || options.max_instances > kMaxInstanceLimit) {
    return bad(
        absl::StrCat("max_instances must be kUnlimitedInstances (0) or "
                     "1..",
                     kMaxInstanceLimit, ", got ", options.max_instances));
  }
  if (options.max_message_size == 0 ||
      options.max_message_size > internal::kMaxFramePayload) {
    return bad(absl::StrCat("max_message_size must be 1..",
                            internal::kMaxFramePayload, ", got ",
                            options.max_message_size));
  }
  if (options.max_handles_per_message < 0 ||
      options.max_handles_per_message > kMaxHandlesPerMessageLimit) {
    return bad(absl::StrCat("max_handles_per_message must be 0..",
                            kMaxHandlesPerMessageLimit, ", got ",
                            options.max_handles_per_message));
  }
  const AccessPolicy& policy = options.access_policy;
  switch (policy.scope) {
    case AccessPolicy::Scope::kCurrentUser:
    case AccessPolicy::Scope::kAllLocalUsers:
      break;
    case AccessPolicy::Scope::kCustom:
      if (internal::kBackendUsesPosixNames) {
        if ((policy.posix_mode & ~uint32_t{0666}) != 0) {
          return bad(absl::StrFormat(
              "access_policy.posix_mode must be a subset of 0666, got 0%o",
              policy.posix_mode));
        }
        if ((policy.posix_mode & 0600) != 0600) {
          return bad(
              "access_policy.posix_mode must give the owner read and "
              "write (0600)");
        }
        if (policy.posix_group < -1) {
          return bad("access_policy.posix_group must be a gid or -1");
        }
      } else if (policy.windows_sddl.empty()) {
        return bad(
            "access_policy.windows_sddl is empty; a custom policy on "
            "Windows needs an SDDL security descriptor");
      }
      break;
    default:
      return bad("unknown AccessPolicy::Scope");
  }
  if (options.transport != Transport::kPipe &&
      options.transport != Transport::kSharedMemory) {
    return bad("unknown Transport");
  }
  if (options.ring_size < kMinRingSize || options.ring_size > kMaxRingSize ||
      (options.ring_size & (options.ring_size - 1)) != 0) {
    return bad(absl::StrCat("ring_size must be a power of two in ",
                            kMinRingSize, "..", kMaxRingSize, ", got ",
                            options.ring_size));
  }
  if (options.spin < absl::ZeroDuration() || options.spin > absl::Seconds(1)) {
    return bad(absl::StrCat("spin must be 0 to 1 s, got ",
                            absl::FormatDuration(options.spin)));
  }
  if (options.buffer_size > (size_t{1} << 30)) {
    return bad(absl::StrCat("buffer_size must be at most 1 GiB, got ",
                            options.buffer_size));
  }
  return absl::OkStatus();
}

}  // namespace

Listener::Listener() = default;
Listener::~Listener() = default;
Listener::Listener(Listener&& other) noexcept = default;
Listener& Listener::operator=(Listener&& other) noexcept = default;
Listener::Listener(std::unique_ptr<internal::ListenerImpl> impl)
    : impl_(std::move(impl)) {}

absl::StatusOr<Listener> Listener::Create(absl::string_view name,
                                          const ListenerOptions& options) {
  return internal::GuardResources(
      "Listen", name, [&]() -> absl::StatusOr<Listener> {
        internal::NameKind kind;
        CANAL_RETURN_IF_ERROR(internal::ClassifyName(
            "Listen", name, internal::kBackendUsesPosixNames, &kind));
        CANAL_RETURN_IF_ERROR(ValidateOptions(name, options));
        CANAL_ASSIGN_OR_RETURN(std::unique_ptr<internal::ListenerImpl> impl,
                               internal::BackendListen(name, options));
        return Listener(std::move(impl));
      });
}

bool Listener::is_open() const { return impl_ != nullptr && impl_->is_open(); }

absl::StatusOr<Channel> Listener::Accept(absl::Duration timeout) {
  if (!impl_) {
    return absl::FailedPreconditionError(
        "canal: Accept: the listener is not open (default-constructed or "
        "moved from)");
  }
  return internal::GuardResources(
      "Accept", impl_->name(), [&]() -> absl::StatusOr<Channel> {
        if (!impl_->shared_memory_offered()) {
          CANAL_ASSIGN_OR_RETURN(std::unique_ptr<internal::ChannelImpl> ch,
                                 impl_->Accept(timeout));
          return Channel(std::move(ch));
        }
        // A client gone before its offer went out is dropped, like one the
        // access policy refuses, and the wait goes on for the next.
        const internal::Deadline deadline(timeout);
        while (true) {
          CANAL_ASSIGN_OR_RETURN(std::unique_ptr<internal::ChannelImpl> ch,
                                 impl_->Accept(deadline.remaining()));
          absl::StatusOr<std::unique_ptr<internal::ChannelImpl>> offered =
              internal::OfferSharedMemory(std::move(ch), impl_->options(),
                                          internal::kShmSetupTimeout);
          if (offered.ok()) return Channel(*std::move(offered));
          if (absl::IsResourceExhausted(offered.status())) {
            return offered.status();
          }
        }
      });
}

void Listener::Close() {
  if (impl_) impl_->Close();
}

absl::string_view Listener::name() const {
  return impl_ ? impl_->name() : absl::string_view();
}

const ListenerOptions& Listener::options() const {
  static const ListenerOptions kDefaults;
  return impl_ ? impl_->options() : kDefaults;
}

}  // namespace canal
