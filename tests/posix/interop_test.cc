// SPDX-License-Identifier: Apache-2.0
// Byte mode is a plain Unix stream socket: a plain socket()/connect() client
// talks to a canal listener, and a canal Channel talks to a plain
// bind()/listen()/accept() server, both ways. Message mode uses the framing
// of src/internal/framing.h ("CNL1" + 32-bit little-endian length).

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/raw_socket.h"
#include "posix/runtime_dir_fixture.h"
#include "test_util.h"

namespace canal_test {
namespace {

using Interop = RuntimeDirTest;

std::string Frame(absl::string_view payload, uint32_t announced) {
  return FrameHeader(announced) + std::string(payload);
}
std::string Frame(absl::string_view payload) {
  return Frame(payload, static_cast<uint32_t>(payload.size()));
}

TEST_F(Interop, PlainClientTalksToByteListener) {
  const std::string name = UniqueName("io-client");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  Fd raw = ConnectUnixSocket(PathOf(name));
  ASSERT_TRUE(raw.valid()) << strerror(errno);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  ASSERT_TRUE(WriteAll(raw.get(), "hello from socket"));
  absl::StatusOr<std::string> got = ReadExactly(*server, 17);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello from socket");
  CANAL_ASSERT_OK(server->Write("hello from canal"));
  EXPECT_EQ(ReadAll(raw.get(), 16), "hello from canal");
}

TEST_F(Interop, PlainClientHalfCloseIsEndOfStream) {
  const std::string name = UniqueName("io-shut");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  CANAL_ASSERT_OK(listener);
  Fd raw = ConnectUnixSocket(PathOf(name));
  ASSERT_TRUE(raw.valid()) << strerror(errno);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  ASSERT_TRUE(WriteAll(raw.get(), "bye"));
  ASSERT_EQ(shutdown(raw.get(), SHUT_WR), 0);
  absl::StatusOr<std::string> got = ReadExactly(*server, 3);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "bye");
  char buffer[8];
  CANAL_EXPECT_CODE(server->Read(absl::MakeSpan(buffer), kHangGuard),
                    kOutOfRange);
}

TEST_F(Interop, ChannelTalksToPlainServerByNativePath) {
  const std::string path = base() + "/plain.sock";
  Fd listen_fd = BindUnixSocket(path, /*listen_too=*/true);
  ASSERT_TRUE(listen_fd.valid()) << strerror(errno);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(path);
  CANAL_ASSERT_OK(ch);
  EXPECT_EQ(ch->mode(), canal::PipeMode::kByte);
  Fd raw = AcceptUnixSocket(listen_fd.get());
  ASSERT_TRUE(raw.valid()) << strerror(errno);
  CANAL_ASSERT_OK(ch->Write("request"));
  EXPECT_EQ(ReadAll(raw.get(), 7), "request");
  ASSERT_TRUE(WriteAll(raw.get(), "response"));
  absl::StatusOr<std::string> got = ReadExactly(*ch, 8);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "response");
}

TEST_F(Interop, ChannelTalksToPlainServerByPortableName) {
  MakeRuntimeDir(0700);
  const std::string name = UniqueName("io-server");
  Fd listen_fd = BindUnixSocket(PathOf(name), /*listen_too=*/true);
  ASSERT_TRUE(listen_fd.valid()) << strerror(errno);
  CANAL_EXPECT_OK(canal::WaitForListener(name, kHangGuard));
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  EXPECT_EQ(ch->mode(), canal::PipeMode::kByte);
  Fd raw = AcceptUnixSocket(listen_fd.get());
  ASSERT_TRUE(raw.valid()) << strerror(errno);
  ASSERT_TRUE(WriteAll(raw.get(), "from plain server"));
  absl::StatusOr<std::string> got = ReadExactly(*ch, 17);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "from plain server");
}

TEST_F(Interop, PlainServerClosingGivesOutOfRangeThenUnavailable) {
  const std::string path = base() + "/closing.sock";
  Fd listen_fd = BindUnixSocket(path, /*listen_too=*/true);
  ASSERT_TRUE(listen_fd.valid()) << strerror(errno);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(path);
  CANAL_ASSERT_OK(ch);
  Fd raw = AcceptUnixSocket(listen_fd.get());
  ASSERT_TRUE(raw.valid());
  ASSERT_TRUE(WriteAll(raw.get(), "end"));
  raw.reset();
  absl::StatusOr<std::string> got = ReadExactly(*ch, 3);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "end");
  char buffer[8];
  CANAL_EXPECT_CODE(ch->Read(absl::MakeSpan(buffer), kHangGuard), kOutOfRange);
  // Writing into the closed socket must not raise SIGPIPE.
  absl::Status status;
  for (int i = 0; i < 100 && status.ok(); ++i) status = ch->Write("x");
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
}

TEST_F(Interop, CallToPlainServerIsFailedPrecondition) {
  const std::string path = base() + "/call.sock";
  Fd listen_fd = BindUnixSocket(path, /*listen_too=*/true);
  ASSERT_TRUE(listen_fd.valid()) << strerror(errno);
  CANAL_EXPECT_CODE(canal::Call(path, "x", absl::Seconds(2)),
                    kFailedPrecondition);
}

TEST_F(Interop, PlainClientSendsFramedMessages) {
  const std::string name = UniqueName("io-frames");
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  Fd raw = ConnectUnixSocket(PathOf(name));
  ASSERT_TRUE(raw.valid()) << strerror(errno);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  ASSERT_TRUE(WriteAll(raw.get(), Frame("one") + Frame("") + Frame("three")));
  for (const char* expected : {"one", "", "three"}) {
    absl::StatusOr<std::string> m = server->ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(*m, expected);
  }
  CANAL_ASSERT_OK(server->WriteMessage("reply"));
  EXPECT_EQ(ReadAll(raw.get(), 13), Frame("reply"));
}

TEST_F(Interop, AnnouncedMessageOverLimitIsResourceExhausted) {
  const std::string name = UniqueName("io-huge");
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_message_size = 1024;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  Fd raw = ConnectUnixSocket(PathOf(name));
  ASSERT_TRUE(raw.valid()) << strerror(errno);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  // Announce 1 GiB; send only a little of it.
  ASSERT_TRUE(WriteAll(raw.get(), Frame("xxxx", 1u << 30)));
  CANAL_EXPECT_CODE(server->ReadMessage(kHangGuard), kResourceExhausted);
}

TEST_F(Interop, BadFramingIsDataLoss) {
  const std::string name = UniqueName("io-bad");
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  Fd raw = ConnectUnixSocket(PathOf(name));
  ASSERT_TRUE(raw.valid()) << strerror(errno);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  ASSERT_TRUE(WriteAll(raw.get(), "GET / HTTP/1.0\r\n\r\n"));
  CANAL_EXPECT_CODE(server->ReadMessage(kHangGuard), kDataLoss);
}

}  // namespace
}  // namespace canal_test
