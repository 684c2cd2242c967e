// SPDX-License-Identifier: Apache-2.0
#include "src/win32/security.h"

#include <windows.h>

#include <sddl.h>
#include <aclapi.h>

#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/win32/error.h"
#include "src/win32/io.h"
#include "src/win32/names.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

// The SDDL entries of the default policies (see security.h).
constexpr wchar_t kAllLocalUsersPipeAce[] = L"(A;;0x12019b;;;AU)";
constexpr wchar_t kAllLocalUsersMetaAce[] = L"(A;;GR;;;AU)";

std::wstring SidString(PSID sid, DWORD* error) {
  wchar_t* text = nullptr;
  if (!ConvertSidToStringSidW(sid, &text)) {
    *error = GetLastError();
    return std::wstring();
  }
  std::wstring result(text);
  LocalFree(text);
  return result;
}

// The user SID of `token`; "" and *error on failure.
std::wstring TokenUserSid(HANDLE token, DWORD* error) {
  DWORD size = 0;
  GetTokenInformation(token, TokenUser, nullptr, 0, &size);
  if (size == 0) {
    *error = GetLastError();
    return std::wstring();
  }
  std::vector<unsigned char> buffer(size);
  if (!GetTokenInformation(token, TokenUser, buffer.data(), size, &size)) {
    *error = GetLastError();
    return std::wstring();
  }
  const TOKEN_USER* user = reinterpret_cast<const TOKEN_USER*>(buffer.data());
  return SidString(user->User.Sid, error);
}

// `sddl` as a security descriptor; InvalidArgument naming the SDDL error.
absl::StatusOr<std::unique_ptr<SecurityDescriptor>> FromSddl(
    absl::string_view name, const std::wstring& sddl) {
  PSECURITY_DESCRIPTOR descriptor = nullptr;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          sddl.c_str(), SDDL_REVISION_1, &descriptor, nullptr)) {
    const DWORD error = GetLastError();
    return MakeError(absl::StatusCode::kInvalidArgument, "Listen", name,
                     absl::StrCat("invalid SDDL security descriptor \"",
                                  WideToUtf8(sddl.c_str()), "\""),
                     DescribeWin32Error(error));
  }
  return std::make_unique<SecurityDescriptor>(descriptor);
}

// A custom descriptor must keep the guarantees of the defaults: a present,
// non-NULL, protected DACL of plain allow/deny entries that never allows
// Everyone, Anonymous or NETWORK.
absl::Status CheckCustomDescriptor(absl::string_view name,
                                   PSECURITY_DESCRIPTOR descriptor) {
  auto bad = [&](absl::string_view what) {
    return MakeError(absl::StatusCode::kInvalidArgument, "Listen", name,
                     absl::StrCat("access_policy.windows_sddl: ", what));
  };
  BOOL present = FALSE;
  BOOL defaulted = FALSE;
  PACL dacl = nullptr;
  if (!GetSecurityDescriptorDacl(descriptor, &present, &dacl, &defaulted) ||
      !present) {
    return bad(
        "has no DACL (\"D:P(...)\"); the system default would admit "
        "Everyone and Anonymous");
  }
  if (dacl == nullptr) {
    return bad(
        "has a NULL DACL (\"D:NO_ACCESS_CONTROL\"), which admits "
        "everyone");
  }
  SECURITY_DESCRIPTOR_CONTROL control = 0;
  DWORD revision = 0;
  if (!GetSecurityDescriptorControl(descriptor, &control, &revision) ||
      (control & SE_DACL_PROTECTED) == 0) {
    return bad("the DACL is not protected; write it as \"D:P(...)\"");
  }
  for (DWORD i = 0; i < dacl->AceCount; ++i) {
    void* ace = nullptr;
    if (!GetAce(dacl, i, &ace)) return bad("unreadable DACL entry");
    const ACE_HEADER* header = static_cast<const ACE_HEADER*>(ace);
    if (header->AceType == ACCESS_DENIED_ACE_TYPE) continue;
    if (header->AceType != ACCESS_ALLOWED_ACE_TYPE) {
      return bad(absl::StrCat("DACL entry ", i, " has type ",
                              static_cast<int>(header->AceType),
                              "; only allow (A) and deny (D) entries are "
                              "supported"));
    }
    PSID sid = &static_cast<ACCESS_ALLOWED_ACE*>(ace)->SidStart;
    if (IsWellKnownSid(sid, WinWorldSid) ||
        IsWellKnownSid(sid, WinAnonymousSid) ||
        IsWellKnownSid(sid, WinNetworkSid)) {
      return bad(
          "allows Everyone (WD), Anonymous (AN) or NETWORK (NU); "
          "use Authenticated Users (AU) or named users instead");
    }
  }
  return absl::OkStatus();
}

// `sid` (a SID string or an SDDL alias such as "SY") in canonical form.
bool CanonicalSid(const std::wstring& sid, std::wstring* canonical) {
  PSID binary = nullptr;
  if (!ConvertStringSidToSidW(sid.c_str(), &binary)) return false;
  DWORD error = ERROR_SUCCESS;
  *canonical = SidString(binary, &error);
  LocalFree(binary);
  return !canonical->empty();
}

// Restores the thread token that was in force before an impersonation.
class TokenRestorer {
 public:
  explicit TokenRestorer(HANDLE previous) : previous_(previous) {}
  ~TokenRestorer() {
    const BOOL ok = previous_.valid() ? SetThreadToken(nullptr, previous_.get())
                                      : RevertToSelf();
    if (!ok) {
      // Carrying on would leave this thread running with the client's
      // rights. Nothing else is safe: stop the process without running any
      // more user code (no atexit handlers, no signal handlers).
      const DWORD error = GetLastError();
      std::fprintf(stderr,
                   "canal: RunAsClient: cannot revert the impersonation of a "
                   "pipe client (%s); terminating the process\n",
                   DescribeWin32Error(error).c_str());
      std::fflush(stderr);
      TerminateProcess(GetCurrentProcess(), 3);
    }
  }
  TokenRestorer(const TokenRestorer&) = delete;
  TokenRestorer& operator=(const TokenRestorer&) = delete;

 private:
  ScopedHandle previous_;
};

}  // namespace

SecurityDescriptor::SecurityDescriptor(PSECURITY_DESCRIPTOR descriptor)
    : descriptor_(descriptor) {
  attributes_.nLength = sizeof(attributes_);
  attributes_.lpSecurityDescriptor = descriptor_;
  attributes_.bInheritHandle = FALSE;
}

SecurityDescriptor::~SecurityDescriptor() { LocalFree(descriptor_); }

std::wstring KernelObjectOwnerSid(HANDLE object, DWORD* error) {
  PSID owner = nullptr;
  PSECURITY_DESCRIPTOR descriptor = nullptr;
  const DWORD status =
      GetSecurityInfo(object, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION,
                      &owner, nullptr, nullptr, nullptr, &descriptor);
  if (status != ERROR_SUCCESS) {
    *error = status;
    return std::wstring();
  }
  std::wstring result =
      owner != nullptr ? SidString(owner, error) : std::wstring();
  LocalFree(descriptor);
  return result;
}

absl::StatusOr<std::wstring> CurrentUserSid() {
  HANDLE raw_token = nullptr;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &raw_token)) {
    return Win32Status(GetLastError(), ErrorContext::kGeneric,
                       "OpenProcessToken", "",
                       "cannot read this process's user");
  }
  ScopedHandle token(raw_token);
  DWORD error = ERROR_SUCCESS;
  std::wstring sid = TokenUserSid(token.get(), &error);
  if (sid.empty()) {
    return Win32Status(error, ErrorContext::kGeneric, "GetTokenInformation", "",
                       "cannot read this process's user");
  }
  return sid;
}

absl::StatusOr<std::wstring> ProcessUserSid(DWORD pid, DWORD* error) {
  ScopedHandle process(
      OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
  if (!process.valid()) {
    *error = GetLastError();
    return Win32Status(*error, ErrorContext::kGeneric, "OpenProcess", "");
  }
  HANDLE raw_token = nullptr;
  if (!OpenProcessToken(process.get(), TOKEN_QUERY, &raw_token)) {
    *error = GetLastError();
    return Win32Status(*error, ErrorContext::kGeneric, "OpenProcessToken", "");
  }
  ScopedHandle token(raw_token);
  std::wstring sid = TokenUserSid(token.get(), error);
  if (sid.empty()) {
    return Win32Status(*error, ErrorContext::kGeneric, "GetTokenInformation",
                       "");
  }
  return sid;
}

absl::StatusOr<ListenerSecurity> BuildListenerSecurity(
    absl::string_view name, const AccessPolicy& policy) {
  absl::StatusOr<std::wstring> user = CurrentUserSid();
  if (!user.ok()) return user.status();
  const std::wstring owner_and_dacl =
      L"O:" + *user + L"D:P(A;;GA;;;SY)(A;;GA;;;" + *user + L")";
  std::wstring pipe_sddl = owner_and_dacl;
  std::wstring meta_sddl = owner_and_dacl;
  ListenerSecurity security;
  switch (policy.scope) {
    case AccessPolicy::Scope::kCurrentUser:
      break;
    case AccessPolicy::Scope::kAllLocalUsers:
      pipe_sddl += kAllLocalUsersPipeAce;
      meta_sddl += kAllLocalUsersMetaAce;
      break;
    case AccessPolicy::Scope::kCustom: {
      // The section only holds the message limit; whoever may connect
      // needs to read it, nobody but the listener may change it.
      meta_sddl += kAllLocalUsersMetaAce;
      std::wstring custom;
      if (policy.windows_sddl.empty() ||
          !Utf8ToWide(policy.windows_sddl, &custom)) {
        return MakeError(absl::StatusCode::kInvalidArgument, "Listen", name,
                         "access_policy.windows_sddl is empty or not UTF-8");
      }
      absl::StatusOr<std::unique_ptr<SecurityDescriptor>> pipe =
          FromSddl(name, custom);
      if (!pipe.ok()) return pipe.status();
      absl::Status checked = CheckCustomDescriptor(name, (*pipe)->get());
      if (!checked.ok()) return checked;
      security.pipe = *std::move(pipe);
      break;
    }
  }
  if (security.pipe == nullptr) {
    absl::StatusOr<std::unique_ptr<SecurityDescriptor>> pipe =
        FromSddl(name, pipe_sddl);
    if (!pipe.ok()) return pipe.status();
    security.pipe = *std::move(pipe);
  }
  absl::StatusOr<std::unique_ptr<SecurityDescriptor>> meta =
      FromSddl(name, meta_sddl);
  if (!meta.ok()) return meta.status();
  security.meta = *std::move(meta);
  return security;
}

absl::StatusOr<std::wstring> ExpectedServerSid(const ExpectedServer& expected,
                                               absl::string_view op,
                                               absl::string_view name) {
  switch (expected.kind) {
    case ExpectedServer::Kind::kAnyone:
      return std::wstring();
    case ExpectedServer::Kind::kCurrentUserOrAdmin:
      return CurrentUserSid();
    case ExpectedServer::Kind::kUser: {
      std::wstring given;
      std::wstring wanted;
      if (!Utf8ToWide(expected.windows_sid, &given) ||
          !CanonicalSid(given, &wanted)) {
        return MakeError(
            absl::StatusCode::kInvalidArgument, op, name,
            absl::StrCat("expected_server.windows_sid \"", expected.windows_sid,
                         "\" is not a SID string"));
      }
      return wanted;
    }
  }
  return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                   "unknown ExpectedServer::Kind");
}

std::vector<std::wstring> TrustedListenerOwners(
    const ExpectedServer& expected) {
  std::vector<std::wstring> owners;
  absl::StatusOr<std::wstring> user =
      expected.kind == ExpectedServer::Kind::kAnyone
          ? CurrentUserSid()
          : ExpectedServerSid(expected, "Connect", "");
  if (user.ok() && !user->empty()) owners.push_back(*std::move(user));
  owners.push_back(kSystemSid);
  return owners;
}

absl::StatusOr<std::wstring> CheckServer(HANDLE pipe,
                                         const ExpectedServer& expected,
                                         absl::string_view op,
                                         absl::string_view name) {
  auto refuse = [&](absl::string_view what) {
    return MakeError(absl::StatusCode::kPermissionDenied, op, name, what);
  };
  // Whom to accept, besides SYSTEM.
  absl::StatusOr<std::wstring> wanted = ExpectedServerSid(expected, op, name);
  if (!wanted.ok()) return wanted.status();
  const bool check = expected.kind != ExpectedServer::Kind::kAnyone;
  ULONG pid = 0;
  if (!GetNamedPipeServerProcessId(pipe, &pid)) {
    const DWORD error = GetLastError();
    if (!check) return std::wstring();
    return MakeError(absl::StatusCode::kPermissionDenied, op, name,
                     "cannot tell which process runs the server; refusing "
                     "it (expected_server.kind = kAnyone skips this check)",
                     DescribeWin32Error(error));
  }
  DWORD error = ERROR_SUCCESS;
  absl::StatusOr<std::wstring> server = ProcessUserSid(pid, &error);
  if (!server.ok()) {
    // A server we may not inspect (a service, a protected process): fall
    // back to the owner of the pipe, which only its creator (or a holder of
    // SeRestorePrivilege) can have set to its own user.
    DWORD owner_error = ERROR_SUCCESS;
    std::wstring owner = KernelObjectOwnerSid(pipe, &owner_error);
    if (owner.empty()) {
      if (!check) return std::wstring();
      return MakeError(
          absl::StatusCode::kPermissionDenied, op, name,
          absl::StrCat("cannot read the user of server process ", pid,
                       " nor the owner of the pipe; refusing it "
                       "(expected_server.kind = kAnyone skips this check)"),
          absl::StrCat(DescribeWin32Error(error), "; ",
                       DescribeWin32Error(owner_error)));
    }
    server = std::move(owner);
  }
  if (!check || *server == *wanted || *server == kSystemSid) return server;
  return refuse(absl::StrCat(
      "the server (process ", pid, ") runs as ", SidToUtf8(*server),
      ", not as the expected ", SidToUtf8(*wanted),
      " or SYSTEM (S-1-5-18); refusing it before sending anything "
      "(see ConnectOptions::expected_server)"));
}

absl::Status Impersonate(HANDLE pipe, absl::FunctionRef<void()> fn,
                         absl::string_view name) {
  // A thread that already impersonates someone gets that token back
  // afterwards, not the process's.
  HANDLE raw_previous = nullptr;
  if (!OpenThreadToken(GetCurrentThread(), TOKEN_IMPERSONATE, TRUE,
                       &raw_previous)) {
    const DWORD error = GetLastError();
    if (error != ERROR_NO_TOKEN) {
      return MakeError(absl::StatusCode::kFailedPrecondition, "RunAsClient",
                       name, "cannot save this thread's current token",
                       DescribeWin32Error(error));
    }
    raw_previous = nullptr;
  }
  ScopedHandle previous(raw_previous);
  if (!ImpersonateNamedPipeClient(pipe)) {
    const DWORD error = GetLastError();
    return MakeError(absl::StatusCode::kPermissionDenied, "RunAsClient", name,
                     "cannot impersonate the client",
                     DescribeWin32Error(error));
  }
  TokenRestorer restorer(previous.release());
  // An identification-level token cannot act as the client: report it
  // instead of running `fn` with rights it does not have.
  HANDLE raw_token = nullptr;
  if (!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &raw_token)) {
    const DWORD error = GetLastError();
    return MakeError(absl::StatusCode::kPermissionDenied, "RunAsClient", name,
                     "cannot read the client's impersonation token",
                     DescribeWin32Error(error));
  }
  ScopedHandle token(raw_token);
  SECURITY_IMPERSONATION_LEVEL level = SecurityAnonymous;
  DWORD size = 0;
  if (!GetTokenInformation(token.get(), TokenImpersonationLevel, &level,
                           sizeof(level), &size)) {
    const DWORD error = GetLastError();
    return MakeError(absl::StatusCode::kPermissionDenied, "RunAsClient", name,
                     "cannot read the client's impersonation level",
                     DescribeWin32Error(error));
  }
  if (level < SecurityImpersonation) {
    return MakeError(
        absl::StatusCode::kPermissionDenied, "RunAsClient", name,
        absl::StrCat(
            "the client allows only ",
            level == SecurityIdentification ? "identification" : "anonymous",
            " level; it must connect with "
            "ConnectOptions::allow_impersonation"));
  }
  fn();
  return absl::OkStatus();
}

std::string SidToUtf8(const std::wstring& sid) {
  return WideToUtf8(sid.c_str());
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
