// SPDX-License-Identifier: Apache-2.0
// The shared-memory channel (src/shm_channel.cc) against a hostile client:
// the test takes the listener's offer from the client's socket itself
// (before the client Channel looks), maps the region, and writes into the
// client's ring what a peer may: pipe markers with no message behind them
// or one of another size. The reader never hangs past its timeout and
// sees DataLoss, never a crash.

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "src/internal/shm_ring.h"
#include "test_util.h"

namespace {

using canal::internal::AttachShmRegion;
using canal::internal::ShmRegionOptions;
using canal::internal::ShmRegionView;
using canal::internal::ShmRingMode;
using canal::internal::ShmRingView;
using canal::internal::ShmRingWriter;
using canal::internal::ShmWriteResult;
using canal_test::kHangGuard;
using canal_test::UniqueName;

uint64_t GetLe(const char* at, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= uint64_t{static_cast<unsigned char>(at[i])} << (8 * i);
  }
  return value;
}

// One POSIX message-mode frame without handles ("CNL1", size, payload),
// written out here so that a change to the wire format fails a test.
std::string PlainFrame(absl::string_view payload) {
  std::string out = "CNL1";
  const uint32_t size = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(size >> (8 * i)));
  out.append(payload.data(), payload.size());
  return out;
}

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// A message-mode shared-memory listener, a client and the accepted end,
// with the offer taken off the client's socket by the test: `writer`
// writes the client's ring as a hostile client would, `raw` is its socket.
class HostileClient {
 public:
  bool Start(absl::string_view label) {
    const std::string name = UniqueName(label);
    canal::ListenerOptions options;
    options.mode = canal::PipeMode::kMessage;
    options.transport = canal::Transport::kSharedMemory;
    options.ring_size = canal::kMinRingSize;
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(name, options);
    if (!listener.ok()) return Failed(listener.status());
    listener_ = *std::move(listener);
    absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
    if (!client.ok()) return Failed(client.status());
    client_ = *std::move(client);
    absl::StatusOr<canal::Channel> server = listener_.Accept(kHangGuard);
    if (!server.ok()) return Failed(server.status());
    server_ = *std::move(server);
    // The offer: 32 bytes with the memory object's descriptor. The client
    // Channel is never called, so it never reads it.
    char offer[32];
    iovec iov{offer, sizeof(offer)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg;
    std::memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    if (recvmsg(raw(), &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC) !=
        static_cast<ssize_t>(sizeof(offer))) {
      return Failed(absl::InternalError("no offer"));
    }
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c == nullptr || c->cmsg_type != SCM_RIGHTS) {
      return Failed(absl::InternalError("no descriptor with the offer"));
    }
    int fd;
    std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    size_ = static_cast<size_t>(GetLe(offer + 16, 8));
    mapping_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mapping_ == MAP_FAILED) {
      mapping_ = nullptr;
      return Failed(absl::InternalError("mmap"));
    }
    const ShmRegionOptions expected{static_cast<uint32_t>(GetLe(offer + 8, 4)),
                                    ShmRingMode::kMessages};
    absl::StatusOr<ShmRegionView> view = AttachShmRegion(
        absl::Span<char>(static_cast<char*>(mapping_), size_), expected);
    if (!view.ok()) return Failed(view.status());
    ring_ = view->attacher_to_creator();
    writer_ = std::make_unique<ShmRingWriter>(ring_);
    // Moves the client's writes to its ring after no pipe message: the
    // wake-up (an empty message) follows on the pipe.
    writer_->AnnounceSwitch(0);
    return SendAll(raw(), PlainFrame(""));
  }
  ~HostileClient() {
    client_.Close();
    server_.Close();
    if (mapping_ != nullptr) munmap(mapping_, size_);
  }

  int raw() const { return client_.native_handle(); }
  canal::Channel& server() { return server_; }
  canal::Channel& client() { return client_; }
  ShmRingWriter& writer() { return *writer_; }
  // The client's ring (attacher to creator), for forged records.
  const ShmRingView& ring() const { return ring_; }

 private:
  bool Failed(const absl::Status& status) {
    ADD_FAILURE() << status;
    return false;
  }

  canal::Listener listener_;
  canal::Channel client_;
  canal::Channel server_;
  void* mapping_ = nullptr;
  size_t size_ = 0;
  ShmRingView ring_;
  std::unique_ptr<ShmRingWriter> writer_;
};

void WriteMessage(ShmRingWriter& writer, absl::string_view message) {
  absl::StatusOr<ShmWriteResult> put = writer.TryWriteMessage(message);
  ASSERT_TRUE(put.ok()) << put.status();
  ASSERT_TRUE(put->done);
}

void WriteMarker(ShmRingWriter& writer, uint64_t size) {
  absl::StatusOr<ShmWriteResult> put = writer.TryWritePipeMarker(size);
  ASSERT_TRUE(put.ok()) << put.status();
  ASSERT_TRUE(put->done);
}

// The client's ring messages and a well-formed marker with its message on
// the pipe arrive in order: the hostile rig itself speaks the protocol.
TEST(ShmChannelHostile, WellFormedMarkerIsRead) {
  HostileClient peer;
  ASSERT_TRUE(peer.Start("shm-h-good"));
  WriteMessage(peer.writer(), "ring");
  ASSERT_TRUE(SendAll(peer.raw(), PlainFrame("piped")));
  WriteMarker(peer.writer(), 5);
  WriteMessage(peer.writer(), "after");
  for (absl::string_view want : {"ring", "piped", "after"}) {
    absl::StatusOr<std::string> got = peer.server().ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(got);
    EXPECT_EQ(*got, want);
  }
}

// A marker with nothing on the pipe: every read ends at its timeout (Peek
// still counts the message); a pipe message of another size then is
// DataLoss, for good.
TEST(ShmChannelHostile,
     MarkerWithoutItsMessageTimesOutThenWrongSizeIsDataLoss) {
  HostileClient peer;
  ASSERT_TRUE(peer.Start("shm-h-nomsg"));
  WriteMarker(peer.writer(), 5);
  CANAL_EXPECT_CODE(peer.server().ReadMessage(absl::Milliseconds(200)),
                    kDeadlineExceeded);
  char buf[4];
  CANAL_EXPECT_CODE(
      peer.server().Read(absl::MakeSpan(buf), absl::Milliseconds(200)),
      kDeadlineExceeded);
  CANAL_EXPECT_CODE(
      peer.server().ReadMessageWithHandles(absl::Milliseconds(200)),
      kDeadlineExceeded);
  absl::StatusOr<canal::PeekResult> peek = peer.server().Peek();
  CANAL_ASSERT_OK(peek);
  EXPECT_EQ(peek->message_remaining, 5u);
  EXPECT_EQ(peek->available, 5u);
  ASSERT_TRUE(SendAll(peer.raw(), PlainFrame("abc")));
  absl::StatusOr<std::string> got = peer.server().ReadMessage(kHangGuard);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_TRUE(canal_test::MessageNames(got.status(), "ReadMessage",
                                       peer.server().name()));
  CANAL_EXPECT_CODE(peer.server().ReadMessage(absl::ZeroDuration()), kDataLoss);
}

// A peer that closes after a marker, its message never sent: DataLoss, not
// the end of the stream and not a hang.
TEST(ShmChannelHostile, PeerClosingAfterAMarkerIsDataLoss) {
  HostileClient peer;
  ASSERT_TRUE(peer.Start("shm-h-close"));
  WriteMessage(peer.writer(), "first");
  WriteMarker(peer.writer(), 3);
  peer.client().Close();
  absl::StatusOr<std::string> first = peer.server().ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(first);
  EXPECT_EQ(*first, "first");
  CANAL_EXPECT_CODE(peer.server().ReadMessage(kHangGuard), kDataLoss);
}

// A marker that breaks the record rules (here its flags, without "last")
// is DataLoss for the reader, through the channel, for good.
TEST(ShmChannelHostile, MalformedMarkerIsDataLoss) {
  HostileClient peer;
  ASSERT_TRUE(peer.Start("shm-h-flags"));
  WriteMarker(peer.writer(), 5);
  const uint32_t flags =
      canal::internal::kShmRecordOnPipe | canal::internal::kShmRecordFirst;
  const uint32_t header[4] = {0, flags, 5,
                              canal::internal::kShmRecordCheck ^ flags ^ 5};
  std::memcpy(peer.ring().data, header, sizeof(header));
  CANAL_EXPECT_CODE(peer.server().ReadMessage(kHangGuard), kDataLoss);
  CANAL_EXPECT_CODE(peer.server().Peek(), kDataLoss);
}

}  // namespace
