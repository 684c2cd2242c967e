// SPDX-License-Identifier: Apache-2.0
// Handle passing on the Win32 backend: the envelope as a raw Win32 peer
// sees and sends it, the escape of plain messages that begin with its
// magic, malformed and oversized envelopes (DataLoss), and the sender
// closing its duplicates in the peer when the write fails.

#include <windows.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::kHangGuard;
using canal_test::OpenHandleCount;
using canal_test::UniqueName;
using canal_win32_test::Handle;
using canal_win32_test::OpenRawClient;

// The envelope's magic, written out here so that a change to the format
// fails a test.
const std::string& Magic() {
  static const std::string magic("\0canal-handles\x01\x7e", 16);
  return magic;
}

std::string Envelope(uint32_t count, const std::vector<uint64_t>& values,
                     absl::string_view data) {
  std::string out = Magic();
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>(count >> (8 * i)));
  for (uint64_t v : values) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  }
  out.append(data.data(), data.size());
  return out;
}

struct RawPair {
  canal::Listener listener;
  canal::Channel server;
  Handle raw;
};

absl::StatusOr<RawPair> MakeRawPair(absl::string_view label, int max = 64) {
  const std::string name = UniqueName(label);
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.max_handles_per_message = max;
  RawPair pair;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok()) return listener.status();
  pair.listener = *std::move(listener);
  DWORD error = 0;
  pair.raw = OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, true, &error);
  if (!pair.raw.valid()) return absl::UnknownError("raw client");
  absl::StatusOr<canal::Channel> server = pair.listener.Accept(kHangGuard);
  if (!server.ok()) return server.status();
  pair.server = *std::move(server);
  return pair;
}

bool RawWrite(HANDLE h, absl::string_view data) {
  DWORD wrote = 0;
  return WriteFile(h, data.data(), static_cast<DWORD>(data.size()), &wrote,
                   nullptr) &&
         wrote == data.size();
}

std::string RawRead(HANDLE h) {
  std::string out(4096, '\0');
  DWORD got = 0;
  if (!ReadFile(h, &out[0], static_cast<DWORD>(out.size()), &got, nullptr)) {
    return "<error>";
  }
  out.resize(got);
  return out;
}

TEST(Win32Handles, PlainMessagesStayByteForByte) {
  absl::StatusOr<RawPair> pair = MakeRawPair("wh-plain");
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->server.WriteMessage("plain", kHangGuard));
  EXPECT_EQ(RawRead(pair->raw.get()), "plain");
  CANAL_ASSERT_OK(
      pair->server.WriteMessageWithHandles("no handles", {}, kHangGuard));
  EXPECT_EQ(RawRead(pair->raw.get()), "no handles");
}

TEST(Win32Handles, EnvelopeOnTheWire) {
  absl::StatusOr<RawPair> pair = MakeRawPair("wh-wire");
  CANAL_ASSERT_OK(pair);
  const canal::NativeHandle handles[] = {pair->server.native_handle()};
  CANAL_ASSERT_OK(
      pair->server.WriteMessageWithHandles("data", handles, kHangGuard));
  const std::string got = RawRead(pair->raw.get());
  ASSERT_EQ(got.size(), 16u + 4u + 8u + 4u);
  EXPECT_EQ(got.substr(0, 16), Magic());
  EXPECT_EQ(got.substr(16, 4), std::string("\x01\0\0\0", 4));
  EXPECT_EQ(got.substr(28), "data");
  // The value names a handle duplicated into our own process (the raw
  // client's process is ours): close it, as its receiver must.
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(got[20 + i]))
             << (8 * i);
  }
  EXPECT_TRUE(CloseHandle(reinterpret_cast<HANDLE>(value)));
}

TEST(Win32Handles, DataThatBeginsWithTheMagicIsEscaped) {
  absl::StatusOr<canal_test::ConnectedPair> pair = canal_test::MakePair(
      canal_test::UniqueName("wh-escape"), canal_test::MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string tricky = Magic() + std::string("\x05\0\0\0rest", 8);
  // The raw bytes carry an envelope with no handles around the data.
  CANAL_ASSERT_OK(pair->client.WriteMessage(tricky, kHangGuard));
  absl::StatusOr<std::string> whole = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(whole);
  EXPECT_EQ(*whole, tricky);
  // In parts, and as a Transact reply.
  CANAL_ASSERT_OK(pair->client.WriteMessage(tricky, kHangGuard));
  char buf[5];
  std::string parts;
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        pair->server.Read(absl::MakeSpan(buf), kHangGuard);
    CANAL_ASSERT_OK(r);
    parts.append(buf, r->size);
    if (!r->more) break;
  }
  EXPECT_EQ(parts, tricky);
  CANAL_ASSERT_OK(pair->client.WriteMessage(tricky, kHangGuard));
  char peeked[64];
  absl::StatusOr<canal::PeekResult> peek =
      pair->server.Peek(absl::MakeSpan(peeked));
  CANAL_ASSERT_OK(peek);
  EXPECT_EQ(std::string(peeked, peek->size), tricky);
  EXPECT_EQ(peek->message_remaining, tricky.size());
  absl::StatusOr<std::string> again = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(again);
  EXPECT_EQ(*again, tricky);
}

TEST(Win32Handles, RawEscapedMessageIsUnwrapped) {
  absl::StatusOr<RawPair> pair = MakeRawPair("wh-raw0");
  CANAL_ASSERT_OK(pair);
  ASSERT_TRUE(RawWrite(pair->raw.get(), Envelope(0, {}, "inside")));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(m->data, "inside");
  EXPECT_TRUE(m->handles.empty());
}

TEST(Win32Handles, EnvelopeHeaderIsNotCountedButItsDataIs) {
  const std::string name = UniqueName("wh-size");
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.max_message_size = 1024;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  DWORD error = 0;
  Handle raw = OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, true, &error);
  ASSERT_TRUE(raw.valid()) << error;
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  // 1024 bytes of data in an envelope: over 1024 on the wire, within the
  // limit once unwrapped.
  const std::string full(1024, 'a');
  ASSERT_TRUE(RawWrite(raw.get(), Envelope(0, {}, full)));
  absl::StatusOr<std::string> m = server->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, full);
  // 1500 bytes of data in an envelope, and plain: both over the limit.
  ASSERT_TRUE(RawWrite(raw.get(), Envelope(0, {}, std::string(1500, 'b'))));
  CANAL_EXPECT_CODE(server->ReadMessage(kHangGuard), kResourceExhausted);
  ASSERT_TRUE(RawWrite(raw.get(), std::string(1100, 'c')));
  CANAL_EXPECT_CODE(server->ReadMessage(kHangGuard), kResourceExhausted);
}

TEST(Win32Handles, MalformedEnvelopeIsDataLossAndTouchesNothing) {
  absl::StatusOr<RawPair> pair = MakeRawPair("wh-malformed");
  CANAL_ASSERT_OK(pair);
  // Names 5 handles, holds room for 1: the value (one of our own handles)
  // must not be closed.
  const uint64_t ours = reinterpret_cast<uintptr_t>(pair->raw.get());
  ASSERT_TRUE(RawWrite(pair->raw.get(), Envelope(5, {ours}, "")));
  absl::StatusOr<canal::MessageWithHandles> m =
      pair->server.ReadMessageWithHandles(kHangGuard);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  EXPECT_TRUE(canal_test::MessageNames(m.status(), "ReadMessageWithHandles",
                                       pair->server.name()));
  DWORD flags = 0;
  EXPECT_TRUE(GetHandleInformation(pair->raw.get(), &flags));
  ASSERT_TRUE(RawWrite(pair->raw.get(), Magic().substr(0, 18)));
  CANAL_EXPECT_CODE(pair->server.ReadMessage(kHangGuard), kDataLoss);
}

TEST(Win32Handles, EnvelopeOverTheLimitIsDataLossAndClosesThem) {
  absl::StatusOr<RawPair> pair = MakeRawPair("wh-over", 2);
  CANAL_ASSERT_OK(pair);
  // Three handles of our own (the raw peer is this process, our own user),
  // each a duplicate the receiver must close.
  std::vector<uint64_t> values;
  for (int i = 0; i < 3; ++i) {
    HANDLE dup = nullptr;
    ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), pair->raw.get(),
                                GetCurrentProcess(), &dup, 0, FALSE,
                                DUPLICATE_SAME_ACCESS));
    values.push_back(reinterpret_cast<uintptr_t>(dup));
  }
  const int64_t with_dups = OpenHandleCount();
  ASSERT_TRUE(RawWrite(pair->raw.get(), Envelope(3, values, "three")));
  CANAL_EXPECT_CODE(pair->server.ReadMessageWithHandles(kHangGuard), kDataLoss);
  EXPECT_EQ(OpenHandleCount(), with_dups - 3);
  for (uint64_t v : values) {
    DWORD flags = 0;
    EXPECT_FALSE(GetHandleInformation(reinterpret_cast<HANDLE>(v), &flags));
  }
}

TEST(Win32Handles, FailedWriteClosesTheDuplicatesInThePeer) {
  // The peer is this process, so its duplicates show in our count.
  canal::ListenerOptions options = canal_test::MessageOptions();
  options.buffer_size = 4096;
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(canal_test::UniqueName("wh-undo"), options);
  CANAL_ASSERT_OK(pair);
  const canal::NativeHandle handles[] = {pair->client.native_handle(),
                                         pair->client.native_handle()};
  // One message first: the channel opens the peer's process once and keeps
  // that handle for its life.
  CANAL_ASSERT_OK(
      pair->server.WriteMessageWithHandles("first", handles, kHangGuard));
  CANAL_ASSERT_OK(pair->client.ReadMessageWithHandles(kHangGuard));
  const int64_t before = OpenHandleCount();
  // Nobody reads: a message far over the pipe's quota cannot go out.
  const std::string big(4 * 1024 * 1024, 'x');
  const absl::Status write = pair->server.WriteMessageWithHandles(
      big, handles, absl::Milliseconds(50));
  EXPECT_EQ(write.code(), absl::StatusCode::kDeadlineExceeded) << write;
  EXPECT_EQ(OpenHandleCount(), before);
  // Nothing reached the reader.
  CANAL_EXPECT_CODE(pair->client.ReadMessage(absl::ZeroDuration()),
                    kDeadlineExceeded);
}

}  // namespace
