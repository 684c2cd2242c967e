#include "win32/win32_test_util.h"

#include <atomic>
#include <random>

#include "absl/strings/str_cat.h"

namespace canal_win32_test {

std::string UniqueName(absl::string_view label) {
  static std::atomic<int> counter{0};
  std::random_device random;
  return absl::StrCat("cw-", label, "-", GetCurrentProcessId(), "-",
                      counter.fetch_add(1), "-", absl::Hex(random()));
}

std::wstring PipePath(absl::string_view name) {
  std::string full = absl::StrCat("\\\\.\\pipe\\", name);
  // Test names are ASCII.
  return std::wstring(full.begin(), full.end());
}

bool RunningUnderWine() {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll != nullptr &&
         GetProcAddress(ntdll, "wine_get_version") != nullptr;
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

}  // namespace canal_win32_test
