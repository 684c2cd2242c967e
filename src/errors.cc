// SPDX-License-Identifier: Apache-2.0
#include "src/internal/errors.h"

#include "absl/strings/str_cat.h"

namespace canal {
namespace internal {

absl::Status MakeError(absl::StatusCode code, absl::string_view op,
                       absl::string_view name, absl::string_view what) {
  try {
    return absl::Status(code,
                        absl::StrCat("canal: ", op, " \"", name, "\": ", what));
  } catch (const std::bad_alloc&) {
    // A status without a message needs no allocation.
    return absl::Status(code, "");
  } catch (const std::length_error&) {
    return absl::Status(code, "");
  }
}

absl::Status MakeError(absl::StatusCode code, absl::string_view op,
                       absl::string_view name, absl::string_view what,
                       absl::string_view native) {
  if (native.empty()) return MakeError(code, op, name, what);
  try {
    return absl::Status(code, absl::StrCat("canal: ", op, " \"", name,
                                           "\": ", what, " (", native, ")"));
  } catch (const std::bad_alloc&) {
    return absl::Status(code, "");
  } catch (const std::length_error&) {
    return absl::Status(code, "");
  }
}

absl::Status OutOfMemoryError(absl::string_view op, absl::string_view name) {
  return MakeError(absl::StatusCode::kResourceExhausted, op, name,
                   "out of memory");
}

absl::Status ThreadStartError(absl::string_view op, absl::string_view name,
                              const std::system_error& error) {
  return MakeError(absl::StatusCode::kResourceExhausted, op, name,
                   "cannot start a thread", error.what());
}

}  // namespace internal
}  // namespace canal
