// SPDX-License-Identifier: Apache-2.0
// Handles and overlapped I/O for the Win32 backend: every ReadFile,
// WriteFile, ConnectNamedPipe and TransactNamedPipe is issued overlapped
// and completed with FinishIo, which honours a Deadline and a close event.

#ifndef CANAL_SRC_WIN32_IO_H_
#define CANAL_SRC_WIN32_IO_H_

#include <windows.h>

#include "src/internal/deadline.h"

namespace canal {
namespace internal {
namespace win32 {

// Owns a HANDLE (nullptr or INVALID_HANDLE_VALUE when empty).
class ScopedHandle {
 public:
  ScopedHandle() = default;
  explicit ScopedHandle(HANDLE handle) : handle_(handle) {}
  ~ScopedHandle() { reset(); }
  ScopedHandle(ScopedHandle&& other) noexcept : handle_(other.release()) {}
  ScopedHandle& operator=(ScopedHandle&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ScopedHandle(const ScopedHandle&) = delete;
  ScopedHandle& operator=(const ScopedHandle&) = delete;

  HANDLE get() const { return handle_; }
  bool valid() const {
    return handle_ != nullptr && handle_ != INVALID_HANDLE_VALUE;
  }
  HANDLE release() {
    HANDLE h = handle_;
    handle_ = nullptr;
    return h;
  }
  void reset(HANDLE handle = nullptr) {
    if (valid()) CloseHandle(handle_);
    handle_ = handle;
  }

 private:
  HANDLE handle_ = nullptr;
};

// The in and out quota of a pipe instance when the caller asks for the
// default (ListenerOptions::buffer_size = 0, PipeOptions::buffer_size = 0).
// A zero quota would make every WriteFile wait until the reader has taken
// the data (Wine does exactly that); 64 KiB is what libuv uses.
constexpr DWORD kDefaultPipeBufferSize = 64 * 1024;

// A new unnamed, non-signalled event; nullptr on failure.
HANDLE NewEvent(bool manual_reset);

// How an overlapped operation ended.
struct IoResult {
  // ERROR_SUCCESS, ERROR_MORE_DATA (a message-mode read returned part of a
  // message), or the failure.
  DWORD error = ERROR_SUCCESS;
  DWORD bytes = 0;         // Bytes transferred.
  bool timed_out = false;  // The deadline passed and the operation was
                           // cancelled before it completed.
  bool cancelled = false;  // `close_event` was set and the operation was
                           // cancelled before it completed.
  bool completed() const {
    return error == ERROR_SUCCESS || error == ERROR_MORE_DATA;
  }
};

// Completes an overlapped operation on `file` that was just started with
// `ov` (whose hEvent is a manual-reset event): `started` and `start_error`
// are the call's return value and GetLastError(). Waits for it, for
// `close_event` (may be nullptr) or for the deadline; in the last two cases
// cancels it with CancelIoEx and waits for the cancellation to finish, so
// `ov` and the buffer are free on return. An operation that completed
// despite the cancellation is reported as completed.
IoResult FinishIo(HANDLE file, OVERLAPPED* ov, BOOL started, DWORD start_error,
                  HANDLE close_event, const Deadline& deadline);

// A WaitForSingleObject timeout for at most `cap` ms of `deadline`
// (INFINITE for an infinite deadline only if `cap` is INFINITE).
DWORD WaitMs(const Deadline& deadline, DWORD cap = INFINITE);

// Whether this process runs under Wine (ntdll exports wine_get_version).
bool RunningUnderWine();

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_IO_H_
