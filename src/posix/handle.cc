// SPDX-License-Identifier: Apache-2.0
// The POSIX side of canal::OwnedHandle and of the handle checks: handles
// are file descriptors.

#include <fcntl.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/posix/error.h"
#include "src/posix/io.h"

namespace canal {
namespace internal {

void BackendCloseHandle(NativeHandle handle) { posix::CloseFd(handle); }

absl::Status BackendCheckHandle(absl::string_view op, absl::string_view name,
                                NativeHandle handle) {
  if (handle >= 0 && ::fcntl(handle, F_GETFD) != -1) return absl::OkStatus();
  const int err = handle < 0 ? EBADF : errno;
  return posix::ErrnoError(
      absl::StatusCode::kInvalidArgument, op, name,
      absl::StrCat("handle ", handle, " is not an open descriptor"), err);
}

}  // namespace internal
}  // namespace canal
