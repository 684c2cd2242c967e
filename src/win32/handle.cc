// SPDX-License-Identifier: Apache-2.0
// The Windows side of canal::OwnedHandle and of the handle checks: handles
// are HANDLEs.

#include <windows.h>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/win32/error.h"

namespace canal {
namespace internal {

void BackendCloseHandle(NativeHandle handle) {
  if (handle != INVALID_HANDLE_VALUE) CloseHandle(handle);
}

absl::Status BackendCheckHandle(absl::string_view op, absl::string_view name,
                                NativeHandle handle) {
  DWORD flags = 0;
  // INVALID_HANDLE_VALUE is also the current-process pseudo handle, which
  // names nothing the peer could use.
  if (handle != INVALID_HANDLE_VALUE && GetHandleInformation(handle, &flags)) {
    return absl::OkStatus();
  }
  const DWORD error =
      handle == INVALID_HANDLE_VALUE ? ERROR_INVALID_HANDLE : GetLastError();
  return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                   absl::StrCat("handle ", reinterpret_cast<uintptr_t>(handle),
                                " is not an open handle: ",
                                win32::DescribeWin32Error(error)));
}

}  // namespace internal
}  // namespace canal
