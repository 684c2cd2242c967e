// SPDX-License-Identifier: Apache-2.0
// Windows: every pipe in \\.\pipe\, from the named-pipe file system's
// directory (NtQueryDirectoryFile with FileDirectoryInformation, which is
// what FindFirstFile uses underneath; it also reports each pipe's instance
// limit). Nothing here connects to a pipe: that would take an instance and
// reach the server's code.

#include <windows.h>
#include <winternl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/canal/list.h"

namespace canal_cli {
namespace {

// FILE_DIRECTORY_INFORMATION (ntifs.h), which not every SDK's winternl.h
// declares.
struct PipeEntry {
  ULONG NextEntryOffset;
  ULONG FileIndex;
  LARGE_INTEGER CreationTime;
  LARGE_INTEGER LastAccessTime;
  LARGE_INTEGER LastWriteTime;
  LARGE_INTEGER ChangeTime;
  LARGE_INTEGER EndOfFile;       // The pipe's current instances.
  LARGE_INTEGER AllocationSize;  // Its instance limit (-1: unlimited).
  ULONG FileAttributes;
  ULONG FileNameLength;  // In bytes.
  WCHAR FileName[1];
};

using QueryDirectoryFn = LONG(NTAPI*)(HANDLE, HANDLE, PVOID, PVOID,
                                      IO_STATUS_BLOCK*, PVOID, ULONG, int,
                                      BOOLEAN, UNICODE_STRING*, BOOLEAN);

constexpr int kFileDirectoryInformation = 1;
constexpr LONG kStatusNoMoreFiles = static_cast<LONG>(0x80000006L);

std::string Narrow(const wchar_t* text, size_t size) {
  if (size == 0) return std::string();
  const int n = WideCharToMultiByte(CP_UTF8, 0, text, static_cast<int>(size),
                                    nullptr, 0, nullptr, nullptr);
  if (n <= 0) return std::string();
  std::string out(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, text, static_cast<int>(size), &out[0], n,
                      nullptr, nullptr);
  return out;
}

absl::Status CannotList(absl::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat("canal list: this system cannot list named pipes (", what,
                   "); Wine, for one, does not implement it"));
}

}  // namespace

absl::StatusOr<ListResult> FindListeners(const std::string& dir) {
  if (!dir.empty()) {
    return absl::InvalidArgumentError(
        "DIR is for POSIX runtime directories; Windows pipes are all in "
        "\\\\.\\pipe\\");
  }
  auto query = reinterpret_cast<QueryDirectoryFn>(reinterpret_cast<void*>(
      GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "NtQueryDirectoryFile")));
  if (query == nullptr) return CannotList("ntdll has no NtQueryDirectoryFile");
  HANDLE root = CreateFileW(L"\\\\.\\pipe\\", FILE_LIST_DIRECTORY | SYNCHRONIZE,
                            FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                            OPEN_EXISTING, 0, nullptr);
  if (root == INVALID_HANDLE_VALUE) {
    return CannotList(absl::StrCat("opening \\\\.\\pipe\\: Windows error ",
                                   static_cast<unsigned long>(GetLastError())));
  }
  ListResult result;
  std::vector<LONGLONG> storage(64 * 1024 / sizeof(LONGLONG));  // aligned
  bool first = true;
  absl::Status status;
  while (true) {
    IO_STATUS_BLOCK io{};
    const LONG rc =
        query(root, nullptr, nullptr, nullptr, &io, storage.data(),
              static_cast<ULONG>(storage.size() * sizeof(LONGLONG)),
              kFileDirectoryInformation, FALSE, nullptr, first ? TRUE : FALSE);
    first = false;
    if (rc == kStatusNoMoreFiles) break;
    if (rc < 0) {
      status = CannotList(absl::StrFormat(
          "NtQueryDirectoryFile on \\\\.\\pipe\\: NTSTATUS 0x%08x",
          static_cast<unsigned long>(rc)));
      break;
    }
    const char* base = reinterpret_cast<const char*>(storage.data());
    size_t offset = 0;
    while (true) {
      const auto* entry = reinterpret_cast<const PipeEntry*>(base + offset);
      ListedPipe pipe;
      pipe.name =
          Narrow(entry->FileName, entry->FileNameLength / sizeof(WCHAR));
      pipe.path = "\\\\.\\pipe\\" + pipe.name;
      pipe.instances = static_cast<int>(entry->EndOfFile.LowPart);
      const LONG limit = static_cast<LONG>(entry->AllocationSize.LowPart);
      pipe.max_instances = limit < 0 || limit >= PIPE_UNLIMITED_INSTANCES
                               ? 0
                               : static_cast<int>(limit);
      result.pipes.push_back(std::move(pipe));
      if (entry->NextEntryOffset == 0) break;
      offset += entry->NextEntryOffset;
    }
  }
  CloseHandle(root);
  if (!status.ok()) return status;
  std::sort(
      result.pipes.begin(), result.pipes.end(),
      [](const ListedPipe& a, const ListedPipe& b) { return a.name < b.name; });
  return result;
}

}  // namespace canal_cli
