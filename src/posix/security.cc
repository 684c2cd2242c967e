// SPDX-License-Identifier: Apache-2.0
#include "src/posix/security.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#if defined(__APPLE__) || defined(__FreeBSD__)
#include <sys/ucred.h>
#endif

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "src/internal/errors.h"

namespace canal {
namespace internal {
namespace posix {

bool ReadPeerCred(int fd, PeerCred* cred) {
  *cred = PeerCred();
#if defined(__linux__) && defined(SO_PEERCRED)
  struct ucred uc;
  socklen_t len = sizeof(uc);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0) return false;
  cred->pid = uc.pid;
  // The kernel reports the overflow ids (65534) for a peer in another user
  // namespace without a mapping; that is still a real, checkable uid.
  cred->uid = uc.uid;
  cred->gid = uc.gid;
#if defined(SO_PEERGROUPS)
  // Best effort: an old kernel (before 4.13) has no SO_PEERGROUPS.
  std::vector<gid_t> groups(16);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) ==
        0) {
      groups.resize(glen / sizeof(gid_t));
      for (gid_t g : groups) cred->groups.push_back(g);
      break;
    }
    if (errno != ERANGE) break;
    groups.resize(glen / sizeof(gid_t) + 1);
  }
#endif
  return true;
#else
  uid_t uid;
  gid_t gid;
  if (::getpeereid(fd, &uid, &gid) != 0) return false;
  cred->uid = uid;
  cred->gid = gid;
#if defined(LOCAL_PEERPID)
  pid_t pid = 0;
  socklen_t len = sizeof(pid);
  if (::getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0) {
    cred->pid = pid;
  }
#endif
#if defined(LOCAL_PEERCRED) && (defined(__APPLE__) || defined(__FreeBSD__))
  struct xucred xc;
  socklen_t xlen = sizeof(xc);
  if (::getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, &xc, &xlen) == 0 &&
      xc.cr_version == XUCRED_VERSION) {
    for (int i = 0; i < xc.cr_ngroups; ++i)
      cred->groups.push_back(xc.cr_groups[i]);
  }
#endif
  return true;
#endif
}

PeerInfo ToPeerInfo(const PeerCred& cred) {
  PeerInfo info;
  info.process_id = cred.pid;
  info.uid = cred.uid;
  info.gid = cred.gid;
  return info;
}

mode_t SocketModeFor(const AccessPolicy& policy) {
  switch (policy.scope) {
    case AccessPolicy::Scope::kAllLocalUsers:
      return 0666;
    case AccessPolicy::Scope::kCustom:
      return static_cast<mode_t>(policy.posix_mode & 0666);
    case AccessPolicy::Scope::kCurrentUser:
      break;
  }
  return 0600;
}

mode_t MetaModeFor(const AccessPolicy& policy) {
  const mode_t socket_mode = SocketModeFor(policy);
  mode_t mode = 0600;
  if (socket_mode & 0060) mode |= 0040;
  if (socket_mode & 0006) mode |= 0004;
  return mode;
}

int64_t GroupFor(const AccessPolicy& policy) {
  if (policy.scope != AccessPolicy::Scope::kCustom) return -1;
  return policy.posix_group >= 0 ? policy.posix_group
                                 : static_cast<int64_t>(::getegid());
}

bool PolicyAdmits(const AccessPolicy& policy, uid_t owner_uid,
                  const PeerCred& cred, std::string* why) {
  if (policy.scope == AccessPolicy::Scope::kAllLocalUsers) return true;
  if (cred.uid < 0) {
    *why = "the peer's uid cannot be read";
    return false;
  }
  if (cred.uid == static_cast<int64_t>(owner_uid) || cred.uid == 0) {
    return true;
  }
  if (policy.scope == AccessPolicy::Scope::kCurrentUser) {
    *why = absl::StrCat("peer uid ", cred.uid, " is not the listener's uid ",
                        owner_uid, " (or root)");
    return false;
  }
  // kCustom: as the kernel decides for a socket file, the first class that
  // matches (group before other) decides, and connect(2) needs write.
  const mode_t mode = SocketModeFor(policy);
  const int64_t group = GroupFor(policy);
  bool in_group = cred.gid == group;
  for (int64_t g : cred.groups) in_group = in_group || g == group;
  if (in_group) {
    if (mode & 0020) return true;
    *why = absl::StrFormat(
        "peer uid %d is in group %d, which mode 0%03o does not let connect",
        cred.uid, group, static_cast<unsigned>(mode));
    return false;
  }
  if (mode & 0002) return true;
  *why = absl::StrFormat(
      "peer uid %d (gid %d) is neither the owner nor in group %d, and mode "
      "0%03o does not let others connect",
      cred.uid, cred.gid, group, static_cast<unsigned>(mode));
  return false;
}

absl::Status ValidateExpectedServer(absl::string_view op,
                                    absl::string_view name,
                                    const ExpectedServer& expected) {
  switch (expected.kind) {
    case ExpectedServer::Kind::kCurrentUserOrAdmin:
    case ExpectedServer::Kind::kAnyone:
      return absl::OkStatus();
    case ExpectedServer::Kind::kUser:
      if (expected.posix_uid < 0) {
        return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                         "expected_server.kind is kUser but "
                         "expected_server.posix_uid is not set");
      }
      return absl::OkStatus();
  }
  return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                   "unknown ExpectedServer::Kind");
}

namespace {

// The uid `expected` names (the client's euid by default); -1 for kAnyone.
int64_t ExpectedUid(const ExpectedServer& expected) {
  switch (expected.kind) {
    case ExpectedServer::Kind::kAnyone:
      return -1;
    case ExpectedServer::Kind::kUser:
      return expected.posix_uid;
    case ExpectedServer::Kind::kCurrentUserOrAdmin:
      break;
  }
  return static_cast<int64_t>(::geteuid());
}

}  // namespace

bool ExpectedServerAllows(const ExpectedServer& expected, int64_t uid) {
  if (expected.kind == ExpectedServer::Kind::kAnyone) return true;
  return uid >= 0 && (uid == ExpectedUid(expected) || uid == 0);
}

std::string DescribeExpectedServer(const ExpectedServer& expected) {
  if (expected.kind == ExpectedServer::Kind::kAnyone) return "anyone";
  return absl::StrCat("uid ", ExpectedUid(expected), " or root");
}

absl::Status CheckExpectedServer(absl::string_view op, absl::string_view name,
                                 const ExpectedServer& expected,
                                 const PeerCred& server) {
  if (ExpectedServerAllows(expected, server.uid)) return absl::OkStatus();
  const std::string found = server.uid >= 0 ? absl::StrCat("uid ", server.uid)
                                            : std::string("an unknown user");
  return MakeError(
      absl::StatusCode::kPermissionDenied, op, name,
      absl::StrCat("the server is run by ", found, ", expected ",
                   DescribeExpectedServer(expected),
                   " (set ConnectOptions::expected_server to accept "
                   "another server user)"));
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
