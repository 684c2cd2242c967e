// SPDX-License-Identifier: Apache-2.0
// Row 11: names. Portable names are 1..200 characters from [A-Za-z0-9._-],
// not "." or ".."; anything else that is not a native name is
// InvalidArgument. A live listener's name cannot be taken (AlreadyExists);
// closing or destroying a listener releases its name.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::ReadExactly;
using canal_test::UniqueName;

struct InvalidName {
  const char* label;  // For the test name.
  std::string name;
};

// Names that are neither portable nor native on any platform.
std::vector<InvalidName> InvalidNames() {
  return {
      {"Empty", ""},
      {"TooLong201", std::string(201, 'a')},
      {"Dot", "."},
      {"DotDot", ".."},
      {"Space", "has space"},
      {"Semicolon", "semi;colon"},
      {"Colon", "colon:name"},
      {"Star", "star*"},
      {"Backslash", "back\\slash"},
      {"RelativePath", "relative/path"},
      {"NonAscii", "caf\xc3\xa9"},  // UTF-8 "cafe" with an accent.
      {"EmbeddedNul", std::string("nul\0byte", 8)},
      {"OnlyNul", std::string("\0", 1)},
  };
}

class InvalidNameTest : public ::testing::TestWithParam<InvalidName> {};

TEST_P(InvalidNameTest, CreateIsInvalidArgument) {
  CANAL_EXPECT_CODE(canal_test::CreateListener(GetParam().name),
                    kInvalidArgument);
}

TEST_P(InvalidNameTest, ConnectIsInvalidArgument) {
  CANAL_EXPECT_CODE(canal::Channel::Connect(GetParam().name), kInvalidArgument);
}

TEST_P(InvalidNameTest, WaitForListenerIsInvalidArgument) {
  CANAL_EXPECT_CODE(
      canal::WaitForListener(GetParam().name, absl::Milliseconds(100)),
      kInvalidArgument);
}

TEST_P(InvalidNameTest, CallIsInvalidArgument) {
  CANAL_EXPECT_CODE(canal::Call(GetParam().name, "x", absl::Milliseconds(100)),
                    kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Names, InvalidNameTest,
                         ::testing::ValuesIn(InvalidNames()),
                         [](const ::testing::TestParamInfo<InvalidName>& info) {
                           return std::string(info.param.label);
                         });

TEST(NamesTest, SixtyFourCharacterNameWorks) {
  std::string name = UniqueName("long");
  name.resize(64, 'x');
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(NamesTest, AllPortableCharactersWork) {
  const std::string name = UniqueName("Az09._-");
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  EXPECT_EQ(listener->name(), name);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::Channel> server =
      listener->Accept(canal_test::kHangGuard);
  CANAL_ASSERT_OK(server);
  CANAL_ASSERT_OK(client->Write("ok"));
  absl::StatusOr<std::string> got = ReadExactly(*server, 2);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "ok");
}

TEST(NamesTest, CreateOnALiveListenersNameIsAlreadyExists) {
  const std::string name = UniqueName("taken");
  absl::StatusOr<canal::Listener> first = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(first);
  CANAL_EXPECT_CODE(canal_test::CreateListener(name), kAlreadyExists);
  canal::ListenerOptions message;
  message.mode = canal::PipeMode::kMessage;
  CANAL_EXPECT_CODE(canal_test::CreateListener(name, message), kAlreadyExists);
  // The refused attempt did not disturb the first listener.
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(NamesTest, CloseReleasesTheName) {
  const std::string name = UniqueName("release");
  absl::StatusOr<canal::Listener> first = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(first);
  first->Close();
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
  absl::StatusOr<canal::Listener> second = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(second);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(NamesTest, DestructorReleasesTheName) {
  const std::string name = UniqueName("dtor");
  {
    absl::StatusOr<canal::Listener> first = canal_test::CreateListener(name);
    CANAL_ASSERT_OK(first);
  }
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
  absl::StatusOr<canal::Listener> second = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(second);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(NamesTest, MovedListenerKeepsTheName) {
  const std::string name = UniqueName("move-name");
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  canal::Listener moved = std::move(*listener);
  EXPECT_EQ(moved.name(), name);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

// "Pipe names are not case sensitive" (CreateNamedPipe, Pipe Names). A
// portable name means the same listener however its letters are cased.
struct Spellings {
  std::string mixed;  // What the listener is created with.
  std::string lower;
  std::string upper;
};

Spellings SpellingsOf(absl::string_view label) {
  std::string name = UniqueName(label);
  Spellings s;
  s.lower = absl::AsciiStrToLower(name);
  s.upper = absl::AsciiStrToUpper(name);
  // "Ct-Case-..." style: every other letter upper-cased.
  s.mixed = s.lower;
  bool up = true;
  for (char& c : s.mixed) {
    if (absl::ascii_isalpha(static_cast<unsigned char>(c))) {
      if (up) c = absl::ascii_toupper(static_cast<unsigned char>(c));
      up = !up;
    }
  }
  return s;
}

TEST(NamesTest, ConnectWithOtherCaseReachesTheListener) {
  const Spellings s = SpellingsOf("case-connect");
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_message_size = 64;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(s.mixed, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(s.lower);
  CANAL_ASSERT_OK(client);
  EXPECT_EQ(client->name(), s.lower);
  // The mode and the message limit are the listener's, found through the
  // other spelling too.
  EXPECT_EQ(client->mode(), canal::PipeMode::kMessage);
  CANAL_EXPECT_CODE(client->WriteMessage(std::string(65, 'x')),
                    kInvalidArgument);
  absl::StatusOr<canal::Channel> server =
      listener->Accept(canal_test::kHangGuard);
  CANAL_ASSERT_OK(server);
  CANAL_ASSERT_OK(client->WriteMessage("hi"));
  absl::StatusOr<std::string> m = server->ReadMessage(canal_test::kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "hi");
}

TEST(NamesTest, CreateWithOtherCaseIsAlreadyExists) {
  const Spellings s = SpellingsOf("case-create");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(s.mixed);
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_CODE(canal_test::CreateListener(s.upper), kAlreadyExists);
  CANAL_EXPECT_CODE(canal_test::CreateListener(s.lower), kAlreadyExists);
  // The refused attempts did not disturb the listener.
  CANAL_EXPECT_OK(canal::Channel::Connect(s.mixed));
}

TEST(NamesTest, WaitForListenerAndCallWithOtherCase) {
  const Spellings s = SpellingsOf("case-call");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(s.mixed, canal_test::MessageOptions());
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_OK(canal::WaitForListener(s.upper, canal_test::kHangGuard));
  absl::Status server_status;
  absl::StatusOr<std::string> reply;
  {
    canal_test::Background server([&] {
      absl::StatusOr<canal::Channel> ch =
          listener->Accept(canal_test::kHangGuard);
      server_status = ch.status();
      if (!ch.ok()) return;
      absl::StatusOr<std::string> m = ch->ReadMessage(canal_test::kHangGuard);
      server_status = m.status();
      if (m.ok()) server_status = ch->WriteMessage("re:" + *m);
    });
    reply = canal::Call(s.lower, "ping", canal_test::kHangGuard);
    if (!reply.ok()) listener->Close();  // Lets the server thread go.
  }
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "re:ping");
  CANAL_EXPECT_OK(server_status);
}

TEST(NamesTest, ClosingReleasesEverySpelling) {
  const Spellings s = SpellingsOf("case-release");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(s.mixed);
  CANAL_ASSERT_OK(listener);
  listener->Close();
  CANAL_EXPECT_CODE(canal::Channel::Connect(s.upper), kNotFound);
  absl::StatusOr<canal::Listener> again = canal_test::CreateListener(s.lower);
  CANAL_ASSERT_OK(again);
  CANAL_EXPECT_OK(canal::Channel::Connect(s.mixed));
}

}  // namespace
