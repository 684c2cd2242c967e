// SPDX-License-Identifier: Apache-2.0
// Windows standard streams and the console.

#include <fcntl.h>
#include <io.h>
#include <windows.h>
#include <shellapi.h>

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tools/canal/console.h"

namespace canal_cli {

std::vector<std::string> ProgramArguments(int argc, char** argv) {
  int count = 0;
  wchar_t** wide = CommandLineToArgvW(GetCommandLineW(), &count);
  if (wide == nullptr) {
    return std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc);
  }
  std::vector<std::string> args;
  for (int i = 1; i < count; ++i) {
    const int n = WideCharToMultiByte(CP_UTF8, 0, wide[i], -1, nullptr, 0,
                                      nullptr, nullptr);
    std::string arg(n > 0 ? static_cast<size_t>(n) : 1, '\0');
    if (n > 0) {
      WideCharToMultiByte(CP_UTF8, 0, wide[i], -1, &arg[0], n, nullptr,
                          nullptr);
    }
    arg.resize(arg.size() - 1);  // the terminating NUL
    args.push_back(std::move(arg));
  }
  LocalFree(wide);
  return args;
}

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
    return absl::UnknownError(
        absl::StrCat("canal: reading stdin: Windows error ",
                     static_cast<unsigned long>(error)));
  }
  return static_cast<size_t>(read);
}

bool StdinIsTerminal() {
  DWORD mode = 0;
  return GetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), &mode) != 0;
}

ProgressStyle StdoutProgressStyle() {
  HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
  DWORD mode = 0;
  if (!GetConsoleMode(out, &mode)) return ProgressStyle::kNone;
  // Consoles before Windows 10 (and some hosts) refuse escape sequences;
  // the progress line then redraws with a carriage return and spaces.
  if ((mode & ENABLE_VIRTUAL_TERMINAL_PROCESSING) != 0 ||
      SetConsoleMode(out, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING)) {
    return ProgressStyle::kAnsi;
  }
  return ProgressStyle::kPlain;
}

}  // namespace canal_cli
