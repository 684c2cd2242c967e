// Row 11: names. Portable names are 1..200 characters from [A-Za-z0-9._-],
// not "." or ".."; anything else that is not a native name is
// InvalidArgument. A live listener's name cannot be taken (AlreadyExists);
// closing or destroying a listener releases its name.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
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
  CANAL_EXPECT_CODE(canal::Listener::Create(GetParam().name), kInvalidArgument);
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

INSTANTIATE_TEST_SUITE_P(
    Names, InvalidNameTest, ::testing::ValuesIn(InvalidNames()),
    [](const ::testing::TestParamInfo<InvalidName>& info) {
      return std::string(info.param.label);
    });

TEST(NamesTest, SixtyFourCharacterNameWorks) {
  std::string name = UniqueName("long");
  name.resize(64, 'x');
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(NamesTest, AllPortableCharactersWork) {
  const std::string name = UniqueName("Az09._-");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
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
  absl::StatusOr<canal::Listener> first = canal::Listener::Create(name);
  CANAL_ASSERT_OK(first);
  CANAL_EXPECT_CODE(canal::Listener::Create(name), kAlreadyExists);
  canal::ListenerOptions message;
  message.mode = canal::PipeMode::kMessage;
  CANAL_EXPECT_CODE(canal::Listener::Create(name, message), kAlreadyExists);
  // The refused attempt did not disturb the first listener.
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(NamesTest, CloseReleasesTheName) {
  const std::string name = UniqueName("release");
  absl::StatusOr<canal::Listener> first = canal::Listener::Create(name);
  CANAL_ASSERT_OK(first);
  first->Close();
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
  absl::StatusOr<canal::Listener> second = canal::Listener::Create(name);
  CANAL_ASSERT_OK(second);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(NamesTest, DestructorReleasesTheName) {
  const std::string name = UniqueName("dtor");
  {
    absl::StatusOr<canal::Listener> first = canal::Listener::Create(name);
    CANAL_ASSERT_OK(first);
  }
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
  absl::StatusOr<canal::Listener> second = canal::Listener::Create(name);
  CANAL_ASSERT_OK(second);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

TEST(NamesTest, MovedListenerKeepsTheName) {
  const std::string name = UniqueName("move-name");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  canal::Listener moved = std::move(*listener);
  EXPECT_EQ(moved.name(), name);
  CANAL_EXPECT_OK(canal::Channel::Connect(name));
}

}  // namespace
