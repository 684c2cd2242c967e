// SPDX-License-Identifier: Apache-2.0
// Attacks on the section in which a listener publishes its limits and
// liveness (`Local\canal-pipe-meta-<hash>`, src/win32/meta.h). Every user of
// the session may open it for reading, and anyone may create a section of
// that name first. Neither may block a listener's restart nor make clients
// wait for a listener that does not exist: clients only believe a section
// owned by the user they expect, that says "open" and names a process that
// still runs.
//
// Under Wine every process runs as one user and any process may set any
// owner, so "another user" is played by a section whose owner is a made-up
// SID. On Windows that needs SeRestorePrivilege; those tests skip if the
// system refuses the owner.

#include <windows.h>

#include <aclapi.h>
#include <sddl.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/attack/second_process.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::Background;
using canal_test::kHangGuard;
using canal_test::UniqueName;
using canal_win32_test::AttackChildPath;
using canal_win32_test::Child;
using canal_win32_test::CurrentUserSid;
using canal_win32_test::Handle;
using canal_win32_test::MetaSectionName;
using canal_win32_test::TestChildPath;

// Far longer than the hang guard: a client that waits it out instead of
// failing at once makes the guard fire.
constexpr absl::Duration kLongTimeout = absl::Seconds(30);

// A SID no account has: the "other user" of these tests.
constexpr char kOtherUser[] = "S-1-5-21-1000000001-1000000002-1000000003-1001";

std::string Narrow(const std::wstring& wide) {
  return std::string(wide.begin(), wide.end());
}

// Starts win32_attack_child with `args`.
absl::StatusOr<std::unique_ptr<Child>> Attacker(
    const std::vector<std::string>& args) {
  return Child::Start(AttackChildPath(), args);
}

canal::ConnectOptions Timeout(absl::Duration timeout) {
  canal::ConnectOptions options;
  options.timeout = timeout;
  return options;
}

// Connect and WaitForListener both fail with NotFound, long before their
// (long) timeouts.
void ExpectNotFoundAtOnce(const std::string& name) {
  absl::Status connected;
  absl::Status waited;
  {
    Background connect([&] {
      connected = canal::Channel::Connect(name, Timeout(kLongTimeout)).status();
    });
    EXPECT_TRUE(connect.Finished(kHangGuard))
        << "Connect waited for a listener that is gone";
  }
  {
    Background wait(
        [&] { waited = canal::WaitForListener(name, kLongTimeout); });
    EXPECT_TRUE(wait.Finished(kHangGuard))
        << "WaitForListener waited for a listener that is gone";
  }
  EXPECT_EQ(connected.code(), absl::StatusCode::kNotFound) << connected;
  EXPECT_EQ(waited.code(), absl::StatusCode::kNotFound) << waited;
}

// Listens on `name` with a message limit of `limit` and checks that a
// client learns that limit, i.e. that the section it reads is this
// listener's.
void ExpectListenerServes(const std::string& name, size_t limit) {
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.max_message_size = limit;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  ASSERT_TRUE(client.ok()) << client.status();
  CANAL_EXPECT_CODE(client->WriteMessage(std::string(limit + 1, 'x')),
                    kInvalidArgument);
  CANAL_EXPECT_OK(client->WriteMessage(std::string(limit, 'x')));
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> got = server->ReadMessage(kHangGuard);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), limit);
}

// --- Someone holds a closed listener's section -------------------------------

TEST(HeldSectionTest, DoesNotBlockTheNextListener) {
  const std::string name = UniqueName("held-restart");
  absl::StatusOr<canal::Listener> first = canal::Listener::Create(name);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<Child>> holder =
      Attacker({"hold", Narrow(MetaSectionName(name))});
  ASSERT_TRUE(holder.ok()) << holder.status();
  first->Close();
  ExpectListenerServes(name, 100);
  CANAL_EXPECT_OK((*holder)->Release());
}

TEST(HeldSectionTest, ClientsOfTheClosedListenerGetNotFoundAtOnce) {
  const std::string name = UniqueName("held-client");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<std::unique_ptr<Child>> holder =
      Attacker({"hold", Narrow(MetaSectionName(name))});
  ASSERT_TRUE(holder.ok()) << holder.status();
  listener->Close();
  ExpectNotFoundAtOnce(name);
  CANAL_EXPECT_OK((*holder)->Release());
}

// The listener process dies without closing anything; another process holds
// its section, which still says "open".
TEST(HeldSectionTest, CrashedListenerIsNotFoundAndReplaced) {
  const std::string name = UniqueName("held-crash");
  absl::StatusOr<std::unique_ptr<Child>> listener =
      Child::Start(TestChildPath(), {"listen", name});
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<std::unique_ptr<Child>> holder =
      Attacker({"hold", Narrow(MetaSectionName(name))});
  ASSERT_TRUE(holder.ok()) << holder.status();
  CANAL_ASSERT_OK((*listener)->Kill());
  ExpectNotFoundAtOnce(name);
  ExpectListenerServes(name, 200);
  CANAL_EXPECT_OK((*holder)->Release());
}

// --- Sections planted for a name that has no listener -----------------------

struct Planted {
  const char* owner;    // "self" (this user, explicitly), "default", or
                        // kOtherUser.
  const char* content;  // See attack_child.cc.
};

std::string OwnerArgument(const char* owner) {
  if (std::string(owner) == "self") return CurrentUserSid();
  return owner;
}

// Plants a section; skips (returns nullptr) if the system refuses the owner.
std::unique_ptr<Child> Plant(const std::string& name, const Planted& planted) {
  absl::StatusOr<std::unique_ptr<Child>> child =
      Attacker({"plant", Narrow(MetaSectionName(name)),
                OwnerArgument(planted.owner), planted.content});
  if (!child.ok() &&
      absl::StrContains(child.status().message(),
                        absl::StrCat("error create ", ERROR_INVALID_OWNER))) {
    return nullptr;
  }
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? *std::move(child) : nullptr;
}

class PlantedSectionTest : public ::testing::TestWithParam<Planted> {};

TEST_P(PlantedSectionTest, ClientsGetNotFoundAtOnce) {
  const std::string name = UniqueName("planted");
  std::unique_ptr<Child> attacker = Plant(name, GetParam());
  if (attacker == nullptr) {
    GTEST_SKIP() << "this system does not let a process set another owner "
                    "(needs SeRestorePrivilege)";
  }
  ExpectNotFoundAtOnce(name);
  CANAL_EXPECT_OK(attacker->Release());
}

INSTANTIATE_TEST_SUITE_P(
    NoListener, PlantedSectionTest,
    ::testing::Values(Planted{"default", "garbage"}, Planted{"self", "garbage"},
                      Planted{"self", "closed-self"},
                      Planted{"self", "open-self-wrong-time"},
                      Planted{kOtherUser, "open-self"},
                      Planted{kOtherUser, "closed-self"}));

// The positive case: a section of the client's own user that names a live
// process is believed (that is how a waiting client rides out the moment in
// which a one-instance listener has no instance). Processes of one user are
// not a security boundary.
TEST(OwnSectionTest, LiveSectionOfOwnUserMakesClientsWait) {
  const std::string name = UniqueName("own-live");
  std::unique_ptr<Child> planter = Plant(name, {"self", "open-self"});
  ASSERT_NE(planter, nullptr);
  CANAL_EXPECT_CODE(
      canal::Channel::Connect(name, Timeout(absl::Milliseconds(200))),
      kDeadlineExceeded);
  CANAL_EXPECT_OK(planter->Release());
  ExpectNotFoundAtOnce(name);
}

// --- What a new listener does with a section it finds -----------------------

TEST(OwnSectionTest, StaleSectionOfOwnUserIsTakenOver) {
  for (const char* content :
       {"garbage", "closed-self", "open-self-wrong-time"}) {
    SCOPED_TRACE(content);
    const std::string name = UniqueName("own-stale");
    std::unique_ptr<Child> planter = Plant(name, {"self", content});
    ASSERT_NE(planter, nullptr);
    ExpectListenerServes(name, 300);
    // It now has the listener's DACL, not the planted one (which let
    // Everyone in).
    Handle section(
        OpenFileMappingW(READ_CONTROL, FALSE, MetaSectionName(name).c_str()));
    ASSERT_TRUE(section.valid()) << GetLastError();
    PSECURITY_DESCRIPTOR descriptor = nullptr;
    ASSERT_EQ(GetSecurityInfo(section.get(), SE_KERNEL_OBJECT,
                              DACL_SECURITY_INFORMATION, nullptr, nullptr,
                              nullptr, nullptr, &descriptor),
              static_cast<DWORD>(ERROR_SUCCESS));
    wchar_t* sddl = nullptr;
    ASSERT_TRUE(ConvertSecurityDescriptorToStringSecurityDescriptorW(
        descriptor, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &sddl,
        nullptr));
    const std::string text = Narrow(sddl);
    LocalFree(sddl);
    LocalFree(descriptor);
    EXPECT_FALSE(absl::StrContains(text, ";WD)")) << text;
    EXPECT_TRUE(absl::StrContains(text, CurrentUserSid())) << text;
    CANAL_EXPECT_OK(planter->Release());
  }
}

TEST(OwnSectionTest, LiveSectionOfOwnUserMakesCreateFail) {
  const std::string name = UniqueName("own-busy");
  std::unique_ptr<Child> planter = Plant(name, {"self", "open-self"});
  ASSERT_NE(planter, nullptr);
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_EXPECT_CODE(listener, kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(listener.status().message(),
                                absl::StrCat("process ", planter->pid())))
      << listener.status();
  CANAL_EXPECT_OK(planter->Release());
  // Nothing of the refused listener is left: the name can be listened on.
  ExpectListenerServes(name, 400);
}

// A section of another user cannot be told apart from a squatter's, and
// clients would not believe it: Create refuses, as it does for a pipe name
// another user created first, and says whose it is.
TEST(ForeignSectionTest, MakesCreateFailNamingTheOwner) {
  const std::string name = UniqueName("foreign");
  std::unique_ptr<Child> squatter = Plant(name, {kOtherUser, "open-self"});
  if (squatter == nullptr) {
    GTEST_SKIP() << "this system does not let a process set another owner "
                    "(needs SeRestorePrivilege)";
  }
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_EXPECT_CODE(listener, kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(listener.status().message(), kOtherUser))
      << listener.status();
  EXPECT_TRUE(canal_test::MessageNames(listener.status(), "Listen", name));
  // The refused listener did not keep the pipe name.
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
  CANAL_EXPECT_OK(squatter->Release());
  ExpectListenerServes(name, 500);
}

}  // namespace
