// SPDX-License-Identifier: Apache-2.0
// Handle passing (Channel::WriteMessageWithHandles / ReadMessageWithHandles)
// on both backends: handles reach another process and work there, nothing
// leaks in the sender or the receiver, and every misuse has its status.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

namespace {

using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::OpenHandleCount;
using canal_test::UniqueName;

// A temporary file holding `contents`, opened for reading from its start;
// removed (POSIX) or deleted on close (Windows) with the handle.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
#ifdef _WIN32
    char dir[MAX_PATH];
    char path[MAX_PATH];
    GetTempPathA(MAX_PATH, dir);
    GetTempFileNameA(dir, "cnl", 0, path);
    handle_ = CreateFileA(
        path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
        nullptr, CREATE_ALWAYS,
        FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, nullptr);
    DWORD wrote = 0;
    WriteFile(handle_, contents.data(), static_cast<DWORD>(contents.size()),
              &wrote, nullptr);
    SetFilePointer(handle_, 0, nullptr, FILE_BEGIN);
#else
    char path[] = "/tmp/canal-handles-XXXXXX";
    handle_ = mkstemp(path);
    if (handle_ >= 0) {
      unlink(path);
      (void)!write(handle_, contents.data(), contents.size());
      lseek(handle_, 0, SEEK_SET);
    }
#endif
  }
  ~TempFile() {
#ifdef _WIN32
    if (handle_ != INVALID_HANDLE_VALUE) CloseHandle(handle_);
#else
    if (handle_ >= 0) close(handle_);
#endif
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  canal::NativeHandle handle() const { return handle_; }
  bool ok() const {
#ifdef _WIN32
    return handle_ != INVALID_HANDLE_VALUE;
#else
    return handle_ >= 0;
#endif
  }

 private:
#ifdef _WIN32
  HANDLE handle_ = INVALID_HANDLE_VALUE;
#else
  int handle_ = -1;
#endif
};

// A message-mode pair with `max_handles` handles allowed per message on the
// listener side and `client_max` on the client side.
absl::StatusOr<canal_test::ConnectedPair> HandlePair(
    absl::string_view label,
    int listener_max = canal::kDefaultMaxHandlesPerMessage,
    int client_max = canal::kDefaultMaxHandlesPerMessage) {
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.max_handles_per_message = listener_max;
  canal::ConnectOptions connect;
  connect.max_handles_per_message = client_max;
  const std::string name = UniqueName(label);
  canal_test::ConnectedPair pair;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  if (!listener.ok()) return listener.status();
  pair.listener = *std::move(listener);
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, connect);
  if (!client.ok()) return client.status();
  pair.client = *std::move(client);
  absl::StatusOr<canal::Channel> server = pair.listener.Accept(kHangGuard);
  if (!server.ok()) return server.status();
  pair.server = *std::move(server);
  return pair;
}

TEST(Handles, FilePipeAndChannelWorkInAChildProcess) {
  const std::string name = UniqueName("handles-child");
  canal::ListenerOptions options = canal_test::MessageOptions();
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  // The channel whose listener-side handle the child gets.
  absl::StatusOr<canal_test::ConnectedPair> talk = HandlePair("handles-talk");
  CANAL_ASSERT_OK(talk);
  TempFile file("contents of the passed file");
  ASSERT_TRUE(file.ok());
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);

  canal::SubprocessOptions child_options;
  child_options.kill_on_destroy = true;
  absl::StatusOr<canal::Subprocess> child = canal::Subprocess::Start(
      canal_test::ChildArgv({"handles-use", name}), child_options);
  CANAL_ASSERT_OK(child);
  absl::StatusOr<canal::Channel> to_child = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(to_child);

  const canal::NativeHandle handles[] = {file.handle(),
                                         pipe->write_end.native_handle(),
                                         talk->server.native_handle()};
  CANAL_ASSERT_OK(
      to_child->WriteMessageWithHandles("take these", handles, kHangGuard));
  // Ours are still ours: duplicated, not consumed. Our write end closes so
  // that the pipe ends once the child's copy is closed.
  EXPECT_TRUE(talk->server.is_open());
  pipe->write_end.Close();

  absl::StatusOr<std::string> piped =
      canal_test::ReadExactly(pipe->read_end, 32, kHangGuard);
  CANAL_ASSERT_OK(piped);
  EXPECT_EQ(*piped, "pipe:contents of the passed file");
  absl::StatusOr<std::string> hello = talk->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(hello);
  EXPECT_EQ(*hello, "channel:hello");
  absl::StatusOr<std::string> done = to_child->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(done);
  EXPECT_EQ(*done, "done");
  absl::StatusOr<canal::ExitStatus> exit = child->Wait(kHangGuard);
  CANAL_ASSERT_OK(exit);
  EXPECT_TRUE(exit->success());
  // Our own channel still works after the child used its copy.
  CANAL_ASSERT_OK(talk->server.WriteMessage("still ours", kHangGuard));
  absl::StatusOr<std::string> still = talk->client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(still);
  EXPECT_EQ(*still, "still ours");
}

TEST(Handles, ReceivedHandleIsTheSameObject) {
  absl::StatusOr<canal_test::ConnectedPair> pair = HandlePair("handles-same");
  CANAL_ASSERT_OK(pair);
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  const canal::NativeHandle handles[] = {pipe->write_end.native_handle()};
  CANAL_ASSERT_OK(
      pair->client.WriteMessageWithHandles("pipe", handles, kHangGuard));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(m->data, "pipe");
  ASSERT_EQ(m->handles.size(), 1u);
  ASSERT_TRUE(m->handles[0].is_valid());
  EXPECT_NE(m->handles[0].get(), pipe->write_end.native_handle());
  absl::StatusOr<canal::Channel> adopted =
      canal::AdoptPipeEnd(m->handles[0].release(), canal::PipeEnd::kWrite);
  CANAL_ASSERT_OK(adopted);
  CANAL_ASSERT_OK(adopted->Write("through the copy", kHangGuard));
  absl::StatusOr<std::string> got =
      canal_test::ReadExactly(pipe->read_end, 16, kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "through the copy");
}

TEST(Handles, TenThousandCyclesLeakNothing) {
  absl::StatusOr<canal_test::ConnectedPair> pair = HandlePair("handles-cycle");
  CANAL_ASSERT_OK(pair);
  TempFile file("x");
  ASSERT_TRUE(file.ok());
  const canal::NativeHandle handles[] = {file.handle(), file.handle()};
  const int64_t before = OpenHandleCount();
  ASSERT_GT(before, 0);
  for (int i = 0; i < 10000; ++i) {
    CANAL_ASSERT_OK(
        pair->client.WriteMessageWithHandles("cycle", handles, kHangGuard));
    absl::StatusOr<canal::MessageWithHandles> m =
        pair->server.ReadMessageWithHandles(kHangGuard);
    CANAL_ASSERT_OK(m);
    ASSERT_EQ(m->handles.size(), 2u);
  }
  const int64_t after = OpenHandleCount();
  EXPECT_LE(after, before + 2);
  EXPECT_GE(after, before - 2);
}

TEST(Handles, PlainReadsDeliverDataAndCloseTheHandles) {
  absl::StatusOr<canal_test::ConnectedPair> pair = HandlePair("handles-plain");
  CANAL_ASSERT_OK(pair);
  TempFile file("x");
  ASSERT_TRUE(file.ok());
  const canal::NativeHandle handles[] = {file.handle(), file.handle(),
                                         file.handle()};
  const int64_t before = OpenHandleCount();
  for (int i = 0; i < 50; ++i) {
    CANAL_ASSERT_OK(
        pair->client.WriteMessageWithHandles("message", handles, kHangGuard));
    absl::StatusOr<std::string> whole = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(whole);
    EXPECT_EQ(*whole, "message");
    // In parts with Read, then with a Transact reply.
    CANAL_ASSERT_OK(
        pair->client.WriteMessageWithHandles("in parts", handles, kHangGuard));
    char buf[3];
    std::string parts;
    while (true) {
      absl::StatusOr<canal::ReadResult> r =
          pair->server.Read(absl::MakeSpan(buf), kHangGuard);
      CANAL_ASSERT_OK(r);
      parts.append(buf, r->size);
      if (!r->more) break;
    }
    EXPECT_EQ(parts, "in parts");
  }
  const int64_t after = OpenHandleCount();
  EXPECT_LE(after, before + 2);
  EXPECT_GE(after, before - 2);
}

TEST(Handles, PeekSeesTheDataAndTheHandlesStayForTheRead) {
  absl::StatusOr<canal_test::ConnectedPair> pair = HandlePair("handles-peek");
  CANAL_ASSERT_OK(pair);
  TempFile file("x");
  ASSERT_TRUE(file.ok());
  const canal::NativeHandle handles[] = {file.handle()};
  CANAL_ASSERT_OK(
      pair->client.WriteMessageWithHandles("peeked", handles, kHangGuard));
  char buf[16];
  canal::PeekResult peek;
  ASSERT_TRUE(canal_test::PollUntil(
      [&] {
        absl::StatusOr<canal::PeekResult> p =
            pair->server.Peek(absl::MakeSpan(buf));
        if (!p.ok()) return false;
        peek = *p;
        return p->size == 6;
      },
      kHangGuard));
  EXPECT_EQ(std::string(buf, peek.size), "peeked");
  EXPECT_EQ(peek.message_remaining, 6u);
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(m->data, "peeked");
  EXPECT_EQ(m->handles.size(), 1u);
}

TEST(Handles, EmptyDataAndMixedMessagesKeepTheirOrder) {
  absl::StatusOr<canal_test::ConnectedPair> pair = HandlePair("handles-mixed");
  CANAL_ASSERT_OK(pair);
  TempFile file("x");
  ASSERT_TRUE(file.ok());
  const canal::NativeHandle one[] = {file.handle()};
  const canal::NativeHandle two[] = {file.handle(), file.handle()};
  CANAL_ASSERT_OK(pair->client.WriteMessageWithHandles("", one, kHangGuard));
  CANAL_ASSERT_OK(pair->client.WriteMessage("plain", kHangGuard));
  CANAL_ASSERT_OK(pair->client.WriteMessageWithHandles("two", two, kHangGuard));
  CANAL_ASSERT_OK(pair->client.WriteMessageWithHandles("none", {}, kHangGuard));
  CANAL_ASSERT_OK(pair->client.WriteMessage("", kHangGuard));

  const std::vector<std::pair<std::string, size_t>> expected = {
      {"", 1}, {"plain", 0}, {"two", 2}, {"none", 0}, {"", 0}};
  for (const auto& [data, count] : expected) {
    absl::StatusOr<canal::MessageWithHandles> m =
        pair->server.ReadMessageWithHandles(kHangGuard);
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(m->data, data);
    EXPECT_EQ(m->handles.size(), count) << data;
    for (const canal::OwnedHandle& h : m->handles) EXPECT_TRUE(h.is_valid());
  }
}

TEST(Handles, ByteModeIsFailedPrecondition) {
  absl::StatusOr<canal_test::ConnectedPair> pair =
      MakePair(UniqueName("handles-bytes"), canal::ListenerOptions());
  CANAL_ASSERT_OK(pair);
  TempFile file("x");
  const canal::NativeHandle handles[] = {file.handle()};
  const absl::Status write =
      pair->client.WriteMessageWithHandles("x", handles, kHangGuard);
  EXPECT_EQ(write.code(), absl::StatusCode::kFailedPrecondition) << write;
  EXPECT_TRUE(canal_test::MessageNames(write, "WriteMessageWithHandles",
                                       pair->client.name()));
  CANAL_EXPECT_CODE(pair->server.ReadMessageWithHandles(absl::ZeroDuration()),
                    kFailedPrecondition);
  canal::Channel invalid;
  CANAL_EXPECT_CODE(invalid.WriteMessageWithHandles("x", handles),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(invalid.ReadMessageWithHandles(), kFailedPrecondition);
}

TEST(Handles, OverTheSendersLimitIsInvalidArgument) {
  absl::StatusOr<canal_test::ConnectedPair> pair =
      HandlePair("handles-limit", canal::kDefaultMaxHandlesPerMessage, 2);
  CANAL_ASSERT_OK(pair);
  TempFile file("x");
  const canal::NativeHandle handles[] = {file.handle(), file.handle(),
                                         file.handle()};
  const absl::Status write =
      pair->client.WriteMessageWithHandles("x", handles, kHangGuard);
  EXPECT_EQ(write.code(), absl::StatusCode::kInvalidArgument) << write;
  EXPECT_TRUE(canal_test::MessageNames(write, "WriteMessageWithHandles",
                                       pair->client.name()));
  // Nothing was sent: the channel goes on.
  CANAL_ASSERT_OK(pair->client.WriteMessageWithHandles(
      "two", absl::MakeConstSpan(handles, 2), kHangGuard));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(m->data, "two");
  EXPECT_EQ(m->handles.size(), 2u);
}

TEST(Handles, LimitOptionsOutOfRangeAreInvalidArgument) {
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.max_handles_per_message = canal::kMaxHandlesPerMessageLimit + 1;
  CANAL_EXPECT_CODE(
      canal_test::CreateListener(UniqueName("handles-opt"), options),
      kInvalidArgument);
  options.max_handles_per_message = -1;
  CANAL_EXPECT_CODE(
      canal_test::CreateListener(UniqueName("handles-opt"), options),
      kInvalidArgument);
  canal::ConnectOptions connect;
  connect.max_handles_per_message = -1;
  CANAL_EXPECT_CODE(canal::Channel::Connect(UniqueName("handles-opt"), connect),
                    kInvalidArgument);
}

TEST(Handles, InvalidHandleIsInvalidArgument) {
  absl::StatusOr<canal_test::ConnectedPair> pair = HandlePair("handles-bad");
  CANAL_ASSERT_OK(pair);
  // A handle we closed, and the value that names none.
  canal::NativeHandle closed;
  {
    TempFile file("x");
    closed = file.handle();
  }
  for (canal::NativeHandle bad : {closed, canal::kInvalidNativeHandle}) {
    const canal::NativeHandle handles[] = {bad};
    const absl::Status write =
        pair->client.WriteMessageWithHandles("x", handles, kHangGuard);
    EXPECT_EQ(write.code(), absl::StatusCode::kInvalidArgument) << write;
    EXPECT_TRUE(canal_test::MessageNames(write, "WriteMessageWithHandles",
                                         pair->client.name()));
  }
  CANAL_ASSERT_OK(pair->client.WriteMessage("after", kHangGuard));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(m->data, "after");
  EXPECT_TRUE(m->handles.empty());
}

TEST(Handles, OverTheReceiversLimitIsDataLossAndClosesThem) {
  absl::StatusOr<canal_test::ConnectedPair> pair =
      HandlePair("handles-rlimit", 2, canal::kDefaultMaxHandlesPerMessage);
  CANAL_ASSERT_OK(pair);
  TempFile file("x");
  std::vector<canal::NativeHandle> handles(10, file.handle());
  const int64_t before = OpenHandleCount();
  CANAL_ASSERT_OK(
      pair->client.WriteMessageWithHandles("ten", handles, kHangGuard));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  EXPECT_TRUE(canal_test::MessageNames(m.status(), "ReadMessageWithHandles",
                                       pair->server.name()));
  const int64_t after = OpenHandleCount();
  EXPECT_LE(after, before + 2);
  EXPECT_GE(after, before - 2);
}

TEST(Handles, OwnedHandleClosesAndReleases) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  absl::StatusOr<canal_test::ConnectedPair> pair = HandlePair("handles-own");
  CANAL_ASSERT_OK(pair);
  const canal::NativeHandle handles[] = {pipe->write_end.native_handle()};
  CANAL_ASSERT_OK(
      pair->client.WriteMessageWithHandles("w", handles, kHangGuard));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  ASSERT_EQ(m->handles.size(), 1u);
  canal::OwnedHandle moved = std::move(m->handles[0]);
  EXPECT_FALSE(m->handles[0].is_valid());
  EXPECT_TRUE(moved.is_valid());
  pipe->write_end.Close();
  // The copy keeps the pipe open; resetting it ends the stream.
  char buf[1];
  CANAL_EXPECT_CODE(
      pipe->read_end.Read(absl::MakeSpan(buf), absl::ZeroDuration()),
      kDeadlineExceeded);
  moved.reset();
  EXPECT_FALSE(moved.is_valid());
  CANAL_EXPECT_CODE(pipe->read_end.Read(absl::MakeSpan(buf), kHangGuard),
                    kOutOfRange);
}

TEST(Handles, ReceiverThatDiesWithHandlesInFlightLeaksNothing) {
  const std::string name = UniqueName("handles-die");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, canal_test::MessageOptions());
  CANAL_ASSERT_OK(listener);
  TempFile file("x");
  ASSERT_TRUE(file.ok());
  const canal::NativeHandle handles[] = {file.handle(), file.handle()};
  const int64_t before = OpenHandleCount();
  {
    canal::SubprocessOptions options;
    options.stdout_mode = canal::StdioMode::kPipe;
    options.kill_on_destroy = true;
    absl::StatusOr<canal::Subprocess> child = canal::Subprocess::Start(
        canal_test::ChildArgv({"handles-hold", name}), options);
    CANAL_ASSERT_OK(child);
    absl::StatusOr<canal::Channel> ch = listener->Accept(kHangGuard);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<std::string> ready =
        canal_test::ReadExactly(child->stdout_channel(), 6, kHangGuard);
    CANAL_ASSERT_OK(ready);
    EXPECT_EQ(*ready, "ready\n");
    for (int i = 0; i < 20; ++i) {
      CANAL_ASSERT_OK(
          ch->WriteMessageWithHandles("in flight", handles, kHangGuard));
    }
    CANAL_ASSERT_OK(child->Kill());
    CANAL_ASSERT_OK(child->Wait(kHangGuard));
    // Writing on is refused now, and leaks nothing either.
    absl::Status late;
    ASSERT_TRUE(canal_test::PollUntil(
        [&] {
          late = ch->WriteMessageWithHandles("late", handles, kHangGuard);
          return !late.ok();
        },
        kHangGuard));
    EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable) << late;
  }
  const int64_t after = OpenHandleCount();
  EXPECT_LE(after, before + 2);
  EXPECT_GE(after, before - 2);
}

}  // namespace
