// SPDX-License-Identifier: Apache-2.0
// Access control and identity for the Win32 backend (secure by default:
// only the listener's own user gets in unless its access policy says
// otherwise): the security descriptors of pipe instances and of the
// listener's metadata section, the users behind processes, the client's
// check of the server (anti-squatting), and impersonation.
//
// Pipe DACLs, always protected (no inherited entries):
//   kCurrentUser    O:<user>D:P(A;;GA;;;SY)(A;;GA;;;<user>)
//   kAllLocalUsers  the same plus (A;;0x12019b;;;AU)
//   kCustom         AccessPolicy::windows_sddl, which must hold a present,
//                   non-NULL, protected DACL made of plain allow/deny
//                   entries, none of which allows Everyone (WD),
//                   Anonymous (AN) or NETWORK (NU).
// 0x12019b is FILE_GENERIC_READ | FILE_GENERIC_WRITE without
// FILE_APPEND_DATA, which for a pipe is FILE_CREATE_PIPE_INSTANCE: other
// users may read, write and set the read mode, but never add an instance of
// their own to the listener's pipe and so take over its clients. canal
// clients therefore ask for specific rights instead of GENERIC_WRITE (see
// kClientRead / kClientWrite).

#ifndef CANAL_SRC_WIN32_SECURITY_H_
#define CANAL_SRC_WIN32_SECURITY_H_

#include <windows.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "canal/types.h"

namespace canal {
namespace internal {
namespace win32 {

// What a canal client asks for when it opens a pipe: FILE_GENERIC_READ, and
// FILE_GENERIC_WRITE without FILE_APPEND_DATA (= FILE_CREATE_PIPE_INSTANCE),
// which a listener never grants to other users.
constexpr DWORD kClientRead = FILE_GENERIC_READ;
constexpr DWORD kClientWrite = FILE_GENERIC_WRITE & ~FILE_APPEND_DATA;

// The well-known SID of LocalSystem.
constexpr wchar_t kSystemSid[] = L"S-1-5-18";

// A self-relative security descriptor from
// ConvertStringSecurityDescriptorToSecurityDescriptorW, freed with
// LocalFree, and SECURITY_ATTRIBUTES pointing at it. Not movable: hand it
// around in a unique_ptr, as `attributes()` points into it.
class SecurityDescriptor {
 public:
  explicit SecurityDescriptor(PSECURITY_DESCRIPTOR descriptor);
  ~SecurityDescriptor();
  SecurityDescriptor(const SecurityDescriptor&) = delete;
  SecurityDescriptor& operator=(const SecurityDescriptor&) = delete;

  PSECURITY_DESCRIPTOR get() const { return descriptor_; }
  SECURITY_ATTRIBUTES* attributes() { return &attributes_; }

 private:
  PSECURITY_DESCRIPTOR descriptor_;
  SECURITY_ATTRIBUTES attributes_;
};

// Both descriptors a listener needs for `policy`.
struct ListenerSecurity {
  std::unique_ptr<SecurityDescriptor> pipe;  // Every pipe instance.
  std::unique_ptr<SecurityDescriptor> meta;  // The section of meta.h.
};

// Builds them. InvalidArgument (naming `name` and the SDDL error) for a bad
// custom SDDL; the Win32 error if the process's own user cannot be read.
absl::StatusOr<ListenerSecurity> BuildListenerSecurity(
    absl::string_view name, const AccessPolicy& policy);

// The user SID of this process ("S-1-5-21-..."), from its token.
absl::StatusOr<std::wstring> CurrentUserSid();

// The user SID of process `pid`, from its token: OpenProcess with
// PROCESS_QUERY_LIMITED_INFORMATION, OpenProcessToken with TOKEN_QUERY.
// Returns the Win32 error of the step that failed.
absl::StatusOr<std::wstring> ProcessUserSid(DWORD pid, DWORD* error);

// The owner of the kernel object `object` (a pipe, a section), read with
// READ_CONTROL: its creator, since nobody can set another user as owner
// without SeRestorePrivilege. "" and *error on failure.
std::wstring KernelObjectOwnerSid(HANDLE object, DWORD* error);

// The user SID `expected` names: this process's user for
// kCurrentUserOrAdmin, the given SID in canonical form for kUser, "" for
// kAnyone. InvalidArgument for a malformed SID.
absl::StatusOr<std::wstring> ExpectedServerSid(const ExpectedServer& expected,
                                               absl::string_view op,
                                               absl::string_view name);

// The owners whose listener metadata section (src/win32/meta.h) a client
// with `expected` believes before it has reached the server: the expected
// user (this process's own for kAnyone, which names nobody) and SYSTEM.
std::vector<std::wstring> TrustedListenerOwners(const ExpectedServer& expected);

// Client side, right after CreateFileW and before any byte is sent: checks
// who runs the server at the other end of `pipe` against `expected`.
// Returns the server's user SID (empty for kAnyone if it cannot be read),
// or PermissionDenied naming the server's and the expected SIDs.
absl::StatusOr<std::wstring> CheckServer(HANDLE pipe,
                                         const ExpectedServer& expected,
                                         absl::string_view op,
                                         absl::string_view name);

// Runs `fn` on this thread impersonating the client of the server end
// `pipe`, and always restores the thread's previous token afterwards. Does
// not run `fn`, and returns PermissionDenied, if impersonation fails or the
// client allowed only identification (or anonymous) level. If the previous
// token cannot be restored the process is terminated: the thread would
// otherwise go on with the client's rights.
absl::Status Impersonate(HANDLE pipe, absl::FunctionRef<void()> fn,
                         absl::string_view name);

// UTF-16 SID string to UTF-8.
std::string SidToUtf8(const std::wstring& sid);

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_SECURITY_H_
