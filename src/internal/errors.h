// SPDX-License-Identifier: Apache-2.0
// Building canal's error statuses. Every message names the operation, the
// pipe name and, where there is one, the native error, e.g.
//   canal: Connect "svc": no listener has this name (ENOENT: No such file...)
// The per-platform translation of native error codes lives in
// src/posix/error.cc and src/win32/error.cc.
//
// No exception leaves the library: every public entry point that can
// allocate runs its body through GuardResources, which turns a failed
// allocation or a thread that could not start into ResourceExhausted.

#ifndef CANAL_SRC_INTERNAL_ERRORS_H_
#define CANAL_SRC_INTERNAL_ERRORS_H_

#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {

// `canal: <op> "<name>": <what>` with the given code. Never throws: if even
// the message cannot be allocated, the status has the code and no message.
absl::Status MakeError(absl::StatusCode code, absl::string_view op,
                       absl::string_view name, absl::string_view what);

// Same, with ` (<native>)` appended, e.g. native = "ENOENT: No such file".
absl::Status MakeError(absl::StatusCode code, absl::string_view op,
                       absl::string_view name, absl::string_view what,
                       absl::string_view native);

// ResourceExhausted: `op` on `name` ran out of memory. Never throws.
absl::Status OutOfMemoryError(absl::string_view op, absl::string_view name);

// ResourceExhausted: `op` on `name` could not start a thread (`error` is
// what std::thread threw). Never throws.
absl::Status ThreadStartError(absl::string_view op, absl::string_view name,
                              const std::system_error& error);

// Runs `body` (which returns absl::Status or absl::StatusOr<T>) and returns
// its result, except that a failed allocation (std::bad_alloc, or
// std::length_error for a size no allocator can provide) or a thread that
// could not start (std::system_error) becomes ResourceExhausted naming `op`
// and `name`. `name` must stay valid while `body` runs.
template <typename Body>
auto GuardResources(absl::string_view op, absl::string_view name, Body&& body)
    -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return OutOfMemoryError(op, name);
  } catch (const std::length_error&) {
    return OutOfMemoryError(op, name);
  } catch (const std::system_error& error) {
    return ThreadStartError(op, name, error);
  }
}

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_ERRORS_H_
