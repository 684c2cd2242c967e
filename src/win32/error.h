// SPDX-License-Identifier: Apache-2.0
// Translation of Win32 error codes to absl::Status for the Win32 backend,
// in the spirit of libuv's src/win/error.c. The same situation yields the
// same absl::StatusCode as the POSIX backend (see the error table in
// include/canal/channel.h and docs/semantics.md).

#ifndef CANAL_SRC_WIN32_ERROR_H_
#define CANAL_SRC_WIN32_ERROR_H_

#include <new>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {
namespace win32 {

// Win32 error values are DWORDs; spelled `unsigned long` here so that this
// header does not need <windows.h>.
using Win32Error = unsigned long;

// ERROR_HANDLES_CLOSED, which not every winerror.h defines: Wine ends a
// WaitNamedPipe whose pipe lost its last instance with it (Windows says
// ERROR_FILE_NOT_FOUND).
constexpr Win32Error kErrorHandlesClosed = 676;

// What the failing call was doing. Some errors mean different things
// depending on it (ERROR_BROKEN_PIPE is the end of the stream for a reader
// but a broken connection for a writer).
enum class ErrorContext {
  kGeneric,
  kConnect,   // CreateFileW / WaitNamedPipeW on the client side.
  kListen,    // CreateNamedPipeW (the first instance of a listener).
  kAccept,    // ConnectNamedPipe / further instances.
  kRead,      // ReadFile, PeekNamedPipe.
  kWrite,     // WriteFile.
  kTransact,  // TransactNamedPipe.
  kStart,     // CreateProcessW (Subprocess::Start).
  // I/O on a connection of canal::Server. Any failure breaks the
  // connection (Unavailable), except, for a read, the client's end of the
  // stream (OutOfRange) and a cancelled read (Cancelled).
  kServerRead,   // ReadFile.
  kServerWrite,  // WriteFile, and adding the pipe to the completion port.
};

// The absl code for `error` in `context`.
absl::StatusCode CodeForWin32Error(Win32Error error, ErrorContext context);

// "ERROR_PIPE_BUSY (231): All pipe instances are busy." The symbolic name
// is given for the errors this backend meets; the text comes from
// FormatMessageW, converted to UTF-8.
std::string DescribeWin32Error(Win32Error error);

// A short English explanation of what `error` means for the user, e.g. "no
// listener has this name" for ERROR_FILE_NOT_FOUND while connecting.
absl::string_view ExplainWin32Error(Win32Error error, ErrorContext context);

// MakeError(CodeForWin32Error(...), op, name, explanation, description).
absl::Status Win32Status(Win32Error error, ErrorContext context,
                         absl::string_view op, absl::string_view name);

// Same with an explicit explanation.
absl::Status Win32Status(Win32Error error, ErrorContext context,
                         absl::string_view op, absl::string_view name,
                         absl::string_view what);

// ResourceExhausted naming `op` and `name` for a failure to get memory or a
// thread. Never throws: if even the message cannot be allocated, the status
// has the code alone.
absl::Status OutOfResources(absl::string_view op, absl::string_view name,
                            absl::string_view what) noexcept;

// Runs `fn` (returning absl::Status or absl::StatusOr) and turns an
// allocation failure (std::bad_alloc) or a failure to start a thread
// (std::system_error from std::thread) inside it into ResourceExhausted, so
// that no exception leaves the backend. Exceptions of user callbacks called
// by `fn` pass through.
template <typename Fn>
auto NoThrow(absl::string_view op, absl::string_view name, Fn&& fn)
    -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return OutOfResources(op, name, "out of memory");
  } catch (const std::system_error&) {
    return OutOfResources(op, name, "cannot start a thread");
  }
}

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_ERROR_H_
