#include "src/internal/errors.h"

#include "absl/strings/str_cat.h"

namespace canal {
namespace internal {

absl::Status MakeError(absl::StatusCode code, absl::string_view op,
                       absl::string_view name, absl::string_view what) {
  return absl::Status(code, absl::StrCat("canal: ", op, " \"", name, "\": ", what));
}

absl::Status MakeError(absl::StatusCode code, absl::string_view op,
                       absl::string_view name, absl::string_view what,
                       absl::string_view native) {
  if (native.empty()) return MakeError(code, op, name, what);
  return absl::Status(code, absl::StrCat("canal: ", op, " \"", name, "\": ",
                                         what, " (", native, ")"));
}

}  // namespace internal
}  // namespace canal
