// SPDX-License-Identifier: Apache-2.0
#include "src/win32/io.h"

namespace canal {
namespace internal {
namespace win32 {

HANDLE NewEvent(bool manual_reset) {
  return CreateEventW(nullptr, manual_reset ? TRUE : FALSE, FALSE, nullptr);
}

DWORD WaitMs(const Deadline& deadline, DWORD cap) {
  if (deadline.infinite()) return cap;
  // INFINITE is 0xffffffff; stay below it.
  const int64_t limit = cap == INFINITE ? 0x7fffffff : cap;
  return static_cast<DWORD>(deadline.remaining_ms(limit));
}

IoResult FinishIo(HANDLE file, OVERLAPPED* ov, BOOL started, DWORD start_error,
                  HANDLE close_event, const Deadline& deadline) {
  IoResult result;
  if (!started && start_error != ERROR_IO_PENDING &&
      start_error != ERROR_MORE_DATA) {
    // Failed at once: nothing is queued, `ov` was not used.
    result.error = start_error;
    return result;
  }
  if (!started && start_error == ERROR_IO_PENDING) {
    HANDLE handles[2] = {ov->hEvent, close_event};
    const DWORD count = close_event != nullptr ? 2 : 1;
    bool cancel = false;
    while (true) {
      const DWORD wait =
          WaitForMultipleObjects(count, handles, FALSE, WaitMs(deadline));
      if (wait == WAIT_OBJECT_0) break;
      if (wait == WAIT_OBJECT_0 + 1) {
        result.cancelled = true;
        cancel = true;
        break;
      }
      if (wait == WAIT_TIMEOUT) {
        if (!deadline.expired()) continue;  // Rounding: not there yet.
        result.timed_out = true;
        cancel = true;
        break;
      }
      // WAIT_FAILED: should not happen; do not leave the I/O behind.
      result.cancelled = true;
      cancel = true;
      break;
    }
    if (cancel) CancelIoEx(file, ov);
  }
  DWORD bytes = 0;
  const BOOL ok = GetOverlappedResult(file, ov, &bytes, TRUE);
  result.bytes = bytes;
  result.error = ok ? ERROR_SUCCESS : GetLastError();
  if (result.completed()) {
    // The operation won the race against the cancellation.
    result.timed_out = false;
    result.cancelled = false;
  }
  return result;
}

bool RunningUnderWine() {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll != nullptr &&
         GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
