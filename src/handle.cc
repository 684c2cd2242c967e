// SPDX-License-Identifier: Apache-2.0
// canal::OwnedHandle: closing goes through the backend (close(2) or
// CloseHandle), so the header needs no platform code.

#include "canal/handle.h"

#include "src/internal/backend.h"

namespace canal {

void OwnedHandle::reset(NativeHandle handle) {
  const NativeHandle old = handle_;
  handle_ = handle;
  if (old != kInvalidNativeHandle && old != handle) {
    internal::BackendCloseHandle(old);
  }
}

}  // namespace canal
