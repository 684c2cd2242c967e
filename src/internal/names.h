// SPDX-License-Identifier: Apache-2.0
// Pipe names: validation of portable names and recognition of native ones.
// The mapping of a portable name to a path or `\\.\pipe\` name is the
// backend's (src/posix/names.cc, src/win32/names.cc).

#ifndef CANAL_SRC_INTERNAL_NAMES_H_
#define CANAL_SRC_INTERNAL_NAMES_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {

inline constexpr size_t kMaxPortableNameLength = 200;
inline constexpr absl::string_view kWindowsPipePrefix = "\\\\.\\pipe\\";

enum class NameKind {
  kPortable,  // [A-Za-z0-9._-]{1,200}, not "." or "..".
  kNative,    // Absolute POSIX path, or `\\.\pipe\...`.
  kAbstract,  // POSIX only: "@name", a Linux abstract-namespace socket. The
              // backend refuses it unless the caller opted in.
};

// Whether `name` is a valid portable name.
bool IsPortableName(absl::string_view name);

// Classifies `name` for this platform (`posix` selects which native form is
// accepted). Returns InvalidArgument, naming `op`, for anything else.
absl::Status ClassifyName(absl::string_view op, absl::string_view name,
                          bool posix, NameKind* kind);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_NAMES_H_
