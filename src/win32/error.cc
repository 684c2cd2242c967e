// SPDX-License-Identifier: Apache-2.0
#include "src/win32/error.h"

#include <windows.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/win32/names.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

struct ErrorName {
  DWORD code;
  const char* name;
};

// The errors this backend can meet, by name (FormatMessage only gives text).
constexpr ErrorName kErrorNames[] = {
    {ERROR_SUCCESS, "ERROR_SUCCESS"},
    {ERROR_FILE_NOT_FOUND, "ERROR_FILE_NOT_FOUND"},
    {ERROR_PATH_NOT_FOUND, "ERROR_PATH_NOT_FOUND"},
    {ERROR_ACCESS_DENIED, "ERROR_ACCESS_DENIED"},
    {ERROR_INVALID_HANDLE, "ERROR_INVALID_HANDLE"},
    {ERROR_NOT_ENOUGH_MEMORY, "ERROR_NOT_ENOUGH_MEMORY"},
    {ERROR_OUTOFMEMORY, "ERROR_OUTOFMEMORY"},
    {ERROR_NOT_SUPPORTED, "ERROR_NOT_SUPPORTED"},
    {ERROR_BAD_NETPATH, "ERROR_BAD_NETPATH"},
    {ERROR_INVALID_PARAMETER, "ERROR_INVALID_PARAMETER"},
    {ERROR_BROKEN_PIPE, "ERROR_BROKEN_PIPE"},
    {ERROR_SEM_TIMEOUT, "ERROR_SEM_TIMEOUT"},
    {ERROR_INSUFFICIENT_BUFFER, "ERROR_INSUFFICIENT_BUFFER"},
    {ERROR_INVALID_NAME, "ERROR_INVALID_NAME"},
    {ERROR_BAD_PATHNAME, "ERROR_BAD_PATHNAME"},
    {ERROR_ALREADY_EXISTS, "ERROR_ALREADY_EXISTS"},
    {ERROR_FILENAME_EXCED_RANGE, "ERROR_FILENAME_EXCED_RANGE"},
    {ERROR_BAD_PIPE, "ERROR_BAD_PIPE"},
    {ERROR_PIPE_BUSY, "ERROR_PIPE_BUSY"},
    {ERROR_NO_DATA, "ERROR_NO_DATA"},
    {ERROR_PIPE_NOT_CONNECTED, "ERROR_PIPE_NOT_CONNECTED"},
    {ERROR_MORE_DATA, "ERROR_MORE_DATA"},
    {ERROR_PIPE_CONNECTED, "ERROR_PIPE_CONNECTED"},
    {ERROR_PIPE_LISTENING, "ERROR_PIPE_LISTENING"},
    {ERROR_OPERATION_ABORTED, "ERROR_OPERATION_ABORTED"},
    {ERROR_IO_INCOMPLETE, "ERROR_IO_INCOMPLETE"},
    {ERROR_IO_PENDING, "ERROR_IO_PENDING"},
    {ERROR_NO_SYSTEM_RESOURCES, "ERROR_NO_SYSTEM_RESOURCES"},
    {ERROR_NOT_FOUND, "ERROR_NOT_FOUND"},
    {ERROR_BAD_IMPERSONATION_LEVEL, "ERROR_BAD_IMPERSONATION_LEVEL"},
    {ERROR_NO_UNICODE_TRANSLATION, "ERROR_NO_UNICODE_TRANSLATION"},
    {ERROR_INVALID_FUNCTION, "ERROR_INVALID_FUNCTION"},
    {ERROR_DIRECTORY, "ERROR_DIRECTORY"},
    {ERROR_BAD_EXE_FORMAT, "ERROR_BAD_EXE_FORMAT"},
    {ERROR_EXE_MACHINE_TYPE_MISMATCH, "ERROR_EXE_MACHINE_TYPE_MISMATCH"},
    {ERROR_INVALID_OWNER, "ERROR_INVALID_OWNER"},
    {ERROR_NO_TOKEN, "ERROR_NO_TOKEN"},
    {kErrorHandlesClosed, "ERROR_HANDLES_CLOSED"},
    {WAIT_TIMEOUT, "WAIT_TIMEOUT"},
};

const char* NameOf(DWORD error) {
  for (const ErrorName& e : kErrorNames) {
    if (e.code == error) return e.name;
  }
  return "ERROR";
}

}  // namespace

absl::StatusCode CodeForWin32Error(Win32Error error, ErrorContext context) {
  if (context == ErrorContext::kStart) {
    // CreateProcessW: the program or its working directory.
    switch (error) {
      case ERROR_FILE_NOT_FOUND:
      case ERROR_PATH_NOT_FOUND:
      case ERROR_DIRECTORY:
      case ERROR_INVALID_NAME:
        return absl::StatusCode::kNotFound;
      case ERROR_BAD_EXE_FORMAT:
      case ERROR_EXE_MACHINE_TYPE_MISMATCH:
        return absl::StatusCode::kInvalidArgument;
      default:
        break;
    }
  }
  if (context == ErrorContext::kServerRead ||
      context == ErrorContext::kServerWrite) {
    switch (error) {
      case ERROR_SUCCESS:
        return absl::StatusCode::kOk;
      case ERROR_BROKEN_PIPE:
      case ERROR_NO_DATA:
      case ERROR_PIPE_NOT_CONNECTED:
        return context == ErrorContext::kServerRead
                   ? absl::StatusCode::kOutOfRange
                   : absl::StatusCode::kUnavailable;
      case ERROR_OPERATION_ABORTED:
        return context == ErrorContext::kServerRead
                   ? absl::StatusCode::kCancelled
                   : absl::StatusCode::kUnavailable;
      default:
        return absl::StatusCode::kUnavailable;
    }
  }
  switch (error) {
    case ERROR_SUCCESS:
      return absl::StatusCode::kOk;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_BAD_NETPATH:
    case kErrorHandlesClosed:
      return absl::StatusCode::kNotFound;
    case ERROR_PIPE_BUSY:
      // Busy while connecting means the wait is over. TransactNamedPipe
      // reports unread data in the pipe with ERROR_PIPE_BUSY.
      return context == ErrorContext::kTransact
                 ? absl::StatusCode::kFailedPrecondition
             : context == ErrorContext::kListen
                 ? absl::StatusCode::kAlreadyExists
                 : absl::StatusCode::kDeadlineExceeded;
    case ERROR_SEM_TIMEOUT:
    case WAIT_TIMEOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
      // The peer has gone: end of stream for a reader, a broken connection
      // for a writer (the POSIX backend maps EOF and EPIPE the same way).
      return context == ErrorContext::kRead ? absl::StatusCode::kOutOfRange
                                            : absl::StatusCode::kUnavailable;
    case ERROR_OPERATION_ABORTED:
      return absl::StatusCode::kCancelled;
    case ERROR_ACCESS_DENIED:
      // FILE_FLAG_FIRST_PIPE_INSTANCE refuses a name that is already held
      // with ERROR_ACCESS_DENIED.
      return context == ErrorContext::kListen
                 ? absl::StatusCode::kAlreadyExists
                 : absl::StatusCode::kPermissionDenied;
    case ERROR_BAD_IMPERSONATION_LEVEL:
      return absl::StatusCode::kPermissionDenied;
    case ERROR_ALREADY_EXISTS:
      return absl::StatusCode::kAlreadyExists;
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_INVALID_PARAMETER:
    case ERROR_NO_UNICODE_TRANSLATION:
      return absl::StatusCode::kInvalidArgument;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
      return absl::StatusCode::kResourceExhausted;
    case ERROR_BAD_PIPE:
    case ERROR_INVALID_FUNCTION:
    case ERROR_NOT_SUPPORTED:
      // Wrong pipe type or read mode for the call.
      return absl::StatusCode::kFailedPrecondition;
    case ERROR_PIPE_LISTENING:
      return absl::StatusCode::kUnavailable;
    case ERROR_INVALID_HANDLE:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::string_view ExplainWin32Error(Win32Error error, ErrorContext context) {
  if (context == ErrorContext::kStart) {
    switch (error) {
      case ERROR_FILE_NOT_FOUND:
      case ERROR_PATH_NOT_FOUND:
      case ERROR_DIRECTORY:
      case ERROR_INVALID_NAME:
        return "the program or the working directory does not exist";
      case ERROR_BAD_EXE_FORMAT:
      case ERROR_EXE_MACHINE_TYPE_MISMATCH:
        return "not a program Windows can run";
      case ERROR_ACCESS_DENIED:
        return "access denied";
      default:
        return "CreateProcessW failed";
    }
  }
  switch (error) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
      return "no listener has this name";
    case ERROR_PIPE_BUSY:
      if (context == ErrorContext::kTransact) {
        return "unread data is queued in the pipe";
      }
      if (context == ErrorContext::kListen) {
        return "a listener already holds this name";
      }
      return "every instance stayed busy until the timeout";
    case ERROR_SEM_TIMEOUT:
    case WAIT_TIMEOUT:
      return "timed out";
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
      return context == ErrorContext::kRead ? "the peer closed the pipe"
                                            : "the connection is broken";
    case ERROR_OPERATION_ABORTED:
      return "the operation was cancelled";
    case ERROR_ACCESS_DENIED:
      return context == ErrorContext::kListen
                 ? "a listener already holds this name"
                 : "access denied";
    case ERROR_ALREADY_EXISTS:
      return "a listener already holds this name";
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_NO_UNICODE_TRANSLATION:
      return "invalid pipe name";
    case ERROR_BAD_PIPE:
      return "the pipe is not in a state or mode that allows this";
    default:
      return "system error";
  }
}

std::string DescribeWin32Error(Win32Error error) {
  std::string text;
  wchar_t* buffer = nullptr;
  const DWORD length = FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM |
          FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, error, MAKELANGID(LANG_ENGLISH, SUBLANG_ENGLISH_US),
      reinterpret_cast<wchar_t*>(&buffer), 0, nullptr);
  if (length == 0) {
    // No English text installed: any language will do.
    FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM |
                       FORMAT_MESSAGE_IGNORE_INSERTS,
                   nullptr, error, 0, reinterpret_cast<wchar_t*>(&buffer), 0,
                   nullptr);
  }
  if (buffer != nullptr) {
    text = WideToUtf8(buffer);
    LocalFree(buffer);
  }
  while (!text.empty() &&
         (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  std::string result = absl::StrCat(NameOf(error), " (", error, ")");
  if (!text.empty()) absl::StrAppend(&result, ": ", text);
  return result;
}

absl::Status OutOfResources(absl::string_view op, absl::string_view name,
                            absl::string_view what) noexcept {
  try {
    return MakeError(absl::StatusCode::kResourceExhausted, op, name, what);
  } catch (...) {
    // An empty message needs no allocation.
    return absl::Status(absl::StatusCode::kResourceExhausted, "");
  }
}

absl::Status Win32Status(Win32Error error, ErrorContext context,
                         absl::string_view op, absl::string_view name) {
  return Win32Status(error, context, op, name,
                     ExplainWin32Error(error, context));
}

absl::Status Win32Status(Win32Error error, ErrorContext context,
                         absl::string_view op, absl::string_view name,
                         absl::string_view what) {
  return MakeError(CodeForWin32Error(error, context), op, name, what,
                   DescribeWin32Error(error));
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
