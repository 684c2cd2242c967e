// SPDX-License-Identifier: Apache-2.0
// A hostile or broken server behind a name whose metadata section says
// that it sends a shared-memory offer (src/win32/meta.h, flag bit 0): a raw
// Win32 pipe server of this process, with a section it made itself, sends
// whatever set-up it likes. The canal client must answer every call with a
// clear status within its timeout: DataLoss for a malformed set-up, the
// pipe for "no memory this time", never a hang, a crash or a read past
// what the record may hold.

#include <windows.h>

#include <sddl.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::kHangGuard;
using canal_test::UniqueName;
using canal_win32_test::Handle;

void Put(std::string* out, size_t at, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    (*out)[at + static_cast<size_t>(i)] =
        static_cast<char>((value >> (8 * i)) & 0xff);
  }
}

// The set-up header (handle count, 0) and a 32-byte offer record.
std::string SetUpBytes(uint32_t count, uint32_t capacity, uint32_t ring_mode) {
  std::string bytes(8 + 32, '\0');
  Put(&bytes, 0, count, 4);
  bytes.replace(8, 4, "CNLS");
  Put(&bytes, 12, 1, 4);         // Version.
  Put(&bytes, 16, capacity, 4);  // Ring capacity.
  Put(&bytes, 20, ring_mode, 4);
  Put(&bytes, 32, count, 4);  // Handles named by the record.
  return bytes;
}

constexpr uint32_t kRingBytes = 1;
constexpr uint32_t kRingMessages = 2;

// A raw server on a fresh name that publishes an "open, makes offers"
// section naming this process, and a canal client connected to it.
class FakeShmServer {
 public:
  explicit FakeShmServer(canal::PipeMode mode)
      : name_(UniqueName("shm-setup")) {
    const std::wstring section_name = canal_win32_test::MetaSectionName(name_);
    // Owned by this user, as a listener's section is: clients trust only
    // a section whose owner is the server's user.
    const std::string sid = canal_win32_test::CurrentUserSid();
    const std::wstring sddl =
        L"O:" + std::wstring(sid.begin(), sid.end()) + L"D:P(A;;GA;;;WD)";
    PSECURITY_DESCRIPTOR descriptor = nullptr;
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.c_str(), SDDL_REVISION_1, &descriptor, nullptr)) {
      return;
    }
    SECURITY_ATTRIBUTES attributes = {sizeof(attributes), descriptor, FALSE};
    section_ =
        Handle(CreateFileMappingW(INVALID_HANDLE_VALUE, &attributes,
                                  PAGE_READWRITE, 0, 32, section_name.c_str()));
    LocalFree(descriptor);
    if (!section_.valid()) return;
    void* view = MapViewOfFile(section_.get(), FILE_MAP_WRITE, 0, 0, 32);
    if (view == nullptr) return;
    const std::string meta = canal_win32_test::MetaBytes(
        1024 * 1024, canal_win32_test::MetaState::kOpen, GetCurrentProcessId(),
        canal_win32_test::ProcessCreationTime(GetCurrentProcess()),
        canal_win32_test::kMetaSharedMemory);
    std::memcpy(view, meta.data(), meta.size());
    UnmapViewOfFile(view);
    const DWORD type = mode == canal::PipeMode::kMessage
                           ? PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE
                           : PIPE_TYPE_BYTE | PIPE_READMODE_BYTE;
    pipe_ = Handle(CreateNamedPipeW(canal_win32_test::PipePath(name_).c_str(),
                                    PIPE_ACCESS_DUPLEX, type, 1, 64 * 1024,
                                    64 * 1024, 0, nullptr));
  }

  bool ok() const { return section_.valid() && pipe_.valid(); }
  const std::string& name() const { return name_; }

  // Sends `bytes` to the client in one WriteFile.
  bool Send(const std::string& bytes) {
    DWORD written = 0;
    return WriteFile(pipe_.get(), bytes.data(),
                     static_cast<DWORD>(bytes.size()), &written, nullptr) &&
           written == bytes.size();
  }

 private:
  const std::string name_;
  Handle section_;
  Handle pipe_;
};

TEST(ShmSetupTest, TooManyHandlesIsDataLoss) {
  FakeShmServer server(canal::PipeMode::kMessage);
  ASSERT_TRUE(server.ok());
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(server.name());
  CANAL_ASSERT_OK(client);
  ASSERT_TRUE(server.Send(SetUpBytes(1000, 64 * 1024, kRingMessages) +
                          std::string(8 * 1000, '\x41')));
  absl::StatusOr<std::string> got = client->ReadMessage(kHangGuard);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_TRUE(absl::StrContains(got.status().message(), server.name()))
      << got.status();
  // It stays broken, and says so again at once.
  got = client->ReadMessage(absl::ZeroDuration());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
}

// A set-up message far longer than any record is refused without reading
// it all.
TEST(ShmSetupTest, OversizedSetUpMessageIsDataLoss) {
  FakeShmServer server(canal::PipeMode::kMessage);
  ASSERT_TRUE(server.ok());
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(server.name());
  CANAL_ASSERT_OK(client);
  canal_test::Background sender([&] {
    server.Send(SetUpBytes(0, 0, kRingMessages) + std::string(1 << 20, 'x'));
  });
  absl::StatusOr<std::string> got = client->ReadMessage(kHangGuard);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  client->Close();
}

// Byte mode: the header came and the rest never does. The read ends at its
// own timeout with DataLoss (the stream cannot be resumed), and a call that
// only looks does not wait at all.
TEST(ShmSetupTest, StalledByteSetUpEndsAtTheTimeout) {
  FakeShmServer server(canal::PipeMode::kByte);
  ASSERT_TRUE(server.ok());
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(server.name());
  CANAL_ASSERT_OK(client);
  ASSERT_TRUE(server.Send(SetUpBytes(0, 0, kRingBytes).substr(0, 8)));
  EXPECT_EQ(client->transport(), canal::Transport::kPipe);
  CANAL_EXPECT_OK(client->Peek());
  char buffer[16];
  absl::StatusOr<canal::ReadResult> got =
      client->Read(absl::MakeSpan(buffer), absl::Milliseconds(200));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
}

// Nothing came yet: a read times out as on a pipe, and writes go through.
TEST(ShmSetupTest, NoSetUpYetIsATimeout) {
  FakeShmServer server(canal::PipeMode::kByte);
  ASSERT_TRUE(server.ok());
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(server.name());
  CANAL_ASSERT_OK(client);
  char buffer[16];
  absl::StatusOr<canal::ReadResult> got =
      client->Read(absl::MakeSpan(buffer), absl::Milliseconds(100));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded)
      << got.status();
  CANAL_EXPECT_OK(client->Write("ping", absl::ZeroDuration()));
}

// "No memory this time" (no handles, no rings): the channel is a pipe and
// what follows the set-up is the first data.
TEST(ShmSetupTest, OfferWithoutMemoryKeepsThePipe) {
  FakeShmServer server(canal::PipeMode::kMessage);
  ASSERT_TRUE(server.ok());
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(server.name());
  CANAL_ASSERT_OK(client);
  ASSERT_TRUE(server.Send(SetUpBytes(0, 0, kRingMessages)));
  ASSERT_TRUE(server.Send("hello"));
  absl::StatusOr<std::string> got = client->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello");
  EXPECT_EQ(client->transport(), canal::Transport::kPipe);
}

// A record that names handles it did not come with.
TEST(ShmSetupTest, RecordCountThatDisagreesIsDataLoss) {
  FakeShmServer server(canal::PipeMode::kMessage);
  ASSERT_TRUE(server.ok());
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(server.name());
  CANAL_ASSERT_OK(client);
  std::string setup = SetUpBytes(0, 0, kRingMessages);
  Put(&setup, 32, 3, 4);  // The record says 3 handles; none came.
  ASSERT_TRUE(server.Send(setup));
  absl::StatusOr<std::string> got = client->ReadMessage(kHangGuard);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
}

}  // namespace
