// SPDX-License-Identifier: Apache-2.0
// The platform-independent half of canal::Fifo (canal/fifo.h): argument
// checks and the Channels; the backend does the rest (src/posix/fifo.cc,
// src/win32/fifo.cc). Where there are no FIFOs (Windows) every call is
// Unimplemented whatever its arguments, so the checks apply only where
// there are.

#include "canal/fifo.h"

#include <memory>
#include <utility>

#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/internal/status_macros.h"

namespace canal {
namespace {

constexpr absl::string_view kCreate = "Fifo::Create";
constexpr absl::string_view kOpenRead = "Fifo::OpenRead";
constexpr absl::string_view kOpenWrite = "Fifo::OpenWrite";
constexpr absl::string_view kRemove = "Fifo::Remove";

absl::Status CheckPath(absl::string_view op, absl::string_view path) {
  if (!internal::kBackendHasFifos) return absl::OkStatus();
  if (path.empty() || path.find('\0') != absl::string_view::npos) {
    return internal::MakeError(absl::StatusCode::kInvalidArgument, op, path,
                               "the path is empty or contains a NUL byte");
  }
  return absl::OkStatus();
}

absl::StatusOr<Channel> ToChannel(
    absl::StatusOr<std::unique_ptr<internal::ChannelImpl>> impl) {
  if (!impl.ok()) return impl.status();
  return Channel(*std::move(impl));
}

}  // namespace

// No allocation failure escapes any of them as an exception.

absl::Status Fifo::Create(absl::string_view path, uint32_t mode) {
  return internal::GuardResources(kCreate, path, [&]() -> absl::Status {
    CANAL_RETURN_IF_ERROR(CheckPath(kCreate, path));
    if (internal::kBackendHasFifos && (mode & ~0777u) != 0) {
      return internal::MakeError(absl::StatusCode::kInvalidArgument, kCreate,
                                 path, "mode must be a subset of 0777");
    }
    return internal::BackendFifoCreate(path, mode);
  });
}

absl::StatusOr<Channel> Fifo::OpenRead(absl::string_view path) {
  return internal::GuardResources(
      kOpenRead, path, [&]() -> absl::StatusOr<Channel> {
        CANAL_RETURN_IF_ERROR(CheckPath(kOpenRead, path));
        return ToChannel(internal::BackendFifoOpenRead(path));
      });
}

absl::StatusOr<Channel> Fifo::OpenWrite(absl::string_view path,
                                        absl::Duration timeout) {
  return internal::GuardResources(
      kOpenWrite, path, [&]() -> absl::StatusOr<Channel> {
        CANAL_RETURN_IF_ERROR(CheckPath(kOpenWrite, path));
        return ToChannel(internal::BackendFifoOpenWrite(path, timeout));
      });
}

absl::Status Fifo::Remove(absl::string_view path) {
  return internal::GuardResources(kRemove, path, [&]() -> absl::Status {
    CANAL_RETURN_IF_ERROR(CheckPath(kRemove, path));
    return internal::BackendFifoRemove(path);
  });
}

}  // namespace canal
