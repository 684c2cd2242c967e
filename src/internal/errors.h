// Building canal's error statuses. Every message names the operation, the
// pipe name and, where there is one, the native error, e.g.
//   canal: Connect "svc": no listener has this name (ENOENT: No such file...)
// The per-platform translation of native error codes lives in
// src/posix/error.cc and src/win32/error.cc.

#ifndef CANAL_SRC_INTERNAL_ERRORS_H_
#define CANAL_SRC_INTERNAL_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {

// `canal: <op> "<name>": <what>` with the given code.
absl::Status MakeError(absl::StatusCode code, absl::string_view op,
                       absl::string_view name, absl::string_view what);

// Same, with ` (<native>)` appended, e.g. native = "ENOENT: No such file".
absl::Status MakeError(absl::StatusCode code, absl::string_view op,
                       absl::string_view name, absl::string_view what,
                       absl::string_view native);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_ERRORS_H_
