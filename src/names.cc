// SPDX-License-Identifier: Apache-2.0
#include "src/internal/names.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"

namespace canal {
namespace internal {

bool IsPortableName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxPortableNameLength) return false;
  if (name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

absl::Status ClassifyName(absl::string_view op, absl::string_view name,
                          bool posix, NameKind* kind) {
  if (IsPortableName(name)) {
    *kind = NameKind::kPortable;
    return absl::OkStatus();
  }
  if (name.find('\0') != absl::string_view::npos) {
    return MakeError(absl::StatusCode::kInvalidArgument, op, "<name>",
                     "the name contains a NUL character");
  }
  if (posix && absl::StartsWith(name, "@") && name.size() > 1) {
    *kind = NameKind::kAbstract;
    return absl::OkStatus();
  }
  if (posix && absl::StartsWith(name, "/")) {
    *kind = NameKind::kNative;
    return absl::OkStatus();
  }
  if (!posix && absl::StartsWith(name, kWindowsPipePrefix) &&
      name.size() > kWindowsPipePrefix.size() &&
      name.substr(kWindowsPipePrefix.size()).find('\\') ==
          absl::string_view::npos &&
      name.size() <= 256) {
    *kind = NameKind::kNative;
    return absl::OkStatus();
  }
  if (name.empty()) {
    return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                     "the name is empty");
  }
  return MakeError(
      absl::StatusCode::kInvalidArgument, op, name,
      absl::StrCat("not a valid pipe name: use 1 to ", kMaxPortableNameLength,
                   " characters from [A-Za-z0-9._-], or a native name (",
                   posix ? "an absolute path" : "\\\\.\\pipe\\<name>", ")"));
}

}  // namespace internal
}  // namespace canal
