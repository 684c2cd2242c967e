// SPDX-License-Identifier: Apache-2.0
// `canal list`: finding the live listeners (list_posix.cc, list_win32.cc)
// and printing them (list.cc).

#ifndef CANAL_TOOLS_CANAL_LIST_H_
#define CANAL_TOOLS_CANAL_LIST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canal_cli {

// One live listener (or, on Windows, one named pipe). Unknown fields are
// empty.
struct ListedPipe {
  std::string name;  // The portable name: the socket's or pipe's file name.
  std::string path;  // The socket path, or \\.\pipe\<name>.
  std::optional<std::string> mode;    // "byte" or "message".
  std::optional<std::string> access;  // "duplex", "inbound" or "outbound".
  std::optional<int> max_instances;   // 0: unlimited.
  std::optional<int> instances;       // Connected now (Windows only).
  std::optional<int64_t> pid;         // The listener's process id.
  std::optional<int64_t> uid;         // POSIX: the lock file's owner.
  std::optional<std::string> user;    // Its name.
};

// What a search found, and what it could not look at.
struct ListResult {
  std::vector<ListedPipe> pipes;  // Sorted by name.
  // Lock files that could not be read (another user's): their listeners
  // may be live, but cannot be told from dead ones.
  int unreadable = 0;
};

// POSIX: the live listeners in `dir`, or in the runtime directory if it is
// empty (a runtime directory that does not exist holds none). NotFound if
// `dir` does not exist. Windows: every pipe in \\.\pipe\; `dir` must be
// empty (InvalidArgument otherwise); Unimplemented where the system cannot
// enumerate pipes (Wine).
absl::StatusOr<ListResult> FindListeners(const std::string& dir);

// Reads the fields of a "<socket>.canal~meta" line (src/posix/meta.h: "canal
// 1 mode=... access=... max_instances=N ... pid=P\n", unknown keys ignored)
// into `pipe`. False, leaving `pipe` unchanged, unless it is a complete
// version-1 line with a valid mode and access.
bool ParseMetaLine(absl::string_view line, ListedPipe* pipe);

// The listeners as a table for people ("-" for what is unknown).
std::string FormatTable(const std::vector<ListedPipe>& pipes);

// The listeners as a JSON array (see `canal list --help`), one line.
std::string FormatJson(const std::vector<ListedPipe>& pipes);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_LIST_H_
