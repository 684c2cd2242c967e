// SPDX-License-Identifier: Apache-2.0
// Secure by default on Windows: the DACL of every pipe instance and of the
// metadata section, peer identity, the client's check of the server,
// impersonation, the authorisation callback and the validation of custom
// SDDL.

#include <windows.h>

#include <sddl.h>
#include <aclapi.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::Background;
using canal_test::RunningUnderWine;
using canal_test::UniqueName;
using canal_win32_test::Handle;
using canal_win32_test::MetaSectionName;
using canal_win32_test::OpenRawClient;
using canal_win32_test::PipePath;

constexpr absl::Duration kGuard = absl::Seconds(20);

std::string Narrow(const wchar_t* wide) {
  std::string out;
  for (; *wide != 0; ++wide) out.push_back(static_cast<char>(*wide));
  return out;
}

std::wstring Widen(absl::string_view narrow) {
  return std::wstring(narrow.begin(), narrow.end());
}

std::string SidText(PSID sid) {
  wchar_t* text = nullptr;
  if (!ConvertSidToStringSidW(sid, &text)) return "<bad sid>";
  std::string result = Narrow(text);
  LocalFree(text);
  return result;
}

std::string TokenUser(HANDLE token) {
  DWORD size = 0;
  GetTokenInformation(token, ::TokenUser, nullptr, 0, &size);
  std::vector<unsigned char> buffer(size);
  if (size == 0 ||
      !GetTokenInformation(token, ::TokenUser, buffer.data(), size, &size)) {
    return "";
  }
  return SidText(reinterpret_cast<TOKEN_USER*>(buffer.data())->User.Sid);
}

std::string CurrentUserSid() {
  HANDLE token = nullptr;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return "";
  std::string sid = TokenUser(token);
  CloseHandle(token);
  return sid;
}

// One DACL entry, with generic rights mapped as for a file / pipe.
struct Ace {
  int type;
  std::string sid;
  DWORD mask;
  bool operator<(const Ace& o) const {
    return std::tie(type, sid, mask) < std::tie(o.type, o.sid, o.mask);
  }
  bool operator==(const Ace& o) const {
    return type == o.type && sid == o.sid && mask == o.mask;
  }
};

std::ostream& operator<<(std::ostream& os, const Ace& ace) {
  return os << (ace.type == ACCESS_ALLOWED_ACE_TYPE ? "A" : "D") << ";"
            << ace.sid << ";0x" << std::hex << ace.mask << std::dec;
}

struct Dacl {
  bool present = false;
  bool is_protected = false;
  std::string owner;
  std::vector<Ace> aces;  // Sorted.
};

Dacl ReadDescriptor(PSECURITY_DESCRIPTOR descriptor, GENERIC_MAPPING mapping) {
  Dacl result;
  BOOL present = FALSE;
  BOOL defaulted = FALSE;
  PACL acl = nullptr;
  GetSecurityDescriptorDacl(descriptor, &present, &acl, &defaulted);
  result.present = present && acl != nullptr;
  SECURITY_DESCRIPTOR_CONTROL control = 0;
  DWORD revision = 0;
  GetSecurityDescriptorControl(descriptor, &control, &revision);
  result.is_protected = (control & SE_DACL_PROTECTED) != 0;
  PSID owner = nullptr;
  if (GetSecurityDescriptorOwner(descriptor, &owner, &defaulted) &&
      owner != nullptr) {
    result.owner = SidText(owner);
  }
  for (DWORD i = 0; result.present && i < acl->AceCount; ++i) {
    void* raw = nullptr;
    if (!GetAce(acl, i, &raw)) continue;
    ACCESS_ALLOWED_ACE* ace = static_cast<ACCESS_ALLOWED_ACE*>(raw);
    DWORD mask = ace->Mask;
    MapGenericMask(&mask, &mapping);
    result.aces.push_back({ace->Header.AceType, SidText(&ace->SidStart), mask});
  }
  std::sort(result.aces.begin(), result.aces.end());
  return result;
}

const GENERIC_MAPPING kFileMapping = {FILE_GENERIC_READ, FILE_GENERIC_WRITE,
                                      FILE_GENERIC_EXECUTE, FILE_ALL_ACCESS};
const GENERIC_MAPPING kSectionMapping = {
    STANDARD_RIGHTS_READ | SECTION_QUERY | SECTION_MAP_READ,
    STANDARD_RIGHTS_WRITE | SECTION_MAP_WRITE,
    STANDARD_RIGHTS_EXECUTE | SECTION_MAP_EXECUTE, SECTION_ALL_ACCESS};

// The security descriptor of a kernel object, read back with GetSecurityInfo.
Dacl DaclOf(HANDLE handle, GENERIC_MAPPING mapping) {
  PSECURITY_DESCRIPTOR descriptor = nullptr;
  const DWORD error =
      GetSecurityInfo(handle, SE_KERNEL_OBJECT,
                      DACL_SECURITY_INFORMATION | OWNER_SECURITY_INFORMATION,
                      nullptr, nullptr, nullptr, nullptr, &descriptor);
  EXPECT_EQ(error, static_cast<DWORD>(ERROR_SUCCESS));
  if (error != ERROR_SUCCESS) return Dacl();
  Dacl dacl = ReadDescriptor(descriptor, mapping);
  LocalFree(descriptor);
  return dacl;
}

// What an SDDL string says, normalised the same way.
Dacl DaclOfSddl(const std::string& sddl, GENERIC_MAPPING mapping) {
  PSECURITY_DESCRIPTOR descriptor = nullptr;
  EXPECT_TRUE(ConvertStringSecurityDescriptorToSecurityDescriptorW(
      Widen(sddl).c_str(), SDDL_REVISION_1, &descriptor, nullptr))
      << sddl << ": " << GetLastError();
  if (descriptor == nullptr) return Dacl();
  Dacl dacl = ReadDescriptor(descriptor, mapping);
  LocalFree(descriptor);
  return dacl;
}

// Entries no canal DACL may hold.
::testing::AssertionResult NoWorldEntries(const Dacl& dacl) {
  for (const Ace& ace : dacl.aces) {
    if (ace.type == ACCESS_ALLOWED_ACE_TYPE &&
        (ace.sid == "S-1-1-0" || ace.sid == "S-1-5-7" ||
         ace.sid == "S-1-5-2")) {
      return ::testing::AssertionFailure() << "allows " << ace.sid;
    }
  }
  return ::testing::AssertionSuccess();
}

void ExpectDacl(const Dacl& actual, const Dacl& expected,
                const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_TRUE(actual.present);
  EXPECT_TRUE(actual.is_protected);
  EXPECT_EQ(actual.aces, expected.aces);
  EXPECT_TRUE(NoWorldEntries(actual));
}

// The pipe's DACL as seen through the first instance (a raw client and the
// accepted server end) and through an instance created after that one was
// used and closed (max_instances = 1, so the listener re-creates it).
void CheckPipeDacl(const canal::ListenerOptions& base,
                   const std::string& expected_sddl, bool expect_owner) {
  const std::string name = UniqueName("dacl");
  canal::ListenerOptions options = base;
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const Dacl expected = DaclOfSddl(expected_sddl, kFileMapping);
  {
    DWORD error = 0;
    Handle raw =
        OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
    ASSERT_TRUE(raw.valid()) << error;
    const Dacl first = DaclOf(raw.get(), kFileMapping);
    ExpectDacl(first, expected, "first instance, client end");
    if (expect_owner) {
      EXPECT_EQ(first.owner, CurrentUserSid());
    }
    absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
    ASSERT_TRUE(server.ok()) << server.status();
    ExpectDacl(DaclOf(server->native_handle(), kFileMapping), expected,
               "first instance, server end");
  }
  // The channel and the raw client are closed: the only instance is gone
  // and the listener makes a new one, which a canal client waits for.
  canal::ConnectOptions connect;
  connect.timeout = kGuard;
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, connect);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
  ASSERT_TRUE(server.ok()) << server.status();
  ExpectDacl(DaclOf(client->native_handle(), kFileMapping), expected,
             "re-created instance, client end");
  ExpectDacl(DaclOf(server->native_handle(), kFileMapping), expected,
             "re-created instance, server end");
}

TEST(PipeDaclTest, CurrentUserIsSystemAndTheUserOnly) {
  const std::string user = CurrentUserSid();
  ASSERT_FALSE(user.empty());
  CheckPipeDacl({}, absl::StrCat("D:P(A;;FA;;;SY)(A;;FA;;;", user, ")"), true);
}

TEST(PipeDaclTest, AllLocalUsersAddsAuthenticatedUsersWithoutNewInstances) {
  const std::string user = CurrentUserSid();
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  // FILE_GENERIC_READ | FILE_GENERIC_WRITE without FILE_CREATE_PIPE_INSTANCE.
  CheckPipeDacl(
      options,
      absl::StrCat("D:P(A;;FA;;;SY)(A;;FA;;;", user, ")(A;;0x12019b;;;AU)"),
      true);
}

TEST(PipeDaclTest, CustomIsWhatTheSddlSays) {
  const std::string user = CurrentUserSid();
  const std::string sddl = absl::StrCat("D:P(A;;GA;;;SY)(A;;GA;;;", user,
                                        ")(A;;GR;;;BA)(D;;GA;;;BG)");
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
  options.access_policy.windows_sddl = sddl;
  CheckPipeDacl(options, sddl, false);
}

// --- The metadata section ----------------------------------------------------

// The section's name, as documented in src/win32/meta.h: FNV-1a (64 bits)
// of the upper-cased UTF-16 pipe path.
TEST(MetaSectionTest, HasTheRestrictiveDacl) {
  const std::string user = CurrentUserSid();
  for (bool all_users : {false, true}) {
    const std::string name = UniqueName("meta");
    canal::ListenerOptions options;
    if (all_users) {
      options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
    }
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(name, options);
    ASSERT_TRUE(listener.ok()) << listener.status();
    Handle section(
        OpenFileMappingW(READ_CONTROL, FALSE, MetaSectionName(name).c_str()));
    ASSERT_TRUE(section.valid()) << GetLastError();
    const std::string expected = absl::StrCat(
        "D:P(A;;GA;;;SY)(A;;GA;;;", user, ")", all_users ? "(A;;GR;;;AU)" : "");
    const Dacl dacl = DaclOf(section.get(), kSectionMapping);
    ExpectDacl(dacl, DaclOfSddl(expected, kSectionMapping),
               all_users ? "kAllLocalUsers" : "kCurrentUser");
    EXPECT_EQ(dacl.owner, user);
  }
}

// --- Custom SDDL validation
// ----------------------------------------------------

TEST(CustomSddlTest, BadDescriptorsAreInvalidArgument) {
  const std::string user = CurrentUserSid();
  const std::string sddls[] = {
      "",                             // empty
      "this is not SDDL",             // unparsable
      "D:P(A;;GA;;;NoSuchAlias)",     // unparsable SID
      "O:SY",                         // no DACL
      "D:NO_ACCESS_CONTROL",          // NULL DACL
      "D:(A;;GA;;;SY)",               // not protected
      "D:P(A;;GA;;;SY)(A;;GR;;;WD)",  // Everyone
      "D:P(A;;GA;;;SY)(A;;GR;;;AN)",  // Anonymous
      "D:P(A;;GA;;;SY)(A;;GR;;;NU)",  // NETWORK
  };
  for (const std::string& sddl : sddls) {
    SCOPED_TRACE(sddl);
    canal::ListenerOptions options;
    options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
    options.access_policy.windows_sddl = sddl;
    const std::string name = UniqueName("sddl");
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(name, options);
    CANAL_EXPECT_CODE(listener, kInvalidArgument);
    EXPECT_TRUE(canal_test::MessageNames(listener.status(), "Listen", name));
    // Nothing was created: a client finds no listener.
    CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::ZeroDuration()),
                      kNotFound);
  }
}

TEST(CustomSddlTest, DenyEntriesForEveryoneAreFine) {
  const std::string user = CurrentUserSid();
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
  options.access_policy.windows_sddl =
      absl::StrCat("D:P(D;;GA;;;AN)(A;;GA;;;", user, ")");
  const std::string name = UniqueName("sddlok");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

// --- Peer identity
// -------------------------------------------------------------

TEST(PeerTest, BothSidesReportThisProcessAndUser) {
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("peer"));
  ASSERT_TRUE(pair.ok()) << pair.status();
  const std::string user = CurrentUserSid();
  for (canal::Channel* ch : {&pair->server, &pair->client}) {
    absl::StatusOr<canal::PeerInfo> peer = ch->Peer();
    ASSERT_TRUE(peer.ok()) << peer.status();
    EXPECT_EQ(peer->process_id, static_cast<int64_t>(GetCurrentProcessId()));
    EXPECT_EQ(peer->user_sid, user);
    EXPECT_EQ(peer->uid, -1);
    EXPECT_EQ(peer->gid, -1);
  }
}

// --- The client's check of the server
// -------------------------------------------

TEST(ExpectedServerTest, AnotherUserIsRefusedBeforeAnyByteIsSent) {
  const std::string name = UniqueName("squat");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, canal_test::MessageOptions());
  ASSERT_TRUE(listener.ok()) << listener.status();
  canal::ConnectOptions options;
  options.expected_server.kind = canal::ExpectedServer::Kind::kUser;
  options.expected_server.windows_sid = "S-1-5-21-1-2-3-1001";
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, options);
  CANAL_ASSERT_CODE(client, kPermissionDenied);
  EXPECT_TRUE(
      absl::StrContains(client.status().message(), "S-1-5-21-1-2-3-1001"))
      << client.status();
  EXPECT_TRUE(absl::StrContains(client.status().message(), CurrentUserSid()))
      << client.status();
  EXPECT_TRUE(canal_test::MessageNames(client.status(), "Connect", name));
  // Call refuses the same way.
  CANAL_EXPECT_CODE(canal::Call(name, "secret", kGuard, options),
                    kPermissionDenied);
  // The server saw two connections that sent nothing and left.
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
    ASSERT_TRUE(server.ok()) << server.status();
    CANAL_EXPECT_CODE(server->ReadMessage(kGuard), kOutOfRange);
  }
}

TEST(ExpectedServerTest, DefaultSameUserAndAnyoneAreAccepted) {
  const std::string name = UniqueName("expect");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  ASSERT_TRUE(listener.ok()) << listener.status();
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
  canal::ConnectOptions options;
  options.expected_server.kind = canal::ExpectedServer::Kind::kAnyone;
  CANAL_EXPECT_OK(canal::Channel::Connect(name, options));
  options.expected_server.kind = canal::ExpectedServer::Kind::kUser;
  options.expected_server.windows_sid = CurrentUserSid();
  CANAL_EXPECT_OK(canal::Channel::Connect(name, options));
  options.expected_server.windows_sid = "not a sid";
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, options), kInvalidArgument);
}

// --- Impersonation
// -----------------------------------------------------------------

// Whether this thread has a token, and its impersonation level.
bool ThreadToken(SECURITY_IMPERSONATION_LEVEL* level, DWORD* error) {
  HANDLE token = nullptr;
  if (!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &token)) {
    *error = GetLastError();
    return false;
  }
  DWORD size = 0;
  GetTokenInformation(token, TokenImpersonationLevel, level, sizeof(*level),
                      &size);
  CloseHandle(token);
  *error = ERROR_SUCCESS;
  return true;
}

absl::StatusOr<canal_test::ConnectedPair> ImpersonationPair(bool allow) {
  const std::string name = UniqueName("imp");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  if (!listener.ok()) return listener.status();
  canal::ConnectOptions options;
  options.allow_impersonation = allow;
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, options);
  if (!client.ok()) return client.status();
  absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
  if (!server.ok()) return server.status();
  canal_test::ConnectedPair pair;
  pair.listener = *std::move(listener);
  pair.server = *std::move(server);
  pair.client = *std::move(client);
  return pair;
}

TEST(RunAsClientTest, RunsImpersonatingAndReverts) {
  absl::StatusOr<canal_test::ConnectedPair> pair = ImpersonationPair(true);
  ASSERT_TRUE(pair.ok()) << pair.status();
  bool ran = false;
  bool had_token = false;
  SECURITY_IMPERSONATION_LEVEL level = SecurityAnonymous;
  DWORD error = 0;
  CANAL_ASSERT_OK(pair->server.RunAsClient([&] {
    ran = true;
    had_token = ThreadToken(&level, &error);
  }));
  EXPECT_TRUE(ran);
  EXPECT_TRUE(had_token) << error;
  EXPECT_EQ(level, SecurityImpersonation);
  SECURITY_IMPERSONATION_LEVEL after = SecurityAnonymous;
  EXPECT_FALSE(ThreadToken(&after, &error));
  EXPECT_EQ(error, static_cast<DWORD>(ERROR_NO_TOKEN));
}

TEST(RunAsClientTest, RestoresAnEarlierImpersonation) {
  absl::StatusOr<canal_test::ConnectedPair> pair = ImpersonationPair(true);
  ASSERT_TRUE(pair.ok()) << pair.status();
  ASSERT_TRUE(ImpersonateSelf(SecurityDelegation)) << GetLastError();
  CANAL_EXPECT_OK(pair->server.RunAsClient([] {}));
  SECURITY_IMPERSONATION_LEVEL level = SecurityAnonymous;
  DWORD error = 0;
  EXPECT_TRUE(ThreadToken(&level, &error)) << error;
  EXPECT_EQ(level, SecurityDelegation);
  ASSERT_TRUE(RevertToSelf());
}

TEST(RunAsClientTest, IdentificationOnlyClientIsNotImpersonated) {
  absl::StatusOr<canal_test::ConnectedPair> pair = ImpersonationPair(false);
  ASSERT_TRUE(pair.ok()) << pair.status();
  bool ran = false;
  SECURITY_IMPERSONATION_LEVEL level = SecurityAnonymous;
  DWORD error = 0;
  const absl::Status status = pair->server.RunAsClient([&] {
    ran = true;
    ThreadToken(&level, &error);
  });
  // The thread is back to itself whatever happened.
  SECURITY_IMPERSONATION_LEVEL after = SecurityAnonymous;
  EXPECT_FALSE(ThreadToken(&after, &error));
  if (status.ok() && RunningUnderWine()) {
    GTEST_SKIP() << "Wine 8 ignores SECURITY_SQOS_PRESENT | "
                    "SECURITY_IDENTIFICATION in CreateFileW: the server gets "
                    "an impersonation-level token (reported level "
                 << level << ")";
  }
  CANAL_EXPECT_CODE(status, kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(status.message(), "allow_impersonation"))
      << status;
  EXPECT_FALSE(ran);
}

TEST(RunAsClientTest, ClientSideChannelIsFailedPrecondition) {
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("impc"));
  ASSERT_TRUE(pair.ok()) << pair.status();
  bool ran = false;
  CANAL_EXPECT_CODE(pair->client.RunAsClient([&] { ran = true; }),
                    kFailedPrecondition);
  EXPECT_FALSE(ran);
  pair->server.Close();
  CANAL_EXPECT_CODE(pair->server.RunAsClient([&] { ran = true; }), kCancelled);
  EXPECT_FALSE(ran);
}

// --- The authorisation callback
// ----------------------------------------------------

TEST(AuthorizeTest, RefusesOnePeerAndServesTheNext) {
  const std::string name = UniqueName("authz");
  std::atomic<int> calls{0};
  absl::Notification first_refused;
  canal::PeerInfo seen;
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.authorize = [&](const canal::PeerInfo& peer) {
    if (calls.fetch_add(1) == 0) {
      seen = peer;
      first_refused.Notify();
      return absl::PermissionDeniedError("not you");
    }
    return absl::OkStatus();
  };
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<canal::Channel> accepted;
  Background server([&] { accepted = listener->Accept(kGuard); });

  // The refused client is disconnected: while it is still connecting
  // (Unavailable from Connect) or afterwards (its read ends).
  absl::StatusOr<canal::Channel> refused = canal::Channel::Connect(name);
  ASSERT_TRUE(first_refused.WaitForNotificationWithTimeout(kGuard));
  EXPECT_EQ(seen.process_id, static_cast<int64_t>(GetCurrentProcessId()));
  EXPECT_EQ(seen.user_sid, CurrentUserSid());
  const absl::Status outcome =
      refused.ok() ? refused->ReadMessage(kGuard).status() : refused.status();
  EXPECT_FALSE(outcome.ok());
  EXPECT_NE(outcome.code(), absl::StatusCode::kDeadlineExceeded) << outcome;

  absl::StatusOr<canal::Channel> admitted = canal::Channel::Connect(name);
  ASSERT_TRUE(admitted.ok()) << admitted.status();
  CANAL_ASSERT_OK(admitted->WriteMessage("hello"));
  ASSERT_TRUE(server.Finished(kGuard));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  absl::StatusOr<std::string> message = accepted->ReadMessage(kGuard);
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(*message, "hello");
  EXPECT_EQ(calls.load(), 2);
}

// --- Other users
// ---------------------------------------------------------------------

// Runs `fn` impersonating this process's own token with the user SID and
// Authenticated Users either kept or made deny-only: to the access check,
// another local user, or a client that is not even authenticated.
void AsOtherUser(bool keep_authenticated_users,
                 const std::function<void()>& fn) {
  HANDLE process_token = nullptr;
  ASSERT_TRUE(OpenProcessToken(GetCurrentProcess(),
                               TOKEN_DUPLICATE | TOKEN_QUERY, &process_token));
  Handle owner(process_token);
  DWORD size = 0;
  GetTokenInformation(process_token, ::TokenUser, nullptr, 0, &size);
  std::vector<unsigned char> buffer(size);
  ASSERT_TRUE(GetTokenInformation(process_token, ::TokenUser, buffer.data(),
                                  size, &size));
  std::vector<SID_AND_ATTRIBUTES> disable;
  disable.push_back(
      {reinterpret_cast<TOKEN_USER*>(buffer.data())->User.Sid, 0});
  PSID authenticated = nullptr;
  ASSERT_TRUE(ConvertStringSidToSidW(L"S-1-5-11", &authenticated));
  if (!keep_authenticated_users) disable.push_back({authenticated, 0});
  HANDLE restricted = nullptr;
  const BOOL made = CreateRestrictedToken(
      process_token, 0, static_cast<DWORD>(disable.size()), disable.data(), 0,
      nullptr, 0, nullptr, &restricted);
  LocalFree(authenticated);
  ASSERT_TRUE(made) << GetLastError();
  Handle token(restricted);
  HANDLE impersonation = nullptr;
  ASSERT_TRUE(
      DuplicateToken(restricted, SecurityImpersonation, &impersonation));
  Handle impersonation_token(impersonation);
  ASSERT_TRUE(SetThreadToken(nullptr, impersonation));
  fn();
  ASSERT_TRUE(RevertToSelf());
}

TEST(OtherUserTest, DefaultListenerRefusesOtherUsersAndSquatters) {
  if (RunningUnderWine()) {
    GTEST_SKIP() << "Wine 8 runs every process as one user and does not "
                    "apply deny-only SIDs of a restricted token in pipe "
                    "access checks, so refusing another user cannot be shown";
  }
  const std::string name = UniqueName("other");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  ASSERT_TRUE(listener.ok()) << listener.status();
  AsOtherUser(true, [&] {
    CANAL_EXPECT_CODE(canal::Channel::Connect(name), kPermissionDenied);
    // Nor can it add an instance of its own to the listener's pipe.
    Handle squat(CreateNamedPipeW(PipePath(name).c_str(), PIPE_ACCESS_DUPLEX,
                                  PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES, 0,
                                  0, 0, nullptr));
    EXPECT_FALSE(squat.valid());
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ACCESS_DENIED));
  });
}

TEST(OtherUserTest, AllLocalUsersAdmitsThemButNotTheirInstances) {
  if (RunningUnderWine()) {
    GTEST_SKIP() << "Wine 8 runs every process as one user and does not "
                    "apply deny-only SIDs of a restricted token in pipe "
                    "access checks, so refusing another user cannot be shown";
  }
  const std::string name = UniqueName("otherall");
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  AsOtherUser(true, [&] {
    CANAL_EXPECT_OK(canal::Channel::Connect(name));
    Handle squat(CreateNamedPipeW(PipePath(name).c_str(), PIPE_ACCESS_DUPLEX,
                                  PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES, 0,
                                  0, 0, nullptr));
    EXPECT_FALSE(squat.valid());
  });
  AsOtherUser(false, [&] {
    CANAL_EXPECT_CODE(canal::Channel::Connect(name), kPermissionDenied);
  });
}

TEST(OtherUserTest, FirstInstanceRefusesAHeldName) {
  if (RunningUnderWine()) {
    GTEST_SKIP() << "Wine 8 does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE";
  }
  // A listener's name cannot be taken over as a new pipe: a raw first
  // instance is refused while the listener lives.
  const std::string name = UniqueName("first");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  ASSERT_TRUE(listener.ok()) << listener.status();
  Handle squat(CreateNamedPipeW(
      PipePath(name).c_str(),
      PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_TYPE_BYTE,
      PIPE_UNLIMITED_INSTANCES, 0, 0, 0, nullptr));
  EXPECT_FALSE(squat.valid());
}

}  // namespace
