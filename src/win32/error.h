// Translation of Win32 error codes to absl::Status for the Win32 backend,
// in the spirit of libuv's src/win/error.c. The same situation yields the
// same absl::StatusCode as the POSIX backend (see the error table in
// include/canal/channel.h and docs/semantics.md).

#ifndef CANAL_SRC_WIN32_ERROR_H_
#define CANAL_SRC_WIN32_ERROR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {
namespace win32 {

// Win32 error values are DWORDs; spelled `unsigned long` here so that this
// header does not need <windows.h>.
using Win32Error = unsigned long;

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

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_ERROR_H_
