// SPDX-License-Identifier: Apache-2.0
// Windows accounts: SIDs from account names (LookupAccountNameW) and the
// current user's SID from the process token.

#include <windows.h>
#include <sddl.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/canal/accounts.h"

namespace canal_cli {
namespace {

std::wstring Widen(absl::string_view text) {
  if (text.empty()) return std::wstring();
  const int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(),
                                    static_cast<int>(text.size()), nullptr, 0);
  if (n <= 0) return std::wstring();
  std::wstring out(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(),
                      static_cast<int>(text.size()), &out[0], n);
  return out;
}

std::string Narrow(const wchar_t* text) {
  const int n =
      WideCharToMultiByte(CP_UTF8, 0, text, -1, nullptr, 0, nullptr, nullptr);
  if (n <= 1) return std::string();
  std::string out(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, text, -1, &out[0], n, nullptr, nullptr);
  out.resize(static_cast<size_t>(n - 1));
  return out;
}

// `sid` as "S-1-..."; empty on failure.
std::string SidText(PSID sid) {
  wchar_t* text = nullptr;
  if (!ConvertSidToStringSidW(sid, &text)) return std::string();
  std::string out = Narrow(text);
  LocalFree(text);
  return out;
}

std::string WindowsError(DWORD error) {
  return absl::StrCat("Windows error ", static_cast<unsigned long>(error));
}

// The SID of an account name or SID string, in canonical form.
absl::StatusOr<std::string> ResolveSid(absl::string_view flag,
                                       absl::string_view account) {
  const std::wstring wide = Widen(account);
  if (wide.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": \"", account, "\" is not UTF-8"));
  }
  if (absl::StartsWith(account, "S-") || absl::StartsWith(account, "s-")) {
    PSID sid = nullptr;
    if (!ConvertStringSidToSidW(wide.c_str(), &sid)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": \"", account, "\" is not a SID (",
                       WindowsError(GetLastError()), ")"));
    }
    std::string text = SidText(sid);
    LocalFree(sid);
    return text;
  }
  DWORD sid_size = 0;
  DWORD domain_size = 0;
  SID_NAME_USE use;
  LookupAccountNameW(nullptr, wide.c_str(), nullptr, &sid_size, nullptr,
                     &domain_size, &use);
  if (sid_size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": no account \"", account, "\" (",
                     WindowsError(GetLastError()), ")"));
  }
  std::vector<unsigned char> sid(sid_size);
  std::vector<wchar_t> domain(domain_size + 1);
  if (!LookupAccountNameW(nullptr, wide.c_str(), sid.data(), &sid_size,
                          domain.data(), &domain_size, &use)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": no account \"", account, "\" (",
                     WindowsError(GetLastError()), ")"));
  }
  std::string text = SidText(sid.data());
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot convert the SID of \"", account, "\""));
  }
  return text;
}

absl::StatusOr<std::string> CurrentUserSid() {
  HANDLE token = nullptr;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) {
    return absl::UnknownError(absl::StrCat("canal: OpenProcessToken failed: ",
                                           WindowsError(GetLastError())));
  }
  DWORD size = 0;
  GetTokenInformation(token, TokenUser, nullptr, 0, &size);
  std::vector<unsigned char> buffer(size > 0 ? size : 1);
  const bool ok = size > 0 && GetTokenInformation(token, TokenUser,
                                                  buffer.data(), size, &size);
  const DWORD error = GetLastError();
  CloseHandle(token);
  if (!ok) {
    return absl::UnknownError(absl::StrCat(
        "canal: GetTokenInformation failed: ", WindowsError(error)));
  }
  std::string sid =
      SidText(reinterpret_cast<TOKEN_USER*>(buffer.data())->User.Sid);
  if (sid.empty()) return absl::UnknownError("canal: cannot read the user SID");
  return sid;
}

}  // namespace

absl::StatusOr<canal::ExpectedServer> ExpectedServerFor(
    absl::string_view user) {
  canal::ExpectedServer expected;
  if (user.empty()) return expected;
  if (user == "any") {
    expected.kind = canal::ExpectedServer::Kind::kAnyone;
    return expected;
  }
  absl::StatusOr<std::string> sid = ResolveSid("--expect-user", user);
  if (!sid.ok()) return sid.status();
  expected.kind = canal::ExpectedServer::Kind::kUser;
  expected.windows_sid = *std::move(sid);
  return expected;
}

absl::StatusOr<canal::AccessPolicy> AccessPolicyFor(const AccessFlags& flags) {
  canal::AccessPolicy policy;
  if (flags.all_local_users) {
    policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
    return policy;
  }
  if (flags.group.empty()) return policy;
  absl::StatusOr<std::string> group = ResolveSid("--allow-group", flags.group);
  if (!group.ok()) return group.status();
  absl::StatusOr<std::string> me = CurrentUserSid();
  if (!me.ok()) return me.status();
  // As canal's own kAllLocalUsers entry: read and write, but not
  // FILE_CREATE_PIPE_INSTANCE, which would let a member add an instance of
  // their own and take over clients.
  policy.scope = canal::AccessPolicy::Scope::kCustom;
  policy.windows_sddl = absl::StrCat("O:", *me, "D:P(A;;GA;;;SY)(A;;GA;;;", *me,
                                     ")(A;;0x12019b;;;", *group, ")");
  return policy;
}

std::string UserNameOf(int64_t uid) { return absl::StrCat(uid); }

}  // namespace canal_cli
