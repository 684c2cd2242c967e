// Windows parts of the `canal` tool: standard streams and console control
// events.

#include <fcntl.h>
#include <io.h>
#include <windows.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "tools/canal/platform.h"

namespace canal_cli {
namespace {

StopSource* stop_source = nullptr;

BOOL WINAPI OnConsoleControl(DWORD type) {
  switch (type) {
    case CTRL_C_EVENT:
    case CTRL_BREAK_EVENT:
    case CTRL_CLOSE_EVENT:
      // Runs on a thread of its own: closing the listener and channels here
      // is safe.
      if (stop_source != nullptr) stop_source->Stop();
      return TRUE;
    default:
      return FALSE;
  }
}

}  // namespace

void PrepareStdio() {
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
}

absl::StatusOr<size_t> ReadStdin(absl::Span<char> buffer) {
  HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
  if (in == nullptr || in == INVALID_HANDLE_VALUE) return 0;
  DWORD read = 0;
  if (!ReadFile(in, buffer.data(), static_cast<DWORD>(buffer.size()), &read,
                nullptr)) {
    const DWORD error = GetLastError();
    if (error == ERROR_BROKEN_PIPE || error == ERROR_HANDLE_EOF) return 0;
    return absl::UnknownError(absl::StrCat(
        "reading stdin: Windows error ", static_cast<unsigned long>(error)));
  }
  return static_cast<size_t>(read);
}

bool StdoutIsTerminal() {
  DWORD mode = 0;
  return GetConsoleMode(GetStdHandle(STD_OUTPUT_HANDLE), &mode) != 0;
}

bool StdinIsTerminal() {
  DWORD mode = 0;
  return GetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), &mode) != 0;
}

void InstallStopHandler(StopSource* stop) {
  stop_source = stop;
  SetConsoleCtrlHandler(OnConsoleControl, TRUE);
}

}  // namespace canal_cli
