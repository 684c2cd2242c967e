// SPDX-License-Identifier: Apache-2.0
#include "src/win32/names.h"

#include <windows.h>

#include <climits>
#include <cwchar>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/internal/names.h"

namespace canal {
namespace internal {
namespace win32 {

bool Utf8ToWide(absl::string_view utf8, std::wstring* wide) {
  wide->clear();
  if (utf8.empty()) return true;
  if (utf8.size() > static_cast<size_t>(INT_MAX)) return false;
  const int in_length = static_cast<int>(utf8.size());
  const int length = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS,
                                         utf8.data(), in_length, nullptr, 0);
  if (length <= 0) return false;
  wide->resize(static_cast<size_t>(length));
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8.data(),
                             in_length, &(*wide)[0], length) == length;
}

std::string WideToUtf8(const wchar_t* wide) {
  std::string utf8;
  const size_t in_length = std::wcslen(wide);
  if (in_length == 0 || in_length > static_cast<size_t>(INT_MAX)) return utf8;
  const int length =
      WideCharToMultiByte(CP_UTF8, 0, wide, static_cast<int>(in_length),
                          nullptr, 0, nullptr, nullptr);
  if (length <= 0) return utf8;
  utf8.resize(static_cast<size_t>(length));
  WideCharToMultiByte(CP_UTF8, 0, wide, static_cast<int>(in_length), &utf8[0],
                      length, nullptr, nullptr);
  return utf8;
}

absl::StatusOr<std::wstring> PipePath(absl::string_view op,
                                      absl::string_view name) {
  std::string full = absl::StartsWith(name, kWindowsPipePrefix)
                         ? std::string(name)
                         : absl::StrCat(kWindowsPipePrefix, name);
  std::wstring wide;
  if (!Utf8ToWide(full, &wide)) {
    return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                     "the name is not valid UTF-8");
  }
  return wide;
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
