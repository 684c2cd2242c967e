// SPDX-License-Identifier: Apache-2.0
// Windows stop requests: console control events.

#include <windows.h>

#include "absl/strings/str_cat.h"
#include "tools/canal/signals.h"

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

absl::Status InstallStopHandler(StopSource* stop) {
  stop_source = stop;
  if (!SetConsoleCtrlHandler(OnConsoleControl, TRUE)) {
    return absl::UnknownError(
        absl::StrCat("canal: SetConsoleCtrlHandler failed: Windows error ",
                     static_cast<unsigned long>(GetLastError())));
  }
  return absl::OkStatus();
}

}  // namespace canal_cli
