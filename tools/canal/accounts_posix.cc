// SPDX-License-Identifier: Apache-2.0
// POSIX users and groups: getpwnam_r / getgrnam_r and friends.

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/canal/accounts.h"

namespace canal_cli {
namespace {

// Buffer sizes for the *_r lookups: sysconf's hint, grown on ERANGE.
size_t InitialBuffer(int name) {
  const long hint = ::sysconf(name);
  return hint > 0 ? static_cast<size_t>(hint) : 4096;
}

constexpr size_t kMaxBuffer = size_t{1} << 20;

}  // namespace

absl::StatusOr<canal::ExpectedServer> ExpectedServerFor(
    absl::string_view user) {
  canal::ExpectedServer expected;
  if (user.empty()) return expected;
  if (user == "any") {
    expected.kind = canal::ExpectedServer::Kind::kAnyone;
    return expected;
  }
  expected.kind = canal::ExpectedServer::Kind::kUser;
  int64_t uid = -1;
  if (absl::SimpleAtoi(user, &uid) && uid >= 0) {
    expected.posix_uid = uid;
    return expected;
  }
  const std::string name(user);
  std::vector<char> buffer(InitialBuffer(_SC_GETPW_R_SIZE_MAX));
  while (true) {
    passwd pw;
    passwd* found = nullptr;
    const int rc =
        ::getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < kMaxBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--expect-user: no user \"", name, "\""));
    }
    expected.posix_uid = pw.pw_uid;
    return expected;
  }
}

absl::StatusOr<canal::AccessPolicy> AccessPolicyFor(const AccessFlags& flags) {
  canal::AccessPolicy policy;
  if (flags.all_local_users) {
    policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
    return policy;
  }
  if (flags.group.empty()) return policy;
  policy.scope = canal::AccessPolicy::Scope::kCustom;
  policy.posix_mode = 0660;
  int64_t gid = -1;
  if (absl::SimpleAtoi(flags.group, &gid) && gid >= 0) {
    policy.posix_group = gid;
    return policy;
  }
  std::vector<char> buffer(InitialBuffer(_SC_GETGR_R_SIZE_MAX));
  while (true) {
    group gr;
    group* found = nullptr;
    const int rc = ::getgrnam_r(flags.group.c_str(), &gr, buffer.data(),
                                buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < kMaxBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--allow-group: no group \"", flags.group, "\""));
    }
    policy.posix_group = gr.gr_gid;
    return policy;
  }
}

std::string UserNameOf(int64_t uid) {
  std::vector<char> buffer(InitialBuffer(_SC_GETPW_R_SIZE_MAX));
  while (true) {
    passwd pw;
    passwd* found = nullptr;
    const int rc = ::getpwuid_r(static_cast<uid_t>(uid), &pw, buffer.data(),
                                buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < kMaxBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr) return absl::StrCat(uid);
    return pw.pw_name;
  }
}

}  // namespace canal_cli
