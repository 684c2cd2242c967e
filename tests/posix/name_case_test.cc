// SPDX-License-Identifier: Apache-2.0
// Portable names are case-insensitive on POSIX too, as Windows pipe names
// are: "Svc" and "svc" are one listener (the socket file is named in lower
// case), while name() still returns what the caller gave. Native socket
// paths are used exactly as given.

#include <string>

#include "absl/strings/ascii.h"
#include "absl/status/status.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/raw_socket.h"
#include "posix/runtime_dir_fixture.h"
#include "test_util.h"

namespace canal_test {
namespace {

using NameCase = RuntimeDirTest;

TEST_F(NameCase, PortableNamesThatDifferOnlyInCaseAreOneListener) {
  const std::string lower = UniqueName("case-svc");
  std::string mixed = lower;  // "Ct-Case-svc-...".
  mixed[0] = absl::ascii_toupper(mixed[0]);
  mixed[3] = absl::ascii_toupper(mixed[3]);
  const std::string upper = absl::AsciiStrToUpper(lower);
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(mixed, MessageOptions());
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(listener->name(), mixed);
  EXPECT_TRUE(IsSocket(PathOf(lower)));
  CANAL_EXPECT_CODE(canal::Listener::Create(lower), kAlreadyExists);
  CANAL_EXPECT_CODE(canal::Listener::Create(upper), kAlreadyExists);
  CANAL_EXPECT_OK(canal::WaitForListener(upper, kHangGuard));
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(upper);
  CANAL_ASSERT_OK(client);
  EXPECT_EQ(client->mode(), canal::PipeMode::kMessage);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  CANAL_ASSERT_OK(client->WriteMessage("hello"));
  absl::StatusOr<std::string> got = server->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello");
  listener->Close();
  CANAL_EXPECT_CODE(canal::Channel::Connect(lower), kNotFound);
}

TEST_F(NameCase, NativePathsKeepTheirCase) {
  const std::string upper = base() + "/Native.sock";
  const std::string lower = base() + "/native.sock";
  absl::StatusOr<canal::Listener> first = canal::Listener::Create(upper);
  CANAL_ASSERT_OK(first);
  absl::StatusOr<canal::Listener> second = canal::Listener::Create(lower);
  CANAL_ASSERT_OK(second);
  EXPECT_TRUE(IsSocket(upper));
  EXPECT_TRUE(IsSocket(lower));
  CANAL_EXPECT_OK(canal::Channel::Connect(upper));
  CANAL_EXPECT_OK(canal::Channel::Connect(lower));
}

}  // namespace
}  // namespace canal_test
