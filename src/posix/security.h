// SPDX-License-Identifier: Apache-2.0
// Who is at the other end of a Unix socket, and the POSIX access rules built
// on it: the listener's per-peer policy check (who may connect) and the
// client's check of the server (anti-squatting: nobody else can pose as it).
//
// Credentials come from SO_PEERCRED (and SO_PEERGROUPS for supplementary
// groups) on Linux, getpeereid (and LOCAL_PEERPID / LOCAL_PEERCRED where
// they exist) on the BSDs and macOS. On a connected socket they describe
// the peer as it was when the connection was made (the client at
// connect(2), the listener at listen(2)), so they stay valid after the peer
// exits or changes its ids.

#ifndef CANAL_SRC_POSIX_SECURITY_H_
#define CANAL_SRC_POSIX_SECURITY_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "canal/types.h"

namespace canal {
namespace internal {
namespace posix {

struct PeerCred {
  int64_t pid = 0;   // 0: unknown.
  int64_t uid = -1;  // -1: unknown.
  int64_t gid = -1;  // -1: unknown.
  // Supplementary groups, where the system reports them (Linux 4.13+
  // SO_PEERGROUPS, LOCAL_PEERCRED); empty otherwise.
  std::vector<int64_t> groups;
};

// Reads the credentials of the peer of the connected socket `fd`. Returns
// false with errno set if the system call fails; fields the system cannot
// report stay at their "unknown" value.
bool ReadPeerCred(int fd, PeerCred* cred);

// The PeerInfo for `cred`.
PeerInfo ToPeerInfo(const PeerCred& cred);

// The permission bits of the socket for `policy`: 0600, 0666, or posix_mode.
mode_t SocketModeFor(const AccessPolicy& policy);

// The permission bits of the metadata and slot files: readable by exactly
// the classes (group, other) that the socket mode gives any access to.
mode_t MetaModeFor(const AccessPolicy& policy);

// The group the socket and its files are given for a kCustom policy
// (posix_group, or the effective gid when -1); -1 for the other scopes
// (files keep the group the system gives them).
int64_t GroupFor(const AccessPolicy& policy);

// Whether a peer with `cred` may use a listener run by `owner_uid` under
// `policy`, following the file-system rules for the socket's mode: the
// owner and root always; a member of the policy's group by the group write
// bit (connect(2) needs write permission); anyone else by the other write
// bit. `why` gets the reason for a refusal.
bool PolicyAdmits(const AccessPolicy& policy, uid_t owner_uid,
                  const PeerCred& cred, std::string* why);

// Whether `expected` accepts a server (or a file it wrote) owned by `uid`:
// the expected uid (the client's euid by default) or root; any uid for
// kAnyone.
bool ExpectedServerAllows(const ExpectedServer& expected, int64_t uid);

// What `expected` accepts, for messages: "uid 1000 or root", "anyone".
std::string DescribeExpectedServer(const ExpectedServer& expected);

// The client's check of the server (ConnectOptions::expected_server).
// PermissionDenied naming both uids if `server` is not acceptable.
absl::Status CheckExpectedServer(absl::string_view op, absl::string_view name,
                                 const ExpectedServer& expected,
                                 const PeerCred& server);

// InvalidArgument for an ExpectedServer that cannot be checked on POSIX
// (kUser without posix_uid, unknown kind).
absl::Status ValidateExpectedServer(absl::string_view op,
                                    absl::string_view name,
                                    const ExpectedServer& expected);

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_SECURITY_H_
