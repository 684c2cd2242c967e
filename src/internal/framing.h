// The message framing used where the platform has no message pipes (POSIX),
// and the one incremental decoder of it.
//
// Wire format of a message-mode connection, in each direction: a sequence of
// frames, each an 8-byte header followed by the payload.
//   bytes 0..3  magic "CNL1" (0x43 0x4e 0x4c 0x31), catches a peer that is not
//               speaking canal's message framing
//   bytes 4..7  payload length, unsigned 32-bit little-endian, so a message
//               is at most 4 GiB - 1 bytes (also Windows' limit per write).
// A zero-length payload is an empty message. There is no handshake: the
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
// of the input); a message that spans inputs is assembled in a buffer that
// grows geometrically with the bytes received (at most twice what arrived,
// so O(log n) reallocations). BodyRoom() lets a caller receive the rest of
// a message straight into that buffer; it may also reserve up to
// kMinBodyRoom (64 KiB) ahead, the size of one receive. Trim() gives back
// everything beyond the bytes that arrived (after a timeout, say). Nothing
// here throws: a failed allocation is Result::kNoMemory (or BodyRoom()
// returning false), with the decoder unchanged.
//
// Not thread-safe; one decoder per direction of a connection.

#ifndef CANAL_SRC_INTERNAL_FRAMING_H_
#define CANAL_SRC_INTERNAL_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace canal {
namespace internal {

inline constexpr size_t kFrameHeaderSize = 8;
inline constexpr uint32_t kMaxFramePayload = 0xffffffffu;
inline constexpr unsigned char kFrameMagic[4] = {'C', 'N', 'L', '1'};

// Writes the header for a payload of `size` bytes (size <= kMaxFramePayload).
void EncodeFrameHeader(uint32_t size, unsigned char out[kFrameHeaderSize]);

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

  // What BodyRoom() may reserve ahead of the bytes, and the size of one
  // receive.
  static constexpr size_t kMinBodyRoom = 64 * 1024;
  // An assembly buffer larger than this is freed once its message is done,
  // so one huge message does not pin memory for the rest of the stream.
  static constexpr size_t kKeepBodyCapacity = 1024 * 1024;

  // Messages with a payload over `max_message_size` bytes are refused.
  explicit FrameDecoder(uint64_t max_message_size)
      : max_message_size_(max_message_size) {}
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  FrameError error() const { return error_; }
  bool failed() const { return error_ != FrameError::kNone; }
  // The payload length of the header that failed with kTooLarge (else 0).
  uint64_t refused_size() const { return refused_size_; }
  uint64_t max_message_size() const { return max_message_size_; }

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
  size_t body_size() const { return body_end_ - body_begin_; }
  // Bytes held in memory: the assembly buffer's length (what Trim frees
  // beyond body_size()) plus a partial header.
  size_t memory_held() const { return body_.size() + header_fill_; }

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
    if (header_fill_ == 0 && input->size() >= kFrameHeaderSize) {
      if (!StartMessage(reinterpret_cast<const unsigned char*>(input->data()))) {
        return false;
      }
      input->remove_prefix(kFrameHeaderSize);
      return true;
    }
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
    if (body_lent_) ReclaimBody();
    size_t copied = 0;
    const uint64_t remaining = size_ - delivered_;
    size_t want = out.size() < remaining ? out.size()
                                         : static_cast<size_t>(remaining);
    if (want > 0 && body_end_ > body_begin_) {
      copied = want < body_size() ? want : body_size();
      std::memcpy(out.data(), body_.data() + body_begin_, copied);
      body_begin_ += copied;
      if (body_begin_ == body_end_) body_begin_ = body_end_ = 0;
      want -= copied;
    }
    const size_t take = want < input->size() ? want : input->size();
    if (take > 0) {
      std::memcpy(out.data() + copied, input->data(), take);
      input->remove_prefix(take);
      copied += take;
    }
    delivered_ += copied;
    if (delivered_ == size_) FinishMessage();
    return copied;
  }

  // Receiving straight into the assembly buffer. Sets `*room` to free space
  // for the next bytes of the current message (at most body_missing()),
  // growing the buffer geometrically with what arrived: to at most
  // max(kMinBodyRoom, twice body_size()). Returns false if memory ran out
  // (the decoder is unchanged) or no message needs bytes. The room stays
  // valid until the next non-const call other than CommitBody.
  bool BodyRoom(absl::Span<char>* room);
  // Records that the first `n` bytes of the room now hold message bytes.
  void CommitBody(size_t n) { body_end_ += n; }

  // Frees the assembly buffer beyond the bytes that arrived (all of it if
  // none did). Best effort: keeps the buffer if even that fails.
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

 private:
  // Decodes a complete header; false (with error_ set) if it is refused.
  bool StartMessage(const unsigned char* header);
  bool ParseHeaderFragment(absl::string_view* input);
  void FinishMessage() {
    in_message_ = false;
    size_ = 0;
    delivered_ = 0;
    if (body_.size() > kKeepBodyCapacity && body_end_ == 0) {
      body_ = std::string();
    }
  }
  // The first mutation after Next handed out a view into body_: the view
  // is invalid from now on, so a large buffer can go.
  void ReclaimBody() {
    body_lent_ = false;
    if (body_.size() > kKeepBodyCapacity) body_ = std::string();
  }
  // Makes body_ hold `length` bytes (the valid ones moved to the front);
  // false if memory ran out (nothing changed).
  bool ResizeBody(size_t length);
  // Takes up to body_missing() bytes from `*input` into the body.
  bool AppendToBody(absl::string_view* input);

  const uint64_t max_message_size_;
  FrameError error_ = FrameError::kNone;
  uint64_t refused_size_ = 0;

  unsigned char header_[kFrameHeaderSize];
  size_t header_fill_ = 0;

  bool in_message_ = false;
  uint64_t size_ = 0;       // Announced payload length.
  uint64_t delivered_ = 0;  // Handed out by ReadPart.

  // The assembly buffer: body_[body_begin_, body_end_) are taken-in bytes
  // of the current message not handed out yet; body_.size() is what is
  // allocated (and zero-filled) for it.
  std::string body_;
  size_t body_begin_ = 0;
  size_t body_end_ = 0;
  // body_ holds a finished message that Next handed out as a view (with
  // body_begin_ == body_end_ == 0, so its memory is free for reuse).
  bool body_lent_ = false;
};

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_FRAMING_H_
