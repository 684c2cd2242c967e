// SPDX-License-Identifier: Apache-2.0
// A connected pair of ends of a uniquely named, single-instance byte pipe:
// Windows' anonymous pipes (CreatePipe) cannot do overlapped I/O, so canal
// makes its "anonymous" pipes the way libuv and CPython do.

#ifndef CANAL_SRC_WIN32_PIPE_H_
#define CANAL_SRC_WIN32_PIPE_H_

#include <windows.h>

#include <string>

#include "absl/status/statusor.h"
#include "src/win32/io.h"

namespace canal {
namespace internal {
namespace win32 {

struct NamedPipePair {
  ScopedHandle server;  // Overlapped, not inheritable.
  ScopedHandle client;  // Overlapped if asked for, not inheritable.
  std::string name;     // UTF-8, for messages.
};

// Creates `\\.\pipe\canal-anon-<pid>-<counter>-<random>` with
// FILE_FLAG_FIRST_PIPE_INSTANCE, one instance, PIPE_REJECT_REMOTE_CLIENTS and
// one-way access (the server end reads if `server_reads`), and opens its
// client end with CreateFileW. A client end given to a child process as a
// standard handle should not be overlapped (`client_overlapped` false):
// most programs do synchronous I/O on their standard handles.
// `buffer_size` 0 means 64 KiB.
absl::StatusOr<NamedPipePair> MakeNamedPipePair(bool server_reads,
                                                bool client_overlapped,
                                                DWORD buffer_size);

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_PIPE_H_
