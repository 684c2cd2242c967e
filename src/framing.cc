// SPDX-License-Identifier: Apache-2.0
#include "src/internal/framing.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/internal/little_endian.h"

namespace canal {
namespace internal {

void EncodeFrameHeader(uint32_t size, unsigned char out[kFrameHeaderSize]) {
  std::memcpy(out, kFrameMagic, 4);
  PutLe(out + 4, size, 4);
}

void EncodeHandleFrameHeader(uint32_t size, uint32_t handles,
                             unsigned char out[kHandleFrameHeaderSize]) {
  EncodeFrameHeader(size, out);
  std::memcpy(out, kHandleFrameMagic, 4);
  PutLe(out + 8, handles, 4);
}

FrameHeaderError DecodeFrameHeader(const unsigned char in[kFrameHeaderSize],
                                   uint32_t* size) {
  if (std::memcmp(in, kFrameMagic, 4) != 0 &&
      std::memcmp(in, kHandleFrameMagic, 4) != 0) {
    return FrameHeaderError::kBadMagic;
  }
  *size = static_cast<uint32_t>(GetLe(in + 4, 4));
  return FrameHeaderError::kOk;
}

namespace {

// The bytes `prefix` followed by `rest`, read at logical offsets.
class Parts {
 public:
  Parts(absl::string_view prefix, std::initializer_list<absl::string_view> rest)
      : prefix_(prefix), rest_(rest) {
    total_ = prefix.size();
    for (absl::string_view part : rest) total_ += part.size();
  }
  uint64_t size() const { return total_; }

  // Copies up to `n` bytes from logical offset `offset` into `out`; returns
  // the number copied.
  size_t Copy(uint64_t offset, char* out, size_t n) const {
    size_t copied = CopyFrom(prefix_, &offset, out, n);
    for (absl::string_view part : rest_) {
      if (copied == n) break;
      copied += CopyFrom(part, &offset, out + copied, n - copied);
    }
    return copied;
  }

 private:
  static size_t CopyFrom(absl::string_view part, uint64_t* offset, char* out,
                         size_t n) {
    if (n == 0) return 0;
    if (*offset >= part.size()) {
      *offset -= part.size();
      return 0;
    }
    const size_t take =
        static_cast<size_t>(std::min<uint64_t>(n, part.size() - *offset));
    std::memcpy(out, part.data() + *offset, take);
    *offset = 0;
    return take;
  }

  absl::string_view prefix_;
  std::initializer_list<absl::string_view> rest_;
  uint64_t total_ = 0;
};

}  // namespace

bool FrameDecoder::Refuse(const unsigned char* header) {
  uint32_t size = 0;
  if (DecodeFrameHeader(header, &size) != FrameHeaderError::kOk) {
    error_ = FrameError::kBadMagic;
  } else {
    // Refused from the header alone, before anything is allocated.
    error_ = FrameError::kTooLarge;
    refused_size_ = size;
  }
  return false;
}

size_t FrameDecoder::ReadPartSlow(absl::string_view* input,
                                  absl::Span<char> out) {
  if (result_lent_) ReclaimBody();
  const uint64_t remaining = size_ - delivered_;
  size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), remaining));
  size_t copied = 0;
  if (want > 0 && end_ > begin_) {
    copied = std::min(want, body_size());
    std::memcpy(out.data(), data() + begin_, copied);
    begin_ += copied;
    if (begin_ == end_) begin_ = end_ = 0;
    want -= copied;
  }
  const size_t take = std::min(want, input->size());
  if (take > 0) {
    std::memcpy(out.data() + copied, input->data(), take);
    input->remove_prefix(take);
    copied += take;
  }
  delivered_ += copied;
  if (delivered_ == size_) FinishMessage();
  return copied;
}

bool FrameDecoder::ParseHeaderFragment(absl::string_view* input) {
  // The magic (the first 4 bytes) says how long the header is.
  while (true) {
    const size_t want =
        header_fill_ < 4 ? kFrameHeaderSize : HeaderSize(header_);
    const size_t take = std::min(want - header_fill_, input->size());
    std::memcpy(header_ + header_fill_, input->data(), take);
    header_fill_ += take;
    input->remove_prefix(take);
    if (header_fill_ < want) return false;
    if (want == HeaderSize(header_)) break;
  }
  header_fill_ = 0;
  return StartMessage(header_);
}

bool FrameDecoder::ToResult() {
  const size_t have = body_size();
  std::string fresh;
  try {
    // Zero-filled once, as the result of any ReadMessage is.
    fresh.resize(static_cast<size_t>(size_ - delivered_));
  } catch (const std::bad_alloc&) {
    return false;
  } catch (const std::length_error&) {
    return false;
  }
  if (have > 0) std::memcpy(&fresh[0], data() + begin_, have);
  result_.swap(fresh);
  in_result_ = true;
  begin_ = 0;
  end_ = have;
  return true;
}

bool FrameDecoder::GrowStage(size_t capacity) {
  const size_t have = body_size();
  if (capacity <= stage_cap_) {
    if (begin_ > 0 && have > 0) {
      std::memmove(stage_.get(), stage_.get() + begin_, have);
    }
  } else {
    std::unique_ptr<char[]> fresh(new (std::nothrow) char[capacity]);
    if (fresh == nullptr) return false;
    if (have > 0) std::memcpy(fresh.get(), stage_.get() + begin_, have);
    stage_ = std::move(fresh);
    stage_cap_ = capacity;
  }
  begin_ = 0;
  end_ = have;
  return true;
}

bool FrameDecoder::AppendToBody(absl::string_view* input) {
  const uint64_t missing = body_missing();
  const size_t take =
      static_cast<size_t>(std::min<uint64_t>(input->size(), missing));
  if (take == 0) return true;
  const uint64_t need = body_size() + take;
  if (!in_result_) {
    stage_used_ = true;
    if (RestWithinBound(need)) {
      if (!ToResult()) return false;
    } else if (begin_ + need > stage_cap_) {
      // Twice what will have arrived, so that a message arriving in many
      // small pieces costs O(log n) reallocations.
      if (!GrowStage(static_cast<size_t>(2 * need))) return false;
    }
  }
  // result_ has room for the whole rest of the message.
  std::memcpy(data() + end_, input->data(), take);
  end_ += take;
  input->remove_prefix(take);
  return true;
}

bool FrameDecoder::BodyRoom(absl::Span<char>* room) {
  if (result_lent_) ReclaimBody();
  if (!in_message_ || failed()) return false;
  const uint64_t missing = body_missing();
  if (missing == 0) return false;
  const uint64_t have = body_size();
  if (!in_result_) {
    stage_used_ = true;
    if (RestWithinBound(have)) {
      if (!ToResult()) return false;
    } else if (stage_cap_ - end_ < receive_room_) {
      // As much again as arrived, at least one receive's worth (and below
      // the rest of the message, which is beyond the bound).
      const uint64_t grow = std::max<uint64_t>(receive_room_, have);
      if (!GrowStage(static_cast<size_t>(have + grow))) return false;
    }
  }
  const size_t free_space = capacity() - end_;
  *room = absl::Span<char>(
      data() + end_,
      static_cast<size_t>(std::min<uint64_t>(free_space, missing)));
  return true;
}

void FrameDecoder::Trim() {
  if (result_lent_) ReclaimBody();
  const size_t have = body_size();
  if (have == 0) {
    FreeStage();
    result_ = std::string();
    in_result_ = false;
    begin_ = end_ = 0;
    return;
  }
  if (!in_result_ && begin_ == 0 && stage_cap_ == have) return;
  std::unique_ptr<char[]> fresh(new (std::nothrow) char[have]);
  if (fresh == nullptr) return;
  std::memcpy(fresh.get(), data() + begin_, have);
  stage_ = std::move(fresh);
  stage_cap_ = have;
  result_ = std::string();
  in_result_ = false;
  begin_ = 0;
  end_ = have;
}

void FrameDecoder::EndAssembly() {
  in_message_ = false;
  size_ = 0;
  delivered_ = 0;
  begin_ = end_ = 0;
  in_result_ = false;
  KeepOrFreeStage();
}

FrameDecoder::Result FrameDecoder::Next(absl::string_view* input,
                                        absl::string_view* message) {
  if (result_lent_) ReclaimBody();
  if (!ParseHeader(input)) return failed() ? Result::kError : Result::kNeedMore;
  const uint64_t remaining = size_ - delivered_;
  if (body_size() == 0 && input->size() >= remaining) {
    *message = input->substr(0, static_cast<size_t>(remaining));
    input->remove_prefix(static_cast<size_t>(remaining));
    FinishMessage();
    return Result::kMessage;
  }
  if (!AppendToBody(input)) return Result::kNoMemory;
  if (body_missing() > 0) return Result::kNeedMore;
  // Complete. Received into a staging buffer kept from earlier messages,
  // it may have finished there.
  if (!in_result_ && !ToResult()) return Result::kNoMemory;
  *message = absl::string_view(result_.data() + begin_, body_size());
  EndAssembly();
  result_lent_ = true;
  return Result::kMessage;
}

FrameDecoder::Result FrameDecoder::Next(absl::string_view* input,
                                        std::string* message) {
  if (result_lent_) ReclaimBody();
  if (!ParseHeader(input)) return failed() ? Result::kError : Result::kNeedMore;
  const uint64_t remaining = size_ - delivered_;
  if (body_size() == 0 && input->size() >= remaining) {
    try {
      message->assign(input->data(), static_cast<size_t>(remaining));
    } catch (const std::bad_alloc&) {
      return Result::kNoMemory;
    } catch (const std::length_error&) {
      return Result::kNoMemory;
    }
    input->remove_prefix(static_cast<size_t>(remaining));
    FinishMessage();
    return Result::kMessage;
  }
  if (!AppendToBody(input)) return Result::kNoMemory;
  if (body_missing() > 0) return Result::kNeedMore;
  if (!in_result_ && !ToResult()) return Result::kNoMemory;
  const size_t have = body_size();
  if (begin_ > 0) std::memmove(&result_[0], result_.data() + begin_, have);
  result_.resize(have);  // Shrinks: never allocates.
  *message = std::move(result_);
  result_ = std::string();
  EndAssembly();
  return Result::kMessage;
}

FrameError FrameDecoder::EndOfStream(size_t unparsed_input) {
  if (error_ == FrameError::kNone && (mid_frame() || unparsed_input > 0)) {
    error_ = FrameError::kTruncated;
  }
  return error_;
}

FrameSurvey FrameDecoder::Survey(
    std::initializer_list<absl::string_view> following,
    absl::Span<char> out) const {
  // What the decoder took comes first: the current message's bytes, or a
  // partial header.
  absl::string_view prefix(reinterpret_cast<const char*>(header_),
                           header_fill_);
  if (in_message_) {
    prefix = body_size() == 0 ? absl::string_view()
                              : absl::string_view(data() + begin_, body_size());
  }
  const Parts parts(prefix, following);
  const uint64_t total = parts.size();
  FrameSurvey survey;
  uint64_t pos = 0;  // Where the next header starts.
  if (in_message_) {
    const uint64_t remaining = size_ - delivered_;
    const uint64_t arrived = std::min(remaining, total);
    survey.copied = parts.Copy(
        0, out.data(),
        static_cast<size_t>(std::min<uint64_t>(out.size(), arrived)));
    survey.message_remaining = remaining;
    survey.available = remaining;
    survey.has_message = true;
    pos = remaining;
  }
  while (pos + kFrameHeaderSize <= total) {
    unsigned char header[kHandleFrameHeaderSize];
    parts.Copy(pos, reinterpret_cast<char*>(header), kFrameHeaderSize);
    uint32_t size = 0;
    if (DecodeFrameHeader(header, &size) != FrameHeaderError::kOk ||
        size > max_message_size_) {
      break;
    }
    const size_t header_size = HeaderSize(header);
    if (pos + header_size > total) break;
    if (header_size > kFrameHeaderSize) {
      parts.Copy(pos + kFrameHeaderSize,
                 reinterpret_cast<char*>(header) + kFrameHeaderSize,
                 header_size - kFrameHeaderSize);
      if (ReadU32(header + kFrameHeaderSize) > max_handles_) break;
    }
    const uint64_t start = pos + header_size;
    if (!survey.has_message) {
      const uint64_t arrived = std::min<uint64_t>(size, total - start);
      survey.copied = parts.Copy(
          start, out.data(),
          static_cast<size_t>(std::min<uint64_t>(out.size(), arrived)));
      survey.message_remaining = size;
      survey.has_message = true;
    }
    survey.available += size;
    pos = start + size;
  }
  return survey;
}

absl::StatusCode FrameDecoder::ErrorCode() const {
  switch (error_) {
    case FrameError::kNone:
      return absl::StatusCode::kOk;
    case FrameError::kTooLarge:
      return absl::StatusCode::kResourceExhausted;
    case FrameError::kBadMagic:
    case FrameError::kTruncated:
    case FrameError::kTooManyHandles:
      return absl::StatusCode::kDataLoss;
  }
  return absl::StatusCode::kOk;
}

std::string FrameDecoder::DescribeError() const {
  switch (error_) {
    case FrameError::kNone:
      return std::string();
    case FrameError::kBadMagic:
      return "malformed frame: the peer is not speaking canal's message "
             "framing";
    case FrameError::kTooLarge:
      return absl::StrCat("peer announced a message of ", refused_size_,
                          " bytes; the limit is ", max_message_size_);
    case FrameError::kTruncated:
      return "stream ended inside a message";
    case FrameError::kTooManyHandles:
      return absl::StrCat("peer sent a message with ", refused_size_,
                          " handles; the limit is ", max_handles_);
  }
  return std::string();
}

absl::Status FrameDecoder::ErrorStatus(absl::string_view op,
                                       absl::string_view name) const {
  if (error_ == FrameError::kNone) return absl::OkStatus();
  return MakeError(ErrorCode(), op, name, DescribeError());
}

}  // namespace internal
}  // namespace canal
