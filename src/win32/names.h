// SPDX-License-Identifier: Apache-2.0
// Pipe names and text conversion for the Win32 backend. The API takes UTF-8;
// Windows' wide-character calls take UTF-16.

#ifndef CANAL_SRC_WIN32_NAMES_H_
#define CANAL_SRC_WIN32_NAMES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {
namespace win32 {

// UTF-8 to UTF-16. Fails (returns false) on malformed UTF-8.
bool Utf8ToWide(absl::string_view utf8, std::wstring* wide);

// UTF-16 to UTF-8; unpaired surrogates become U+FFFD.
std::string WideToUtf8(const wchar_t* wide);

// The `\\.\pipe\...` path for a validated name: a portable name gets the
// prefix, a native name passes through. InvalidArgument (naming `op`) if the
// name is not valid UTF-8.
absl::StatusOr<std::wstring> PipePath(absl::string_view op,
                                      absl::string_view name);

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_NAMES_H_
