// SPDX-License-Identifier: Apache-2.0
#include "win32/raw_win32.h"

#include <sddl.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace canal_win32_test {

std::wstring PipePath(absl::string_view name) {
  std::string full = absl::StrCat("\\\\.\\pipe\\", name);
  // Test names are ASCII.
  return std::wstring(full.begin(), full.end());
}

Handle OpenRawClient(absl::string_view name, DWORD access,
                     bool message_read_mode, DWORD* error) {
  *error = ERROR_SUCCESS;
  Handle h(CreateFileW(PipePath(name).c_str(), access, 0, nullptr,
                       OPEN_EXISTING, 0, nullptr));
  if (!h.valid()) {
    *error = GetLastError();
    return h;
  }
  if (message_read_mode) {
    DWORD mode = PIPE_READMODE_MESSAGE;
    if (!SetNamedPipeHandleState(h.get(), &mode, nullptr, nullptr)) {
      *error = GetLastError();
      h.reset();
    }
  }
  return h;
}

std::string CurrentUserSid() {
  HANDLE token = nullptr;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return "";
  Handle owned(token);
  DWORD size = 0;
  GetTokenInformation(token, TokenUser, nullptr, 0, &size);
  std::vector<unsigned char> buffer(size);
  if (size == 0 ||
      !GetTokenInformation(token, TokenUser, buffer.data(), size, &size)) {
    return "";
  }
  wchar_t* text = nullptr;
  if (!ConvertSidToStringSidW(
          reinterpret_cast<TOKEN_USER*>(buffer.data())->User.Sid, &text)) {
    return "";
  }
  std::string sid;
  for (const wchar_t* c = text; *c != 0; ++c) {
    sid.push_back(static_cast<char>(*c));
  }
  LocalFree(text);
  return sid;
}

uint64_t ProcessCreationTime(HANDLE process) {
  FILETIME created, exited, kernel, user;
  if (!GetProcessTimes(process, &created, &exited, &kernel, &user)) return 0;
  return (static_cast<uint64_t>(created.dwHighDateTime) << 32) |
         created.dwLowDateTime;
}

std::wstring MetaSectionName(absl::string_view name) {
  std::wstring upper = PipePath(name);
  CharUpperBuffW(&upper[0], static_cast<DWORD>(upper.size()));
  uint64_t hash = 0xcbf29ce484222325ull;
  for (wchar_t c : upper) {
    hash ^= static_cast<uint16_t>(c);
    hash *= 0x100000001b3ull;
  }
  static const wchar_t kHex[] = L"0123456789abcdef";
  std::wstring section = L"Local\\canal-pipe-meta-";
  for (int shift = 60; shift >= 0; shift -= 4) {
    section.push_back(kHex[(hash >> shift) & 0xf]);
  }
  return section;
}

std::string MetaBytes(uint32_t max_message_size, MetaState state, uint32_t pid,
                      uint64_t creation_time, uint32_t flags) {
  std::string bytes(32, '\0');
  auto put = [&bytes](size_t at, uint64_t value, int size) {
    for (int i = 0; i < size; ++i) {
      bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xff);
    }
  };
  bytes.replace(0, 4, "CNLM");
  put(4, 2, 4);
  put(8, max_message_size, 4);
  put(12, static_cast<uint32_t>(state), 4);
  put(16, pid, 4);
  put(20, flags, 4);
  put(24, creation_time, 8);
  return bytes;
}

}  // namespace canal_win32_test
