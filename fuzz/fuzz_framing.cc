// SPDX-License-Identifier: Apache-2.0
// Fuzzes canal's message framing: the one frame decoder
// (src/internal/framing.h) in memory, without a socket, and (for inputs
// whose config byte has its top bit set) the POSIX channel that uses it,
// over a real socket. A reference parser of the wire format predicts every
// message and the final status:
//   - each complete frame within max_message_size arrives intact, in order;
//   - a bad magic            -> DataLoss
//   - a frame over the limit -> ResourceExhausted (before any allocation)
//   - a stream ending inside a header or payload -> DataLoss
//   - a clean end between frames -> OutOfRange
// Never a crash, a hang, another status or a torn message.
//
// Input: one config byte, then the stream.
//   bits 0-1  how the decoder is driven: Next into views, Next into strings,
//             ParseHeader + ReadPart in parts, or receives straight into
//             BodyRoom (as the POSIX channel's ReadMessage does)
//   bits 2-5  the size of a part, and the decoder's receive room (1..16);
//             the stream is cut into pieces of pseudo-random sizes seeded
//             by the whole byte
//   bit 6     also Survey (Peek) at every step and Trim now and then
//   bit 7     also through a listener and a raw socket client: the accepted
//             channel reads with ReadMessage, small Reads, Peek+Read or
//             large Reads (bits 0-1), parts of bits 2-5
// The decoder's memory is checked against its rule: never more than twice
// the bytes that arrived plus one receive's room (a small room, so that
// both its staging buffer and its result string are exercised), only what
// arrived after Trim.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "fuzz/fuzz_util.h"
#include "src/internal/framing.h"

namespace {

using canal::internal::FrameDecoder;
using canal::internal::FrameError;
using canal::internal::FrameSurvey;
using canal::internal::kFrameHeaderSize;

constexpr size_t kMaxMessage = 256;

struct Expected {
  std::vector<std::string> messages;
  absl::StatusCode end = absl::StatusCode::kOutOfRange;
  // The stream has a frame with handles ("CNLH"), whose outcome depends on
  // descriptors this model does not send: such inputs are skipped here
  // (tests/unit/framing_test.cc and tests/posix/handles_test.cc cover them).
  bool has_handle_frame = false;
};

Expected Reference(const uint8_t* data, size_t size) {
  Expected e;
  size_t pos = 0;
  while (true) {
    if (pos == size) return e;
    if (size - pos < kFrameHeaderSize) {
      e.end = absl::StatusCode::kDataLoss;
      return e;
    }
    if (memcmp(data + pos, "CNLH", 4) == 0) {
      e.has_handle_frame = true;
      return e;
    }
    if (memcmp(data + pos, "CNL1", 4) != 0) {
      e.end = absl::StatusCode::kDataLoss;
      return e;
    }
    const uint32_t len = static_cast<uint32_t>(data[pos + 4]) |
                         (static_cast<uint32_t>(data[pos + 5]) << 8) |
                         (static_cast<uint32_t>(data[pos + 6]) << 16) |
                         (static_cast<uint32_t>(data[pos + 7]) << 24);
    if (len > kMaxMessage) {
      e.end = absl::StatusCode::kResourceExhausted;
      return e;
    }
    pos += kFrameHeaderSize;
    if (size - pos < len) {
      e.end = absl::StatusCode::kDataLoss;
      return e;
    }
    e.messages.emplace_back(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
  }
}

void CheckHeaderCodec(const uint8_t* data, size_t size) {
  if (size < kFrameHeaderSize) return;
  uint32_t len = 0;
  const auto r = canal::internal::DecodeFrameHeader(data, &len);
  const bool magic = memcmp(data, "CNL1", 4) == 0;
  const bool handle_magic = memcmp(data, "CNLH", 4) == 0;
  if ((r == canal::internal::FrameHeaderError::kOk) !=
      (magic || handle_magic)) {
    canal_fuzz::Fail("DecodeFrameHeader disagrees about the magic");
  }
  if (!magic) return;
  unsigned char again[kFrameHeaderSize];
  canal::internal::EncodeFrameHeader(len, again);
  if (memcmp(again, data, kFrameHeaderSize) != 0) {
    canal_fuzz::Fail("EncodeFrameHeader(DecodeFrameHeader(x)) != x");
  }
}

// Piece sizes 1..64, from a small generator seeded by the config byte.
class Pieces {
 public:
  explicit Pieces(uint8_t seed) : state_(0x9e3779b9u ^ seed) {}
  size_t Next() {
    state_ = state_ * 1103515245u + 12345u;
    return 1 + ((state_ >> 16) % 64);
  }

 private:
  uint32_t state_;
};

// Drives one decoder over the stream and compares with the reference.
class DecoderRun {
 public:
  DecoderRun(uint8_t config, absl::string_view stream, const Expected& expected)
      : style_(config & 3),
        part_(1 + ((config >> 2) & 15)),
        survey_(((config >> 6) & 1) != 0),
        stream_(stream),
        expected_(expected),
        pieces_(config),
        decoder_(kMaxMessage, part_) {}

  void Run() {
    while (true) {
      if (!Step()) break;
    }
    if (got_ != expected_.messages) {
      canal_fuzz::Fail(absl::StrCat("decoder style ", style_, ": got ",
                                    got_.size(), " messages, expected ",
                                    expected_.messages.size()));
    }
    if (end_ != expected_.end) {
      canal_fuzz::Fail(absl::StrCat(
          "decoder style ", style_, ": end ", absl::StatusCodeToString(end_),
          ", expected ", absl::StatusCodeToString(expected_.end)));
    }
  }

 private:
  // The next piece of the stream (a "receive"): at most `room` bytes.
  absl::string_view Receive(size_t room) {
    const size_t n = std::min({pieces_.Next(), room, stream_.size() - pos_});
    absl::string_view piece = stream_.substr(pos_, n);
    pos_ += n;
    return piece;
  }
  bool AtEnd() const { return pos_ == stream_.size(); }

  // Records the end of the stream: false (stop).
  bool Finish() {
    const FrameError e = decoder_.EndOfStream(pending_.size());
    end_ = e == FrameError::kNone ? absl::StatusCode::kOutOfRange
                                  : decoder_.ErrorStatus("Fuzz", "f").code();
    return false;
  }
  bool Failed() {
    if (!decoder_.failed()) canal_fuzz::Fail("kError without an error");
    end_ = decoder_.ErrorStatus("Fuzz", "f").code();
    if (end_ != absl::StatusCode::kDataLoss &&
        end_ != absl::StatusCode::kResourceExhausted) {
      canal_fuzz::Fail("decoder error with an unexpected code");
    }
    // Sticky.
    absl::string_view more("CNL1\0\0\0\0", 8);
    absl::string_view view;
    if (decoder_.Next(&more, &view) != FrameDecoder::Result::kError) {
      canal_fuzz::Fail("decoder error is not sticky");
    }
    return false;
  }

  // Drops what the decoder took (all but the last `input.size()` bytes)
  // and returns a view of what is left.
  absl::string_view TakeFromPending(absl::string_view input) {
    pending_.erase(0, pending_.size() - input.size());
    return pending_;
  }

  // At most twice what arrived plus one receive, and a staging buffer kept
  // for reuse that was within that bound for an earlier message.
  void CheckMemory() {
    const size_t stage = decoder_.stage_capacity();
    const size_t held = decoder_.memory_held() - stage;
    if (stage > 2 * std::max(decoder_.body_size(), largest_) + part_) {
      canal_fuzz::Fail(
          absl::StrCat("decoder keeps a staging buffer of ", stage, " bytes"));
    }
    // Next into a view keeps the last message until the next call.
    const size_t lent = style_ == 0 ? largest_ : 0;
    const size_t bound = 2 * decoder_.body_size() + part_ + 8 + lent;
    if (held > bound) {
      canal_fuzz::Fail(absl::StrCat("decoder holds ", held, " bytes for ",
                                    decoder_.body_size(), " that arrived"));
    }
    if (decoder_.body_size() > kMaxMessage ||
        decoder_.message_remaining() > kMaxMessage) {
      canal_fuzz::Fail("decoder state beyond the limit");
    }
  }

  void Survey() {
    char out[kMaxMessage + 8];
    const size_t room = 1 + (steps_ % (kMaxMessage + 8));
    const FrameSurvey s =
        decoder_.Survey({pending_}, absl::MakeSpan(out, room));
    if (s.copied > room || s.copied > s.message_remaining ||
        s.message_remaining > s.available) {
      canal_fuzz::Fail(absl::StrCat("Survey sizes: ", s.copied, " ",
                                    s.message_remaining, " ", s.available));
    }
    if (decoder_.in_message() &&
        s.message_remaining != decoder_.message_remaining()) {
      canal_fuzz::Fail("Survey disagrees about the current message");
    }
    // The copied bytes are the current message's, from where reading is.
    const size_t index = got_.size();
    if (s.has_message && index < expected_.messages.size()) {
      const std::string& m = expected_.messages[index];
      const size_t offset = partial_.size();
      if (offset + s.copied > m.size() ||
          memcmp(out, m.data() + offset, s.copied) != 0) {
        canal_fuzz::Fail("Survey copied the wrong bytes");
      }
    }
    if (steps_ % 7 == 3) {
      decoder_.Trim();
      if (decoder_.memory_held() > decoder_.body_size() + 8) {
        canal_fuzz::Fail("Trim kept more than what arrived");
      }
    }
  }

  // One step; false when the run is over.
  bool Step() {
    ++steps_;
    largest_ = std::max<size_t>(largest_, decoder_.message_size());
    if (steps_ > 100000) canal_fuzz::Fail("no end after 100000 steps");
    CheckMemory();
    if (survey_) Survey();
    switch (style_) {
      case 0:
      case 1: {
        // Whole messages from the pending bytes, then the next piece.
        absl::string_view input = pending_;
        FrameDecoder::Result r;
        if (style_ == 0) {
          absl::string_view message;
          r = decoder_.Next(&input, &message);
          if (r == FrameDecoder::Result::kMessage) got_.emplace_back(message);
        } else {
          std::string message;
          r = decoder_.Next(&input, &message);
          if (r == FrameDecoder::Result::kMessage) {
            got_.push_back(std::move(message));
          }
        }
        TakeFromPending(input);
        if (r == FrameDecoder::Result::kError) return Failed();
        if (r == FrameDecoder::Result::kNoMemory) {
          canal_fuzz::Fail("kNoMemory for a small message");
        }
        if (r == FrameDecoder::Result::kMessage) return true;
        if (!pending_.empty()) canal_fuzz::Fail("kNeedMore left input");
        if (AtEnd()) return Finish();
        pending_.append(std::string(Receive(SIZE_MAX)));
        return true;
      }
      case 2: {
        // Parts of `part_` bytes, delivered only once all of them are here.
        absl::string_view input = pending_;
        const bool in_message = decoder_.ParseHeader(&input);
        input = TakeFromPending(input);
        if (decoder_.failed()) return Failed();
        if (in_message) {
          const uint64_t remaining = decoder_.message_remaining();
          const size_t want =
              static_cast<size_t>(std::min<uint64_t>(part_, remaining));
          if (decoder_.part_available(input) >= want) {
            char out[16];
            const size_t n =
                decoder_.ReadPart(&input, absl::MakeSpan(out, want));
            TakeFromPending(input);
            if (n != want) canal_fuzz::Fail("ReadPart short");
            partial_.append(out, n);
            if (!decoder_.in_message()) {
              got_.push_back(std::move(partial_));
              partial_.clear();
            }
            return true;
          }
        }
        if (AtEnd()) return Finish();
        pending_.append(std::string(Receive(SIZE_MAX)));
        return true;
      }
      default: {
        // As the POSIX channel's ReadMessage: whole messages; the rest of a
        // message received straight into the decoder's room, and what
        // follows into the pending bytes only once the room covers the
        // rest.
        absl::string_view input = pending_;
        std::string message;
        const FrameDecoder::Result r = decoder_.Next(&input, &message);
        TakeFromPending(input);
        if (r == FrameDecoder::Result::kMessage) {
          got_.push_back(std::move(message));
          return true;
        }
        if (r == FrameDecoder::Result::kError) return Failed();
        if (r == FrameDecoder::Result::kNoMemory) {
          canal_fuzz::Fail("kNoMemory for a small message");
        }
        if (AtEnd()) return Finish();
        if (!decoder_.in_message()) {
          pending_.append(std::string(Receive(SIZE_MAX)));
          return true;
        }
        absl::Span<char> room;
        if (!decoder_.BodyRoom(&room) || room.empty()) {
          canal_fuzz::Fail("no BodyRoom for a message in progress");
        }
        if (room.size() > decoder_.body_missing()) {
          canal_fuzz::Fail("BodyRoom beyond the message");
        }
        const bool covers_rest = room.size() == decoder_.body_missing();
        absl::string_view piece = Receive(covers_rest ? SIZE_MAX : room.size());
        const size_t direct = std::min(piece.size(), room.size());
        std::memcpy(room.data(), piece.data(), direct);
        decoder_.CommitBody(direct);
        pending_.append(std::string(piece.substr(direct)));
        return true;
      }
    }
  }

  const int style_;
  const size_t part_;
  const bool survey_;
  const absl::string_view stream_;
  const Expected& expected_;
  Pieces pieces_;
  FrameDecoder decoder_;
  size_t pos_ = 0;
  std::string pending_;  // Received, not yet taken by the decoder.
  std::string partial_;  // Style 2: the message being read in parts.
  std::vector<std::string> got_;
  size_t largest_ = 0;  // The largest message taken in so far.
  absl::StatusCode end_ = absl::StatusCode::kOk;
  uint64_t steps_ = 0;
};

canal::Listener& TheListener() {
  static canal::Listener* listener = [] {
    canal_fuzz::RuntimeDir();
    canal::ListenerOptions options;
    options.mode = canal::PipeMode::kMessage;
    options.max_message_size = kMaxMessage;
    auto l = canal::Listener::Create("fuzz-framing", options);
    if (!l.ok()) canal_fuzz::Fail("Listener::Create", l.status());
    return new canal::Listener(*std::move(l));
  }();
  return *listener;
}

// The same stream through the POSIX channel, from a raw socket client.
void CheckChannel(uint8_t config, const uint8_t* data, size_t size,
                  const Expected& expected) {
  canal::Listener& listener = TheListener();
  const int fd =
      canal_fuzz::RawConnect(canal_fuzz::RuntimeDir() + "/fuzz-framing");
  if (fd < 0) canal_fuzz::Fail("raw connect");
  // The whole input fits into the socket buffer (libFuzzer's default
  // -max_len is 4096), so write it all, then end the stream.
  if (!canal_fuzz::WriteAll(
          fd, absl::string_view(reinterpret_cast<const char*>(data), size))) {
    canal_fuzz::Fail("raw write");
  }
  shutdown(fd, SHUT_WR);
  auto ch = listener.Accept(absl::Seconds(5));
  if (!ch.ok()) canal_fuzz::Fail("Accept", ch.status());

  const int style = config & 3;
  const size_t chunk = 1 + ((config >> 2) & 15);
  std::vector<std::string> got;
  std::string partial;
  absl::Status end;
  std::vector<char> buf(style == 3 ? kMaxMessage + 8 : chunk);
  for (int i = 0; i < 100000; ++i) {
    if (style == 0) {
      auto m = ch->ReadMessage(absl::Seconds(5));
      if (!m.ok()) {
        end = m.status();
        break;
      }
      got.push_back(*std::move(m));
      continue;
    }
    if (style == 2) {
      auto p = ch->Peek(absl::MakeSpan(buf));
      if (p.ok()) {
        if (p->size > buf.size() || p->size > p->available ||
            p->size > p->message_remaining ||
            p->message_remaining > p->available) {
          canal_fuzz::Fail(absl::StrCat("Peek sizes: ", p->size, " ",
                                        p->available, " ",
                                        p->message_remaining));
        }
      } else if (p.status().code() != absl::StatusCode::kOutOfRange &&
                 p.status().code() != absl::StatusCode::kDataLoss &&
                 p.status().code() != absl::StatusCode::kResourceExhausted) {
        canal_fuzz::Fail("Peek", p.status());
      }
    }
    auto r = ch->Read(absl::MakeSpan(buf), absl::Seconds(5));
    if (!r.ok()) {
      end = r.status();
      break;
    }
    if (r->size > buf.size()) canal_fuzz::Fail("Read size > buffer");
    partial.append(buf.data(), r->size);
    if (!r->more) {
      got.push_back(std::move(partial));
      partial.clear();
    }
  }
  close(fd);
  if (end.ok()) canal_fuzz::Fail("no end of stream after 100000 reads");
  if (end.code() != expected.end) {
    canal_fuzz::Fail(absl::StrCat("channel end status, expected ",
                                  absl::StatusCodeToString(expected.end)),
                     end);
  }
  if (got != expected.messages) {
    canal_fuzz::Fail(absl::StrCat("channel messages differ: got ", got.size(),
                                  " expected ", expected.messages.size()));
  }
  // The failure is sticky and the channel stays usable for Close().
  auto again = ch->Read(absl::MakeSpan(buf), absl::ZeroDuration());
  if (again.ok()) canal_fuzz::Fail("Read after the end succeeded");
  ch->Close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t config = data[0];
  ++data;
  --size;
  CheckHeaderCodec(data, size);
  const Expected expected = Reference(data, size);
  if (expected.has_handle_frame) return 0;
  DecoderRun(config,
             absl::string_view(reinterpret_cast<const char*>(data), size),
             expected)
      .Run();
  if ((config & 0x80) != 0) CheckChannel(config, data, size, expected);
  return 0;
}
