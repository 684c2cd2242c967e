// SPDX-License-Identifier: Apache-2.0
// Users and groups named on the command line, turned into canal's security
// options: `--expect-user` (connect, call), `--allow-group` and
// `--allow-local-users` (serve), and the owner column of `list`.

#ifndef CANAL_TOOLS_CANAL_ACCOUNTS_H_
#define CANAL_TOOLS_CANAL_ACCOUNTS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "canal/types.h"

namespace canal_cli {

// The server check for `--expect-user USER`: "any" is kAnyone; otherwise
// kUser with the uid of a user name or a number (POSIX), or the SID of an
// account name or a SID string (Windows). Empty `user`: the default
// (kCurrentUserOrAdmin). InvalidArgument if the user does not exist or the
// SID is malformed.
absl::StatusOr<canal::ExpectedServer> ExpectedServerFor(absl::string_view user);

// The listener access policy for `serve`: only this user (the default),
// every local user, or this user and the members of `group` (a group name
// or gid on POSIX: socket mode 0660 with that group; a group name or SID on
// Windows: a protected DACL for SYSTEM, this user and the group, the group
// without the right to create instances). InvalidArgument if the group does
// not exist.
struct AccessFlags {
  bool all_local_users = false;
  std::string group;  // Empty: none.
};
absl::StatusOr<canal::AccessPolicy> AccessPolicyFor(const AccessFlags& flags);

// The name of the user with `uid` (POSIX), or the number as text if it has
// none.
std::string UserNameOf(int64_t uid);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_ACCOUNTS_H_
