// SPDX-License-Identifier: Apache-2.0
// The shared-memory ring (src/internal/shm_ring.h) in ordinary memory: round
// trips in both modes, wrap-around at every offset, fragmented messages
// through a small ring, full and empty rings, pipe markers, the wake-up
// flags, two threads, and a peer that corrupts the header, the indices and
// the records, markers included (every one DataLoss naming the
// operation). Runs on both legs: the ring is shared code.

#include "src/internal/shm_ring.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace canal_test {
namespace {

using canal::internal::AttachShmRegion;
using canal::internal::InitializeShmRegion;
using canal::internal::kShmMaxMessage;
using canal::internal::kShmPipeMarkerFlags;
using canal::internal::kShmRecordFirst;
using canal::internal::kShmRecordHeaderSize;
using canal::internal::kShmRecordLast;
using canal::internal::kShmRecordOnPipe;
using canal::internal::ShmHeaderCheck;
using canal::internal::ShmPeekResult;
using canal::internal::ShmReadResult;
using canal::internal::ShmRegionHeader;
using canal::internal::ShmRegionOptions;
using canal::internal::ShmRegionView;
using canal::internal::ShmRingLayout;
using canal::internal::ShmRingMode;
using canal::internal::ShmRingReader;
using canal::internal::ShmRingView;
using canal::internal::ShmRingWriter;
using canal::internal::ShmWriteResult;

// A 64-byte aligned buffer standing in for a mapping.
class Buffer {
 public:
  explicit Buffer(size_t size)
      : storage_(new char[size + 64]()),
        data_(storage_.get() +
              (64 - reinterpret_cast<uintptr_t>(storage_.get()) % 64) % 64),
        size_(size) {}
  absl::Span<char> span() { return absl::Span<char>(data_, size_); }
  char* data() { return data_; }

 private:
  std::unique_ptr<char[]> storage_;
  char* data_;
  size_t size_;
};

std::string Pattern(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1103515245u + 12345u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

// A region, the creator writing ring 0 and the attacher reading it.
struct Rig {
  explicit Rig(uint32_t capacity, ShmRingMode mode = ShmRingMode::kMessages)
      : buffer(ShmRingLayout::BytesFor(capacity)) {
    options.ring_capacity = capacity;
    options.mode = mode;
    absl::StatusOr<ShmRegionView> creator =
        InitializeShmRegion(buffer.span(), options);
    EXPECT_TRUE(creator.ok()) << creator.status();
    absl::StatusOr<ShmRegionView> attacher =
        AttachShmRegion(buffer.span(), options);
    EXPECT_TRUE(attacher.ok()) << attacher.status();
    ring = creator->creator_to_attacher();
    writer = std::make_unique<ShmRingWriter>(ring);
    reader = std::make_unique<ShmRingReader>(attacher->creator_to_attacher());
  }

  // Writes a whole message that fits; fails the test otherwise.
  void Write(absl::string_view message) {
    absl::StatusOr<ShmWriteResult> r = writer->TryWriteMessage(message);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->done);
    ASSERT_EQ(r->bytes, message.size());
  }

  // Reads one whole message with buffers of `part` bytes; the message must
  // be published in full.
  std::string Read(size_t part = 1 << 16) {
    std::string out;
    std::vector<char> buf(part);
    for (int turns = 0; turns < 1 << 20; ++turns) {
      absl::StatusOr<ShmReadResult> r =
          reader->TryReadMessage(absl::MakeSpan(buf));
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) return out;
      out.append(buf.data(), r->bytes);
      if (r->message_end) return out;
      EXPECT_GT(r->bytes, 0u) << "nothing published";
      if (r->bytes == 0) return out;
    }
    ADD_FAILURE() << "no message end";
    return out;
  }

  uint64_t Tail() { return ring.control->producer.tail.load(); }
  uint64_t Head() { return ring.control->consumer.head.load(); }
  // Overwrites the record header at counter `at`, with a valid check word
  // unless `check` is given.
  void ForgeRecord(uint64_t at, uint32_t length, uint32_t flags,
                   uint32_t remaining, const uint32_t* check = nullptr) {
    uint32_t h[4] = {length, flags, remaining,
                     check != nullptr ? *check
                                      : canal::internal::kShmRecordCheck ^
                                            length ^ flags ^ remaining};
    std::memcpy(ring.data + (at & (ring.capacity - 1)), h, sizeof(h));
  }

  ShmRegionOptions options;
  Buffer buffer;
  ShmRingView ring;
  std::unique_ptr<ShmRingWriter> writer;
  std::unique_ptr<ShmRingReader> reader;
};

void ExpectDataLoss(const absl::Status& status, absl::string_view op) {
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find(op), absl::string_view::npos) << status;
}

// --- Layout and header ------------------------------------------------------

TEST(ShmRingTest, BytesForRejectsBadCapacities) {
  EXPECT_EQ(ShmRingLayout::BytesFor(0), 0u);
  EXPECT_EQ(ShmRingLayout::BytesFor(32), 0u);
  EXPECT_EQ(ShmRingLayout::BytesFor(96), 0u);
  EXPECT_EQ(ShmRingLayout::BytesFor(uint32_t{1} << 31), 0u);
  EXPECT_EQ(ShmRingLayout::BytesFor(64), ShmRingLayout::kDataOffset + 128);
  EXPECT_EQ(ShmRingLayout::kDataOffset % 64, 0u);
}

TEST(ShmRingTest, InitializeRejectsBadArguments) {
  Buffer buffer(ShmRingLayout::BytesFor(1024) + 64);
  ShmRegionOptions options;
  options.ring_capacity = 1000;
  EXPECT_EQ(InitializeShmRegion(buffer.span(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.ring_capacity = 1024;
  EXPECT_EQ(InitializeShmRegion(buffer.span().subspan(0, 1000), options)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      InitializeShmRegion(buffer.span().subspan(8), options).status().code(),
      absl::StatusCode::kInvalidArgument);
  options.mode = static_cast<ShmRingMode>(7);
  EXPECT_EQ(InitializeShmRegion(buffer.span(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ShmRingTest, AttachChecksTheHeader) {
  Buffer buffer(ShmRingLayout::BytesFor(256));
  ShmRegionOptions options;
  options.ring_capacity = 256;
  ASSERT_TRUE(InitializeShmRegion(buffer.span(), options).ok());
  ASSERT_TRUE(AttachShmRegion(buffer.span(), options).ok());

  ShmRegionHeader good;
  std::memcpy(&good, buffer.data(), sizeof(good));
  // Each field wrong in turn, with the check word made to match, so that
  // the field's own check is what fails.
  auto attach_with = [&](auto mutate, bool fix_check) {
    ShmRegionHeader h = good;
    mutate(h);
    if (fix_check) h.check = ShmHeaderCheck(h);
    std::memcpy(buffer.data(), &h, sizeof(h));
    absl::Status s = AttachShmRegion(buffer.span(), options).status();
    std::memcpy(buffer.data(), &good, sizeof(good));
    return s;
  };
  ExpectDataLoss(attach_with([](ShmRegionHeader& h) { h.magic ^= 1; }, true),
                 "magic");
  ExpectDataLoss(attach_with([](ShmRegionHeader& h) { h.version = 2; }, true),
                 "version");
  ExpectDataLoss(
      attach_with([](ShmRegionHeader& h) { h.ring_capacity = 128; }, true),
      "capacity");
  ExpectDataLoss(attach_with([](ShmRegionHeader& h) { h.mode = 1; }, true),
                 "mode");
  ExpectDataLoss(
      attach_with([](ShmRegionHeader& h) { h.region_size += 64; }, true),
      "size");
  ExpectDataLoss(attach_with([](ShmRegionHeader& h) { h.check ^= 1; }, false),
                 "check word");
  // The creator said another capacity or mode over the pipe.
  ShmRegionOptions other = options;
  other.ring_capacity = 512;
  Buffer big(ShmRingLayout::BytesFor(512));
  std::memcpy(big.data(), buffer.data(), ShmRingLayout::BytesFor(256));
  ExpectDataLoss(AttachShmRegion(big.span(), other).status(),
                 "AttachShmRegion");
  other = options;
  other.mode = ShmRingMode::kBytes;
  ExpectDataLoss(AttachShmRegion(buffer.span(), other).status(),
                 "AttachShmRegion");
  // A mapping shorter than the capacity needs: the local length rules.
  EXPECT_EQ(
      AttachShmRegion(buffer.span().subspan(0, 300), options).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// --- Message mode -----------------------------------------------------------

TEST(ShmRingTest, MessagesRoundTrip) {
  Rig rig(4096);
  for (uint32_t size : {1u, 15u, 16u, 17u, 100u, 1000u, 4080u}) {
    std::string m = Pattern(size, size);
    rig.Write(m);
    EXPECT_EQ(rig.Read(), m);
  }
  // Several queued, then read in order.
  for (uint32_t i = 0; i < 10; ++i) rig.Write(Pattern(i * 7, i));
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(rig.Read(), Pattern(i * 7, i));
  absl::StatusOr<ShmReadResult> r =
      rig.reader->TryReadMessage(absl::Span<char>());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, 0u);
  EXPECT_FALSE(r->message_end);
}

TEST(ShmRingTest, EmptyMessages) {
  Rig rig(128);
  rig.Write("");
  rig.Write("");
  rig.Write("x");
  rig.Write("");
  absl::StatusOr<ShmPeekResult> p = rig.reader->Peek();
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->readable);
  EXPECT_EQ(p->message_remaining, 0u);
  EXPECT_EQ(p->available, 1u);
  // With an empty buffer and with a non-empty one.
  absl::StatusOr<ShmReadResult> r =
      rig.reader->TryReadMessage(absl::Span<char>());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, 0u);
  EXPECT_TRUE(r->message_end);
  EXPECT_EQ(rig.Read(), "");
  EXPECT_EQ(rig.Read(), "x");
  EXPECT_EQ(rig.Read(), "");
  p = rig.reader->Peek();
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->readable);
}

TEST(ShmRingTest, MessageReadInParts) {
  Rig rig(1024);
  std::string m = Pattern(500, 1);
  rig.Write(m);
  rig.Write("next");
  char buf[7];
  std::string got;
  size_t reads = 0;
  while (true) {
    absl::StatusOr<ShmPeekResult> p = rig.reader->Peek();
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->message_remaining, m.size() - got.size());
    EXPECT_EQ(p->available, m.size() - got.size() + 4);
    absl::StatusOr<ShmReadResult> r =
        rig.reader->TryReadMessage(absl::MakeSpan(buf));
    ASSERT_TRUE(r.ok()) << r.status();
    ++reads;
    got.append(buf, r->bytes);
    EXPECT_TRUE(rig.reader->message_in_progress() || r->message_end);
    if (r->message_end) break;
    ASSERT_EQ(r->bytes, sizeof(buf));
  }
  EXPECT_EQ(got, m);
  EXPECT_EQ(reads, (m.size() + sizeof(buf) - 1) / sizeof(buf));
  EXPECT_FALSE(rig.reader->message_in_progress());
  EXPECT_EQ(rig.Read(), "next");
}

TEST(ShmRingTest, PeekCopiesTheCurrentMessageOnly) {
  Rig rig(256);
  rig.Write("hello");
  rig.Write("world");
  char buf[32];
  absl::StatusOr<ShmPeekResult> p = rig.reader->Peek(absl::MakeSpan(buf));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(absl::string_view(buf, p->size), "hello");
  EXPECT_EQ(p->available, 10u);
  EXPECT_EQ(p->message_remaining, 5u);
  EXPECT_EQ(rig.Read(), "hello");  // Peek consumed nothing.
  EXPECT_EQ(rig.Read(), "world");
}

TEST(ShmRingTest, WrapAroundAtEveryOffset) {
  constexpr uint32_t kCap = 128;
  for (uint32_t shift = 0; shift < kCap; shift += 16) {
    for (uint32_t size = 0; size + kShmRecordHeaderSize <= kCap; ++size) {
      Rig rig(kCap);
      if (shift > 0) {
        // Moves both indices to `shift` with one record.
        rig.Write(std::string(shift - kShmRecordHeaderSize, 'f'));
        rig.Read();
      }
      ASSERT_EQ(rig.Tail(), shift);
      std::string m = Pattern(size, shift * 1000 + size);
      rig.Write(m);
      EXPECT_EQ(rig.Read(5), m) << "shift " << shift << " size " << size;
      // And again from wherever that left the indices.
      rig.Write(m);
      EXPECT_EQ(rig.Read(), m) << "shift " << shift << " size " << size;
    }
  }
}

// Writes `m` through `rig` while reading it with parts of `part` bytes,
// alternating in one thread: the ring is much smaller than the message.
std::string Stream(Rig& rig, absl::string_view m, size_t part) {
  std::string got;
  std::vector<char> buf(part);
  absl::string_view rest = m;
  bool written = false;
  bool ended = false;
  for (int turns = 0; turns < 1 << 22 && !ended; ++turns) {
    if (!written) {
      absl::StatusOr<ShmWriteResult> w = rig.writer->TryWriteMessage(rest);
      EXPECT_TRUE(w.ok()) << w.status();
      if (!w.ok()) break;
      rest.remove_prefix(w->bytes);
      written = w->done;
    }
    absl::StatusOr<ShmReadResult> r =
        rig.reader->TryReadMessage(absl::MakeSpan(buf));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) break;
    got.append(buf.data(), r->bytes);
    ended = r->message_end;
    if (!ended && written) {
      EXPECT_GT(r->bytes, 0u);
    }
  }
  EXPECT_TRUE(ended);
  EXPECT_FALSE(rig.writer->message_in_progress());
  EXPECT_FALSE(rig.reader->message_in_progress());
  return got;
}

TEST(ShmRingTest, LargeMessagesAsFragmentsThroughASmallRing) {
  for (uint32_t cap : {64u, 128u, 1024u}) {
    Rig rig(cap);
    for (size_t size : {size_t{cap}, size_t{cap} * 3 + 5, size_t{100000}}) {
      for (size_t part : {size_t{1}, size_t{13}, size_t{4096}}) {
        if (size > 20000 && part < 13) continue;
        std::string m = Pattern(size, static_cast<uint32_t>(size + part));
        EXPECT_EQ(Stream(rig, m, part), m)
            << "cap " << cap << " size " << size << " part " << part;
      }
    }
    // Small messages still work after fragmented ones.
    rig.Write("ok");
    EXPECT_EQ(rig.Read(), "ok");
  }
}

TEST(ShmRingTest, PeekAnnouncesTheWholeFragmentedMessage) {
  Rig rig(256);
  std::string m = Pattern(1000, 3);
  absl::StatusOr<ShmWriteResult> w = rig.writer->TryWriteMessage(m);
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(w->done);
  EXPECT_EQ(w->bytes, 256 - kShmRecordHeaderSize);
  absl::StatusOr<ShmPeekResult> p = rig.reader->Peek();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->message_remaining, 1000u);
  EXPECT_EQ(p->available, 1000u);
  // The ring is full: the next part would block.
  absl::StatusOr<ShmWriteResult> again =
      rig.writer->TryWriteMessage(absl::string_view(m).substr(w->bytes));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->bytes, 0u);
  EXPECT_FALSE(again->done);
  // A different rest than the message's is refused.
  EXPECT_EQ(rig.writer->TryWriteMessage("x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ShmRingTest, FullRingWouldBlock) {
  Rig rig(256);
  int written = 0;
  while (true) {
    absl::StatusOr<ShmWriteResult> w = rig.writer->TryWriteMessage("message");
    ASSERT_TRUE(w.ok());
    if (!w->done) {
      EXPECT_EQ(w->bytes, 0u);
      break;
    }
    ++written;
  }
  EXPECT_EQ(written, 256 / 32);
  EXPECT_EQ(*rig.writer->FreeBytes(), 0u);
  EXPECT_EQ(rig.Read(), "message");
  rig.Write("again");
  for (int i = 1; i < written; ++i) EXPECT_EQ(rig.Read(), "message");
  EXPECT_EQ(rig.Read(), "again");
}

TEST(ShmRingTest, ModeMismatchIsFailedPrecondition) {
  Rig messages(64);
  char buf[4];
  EXPECT_EQ(messages.writer->TryWriteBytes("x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(messages.reader->TryReadBytes(absl::MakeSpan(buf)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  Rig bytes(64, ShmRingMode::kBytes);
  EXPECT_EQ(bytes.writer->TryWriteMessage("x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(bytes.reader->TryReadMessage(absl::MakeSpan(buf)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// --- Byte mode --------------------------------------------------------------

TEST(ShmRingTest, BytesPartialWritesAndReads) {
  Rig rig(64, ShmRingMode::kBytes);
  std::string data = Pattern(100, 9);
  absl::StatusOr<ShmWriteResult> w = rig.writer->TryWriteBytes(data);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->bytes, 64u);
  EXPECT_FALSE(w->done);
  w = rig.writer->TryWriteBytes(data);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->bytes, 0u);  // Full.
  char buf[10];
  absl::StatusOr<ShmPeekResult> p = rig.reader->Peek(absl::MakeSpan(buf));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->available, 64u);
  EXPECT_EQ(p->message_remaining, 0u);
  EXPECT_EQ(absl::string_view(buf, p->size), data.substr(0, 10));
  std::string got;
  absl::StatusOr<ShmReadResult> r =
      rig.reader->TryReadBytes(absl::MakeSpan(buf));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->bytes, 10u);
  got.append(buf, 10);
  w = rig.writer->TryWriteBytes(absl::string_view(data).substr(64));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->bytes, 10u);  // Wraps.
  while (got.size() < 74) {
    r = rig.reader->TryReadBytes(absl::MakeSpan(buf));
    ASSERT_TRUE(r.ok());
    ASSERT_GT(r->bytes, 0u);
    got.append(buf, r->bytes);
  }
  EXPECT_EQ(got, data.substr(0, 74));
  r = rig.reader->TryReadBytes(absl::MakeSpan(buf));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, 0u);
}

TEST(ShmRingTest, BytesWrapAtEveryOffset) {
  constexpr uint32_t kCap = 64;
  for (uint32_t shift = 0; shift < kCap; ++shift) {
    Rig rig(kCap, ShmRingMode::kBytes);
    std::string filler(shift, 'f');
    char buf[kCap];
    ASSERT_EQ(rig.writer->TryWriteBytes(filler)->bytes, shift);
    ASSERT_EQ(rig.reader->TryReadBytes(absl::MakeSpan(buf))->bytes, shift);
    std::string data = Pattern(kCap, shift);
    ASSERT_EQ(rig.writer->TryWriteBytes(data)->bytes, kCap);
    absl::StatusOr<ShmReadResult> r =
        rig.reader->TryReadBytes(absl::MakeSpan(buf));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(absl::string_view(buf, r->bytes), data) << "shift " << shift;
  }
}

// --- Wake-up flags ----------------------------------------------------------

TEST(ShmRingTest, WakeFlagsAndDoorbells) {
  Rig rig(64);
  uint32_t seq = rig.reader->PrepareToWait();
  EXPECT_EQ(rig.reader->doorbell().load(), seq);
  absl::StatusOr<ShmWriteResult> w = rig.writer->TryWriteMessage("a");
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->wake_peer);
  EXPECT_NE(rig.reader->doorbell().load(), seq);
  rig.reader->FinishWait();
  w = rig.writer->TryWriteMessage("b");
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(w->wake_peer);

  // The writer waiting for space.
  std::string big(40, 'x');
  absl::StatusOr<ShmWriteResult> full = rig.writer->TryWriteMessage(big);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->bytes, 0u);
  uint32_t space = rig.writer->PrepareToWait();
  EXPECT_EQ(rig.writer->doorbell().load(), space);
  char buf[8];
  absl::StatusOr<ShmReadResult> r =
      rig.reader->TryReadMessage(absl::MakeSpan(buf));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->wake_peer);
  EXPECT_NE(rig.writer->doorbell().load(), space);
  rig.writer->FinishWait();
  r = rig.reader->TryReadMessage(absl::MakeSpan(buf));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->message_end);
  EXPECT_FALSE(r->wake_peer);
}

// --- Two threads ------------------------------------------------------------

TEST(ShmRingTest, TwoThreadsMessagesInOrder) {
  constexpr int kMessages = 100000;
  // Some messages larger than the ring, so fragments too.
  Rig rig(512);
  auto size_of = [](int i) { return static_cast<size_t>((i * 37) % 700); };
  std::thread producer([&] {
    for (int i = 0; i < kMessages; ++i) {
      std::string m = Pattern(size_of(i), static_cast<uint32_t>(i));
      absl::string_view rest = m;
      while (true) {
        absl::StatusOr<ShmWriteResult> w = rig.writer->TryWriteMessage(rest);
        if (!w.ok()) {
          ADD_FAILURE() << w.status();
          return;
        }
        rest.remove_prefix(w->bytes);
        if (w->done) break;
        if (w->bytes == 0) std::this_thread::yield();
      }
    }
  });
  std::vector<char> buf(333);
  int bad = 0;
  for (int i = 0; i < kMessages && bad == 0; ++i) {
    std::string got;
    while (true) {
      absl::StatusOr<ShmReadResult> r =
          rig.reader->TryReadMessage(absl::MakeSpan(buf));
      if (!r.ok()) {
        ADD_FAILURE() << r.status();
        bad = 1;
        break;
      }
      got.append(buf.data(), r->bytes);
      if (r->message_end) break;
      if (r->bytes == 0) std::this_thread::yield();
    }
    if (got != Pattern(size_of(i), static_cast<uint32_t>(i))) {
      ADD_FAILURE() << "message " << i << " differs (" << got.size()
                    << " bytes)";
      bad = 1;
    }
  }
  producer.join();
}

TEST(ShmRingTest, TwoThreadsBytesInOrder) {
  constexpr size_t kTotal = 2000000;
  Rig rig(256, ShmRingMode::kBytes);
  const std::string data = Pattern(kTotal, 5);
  std::thread producer([&] {
    absl::string_view rest = data;
    size_t piece = 1;
    while (!rest.empty()) {
      absl::StatusOr<ShmWriteResult> w =
          rig.writer->TryWriteBytes(rest.substr(0, piece));
      if (!w.ok()) {
        ADD_FAILURE() << w.status();
        return;
      }
      rest.remove_prefix(w->bytes);
      piece = piece % 300 + 7;
      if (w->bytes == 0) std::this_thread::yield();
    }
  });
  std::string got;
  std::vector<char> buf(100);
  while (got.size() < kTotal) {
    absl::StatusOr<ShmReadResult> r =
        rig.reader->TryReadBytes(absl::MakeSpan(buf));
    if (!r.ok()) {
      ADD_FAILURE() << r.status();
      break;
    }
    got.append(buf.data(), r->bytes);
    if (r->bytes == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_TRUE(got == data);
}

// --- A hostile peer ---------------------------------------------------------

constexpr absl::string_view kRead = "ShmRingReader::TryReadMessage";
constexpr absl::string_view kWrite = "ShmRingWriter::TryWriteMessage";

absl::Status ReadStatus(Rig& rig) {
  char buf[64];
  return rig.reader->TryReadMessage(absl::MakeSpan(buf)).status();
}

TEST(ShmRingCorruptionTest, TailBeyondHeadPlusCapacity) {
  Rig rig(256);
  rig.Write("abc");
  rig.ring.control->producer.tail.store(256 + 16);
  ExpectDataLoss(ReadStatus(rig), kRead);
  // It stays broken, and says so for every operation.
  rig.ring.control->producer.tail.store(32);
  ExpectDataLoss(ReadStatus(rig), kRead);
  absl::Status again = rig.reader->Peek().status();
  ExpectDataLoss(again, "ShmRingReader::Peek");
  EXPECT_NE(again.message().find("tail"), absl::string_view::npos) << again;
}

TEST(ShmRingCorruptionTest, TailMovedBack) {
  Rig rig(256);
  rig.Write("abc");
  rig.Write("def");
  ASSERT_TRUE(rig.reader->Peek().ok());  // Sees tail 64.
  rig.ring.control->producer.tail.store(32);
  ExpectDataLoss(rig.reader->Peek().status(), "ShmRingReader::Peek");
}

TEST(ShmRingCorruptionTest, TailNotAtARecord) {
  Rig rig(256);
  rig.Write("abc");
  rig.ring.control->producer.tail.store(40);
  ExpectDataLoss(ReadStatus(rig), kRead);
}

TEST(ShmRingCorruptionTest, ProducerTailMovedByThePeer) {
  Rig rig(256);
  rig.Write("abc");
  rig.ring.control->producer.tail.store(64);
  ExpectDataLoss(rig.writer->TryWriteMessage("x").status(), kWrite);
}

TEST(ShmRingCorruptionTest, HeadMovedBackwards) {
  Rig rig(256);
  rig.Write("abc");
  rig.Write("def");
  EXPECT_EQ(rig.Read(), "abc");
  ASSERT_TRUE(rig.writer->FreeBytes().ok());  // Sees head 32.
  rig.ring.control->consumer.head.store(0);
  ExpectDataLoss(rig.writer->TryWriteMessage("x").status(), kWrite);
  ExpectDataLoss(ReadStatus(rig), kRead);
}

TEST(ShmRingCorruptionTest, HeadMovedForwards) {
  Rig rig(256);
  rig.Write("abc");
  rig.Write("def");
  // Beyond the tail (64): for the writer, more than the capacity used.
  rig.ring.control->consumer.head.store(96);
  ExpectDataLoss(rig.writer->TryWriteMessage("x").status(), kWrite);
  // For the reader any change of its own index is corruption.
  Rig other(256);
  other.Write("abc");
  other.Write("def");
  other.ring.control->consumer.head.store(32);
  ExpectDataLoss(ReadStatus(other), kRead);
}

TEST(ShmRingCorruptionTest, HeadNotAtARecord) {
  Rig rig(256);
  rig.Write("abc");
  rig.Read();
  rig.reader.reset();  // The peer's reader now "is" the region.
  rig.ring.control->consumer.head.store(8);
  ExpectDataLoss(rig.writer->TryWriteMessage("x").status(), kWrite);
}

TEST(ShmRingCorruptionTest, LengthLargerThanCapacity) {
  Rig rig(256);
  rig.Write(std::string(200, 'a'));
  rig.ForgeRecord(0, 256, kShmRecordFirst | kShmRecordLast, 256);
  absl::Status s = ReadStatus(rig);
  ExpectDataLoss(s, kRead);
  EXPECT_NE(s.message().find("capacity"), absl::string_view::npos) << s;
  Rig huge(256);
  huge.Write("a");
  huge.ForgeRecord(0, 0xffffffffu, kShmRecordFirst | kShmRecordLast,
                   0xffffffffu);
  ExpectDataLoss(ReadStatus(huge), kRead);
  ExpectDataLoss(huge.reader->Peek().status(), "Peek");
}

TEST(ShmRingCorruptionTest, LengthLargerThanPublished) {
  Rig rig(256);
  rig.Write("abc");  // 32 bytes published.
  rig.ForgeRecord(0, 17, kShmRecordFirst | kShmRecordLast, 17);
  absl::Status s = ReadStatus(rig);
  ExpectDataLoss(s, kRead);
  EXPECT_NE(s.message().find("published"), absl::string_view::npos) << s;
}

TEST(ShmRingCorruptionTest, BadCheckWordOrFlags) {
  Rig rig(256);
  rig.Write("abc");
  uint32_t wrong = 12345;
  rig.ForgeRecord(0, 3, kShmRecordFirst | kShmRecordLast, 3, &wrong);
  ExpectDataLoss(ReadStatus(rig), kRead);
  Rig flags(256);
  flags.Write("abc");
  flags.ForgeRecord(0, 3, kShmRecordFirst | kShmRecordLast | 8, 3);
  ExpectDataLoss(ReadStatus(flags), kRead);
}

TEST(ShmRingCorruptionTest, BadFragmentSequences) {
  // A continuation with no message begun.
  {
    Rig rig(256);
    rig.Write("abc");
    rig.ForgeRecord(0, 3, kShmRecordLast, 3);
    ExpectDataLoss(ReadStatus(rig), kRead);
  }
  // A message beginning inside another: two first fragments.
  {
    Rig rig(256);
    rig.Write("abc");
    rig.Write("def");
    rig.ForgeRecord(0, 3, kShmRecordFirst, 6);
    ExpectDataLoss(ReadStatus(rig), kRead);
  }
  // The remaining count not going down by the fragment's length.
  {
    Rig rig(256);
    rig.Write("abc");
    rig.Write("def");
    rig.ForgeRecord(0, 3, kShmRecordFirst, 7);
    rig.ForgeRecord(32, 3, kShmRecordLast, 3);
    ExpectDataLoss(ReadStatus(rig), kRead);
  }
  // A last record announcing more than it holds.
  {
    Rig rig(256);
    rig.Write("abc");
    rig.ForgeRecord(0, 3, kShmRecordFirst | kShmRecordLast, 4);
    ExpectDataLoss(ReadStatus(rig), kRead);
  }
  // An empty non-last fragment (could otherwise repeat without progress).
  {
    Rig rig(256);
    rig.Write("abc");
    rig.ForgeRecord(0, 0, kShmRecordFirst, 3);
    ExpectDataLoss(rig.reader->Peek().status(), "Peek");
  }
  // A valid fragmented message still reads: the forgeries above are what
  // fails, not fragments as such.
  {
    Rig rig(256);
    rig.Write("abc");
    rig.Write("def");
    rig.ForgeRecord(0, 3, kShmRecordFirst, 6);
    rig.ForgeRecord(32, 3, kShmRecordLast, 3);
    EXPECT_EQ(rig.Read(), "abcdef");
  }
}

TEST(ShmRingCorruptionTest, BytesModeIndices) {
  Rig rig(64, ShmRingMode::kBytes);
  ASSERT_EQ(rig.writer->TryWriteBytes("abcdef")->bytes, 6u);
  rig.ring.control->producer.tail.store(6 + 64);
  char buf[8];
  ExpectDataLoss(rig.reader->TryReadBytes(absl::MakeSpan(buf)).status(),
                 "ShmRingReader::TryReadBytes");
  Rig back(64, ShmRingMode::kBytes);
  ASSERT_EQ(back.writer->TryWriteBytes("abcdef")->bytes, 6u);
  ASSERT_EQ(back.reader->TryReadBytes(absl::MakeSpan(buf))->bytes, 6u);
  ASSERT_EQ(*back.writer->FreeBytes(), 64u);  // Sees head 6.
  back.ring.control->consumer.head.store(2);
  ExpectDataLoss(back.writer->TryWriteBytes("x").status(),
                 "ShmRingWriter::TryWriteBytes");
}

// What the channel reads between records: HasUnread and the size of the
// message at hand, without consuming.
TEST(ShmRingExtras, HasUnreadAndCurrentMessageRemaining) {
  Rig rig(1024);
  absl::StatusOr<bool> unread = rig.reader->HasUnread();
  ASSERT_TRUE(unread.ok());
  EXPECT_FALSE(*unread);
  absl::StatusOr<int64_t> left = rig.reader->CurrentMessageRemaining();
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, -1);
  rig.Write("hello");
  rig.Write("");
  unread = rig.reader->HasUnread();
  ASSERT_TRUE(unread.ok());
  EXPECT_TRUE(*unread);
  left = rig.reader->CurrentMessageRemaining();
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 5);
  char two[2];
  absl::StatusOr<ShmReadResult> r =
      rig.reader->TryReadMessage(absl::MakeSpan(two));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, 2u);
  left = rig.reader->CurrentMessageRemaining();
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 3);
  EXPECT_EQ(rig.Read(), "llo");
  left = rig.reader->CurrentMessageRemaining();
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 0) << "the empty message";
  EXPECT_EQ(rig.Read(), "");
  unread = rig.reader->HasUnread();
  ASSERT_TRUE(unread.ok());
  EXPECT_FALSE(*unread);
  // A message larger than the ring, begun but not finished: its whole
  // announced size.
  const std::string big = Pattern(3000, 4);
  absl::StatusOr<ShmWriteResult> w = rig.writer->TryWriteMessage(big);
  ASSERT_TRUE(w.ok());
  ASSERT_FALSE(w->done);
  left = rig.reader->CurrentMessageRemaining();
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 3000);
}

TEST(ShmRingExtras, CorruptIndicesAreDataLossForTheNewCalls) {
  Rig rig(1024);
  rig.Write("x");
  rig.ring.control->producer.tail.store(1 << 20);
  EXPECT_TRUE(absl::IsDataLoss(rig.reader->HasUnread().status()));
  EXPECT_TRUE(absl::IsDataLoss(rig.reader->CurrentMessageRemaining().status()));
}

// The flags each side raises for the other: closed, attached, switched.
TEST(ShmRingExtras, FlagsReachTheOtherSide) {
  Rig rig(1024);
  uint64_t units = 7;
  EXPECT_FALSE(rig.reader->PeerSwitched(&units));
  EXPECT_EQ(units, 7u) << "untouched while not switched";
  rig.writer->AnnounceSwitch(42);
  EXPECT_TRUE(rig.reader->PeerSwitched(&units));
  EXPECT_EQ(units, 42u);

  EXPECT_FALSE(rig.writer->ReaderAttached());
  rig.reader->Attach();
  EXPECT_TRUE(rig.writer->ReaderAttached());

  EXPECT_FALSE(rig.reader->PeerClosed());
  EXPECT_FALSE(rig.writer->PeerClosed());
  const uint32_t data = rig.reader->doorbell().load();
  const uint32_t space = rig.writer->doorbell().load();
  rig.writer->MarkClosed();
  EXPECT_TRUE(rig.reader->PeerClosed());
  EXPECT_NE(rig.reader->doorbell().load(), data) << "a sleeper must wake";
  EXPECT_NE(rig.writer->doorbell().load(), space);
  rig.reader->MarkClosed();
  EXPECT_TRUE(rig.writer->PeerClosed());
  // The doorbells are only bells: the ring still reads and writes.
  rig.Write("after");
  EXPECT_EQ(rig.Read(), "after");
}

// --- Pipe markers -------------------------------------------------------

// A pipe marker stands for a message on the pipe in its place among the
// ring's messages: Peek counts it (and copies nothing of it), the read
// consumes it alone and says so, and the messages around it are untouched.
TEST(ShmRingPipeMarkerTest, StandsInItsPlace) {
  Rig rig(256);
  rig.Write("a");
  absl::StatusOr<ShmWriteResult> marked = rig.writer->TryWritePipeMarker(7);
  ASSERT_TRUE(marked.ok()) << marked.status();
  EXPECT_TRUE(marked->done);
  EXPECT_EQ(marked->bytes, 0u);
  EXPECT_EQ(rig.Tail(), 32u + kShmRecordHeaderSize) << "a header alone";
  rig.Write("bc");
  char buf[16];
  absl::StatusOr<ShmPeekResult> p = rig.reader->Peek(absl::MakeSpan(buf));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->size, 1u);
  EXPECT_EQ(p->available, 1u + 7u + 2u);
  EXPECT_EQ(p->message_remaining, 1u);
  EXPECT_FALSE(p->on_pipe);
  EXPECT_EQ(rig.Read(), "a");

  // Peek before and after CurrentMessageRemaining took up the marker.
  for (int i = 0; i < 2; ++i) {
    p = rig.reader->Peek(absl::MakeSpan(buf));
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(p->on_pipe);
    EXPECT_TRUE(p->readable);
    EXPECT_EQ(p->size, 0u) << "its bytes are not in the ring";
    EXPECT_EQ(p->message_remaining, 7u);
    EXPECT_EQ(p->available, 7u + 2u);
    EXPECT_EQ(rig.reader->pipe_marker_next(), i == 1);
    absl::StatusOr<int64_t> left = rig.reader->CurrentMessageRemaining();
    ASSERT_TRUE(left.ok()) << left.status();
    EXPECT_EQ(*left, 7);
    EXPECT_TRUE(rig.reader->pipe_marker_next());
    EXPECT_FALSE(rig.reader->message_in_progress());
    if (i == 1) break;
    // Taken up, not consumed: the head has not moved.
    EXPECT_EQ(rig.Head(), 32u);
    EXPECT_TRUE(*rig.reader->HasUnread());
  }
  absl::StatusOr<ShmReadResult> r =
      rig.reader->TryReadMessage(absl::MakeSpan(buf));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->on_pipe);
  EXPECT_EQ(r->pipe_message_size, 7u);
  EXPECT_EQ(r->bytes, 0u);
  EXPECT_FALSE(r->message_end);
  EXPECT_FALSE(rig.reader->pipe_marker_next());
  EXPECT_EQ(rig.Head(), 32u + kShmRecordHeaderSize);
  EXPECT_EQ(rig.Read(), "bc");
  EXPECT_FALSE(*rig.reader->HasUnread());
}

// An empty buffer consumes a marker as it consumes an empty message; the
// largest message size is allowed, one more is not.
TEST(ShmRingPipeMarkerTest, EmptyBufferAndSizes) {
  Rig rig(256);
  ASSERT_TRUE(rig.writer->TryWritePipeMarker(0)->done);
  ASSERT_TRUE(rig.writer->TryWritePipeMarker(kShmMaxMessage)->done);
  EXPECT_EQ(rig.writer->TryWritePipeMarker(kShmMaxMessage + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ShmPeekResult> p = rig.reader->Peek();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->available, kShmMaxMessage);
  EXPECT_EQ(p->message_remaining, 0u);
  EXPECT_TRUE(p->on_pipe);
  absl::StatusOr<ShmReadResult> r = rig.reader->TryReadMessage({});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->on_pipe);
  EXPECT_EQ(r->pipe_message_size, 0u);
  r = rig.reader->TryReadMessage({});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->on_pipe);
  EXPECT_EQ(r->pipe_message_size, kShmMaxMessage);
  r = rig.reader->TryReadMessage({});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->on_pipe);
  EXPECT_FALSE(r->message_end);
}

// A marker needs one header's room; a full ring takes none, and the writer
// may not place one inside a message or on a byte ring.
TEST(ShmRingPipeMarkerTest, RoomAndMisuse) {
  Rig rig(64);
  rig.Write(std::string(48, 'x'));  // Fills the ring exactly.
  absl::StatusOr<ShmWriteResult> full = rig.writer->TryWritePipeMarker(3);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_FALSE(full->done);
  EXPECT_EQ(rig.Tail(), 64u) << "nothing written";
  EXPECT_EQ(rig.Read(), std::string(48, 'x'));
  ASSERT_TRUE(rig.writer->TryWritePipeMarker(3)->done);

  Rig fragments(64);
  const std::string big(100, 'y');
  absl::StatusOr<ShmWriteResult> part = fragments.writer->TryWriteMessage(big);
  ASSERT_TRUE(part.ok()) << part.status();
  ASSERT_FALSE(part->done);
  EXPECT_EQ(fragments.writer->TryWritePipeMarker(3).status().code(),
            absl::StatusCode::kFailedPrecondition);

  Rig bytes(64, ShmRingMode::kBytes);
  EXPECT_EQ(bytes.writer->TryWritePipeMarker(3).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The marker's fields are checked like every record's: a payload, a
// marker inside a message, the flag without first and last, or a bad
// check word is DataLoss, for the read and for Peek.
TEST(ShmRingPipeMarkerTest, ForgedMarkersAreDataLoss) {
  {
    Rig rig(256);
    rig.Write("abc");
    rig.ForgeRecord(0, 3, kShmPipeMarkerFlags, 3);
    ExpectDataLoss(rig.reader->Peek().status(), "Peek");
    ExpectDataLoss(ReadStatus(rig), kRead);
  }
  {
    Rig rig(256);
    rig.Write("abc");
    rig.ForgeRecord(0, 0, kShmRecordOnPipe | kShmRecordFirst, 3);
    ExpectDataLoss(ReadStatus(rig), kRead);
  }
  {
    Rig rig(256);
    rig.Write("abc");
    rig.ForgeRecord(0, 0, kShmRecordOnPipe, 3);
    ExpectDataLoss(ReadStatus(rig), kRead);
  }
  {
    Rig rig(256);
    ASSERT_TRUE(rig.writer->TryWritePipeMarker(5)->done);
    uint32_t wrong = 1;
    rig.ForgeRecord(0, 0, kShmPipeMarkerFlags, 5, &wrong);
    ExpectDataLoss(ReadStatus(rig), kRead);
  }
  {
    // A marker where a message's next fragment belongs.
    Rig rig(256);
    rig.Write("abc");
    rig.Write("def");
    rig.ForgeRecord(0, 3, kShmRecordFirst, 6);
    rig.ForgeRecord(32, 0, kShmPipeMarkerFlags, 3);
    char buf[8];
    absl::StatusOr<ShmReadResult> r =
        rig.reader->TryReadMessage(absl::MakeSpan(buf));
    ExpectDataLoss(r.status(), kRead);
  }
}

}  // namespace
}  // namespace canal_test
