// SPDX-License-Identifier: Apache-2.0
// The message framing used where the platform has no message pipes (POSIX),
// and the one incremental decoder of it.
//
// Wire format of a message-mode connection, in each direction: a sequence of
// frames, each an 8-byte header followed by the payload.
//   bytes 0..3  magic "CNL1" (0x43 0x4e 0x4c 0x31), catches a peer that is not
//               speaking canal's message framing
//   bytes 4..7  payload length, unsigned 32-bit little-endian, so a message
//               is at most 4 GiB - 1 bytes (also Windows' limit per write).
// A zero-length payload is an empty message. A message that carries
// descriptors (Channel::WriteMessageWithHandles) has a 12-byte header
// instead:
//   bytes 0..3  magic "CNLH" (0x43 0x4e 0x4c 0x48)
//   bytes 4..7  payload length, as above
//   bytes 8..11 number of descriptors, unsigned 32-bit little-endian
// and its descriptors travel as SCM_RIGHTS ancillary data on the sendmsg
// that carries the header's first byte. Frames without descriptors stay
// "CNL1" frames, byte for byte. There is no handshake: the
// listener's mode, access and limits are published beside the socket (see
// src/posix/meta.h).
//
// FrameDecoder turns the byte stream, handed to it in pieces of any size,
// into messages, either whole (Next) or in parts (ParseHeader + ReadPart):
//
//   FrameDecoder decoder(max_message_size);
//   absl::string_view input(chunk, n);   // whatever recv() returned
//   absl::string_view message;
//   while (decoder.Next(&input, &message) == FrameDecoder::Result::kMessage) {
//     Handle(message);  // valid until the next call on the decoder
//   }
//   // kNeedMore: `input` was taken (a partial frame is kept inside);
//   // kError: decoder.error() / ErrorStatus(); kNoMemory: see Result.
//
// Memory follows the bytes that arrived, never the length a peer announced:
// a whole message already in the input costs nothing (Next returns a view
// of the input); a message that spans inputs is assembled as its bytes
// come, first in a staging buffer that grows geometrically with them, then,
// once the whole rest of the message is within twice what arrived plus one
// receive (`receive_room`, 64 KiB by default), in a string of exactly the
// message's length, which becomes the result without a copy. So the
// decoder holds at most twice what arrived plus one receive, with O(log n)
// reallocations, and a staging buffer that was within that bound for an
// earlier message, kept so that a stream of large messages does not fault
// in fresh pages for each (see kKeepStageCapacity). BodyRoom() lets a
// caller receive the rest of a message straight into that memory. Trim()
// gives back everything beyond the bytes that arrived (after a timeout,
// say). Nothing here throws: a
// failed allocation is Result::kNoMemory (or BodyRoom() returning false),
// with the decoder unchanged.
//
// Not thread-safe; one decoder per direction of a connection.

#ifndef CANAL_SRC_INTERNAL_FRAMING_H_
#define CANAL_SRC_INTERNAL_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace canal {
namespace internal {

inline constexpr size_t kFrameHeaderSize = 8;
inline constexpr uint32_t kMaxFramePayload = 0xffffffffu;
inline constexpr unsigned char kFrameMagic[4] = {'C', 'N', 'L', '1'};
// A frame that carries descriptors: the header has a descriptor count.
inline constexpr size_t kHandleFrameHeaderSize = 12;
inline constexpr unsigned char kHandleFrameMagic[4] = {'C', 'N', 'L', 'H'};
// The descriptor limit a decoder applies unless told otherwise.
inline constexpr uint32_t kDefaultMaxFrameHandles = 64;

// Writes the header for a payload of `size` bytes (size <= kMaxFramePayload).
void EncodeFrameHeader(uint32_t size, unsigned char out[kFrameHeaderSize]);
// Writes the header of a frame carrying `handles` descriptors.
void EncodeHandleFrameHeader(uint32_t size, uint32_t handles,
                             unsigned char out[kHandleFrameHeaderSize]);

enum class FrameHeaderError { kOk, kBadMagic };

// Parses a header. On kOk stores the payload length in `*size`.
FrameHeaderError DecodeFrameHeader(const unsigned char in[kFrameHeaderSize],
                                   uint32_t* size);

// Why a stream cannot be decoded any further.
enum class FrameError {
  kNone,
  kBadMagic,   // A header without the magic: DataLoss.
  kTooLarge,   // A header announcing more than the limit: ResourceExhausted.
  kTruncated,  // The stream ended inside a header or payload: DataLoss.
  kTooManyHandles,  // A header claiming more descriptors than allowed:
                    // DataLoss.
};

// What FrameDecoder::Survey sees, in the terms of PeekNamedPipe.
struct FrameSurvey {
  // Bytes of the current message copied into the caller's buffer (only
  // bytes that arrived).
  size_t copied = 0;
  // Announced, unread payload bytes of every message whose header is
  // visible, whether or not its payload arrived.
  uint64_t available = 0;
  // Announced, unread payload bytes of the current message.
  uint64_t message_remaining = 0;
  // Whether there is a current message (in progress, or a visible header).
  bool has_message = false;
};

class FrameDecoder {
 public:
  enum class Result {
    // A whole message.
    kMessage,
    // Everything in the input was taken; the frame continues in the next.
    kNeedMore,
    // Malformed framing (error() says how). Sticky: every later call fails
    // the same way, since the position in the stream is lost.
    kError,
    // The message could not be assembled: memory ran out. Its bytes were
    // not taken from the input and the decoder is unchanged (the header
    // stays taken), so the call can be repeated, or the message read in
    // parts with ReadPart.
    kNoMemory,
  };

  // The default `receive_room`: what BodyRoom() may reserve ahead of the
  // bytes, the size of one receive.
  static constexpr size_t kDefaultReceiveRoom = 64 * 1024;
  // A staging buffer up to this size is kept between messages. A larger
  // one is kept only while it is in use: the first message that finishes
  // without needing it frees it, so that a stream of large messages reuses
  // it and one huge message does not pin memory for the rest of the stream.
  static constexpr size_t kKeepStageCapacity = 1024 * 1024;

  // Messages with a payload over `max_message_size` bytes are refused.
  // `receive_room` (> 0) bounds what is reserved ahead of the bytes.
  explicit FrameDecoder(uint64_t max_message_size,
                        size_t receive_room = kDefaultReceiveRoom)
      : max_message_size_(max_message_size), receive_room_(receive_room) {}
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  FrameError error() const { return error_; }
  bool failed() const { return error_ != FrameError::kNone; }
  // The payload length of the header that failed with kTooLarge (else 0).
  uint64_t refused_size() const { return refused_size_; }
  uint64_t max_message_size() const { return max_message_size_; }
  // Headers claiming more than `max` descriptors are refused
  // (kTooManyHandles). kDefaultMaxFrameHandles until set.
  void set_max_handles(uint32_t max) { max_handles_ = max; }

  // Every header taken so far, counted: a caller that attaches descriptors
  // to frames compares it before and after a call to see that a header was
  // taken, and then reads the header's descriptor count and frame length
  // (header included) below, which stay until the next header.
  uint64_t headers_taken() const { return headers_taken_; }
  uint32_t last_header_handles() const { return last_handles_; }
  uint64_t last_frame_size() const { return last_frame_size_; }

  // Whether a header was taken and its message is not finished.
  bool in_message() const { return in_message_; }
  // Whether the stream is inside a frame (a partial header, or a message
  // not finished): end of stream now would be kTruncated.
  bool mid_frame() const { return in_message_ || header_fill_ > 0; }
  // The current message: its announced length, the announced bytes not yet
  // handed out, and those not yet taken in by the decoder at all.
  uint64_t message_size() const { return in_message_ ? size_ : 0; }
  uint64_t message_remaining() const {
    return in_message_ ? size_ - delivered_ : 0;
  }
  uint64_t body_missing() const {
    return in_message_ ? size_ - delivered_ - body_size() : 0;
  }
  // Bytes of the current message taken in and not yet handed out.
  size_t body_size() const { return end_ - begin_; }
  // Bytes held in memory (what Trim frees beyond body_size()): the staging
  // buffer, the result string, a partial header.
  size_t memory_held() const {
    return stage_cap_ + result_.size() + header_fill_;
  }
  // The staging buffer's part of memory_held(); it may be kept from an
  // earlier message (see kKeepStageCapacity).
  size_t stage_capacity() const { return stage_cap_; }

  // Whole messages. Takes the next frame's bytes from the front of
  // `*input`. kMessage: `*message` views the message, in `*input` (no copy,
  // when the whole message was there) or in the decoder's buffer; either
  // way it stays valid until the next non-const call on the decoder or a
  // change to the input's memory. If parts of the message were handed out
  // by ReadPart, the message is the rest.
  Result Next(absl::string_view* input, absl::string_view* message);
  // Same, but the message is moved out as a string: no copy when it was
  // assembled in the decoder, one copy when it was whole in the input.
  Result Next(absl::string_view* input, std::string* message);

  // Parts. Takes a header from the front of `*input` if no message is in
  // progress (keeping a partial one inside). Returns in_message(); false
  // means more input is needed, or failed().
  bool ParseHeader(absl::string_view* input) {
    if (in_message_) return true;
    if (error_ != FrameError::kNone) return false;
    const auto* header = reinterpret_cast<const unsigned char*>(input->data());
    if (header_fill_ == 0 && input->size() >= kFrameHeaderSize &&
        input->size() >= HeaderSize(header)) {
      if (!StartMessage(header)) return false;
      input->remove_prefix(HeaderSize(header));
      return true;
    }
    if (input->empty()) return false;
    return ParseHeaderFragment(input);
  }
  // Bytes of the current message that could be handed out now: taken in
  // already, or at the front of `input`. 0 outside a message.
  uint64_t part_available(absl::string_view input) const {
    if (!in_message_) return 0;
    const uint64_t missing = body_missing();
    return body_size() + (input.size() < missing ? input.size() : missing);
  }
  // Copies up to `out.size()` bytes of the current message into `out`, from
  // what was taken in first, then from the front of `*input` (taking them).
  // Returns the number copied. The message is finished once every byte was
  // handed out (an empty message by a call with any `out`). Needs
  // in_message().
  size_t ReadPart(absl::string_view* input, absl::Span<char> out) {
    const uint64_t remaining = size_ - delivered_;
    const size_t want =
        out.size() < remaining ? out.size() : static_cast<size_t>(remaining);
    // Nothing taken in and all of it in the input: the common case, a
    // message that arrived whole.
    if (end_ != 0 || in_result_ || result_lent_ || want > input->size()) {
      return ReadPartSlow(input, out);
    }
    if (want > 0) std::memcpy(out.data(), input->data(), want);
    input->remove_prefix(want);
    delivered_ += want;
    if (delivered_ == size_) FinishMessage();
    return want;
  }

  // Receiving straight into the decoder's memory. Sets `*room` to free
  // space for the next bytes of the current message (at most
  // body_missing()), growing with what arrived: the room is at most
  // body_size() + receive_room, and it covers the whole rest of the message
  // once that is within the bound. Returns false if memory ran out (the
  // decoder is unchanged) or no message needs bytes. The room stays valid
  // until the next non-const call other than CommitBody.
  bool BodyRoom(absl::Span<char>* room);
  // Records that the first `n` bytes of the room now hold message bytes.
  void CommitBody(size_t n) { end_ += n; }

  // Frees everything beyond the bytes that arrived (all memory if none
  // did), including a staging buffer kept for reuse. Best effort: keeps the
  // memory if even the smaller buffer cannot be allocated.
  void Trim();

  // The stream ended, `unparsed_input` bytes after what the decoder took
  // (bytes a caller still holds). Returns (and records) kTruncated if that
  // leaves a frame unfinished, else the earlier error or kNone.
  FrameError EndOfStream(size_t unparsed_input);

  // Peeks: describes the current message and the frames visible in
  // `following` (the bytes after those the decoder took, in order) without
  // changing anything, and copies the arrived bytes of the current message
  // into `out`. Stops at a malformed or oversized header, which is left for
  // the reading calls to report.
  FrameSurvey Survey(std::initializer_list<absl::string_view> following,
                     absl::Span<char> out) const;

  // The status for error(): DataLoss or ResourceExhausted, with a message
  // naming `op` and `name`. OK when there is no error.
  absl::Status ErrorStatus(absl::string_view op, absl::string_view name) const;
  // Its parts, for callers that build their own message (canal::Server
  // names the connection): the code (kOk when there is no error) and what
  // went wrong, e.g. "stream ended inside a message".
  absl::StatusCode ErrorCode() const;
  std::string DescribeError() const;

 private:
  // Decodes a complete header; false (with error_ set) if it is refused.
  // `header` holds HeaderSize(header) bytes (at least the first 8).
  bool StartMessage(const unsigned char* header) {
    const bool with_handles = HasHandles(header);
    if (!with_handles && std::memcmp(header, kFrameMagic, 4) != 0) {
      return Refuse(header);
    }
    const uint32_t size = ReadU32(header + 4);
    if (size > max_message_size_) return Refuse(header);
    const uint32_t handles = with_handles ? ReadU32(header + 8) : 0;
    if (handles > max_handles_) {
      error_ = FrameError::kTooManyHandles;
      refused_size_ = handles;
      return false;
    }
    in_message_ = true;
    size_ = size;
    delivered_ = 0;
    ++headers_taken_;
    last_handles_ = handles;
    last_frame_size_ = HeaderSize(header) + static_cast<uint64_t>(size);
    return true;
  }
  static bool HasHandles(const unsigned char* header) {
    return std::memcmp(header, kHandleFrameMagic, 4) == 0;
  }
  // The header's length, from its magic (its first 4 bytes).
  static size_t HeaderSize(const unsigned char* header) {
    return HasHandles(header) ? kHandleFrameHeaderSize : kFrameHeaderSize;
  }
  static uint32_t ReadU32(const unsigned char* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
           (static_cast<uint32_t>(p[2]) << 16) |
           (static_cast<uint32_t>(p[3]) << 24);
  }
  // Records why `header` is refused; returns false.
  bool Refuse(const unsigned char* header);
  size_t ReadPartSlow(absl::string_view* input, absl::Span<char> out);
  bool ParseHeaderFragment(absl::string_view* input);
  void FinishMessage() {
    in_message_ = false;
    size_ = 0;
    delivered_ = 0;
    begin_ = end_ = 0;
    if (in_result_) {
      result_ = std::string();
      in_result_ = false;
    }
    KeepOrFreeStage();
  }
  void KeepOrFreeStage() {
    if (!stage_used_ && stage_cap_ > kKeepStageCapacity) FreeStage();
    stage_used_ = false;
  }
  void FreeStage() {
    stage_.reset();
    stage_cap_ = 0;
  }
  // The first mutation after Next handed out a view into result_: the view
  // is invalid from now on.
  void ReclaimBody() {
    result_lent_ = false;
    result_ = std::string();
  }
  char* data() { return in_result_ ? &result_[0] : stage_.get(); }
  const char* data() const {
    return in_result_ ? result_.data() : stage_.get();
  }
  size_t capacity() const { return in_result_ ? result_.size() : stage_cap_; }
  // Whether the whole rest of the message, with `have` bytes of it taken
  // in, may be allocated now: within twice those plus one receive.
  bool RestWithinBound(uint64_t have) const {
    return size_ - delivered_ <= 2 * have + receive_room_;
  }
  // Moves the taken-in bytes into a string of exactly the rest of the
  // message; false if memory ran out (nothing changed).
  bool ToResult();
  // Makes the staging buffer hold at least `capacity` bytes, with the
  // taken-in bytes at its front; false if memory ran out (nothing changed).
  bool GrowStage(size_t capacity);
  // Takes up to body_missing() bytes from `*input`.
  bool AppendToBody(absl::string_view* input);
  // After a whole message left through Next: the state between messages.
  void EndAssembly();

  const uint64_t max_message_size_;
  const size_t receive_room_;
  FrameError error_ = FrameError::kNone;
  uint64_t refused_size_ = 0;

  uint32_t max_handles_ = kDefaultMaxFrameHandles;
  uint64_t headers_taken_ = 0;
  uint32_t last_handles_ = 0;
  uint64_t last_frame_size_ = 0;

  unsigned char header_[kHandleFrameHeaderSize];
  size_t header_fill_ = 0;

  bool in_message_ = false;
  uint64_t size_ = 0;       // Announced payload length.
  uint64_t delivered_ = 0;  // Handed out by ReadPart.

  // The current message's bytes taken in and not handed out yet are
  // data()[begin_, end_), in one of two buffers: stage_ while the rest of
  // the message is beyond RestWithinBound (a plain buffer of stage_cap_
  // bytes, grown geometrically, kept between messages up to
  // kKeepStageCapacity), then result_ (in_result_): a string of exactly
  // the rest of the message, which becomes the result.
  std::unique_ptr<char[]> stage_;
  size_t stage_cap_ = 0;
  bool stage_used_ = false;  // By the current message.
  std::string result_;
  bool in_result_ = false;
  size_t begin_ = 0;
  size_t end_ = 0;
  // result_ holds a finished message that Next handed out as a view.
  bool result_lent_ = false;
};

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_FRAMING_H_
