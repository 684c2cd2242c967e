// SPDX-License-Identifier: Apache-2.0
// The frame decoder (src/internal/framing.h) on its own, fed in memory: whole
// and partial messages from inputs cut anywhere, the errors, and the memory
// rule (memory follows the bytes that arrived, never the announced length).
// Runs on both legs: the decoder is shared code.

#include "src/internal/framing.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace canal_test {
namespace {

using canal::internal::EncodeFrameHeader;
using canal::internal::FrameDecoder;
using canal::internal::FrameError;
using canal::internal::FrameSurvey;
using canal::internal::kFrameHeaderSize;
using Result = FrameDecoder::Result;

constexpr uint64_t k64MiB = 64 * 1024 * 1024;

std::string Header(uint32_t size, absl::string_view magic = "CNL1") {
  unsigned char h[kFrameHeaderSize];
  EncodeFrameHeader(size, h);
  std::string out(reinterpret_cast<const char*>(h), kFrameHeaderSize);
  out.replace(0, 4, std::string(magic));
  return out;
}

std::string Frame(absl::string_view payload) {
  return Header(static_cast<uint32_t>(payload.size())) + std::string(payload);
}

// Feeds `stream` in pieces of `piece` bytes through Next(view), collecting
// the messages. Returns the last result.
Result DecodeAll(FrameDecoder& decoder, absl::string_view stream, size_t piece,
                 std::vector<std::string>* messages) {
  Result last = Result::kNeedMore;
  for (size_t pos = 0; pos < stream.size(); pos += piece) {
    absl::string_view input = stream.substr(pos, piece);
    while (true) {
      absl::string_view message;
      last = decoder.Next(&input, &message);
      if (last != Result::kMessage) break;
      messages->emplace_back(message);
    }
    if (last == Result::kError) return last;
    EXPECT_TRUE(input.empty()) << "kNeedMore left input behind";
  }
  return last;
}

TEST(FrameDecoderTest, WholeMessagesInOneInputAreViewsIntoIt) {
  const std::string stream = Frame("abc") + Frame("") + Frame("defgh");
  FrameDecoder decoder(1024);
  absl::string_view input = stream;
  absl::string_view message;
  ASSERT_EQ(decoder.Next(&input, &message), Result::kMessage);
  EXPECT_EQ(message, "abc");
  EXPECT_EQ(message.data(), stream.data() + kFrameHeaderSize);
  ASSERT_EQ(decoder.Next(&input, &message), Result::kMessage);
  EXPECT_EQ(message, "");
  ASSERT_EQ(decoder.Next(&input, &message), Result::kMessage);
  EXPECT_EQ(message, "defgh");
  EXPECT_EQ(decoder.Next(&input, &message), Result::kNeedMore);
  EXPECT_TRUE(input.empty());
  EXPECT_EQ(decoder.memory_held(), 0u);
  EXPECT_FALSE(decoder.mid_frame());
  EXPECT_EQ(decoder.EndOfStream(0), FrameError::kNone);
}

TEST(FrameDecoderTest, AnyCutOfTheStreamGivesTheSameMessages) {
  const std::vector<std::string> expected = {
      "", "x", Pattern(1000, 1), Pattern(70000, 2), "", "yz"};
  std::string stream;
  for (const std::string& m : expected) stream += Frame(m);
  for (size_t piece : {1, 2, 3, 7, 8, 9, 100, 4096, 65536, 1 << 20}) {
    SCOPED_TRACE(absl::StrCat("pieces of ", piece));
    FrameDecoder decoder(1 << 20);
    std::vector<std::string> got;
    EXPECT_EQ(DecodeAll(decoder, stream, piece, &got), Result::kNeedMore);
    EXPECT_EQ(got, expected);
    EXPECT_FALSE(decoder.mid_frame());
  }
}

std::string HandleFrame(absl::string_view payload, uint32_t handles) {
  unsigned char h[canal::internal::kHandleFrameHeaderSize];
  canal::internal::EncodeHandleFrameHeader(
      static_cast<uint32_t>(payload.size()), handles, h);
  return std::string(reinterpret_cast<const char*>(h), sizeof(h)) +
         std::string(payload);
}

TEST(FrameDecoderTest, HandleFramesDecodeAtAnyCutAndReportTheirCount) {
  const std::string stream = Frame("a") + HandleFrame("bc", 3) +
                             HandleFrame("", 1) + Frame("") +
                             HandleFrame(Pattern(9000, 4), 2);
  for (size_t piece : {1, 2, 3, 5, 8, 11, 12, 13, 4096}) {
    SCOPED_TRACE(absl::StrCat("pieces of ", piece));
    FrameDecoder decoder(1 << 20);
    std::vector<std::string> got;
    std::vector<uint32_t> handles;
    std::vector<uint64_t> sizes;
    uint64_t headers = 0;
    for (size_t pos = 0; pos < stream.size(); pos += piece) {
      absl::string_view input = absl::string_view(stream).substr(pos, piece);
      while (true) {
        std::string message;
        const Result r = decoder.Next(&input, &message);
        if (decoder.headers_taken() != headers) {
          headers = decoder.headers_taken();
          handles.push_back(decoder.last_header_handles());
          sizes.push_back(decoder.last_frame_size());
        }
        if (r != Result::kMessage) break;
        got.push_back(message);
      }
    }
    EXPECT_EQ(got,
              (std::vector<std::string>{"a", "bc", "", "", Pattern(9000, 4)}));
    EXPECT_EQ(handles, (std::vector<uint32_t>{0, 3, 1, 0, 2}));
    EXPECT_EQ(sizes, (std::vector<uint64_t>{9, 14, 12, 8, 9012}));
    EXPECT_FALSE(decoder.mid_frame());
  }
}

TEST(FrameDecoderTest, HandleFrameOverTheLimitIsDataLossFromTheHeader) {
  FrameDecoder decoder(1024);
  decoder.set_max_handles(4);
  const std::string stream = HandleFrame("x", 5);
  absl::string_view input = stream;
  absl::string_view message;
  EXPECT_EQ(decoder.Next(&input, &message), Result::kError);
  EXPECT_EQ(decoder.error(), FrameError::kTooManyHandles);
  EXPECT_EQ(decoder.ErrorStatus("Read", "p").code(),
            absl::StatusCode::kDataLoss);
}

TEST(FrameDecoderTest, SurveySeesThroughHandleFrames) {
  FrameDecoder decoder(1024);
  const std::string stream = HandleFrame("abc", 2) + Frame("de");
  char out[8];
  const FrameSurvey survey = decoder.Survey({stream}, absl::MakeSpan(out));
  EXPECT_EQ(survey.copied, 3u);
  EXPECT_EQ(std::string(out, 3), "abc");
  EXPECT_EQ(survey.message_remaining, 3u);
  EXPECT_EQ(survey.available, 5u);
}

TEST(FrameDecoderTest, StringResultsMoveTheAssembledBuffer) {
  const std::string payload = Pattern(5000, 3);
  const std::string stream = Frame(payload) + Frame("tail");
  FrameDecoder decoder(1 << 20);
  absl::string_view first = absl::string_view(stream).substr(0, 100);
  absl::string_view rest = absl::string_view(stream).substr(100);
  std::string message;
  ASSERT_EQ(decoder.Next(&first, &message), Result::kNeedMore);
  ASSERT_EQ(decoder.Next(&rest, &message), Result::kMessage);
  EXPECT_EQ(message, payload);
  // The buffer went to the result: nothing is held any more.
  EXPECT_EQ(decoder.memory_held(), 0u);
  ASSERT_EQ(decoder.Next(&rest, &message), Result::kMessage);
  EXPECT_EQ(message, "tail");
}

TEST(FrameDecoderTest, BadMagicIsDataLossAndSticky) {
  const std::string stream = Frame("ok") + Header(3, "CNL2") + "abc";
  FrameDecoder decoder(1024);
  std::vector<std::string> got;
  EXPECT_EQ(DecodeAll(decoder, stream, stream.size(), &got), Result::kError);
  EXPECT_EQ(got, std::vector<std::string>{"ok"});
  EXPECT_EQ(decoder.error(), FrameError::kBadMagic);
  const absl::Status status = decoder.ErrorStatus("ReadMessage", "pipe-x");
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_TRUE(MessageNames(status, "ReadMessage", "pipe-x"));
  const std::string more = Frame("later");
  absl::string_view input = more;
  absl::string_view message;
  EXPECT_EQ(decoder.Next(&input, &message), Result::kError);
  EXPECT_FALSE(decoder.ParseHeader(&input));
}

TEST(FrameDecoderTest, OverTheLimitIsResourceExhaustedFromTheHeaderAlone) {
  for (uint32_t size : {1025u, 0xffffffffu}) {
    SCOPED_TRACE(size);
    FrameDecoder decoder(1024);
    const std::string header = Header(size);
    absl::string_view input = header;
    absl::string_view message;
    EXPECT_EQ(decoder.Next(&input, &message), Result::kError);
    EXPECT_EQ(decoder.error(), FrameError::kTooLarge);
    EXPECT_EQ(decoder.refused_size(), size);
    EXPECT_EQ(decoder.memory_held(), 0u);
    const absl::Status status = decoder.ErrorStatus("Read", "p");
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat(size)))
        << status;
  }
  // Exactly the limit is fine.
  FrameDecoder decoder(4);
  const std::string stream = Frame("four");
  absl::string_view input = stream;
  absl::string_view message;
  EXPECT_EQ(decoder.Next(&input, &message), Result::kMessage);
  EXPECT_EQ(message, "four");
}

TEST(FrameDecoderTest, EndOfStreamInsideAFrameIsTruncated) {
  const std::string frame = Frame("payload");
  for (size_t cut = 1; cut < frame.size(); ++cut) {
    SCOPED_TRACE(cut);
    FrameDecoder decoder(1024);
    std::vector<std::string> got;
    EXPECT_EQ(DecodeAll(decoder, frame.substr(0, cut), 1, &got),
              Result::kNeedMore);
    EXPECT_TRUE(got.empty());
    EXPECT_TRUE(decoder.mid_frame());
    EXPECT_EQ(decoder.EndOfStream(0), FrameError::kTruncated);
    EXPECT_EQ(decoder.ErrorStatus("Read", "p").code(),
              absl::StatusCode::kDataLoss);
  }
  // Bytes the caller still holds count too.
  FrameDecoder decoder(1024);
  EXPECT_EQ(decoder.EndOfStream(3), FrameError::kTruncated);
}

// A large announcement with a few bytes behind it costs those bytes, not
// the announced length.
TEST(FrameDecoderTest, AnnouncementCommitsNoMemory) {
  FrameDecoder decoder(k64MiB);
  const std::string stream = Header(static_cast<uint32_t>(k64MiB)) + "abcd";
  absl::string_view input = stream;
  std::string message;
  EXPECT_EQ(decoder.Next(&input, &message), Result::kNeedMore);
  EXPECT_TRUE(decoder.in_message());
  EXPECT_EQ(decoder.message_size(), k64MiB);
  EXPECT_EQ(decoder.body_size(), 4u);
  EXPECT_LE(decoder.memory_held(), 8u + 32u);
}

// Fed in small pieces, the buffer being filled stays within twice what
// arrived plus one receive (so does the staging buffer kept beside the
// result string) and is reallocated O(log n) times.
TEST(FrameDecoderTest, AssemblyBufferGrowsGeometricallyWithArrivedBytes) {
  constexpr size_t kSize = 4 * 1024 * 1024;
  const std::string payload = Pattern(kSize, 4);
  const std::string stream = Frame(payload);
  FrameDecoder decoder(k64MiB);
  size_t last_held = 0;
  int growths = 0;
  std::string message;
  for (size_t pos = 0; pos < stream.size(); pos += 1000) {
    absl::string_view input = absl::string_view(stream).substr(pos, 1000);
    const Result r = decoder.Next(&input, &message);
    if (r == Result::kMessage) break;
    ASSERT_EQ(r, Result::kNeedMore);
    const size_t held = decoder.memory_held();
    const size_t bound =
        2 * decoder.body_size() + FrameDecoder::kDefaultReceiveRoom;
    ASSERT_LE(held - decoder.stage_capacity(), bound) << "at " << pos;
    ASSERT_LE(decoder.stage_capacity(), bound) << "at " << pos;
    if (held != last_held) ++growths;
    last_held = held;
  }
  EXPECT_EQ(message, payload);
  EXPECT_LE(growths, 24) << "reallocations";
}

// Receiving straight into the decoder's memory: the room is at most as much
// again as arrived plus one receive, never beyond the message, and each
// buffer stays within twice what arrived plus one receive.
TEST(FrameDecoderTest, BodyRoomFollowsArrivedBytes) {
  constexpr size_t kSize = 3 * 1024 * 1024 + 17;
  const std::string payload = Pattern(kSize, 5);
  FrameDecoder decoder(k64MiB);
  const std::string header = Header(static_cast<uint32_t>(kSize));
  absl::string_view input = header;
  std::string message;
  ASSERT_EQ(decoder.Next(&input, &message), Result::kNeedMore);
  size_t filled = 0;
  int growths = 0;
  size_t last_held = 0;
  while (filled < kSize) {
    absl::Span<char> room;
    ASSERT_TRUE(decoder.BodyRoom(&room));
    ASSERT_GT(room.size(), 0u);
    ASSERT_LE(room.size(), kSize - filled);
    ASSERT_LE(room.size(), filled + FrameDecoder::kDefaultReceiveRoom);
    const size_t bound = 2 * filled + FrameDecoder::kDefaultReceiveRoom;
    ASSERT_LE(decoder.memory_held() - decoder.stage_capacity(), bound);
    ASSERT_LE(decoder.stage_capacity(), bound);
    if (decoder.memory_held() != last_held) ++growths;
    last_held = decoder.memory_held();
    // Pretend a receive brought 40000 bytes (or fewer, if that is all the
    // room there is).
    const size_t n = std::min<size_t>(room.size(), 40000);
    std::copy(payload.begin() + filled, payload.begin() + filled + n,
              room.begin());
    decoder.CommitBody(n);
    filled += n;
  }
  EXPECT_LE(growths, 12);
  absl::string_view none;
  ASSERT_EQ(decoder.Next(&none, &message), Result::kMessage);
  EXPECT_EQ(message, payload);
}

// Receives `payload` (after its header) into BodyRoom, `chunk` bytes at a
// time, and returns the message; counts the changes of memory_held().
std::string ReceiveInRoom(FrameDecoder& decoder, const std::string& payload,
                          size_t chunk, int* changes) {
  const std::string header = Header(static_cast<uint32_t>(payload.size()));
  absl::string_view input = header;
  std::string message;
  EXPECT_EQ(decoder.Next(&input, &message), Result::kNeedMore);
  size_t filled = 0;
  size_t last_held = decoder.memory_held();
  while (filled < payload.size()) {
    absl::Span<char> room;
    if (!decoder.BodyRoom(&room)) {
      ADD_FAILURE() << "no room at " << filled;
      return "";
    }
    if (decoder.memory_held() != last_held) ++*changes;
    last_held = decoder.memory_held();
    const size_t n = std::min(room.size(), chunk);
    std::copy(payload.begin() + filled, payload.begin() + filled + n,
              room.begin());
    decoder.CommitBody(n);
    filled += n;
  }
  absl::string_view none;
  EXPECT_EQ(decoder.Next(&none, &message), Result::kMessage);
  return message;
}

// A stream of large messages: the staging buffer of the first is kept, so
// the next ones allocate only their result strings; Trim frees it.
TEST(FrameDecoderTest, StagingBufferIsKeptBetweenMessages) {
  FrameDecoder decoder(k64MiB);
  const std::string first = Pattern(900 * 1024, 8);
  int changes = 0;
  EXPECT_EQ(ReceiveInRoom(decoder, first, 40000, &changes), first);
  EXPECT_GT(changes, 1);
  const size_t kept = decoder.memory_held();
  EXPECT_GT(kept, 0u);
  EXPECT_LE(kept, FrameDecoder::kKeepStageCapacity);
  const std::string second = Pattern(900 * 1024, 9);
  changes = 0;
  EXPECT_EQ(ReceiveInRoom(decoder, second, 40000, &changes), second);
  EXPECT_EQ(changes, 1) << "only the result string should be allocated";
  // A smaller message fits into the kept buffer as a whole and is still
  // delivered whole.
  const std::string third = Pattern(300 * 1024, 10);
  changes = 0;
  EXPECT_EQ(ReceiveInRoom(decoder, third, 1 << 20, &changes), third);
  decoder.Trim();
  EXPECT_EQ(decoder.memory_held(), 0u);
}

// A staging buffer over kKeepStageCapacity is kept only while messages use
// it: the first message that does not frees it.
TEST(FrameDecoderTest, LargeStagingBufferIsFreedByTheFirstMessageNotUsingIt) {
  FrameDecoder decoder(k64MiB);
  const std::string big = Pattern(3 * 1024 * 1024, 12);
  int changes = 0;
  EXPECT_EQ(ReceiveInRoom(decoder, big, 200000, &changes), big);
  EXPECT_GT(decoder.stage_capacity(), FrameDecoder::kKeepStageCapacity);
  changes = 0;
  EXPECT_EQ(ReceiveInRoom(decoder, big, 200000, &changes), big);
  EXPECT_EQ(changes, 1) << "only the result string should be allocated";
  const std::string small = Frame("small");
  absl::string_view input = small;
  absl::string_view message;
  ASSERT_EQ(decoder.Next(&input, &message), Result::kMessage);
  EXPECT_EQ(message, "small");
  EXPECT_EQ(decoder.memory_held(), 0u);
}

// With a small receive room the two stages show: a staging buffer while
// the rest of the message is more than twice what arrived plus the room,
// then a string of exactly the message's length.
TEST(FrameDecoderTest, ResultStringIsAllocatedOnceWithinTheBound) {
  FrameDecoder decoder(1 << 20, 16);
  const std::string payload = Pattern(1000, 11);
  const std::string stream = Frame(payload);
  std::string message;
  for (size_t pos = 0; pos < stream.size(); pos += 10) {
    absl::string_view input = absl::string_view(stream).substr(pos, 10);
    const Result r = decoder.Next(&input, &message);
    if (r == Result::kMessage) break;
    ASSERT_EQ(r, Result::kNeedMore);
    // The staging buffer is kept for reuse once the result string exists;
    // each is within the bound.
    ASSERT_LE(decoder.memory_held() - decoder.stage_capacity(),
              2 * decoder.body_size() + 16)
        << "at " << pos;
    ASSERT_LE(decoder.stage_capacity(), 2 * decoder.body_size() + 16)
        << "at " << pos;
  }
  EXPECT_EQ(message, payload);
}

TEST(FrameDecoderTest, TrimKeepsOnlyWhatArrived) {
  FrameDecoder decoder(k64MiB);
  const std::string header = Header(1 << 20);
  absl::string_view input = header;
  std::string message;
  ASSERT_EQ(decoder.Next(&input, &message), Result::kNeedMore);
  absl::Span<char> room;
  ASSERT_TRUE(decoder.BodyRoom(&room));
  EXPECT_GE(decoder.memory_held(), FrameDecoder::kDefaultReceiveRoom);
  std::fill(room.begin(), room.begin() + 10, 'q');
  decoder.CommitBody(10);
  decoder.Trim();
  EXPECT_EQ(decoder.body_size(), 10u);
  EXPECT_LE(decoder.memory_held(), 10u + 32u);
  // The message continues where it was.
  const std::string rest((1 << 20) - 10, 'r');
  input = rest;
  ASSERT_EQ(decoder.Next(&input, &message), Result::kMessage);
  EXPECT_EQ(message, std::string(10, 'q') + rest);
  // Nothing arrived at all: Trim frees everything.
  FrameDecoder empty(k64MiB);
  input = header;
  ASSERT_EQ(empty.Next(&input, &message), Result::kNeedMore);
  ASSERT_TRUE(empty.BodyRoom(&room));
  empty.Trim();
  EXPECT_EQ(empty.memory_held(), 0u);
}

TEST(FrameDecoderTest, PartsDeliverTheMessageInPiecesThenTheRest) {
  const std::string stream = Frame("abcdefgh") + Frame("") + Frame("xyz");
  FrameDecoder decoder(1024);
  absl::string_view input = stream;
  char buf[3];
  ASSERT_TRUE(decoder.ParseHeader(&input));
  EXPECT_EQ(decoder.message_remaining(), 8u);
  EXPECT_EQ(decoder.part_available(input), 8u);
  ASSERT_EQ(decoder.ReadPart(&input, absl::MakeSpan(buf)), 3u);
  EXPECT_EQ(absl::string_view(buf, 3), "abc");
  EXPECT_TRUE(decoder.in_message());
  EXPECT_EQ(decoder.message_remaining(), 5u);
  // The rest as a whole message.
  absl::string_view message;
  ASSERT_EQ(decoder.Next(&input, &message), Result::kMessage);
  EXPECT_EQ(message, "defgh");
  // An empty message is finished by a part of any size, even none.
  ASSERT_TRUE(decoder.ParseHeader(&input));
  EXPECT_EQ(decoder.message_remaining(), 0u);
  EXPECT_EQ(decoder.ReadPart(&input, absl::Span<char>()), 0u);
  EXPECT_FALSE(decoder.in_message());
  ASSERT_TRUE(decoder.ParseHeader(&input));
  ASSERT_EQ(decoder.ReadPart(&input, absl::MakeSpan(buf)), 3u);
  EXPECT_EQ(absl::string_view(buf, 3), "xyz");
  EXPECT_FALSE(decoder.in_message());
  EXPECT_TRUE(input.empty());
}

// A message partly assembled (a ReadMessage that timed out) is then read in
// parts: the assembled bytes come first.
TEST(FrameDecoderTest, PartsAfterAnInterruptedAssemblyKeepTheOrder) {
  const std::string payload = Pattern(300, 6);
  const std::string stream = Frame(payload);
  FrameDecoder decoder(1024);
  absl::string_view first = absl::string_view(stream).substr(0, 108);
  std::string message;
  ASSERT_EQ(decoder.Next(&first, &message), Result::kNeedMore);
  EXPECT_EQ(decoder.body_size(), 100u);
  absl::string_view rest = absl::string_view(stream).substr(108);
  std::string got;
  char buf[64];
  while (decoder.in_message()) {
    const size_t n = decoder.ReadPart(&rest, absl::MakeSpan(buf));
    got.append(buf, n);
  }
  EXPECT_EQ(got, payload);
}

TEST(FrameDecoderTest, SurveyCountsAnnouncedLengthsAndCopiesArrivedBytes) {
  FrameDecoder decoder(1 << 20);
  // A 1000-byte message of which 10 bytes arrived is all that is visible.
  const std::string partial = Header(1000) + std::string(10, 'a');
  char buf[64];
  FrameSurvey s = decoder.Survey({partial}, absl::MakeSpan(buf));
  EXPECT_TRUE(s.has_message);
  EXPECT_EQ(s.copied, 10u);
  EXPECT_EQ(s.message_remaining, 1000u);
  EXPECT_EQ(s.available, 1000u);
  // Whole messages, then one whose payload has not arrived, then a partial
  // header, which is not counted.
  const std::string stream =
      Frame("first") + Frame("22") + Header(500) + std::string("CNL");
  s = decoder.Survey({stream.substr(0, 7), stream.substr(7)},
                     absl::MakeSpan(buf));
  EXPECT_EQ(absl::string_view(buf, s.copied), "first");
  EXPECT_EQ(s.message_remaining, 5u);
  EXPECT_EQ(s.available, 5u + 2u + 500u);
  // The decoder's own state comes first: a message in progress.
  absl::string_view input = partial;
  std::string message;
  ASSERT_EQ(decoder.Next(&input, &message), Result::kNeedMore);
  const std::string more = std::string(5, 'b');
  s = decoder.Survey({more}, absl::MakeSpan(buf, 12));
  EXPECT_EQ(absl::string_view(buf, s.copied), "aaaaaaaaaabb");
  EXPECT_EQ(s.message_remaining, 1000u);
  EXPECT_EQ(s.available, 1000u);
  // A bad header stops the walk (the reading calls report it).
  FrameDecoder fresh(1 << 20);
  const std::string bad = Frame("ok") + Header(4, "XXXX") + "abcd";
  s = fresh.Survey({bad}, absl::MakeSpan(buf));
  EXPECT_EQ(s.available, 2u);
  const std::string too_big = Frame("ok") + Header((1 << 20) + 1);
  s = fresh.Survey({too_big}, absl::MakeSpan(buf));
  EXPECT_EQ(s.available, 2u);
  // Nothing at all.
  s = fresh.Survey({}, absl::MakeSpan(buf));
  EXPECT_FALSE(s.has_message);
  EXPECT_EQ(s.available, 0u);
}

TEST(FrameDecoderTest, HeaderRoundTrip) {
  for (uint32_t size : {0u, 1u, 255u, 256u, 65536u, 0xffffffffu}) {
    unsigned char h[kFrameHeaderSize];
    EncodeFrameHeader(size, h);
    uint32_t back = 0;
    ASSERT_EQ(canal::internal::DecodeFrameHeader(h, &back),
              canal::internal::FrameHeaderError::kOk);
    EXPECT_EQ(back, size);
  }
}

}  // namespace
}  // namespace canal_test
