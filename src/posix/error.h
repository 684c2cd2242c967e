// SPDX-License-Identifier: Apache-2.0
// The POSIX backend's one translation of errno values into canal statuses,
// like libuv's error table: every backend file builds its errors here so
// that the same errno always yields the same absl::StatusCode and a message
// of the form
//   canal: <op> "<name>": <what> (ENOENT: No such file or directory)

#ifndef CANAL_SRC_POSIX_ERROR_H_
#define CANAL_SRC_POSIX_ERROR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {
namespace posix {

// The status code canal reports for `err` when the caller has no more
// specific meaning for it (e.g. ENOENT -> NotFound, EACCES ->
// PermissionDenied, EPIPE -> Unavailable, EMFILE -> ResourceExhausted).
absl::StatusCode ErrnoToStatusCode(int err);

// "ENOENT: No such file or directory". Thread-safe.
std::string DescribeErrno(int err);

// MakeError with the code from ErrnoToStatusCode(err) and DescribeErrno(err)
// as the native part.
absl::Status ErrnoError(absl::string_view op, absl::string_view name,
                        absl::string_view what, int err);

// Same with an explicit code, for places where the operation gives the errno
// a specific meaning (ECONNRESET on a read is end of stream, for instance).
absl::Status ErrnoError(absl::StatusCode code, absl::string_view op,
                        absl::string_view name, absl::string_view what,
                        int err);

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_ERROR_H_
