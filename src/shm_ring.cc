// SPDX-License-Identifier: Apache-2.0
#include "src/internal/shm_ring.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "src/internal/status_macros.h"

namespace canal {
namespace internal {
namespace {

bool ValidCapacity(uint32_t capacity) {
  return capacity >= kShmMinRingCapacity && capacity <= kShmMaxRingCapacity &&
         (capacity & (capacity - 1)) == 0;
}

bool ValidMode(ShmRingMode mode) {
  return mode == ShmRingMode::kBytes || mode == ShmRingMode::kMessages;
}

// The bytes a record with `length` payload bytes takes in the ring.
uint64_t RecordSize(uint64_t length) {
  return kShmRecordHeaderSize +
         ((length + kShmRecordAlign - 1) & ~uint64_t{kShmRecordAlign - 1});
}

uint32_t RecordCheck(uint32_t length, uint32_t flags, uint32_t remaining) {
  return kShmRecordCheck ^ length ^ flags ^ remaining;
}

absl::Status CheckRegion(absl::string_view op, absl::Span<char> region,
                         const ShmRegionOptions& options) {
  if (!ValidCapacity(options.ring_capacity)) {
    return absl::InvalidArgumentError(
        absl::StrCat("canal: ", op, ": ring capacity ", options.ring_capacity,
                     " is not a power of two in [", kShmMinRingCapacity, ", ",
                     kShmMaxRingCapacity, "]"));
  }
  if (!ValidMode(options.mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("canal: ", op, ": unknown ring mode ",
                     static_cast<uint32_t>(options.mode)));
  }
  const size_t need = ShmRingLayout::BytesFor(options.ring_capacity);
  if (region.size() < need) {
    return absl::InvalidArgumentError(absl::StrCat(
        "canal: ", op, ": the region has ", region.size(), " bytes, rings of ",
        options.ring_capacity, " need ", need));
  }
  if (reinterpret_cast<uintptr_t>(region.data()) % kShmCacheLine != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "canal: ", op, ": the region is not ", kShmCacheLine, "-byte aligned"));
  }
  return absl::OkStatus();
}

// DataLoss for `op` on a ring found corrupt before, by the call that
// returned `first`.
absl::Status Broken(absl::string_view op, const absl::Status& first) {
  return absl::DataLossError(absl::StrCat(
      "canal: ", op, ": the ring was found corrupt: ", first.message()));
}

}  // namespace

size_t ShmRingLayout::BytesFor(uint32_t ring_capacity) {
  if (!ValidCapacity(ring_capacity)) return 0;
  return kDataOffset + 2 * static_cast<size_t>(ring_capacity);
}

uint32_t ShmHeaderCheck(const ShmRegionHeader& header) {
  // FNV-1a over the fields before `check`.
  unsigned char bytes[offsetof(ShmRegionHeader, check)];
  std::memcpy(bytes, &header, sizeof(bytes));
  uint32_t hash = 2166136261u;
  for (unsigned char b : bytes) {
    hash = (hash ^ b) * 16777619u;
  }
  return hash;
}

ShmRingView ShmRegionView::Ring(int index) const {
  ShmRingView ring;
  ring.control = reinterpret_cast<ShmRingControl*>(
      base_ + ShmRingLayout::kControlOffset + index * sizeof(ShmRingControl));
  ring.data = base_ + ShmRingLayout::kDataOffset +
              static_cast<size_t>(index) * capacity_;
  ring.capacity = capacity_;
  ring.mode = mode_;
  return ring;
}

absl::StatusOr<ShmRegionView> InitializeShmRegion(
    absl::Span<char> region, const ShmRegionOptions& options) {
  CANAL_RETURN_IF_ERROR(CheckRegion("InitializeShmRegion", region, options));
  ShmRegionHeader header;
  std::memset(&header, 0, sizeof(header));
  header.magic = kShmMagic;
  header.version = kShmVersion;
  header.ring_capacity = options.ring_capacity;
  header.mode = static_cast<uint32_t>(options.mode);
  header.region_size = ShmRingLayout::BytesFor(options.ring_capacity);
  header.check = ShmHeaderCheck(header);
  std::memcpy(region.data() + ShmRingLayout::kHeaderOffset, &header,
              sizeof(header));
  for (int i = 0; i < 2; ++i) {
    void* where = region.data() + ShmRingLayout::kControlOffset +
                  i * sizeof(ShmRingControl);
    std::memset(where, 0, sizeof(ShmRingControl));
    auto* control = new (where) ShmRingControl;
    control->producer.tail.store(0, std::memory_order_relaxed);
    control->producer.data_seq.store(0, std::memory_order_relaxed);
    control->producer.writer_waiting.store(0, std::memory_order_relaxed);
    control->consumer.head.store(0, std::memory_order_relaxed);
    control->consumer.space_seq.store(0, std::memory_order_relaxed);
    control->consumer.reader_waiting.store(0, std::memory_order_relaxed);
    control->producer.closed.store(0, std::memory_order_relaxed);
    control->consumer.closed.store(0, std::memory_order_relaxed);
    control->producer.switched.store(0, std::memory_order_relaxed);
    control->producer.pipe_units.store(0, std::memory_order_relaxed);
    control->consumer.attached.store(0, std::memory_order_relaxed);
  }
  // No fence: the region reaches the peer only through the system (its
  // handle or name sent over the pipe, then a mapping), which orders these
  // stores before anything the peer does with it.
  ShmRegionView view;
  view.base_ = region.data();
  view.capacity_ = options.ring_capacity;
  view.mode_ = options.mode;
  return view;
}

absl::StatusOr<ShmRegionView> AttachShmRegion(
    absl::Span<char> region, const ShmRegionOptions& expected) {
  constexpr absl::string_view kOp = "AttachShmRegion";
  CANAL_RETURN_IF_ERROR(CheckRegion(kOp, region, expected));
  // One copy, then only the copy is looked at: the peer may be rewriting
  // the header meanwhile.
  ShmRegionHeader header;
  std::memcpy(&header, region.data() + ShmRingLayout::kHeaderOffset,
              sizeof(header));
  auto bad = [&](absl::string_view what, uint64_t got, uint64_t want) {
    return absl::DataLossError(absl::StrCat("canal: ", kOp, ": the region's ",
                                            what, " is ", got, ", expected ",
                                            want));
  };
  if (header.magic != kShmMagic) return bad("magic", header.magic, kShmMagic);
  if (header.version != kShmVersion) {
    return bad("version", header.version, kShmVersion);
  }
  if (header.ring_capacity != expected.ring_capacity) {
    return bad("ring capacity", header.ring_capacity, expected.ring_capacity);
  }
  if (header.mode != static_cast<uint32_t>(expected.mode)) {
    return bad("mode", header.mode, static_cast<uint32_t>(expected.mode));
  }
  const uint64_t size = ShmRingLayout::BytesFor(expected.ring_capacity);
  if (header.region_size != size) {
    return bad("size", header.region_size, size);
  }
  const uint32_t check = ShmHeaderCheck(header);
  if (header.check != check) return bad("check word", header.check, check);
  ShmRegionView view;
  view.base_ = region.data();
  view.capacity_ = expected.ring_capacity;
  view.mode_ = expected.mode;
  return view;
}

// --- Writer -----------------------------------------------------------------

absl::Status ShmRingWriter::Fail(absl::string_view op, absl::string_view what) {
  broken_ = absl::DataLossError(
      absl::StrCat("canal: ", op, ": ", what, " (corrupt shared memory ring)"));
  return broken_;
}

absl::StatusOr<uint64_t> ShmRingWriter::LoadFree(absl::string_view op) {
  if (!broken_.ok()) return Broken(op, broken_);
  const uint64_t tail =
      ring_.control->producer.tail.load(std::memory_order_relaxed);
  if (tail != tail_) {
    return Fail(op, absl::StrCat("the producer's tail was moved from ", tail_,
                                 " to ", tail));
  }
  // Acquire: the consumer's reads of the bytes it freed happen before our
  // writes over them.
  const uint64_t head =
      ring_.control->consumer.head.load(std::memory_order_acquire);
  // The head only moves forward, never past the tail: it lies in
  // [last_head_, tail_], a span of at most the capacity (in wrapping
  // arithmetic, so the counters may overflow).
  if (head - last_head_ > tail_ - last_head_) {
    return Fail(
        op, absl::StrCat("head ", head, " is not between the head ", last_head_,
                         " seen before and the tail ", tail_));
  }
  const uint64_t used = tail_ - head;
  if (ring_.mode == ShmRingMode::kMessages && head % kShmRecordAlign != 0) {
    return Fail(op, absl::StrCat("head ", head, " is not at a record"));
  }
  last_head_ = head;
  return ring_.capacity - used;
}

absl::StatusOr<size_t> ShmRingWriter::FreeBytes() {
  CANAL_ASSIGN_OR_RETURN(uint64_t free, LoadFree("ShmRingWriter::FreeBytes"));
  return static_cast<size_t>(free);
}

ShmWriteResult ShmRingWriter::Publish(uint64_t advance) {
  tail_ += advance;
  ShmProducerLine& line = ring_.control->producer;
  line.tail.store(tail_, std::memory_order_release);
  line.data_seq.fetch_add(1, std::memory_order_seq_cst);
  ShmWriteResult result;
  result.wake_peer = ring_.control->consumer.reader_waiting.load(
                         std::memory_order_seq_cst) != 0;
  return result;
}

namespace {

// Copies `n` bytes into the ring at counter `index`, across the wrap.
void CopyIn(const ShmRingView& ring, uint64_t index, const char* in, size_t n) {
  const size_t mask = ring.capacity - 1;
  const size_t at = static_cast<size_t>(index & mask);
  const size_t first = std::min(n, ring.capacity - at);
  // No memcpy of nothing: `in` may then be null.
  if (first > 0) std::memcpy(ring.data + at, in, first);
  if (n > first) std::memcpy(ring.data, in + first, n - first);
}

}  // namespace

absl::StatusOr<ShmWriteResult> ShmRingWriter::TryWriteMessage(
    absl::string_view rest) {
  constexpr absl::string_view kOp = "ShmRingWriter::TryWriteMessage";
  if (ring_.mode != ShmRingMode::kMessages) {
    return absl::FailedPreconditionError(
        absl::StrCat("canal: ", kOp, ": the ring is in byte mode"));
  }
  if (in_message_ && rest.size() != message_left_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "canal: ", kOp, ": ", rest.size(),
        " bytes given where the message begun has ", message_left_, " left"));
  }
  if (!in_message_ && rest.size() > kShmMaxMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat("canal: ", kOp, ": a message of ", rest.size(),
                     " bytes is over the limit of ", kShmMaxMessage));
  }
  CANAL_ASSIGN_OR_RETURN(uint64_t free, LoadFree(kOp));
  const uint32_t first = in_message_ ? 0 : kShmRecordFirst;
  uint32_t length;
  uint32_t flags;
  if (RecordSize(rest.size()) <= free) {
    length = static_cast<uint32_t>(rest.size());
    flags = first | kShmRecordLast;
  } else if (free >=
             std::max<uint64_t>(ring_.capacity / 4, 2 * kShmRecordHeaderSize)) {
    // The rest does not fit: a fragment filling the free space (free and
    // the record sizes are multiples of kShmRecordAlign, so it is exactly
    // full), shorter than the rest and at least one byte long.
    length = static_cast<uint32_t>(free - kShmRecordHeaderSize);
    flags = first;
  } else {
    return ShmWriteResult{};
  }
  const uint32_t remaining = static_cast<uint32_t>(rest.size());
  uint32_t header[4] = {length, flags, remaining,
                        RecordCheck(length, flags, remaining)};
  static_assert(sizeof(header) == kShmRecordHeaderSize);
  // The header never wraps: records start at multiples of 16 and the
  // capacity is one too.
  std::memcpy(ring_.data + (tail_ & (ring_.capacity - 1)), header,
              sizeof(header));
  CopyIn(ring_, tail_ + kShmRecordHeaderSize, rest.data(), length);
  ShmWriteResult result = Publish(RecordSize(length));
  result.bytes = length;
  result.done = (flags & kShmRecordLast) != 0;
  in_message_ = !result.done;
  message_left_ = rest.size() - length;
  return result;
}

absl::StatusOr<ShmWriteResult> ShmRingWriter::TryWritePipeMarker(
    uint64_t message_size) {
  constexpr absl::string_view kOp = "ShmRingWriter::TryWritePipeMarker";
  if (ring_.mode != ShmRingMode::kMessages) {
    return absl::FailedPreconditionError(
        absl::StrCat("canal: ", kOp, ": the ring is in byte mode"));
  }
  if (in_message_) {
    return absl::FailedPreconditionError(
        absl::StrCat("canal: ", kOp, ": a message is being written"));
  }
  if (message_size > kShmMaxMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat("canal: ", kOp, ": a message of ", message_size,
                     " bytes is over the limit of ", kShmMaxMessage));
  }
  CANAL_ASSIGN_OR_RETURN(uint64_t free, LoadFree(kOp));
  if (free < kShmRecordHeaderSize) return ShmWriteResult{};
  const uint32_t remaining = static_cast<uint32_t>(message_size);
  uint32_t header[4] = {0, kShmPipeMarkerFlags, remaining,
                        RecordCheck(0, kShmPipeMarkerFlags, remaining)};
  static_assert(sizeof(header) == kShmRecordHeaderSize);
  std::memcpy(ring_.data + (tail_ & (ring_.capacity - 1)), header,
              sizeof(header));
  ShmWriteResult result = Publish(kShmRecordHeaderSize);
  result.done = true;
  return result;
}

absl::StatusOr<ShmWriteResult> ShmRingWriter::TryWriteBytes(
    absl::string_view data) {
  constexpr absl::string_view kOp = "ShmRingWriter::TryWriteBytes";
  if (ring_.mode != ShmRingMode::kBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("canal: ", kOp, ": the ring is in message mode"));
  }
  CANAL_ASSIGN_OR_RETURN(uint64_t free, LoadFree(kOp));
  const size_t n = static_cast<size_t>(std::min<uint64_t>(free, data.size()));
  ShmWriteResult result;
  if (n > 0) {
    CopyIn(ring_, tail_, data.data(), n);
    result = Publish(n);
  }
  result.bytes = n;
  result.done = n == data.size();
  return result;
}

uint32_t ShmRingWriter::PrepareToWait() {
  ring_.control->producer.writer_waiting.store(1, std::memory_order_seq_cst);
  return ring_.control->consumer.space_seq.load(std::memory_order_seq_cst);
}

void ShmRingWriter::FinishWait() {
  ring_.control->producer.writer_waiting.store(0, std::memory_order_seq_cst);
}

void ShmRingWriter::AnnounceSwitch(uint64_t pipe_units) {
  ring_.control->producer.pipe_units.store(pipe_units,
                                           std::memory_order_relaxed);
  ring_.control->producer.switched.store(1, std::memory_order_seq_cst);
}

void ShmRingWriter::MarkClosed() {
  ring_.control->producer.closed.store(1, std::memory_order_seq_cst);
  BumpDoorbells();
}

void ShmRingWriter::BumpDoorbells() {
  ring_.control->producer.data_seq.fetch_add(1, std::memory_order_seq_cst);
  ring_.control->consumer.space_seq.fetch_add(1, std::memory_order_seq_cst);
}

// --- Reader -----------------------------------------------------------------

absl::Status ShmRingReader::Fail(absl::string_view op, absl::string_view what) {
  broken_ = absl::DataLossError(
      absl::StrCat("canal: ", op, ": ", what, " (corrupt shared memory ring)"));
  return broken_;
}

absl::StatusOr<uint64_t> ShmRingReader::LoadTail(absl::string_view op) {
  if (!broken_.ok()) return Broken(op, broken_);
  const uint64_t head =
      ring_.control->consumer.head.load(std::memory_order_relaxed);
  if (head != pos_.head) {
    return Fail(op, absl::StrCat("the consumer's head was moved from ",
                                 pos_.head, " to ", head));
  }
  // Acquire: pairs with the producer's release store, so the bytes before
  // the tail are there.
  const uint64_t tail =
      ring_.control->producer.tail.load(std::memory_order_acquire);
  const uint64_t used = tail - pos_.head;
  if (used > ring_.capacity) {
    return Fail(op,
                absl::StrCat("tail ", tail, " is not within ", ring_.capacity,
                             " bytes after head ", pos_.head));
  }
  if (used < last_tail_ - pos_.head) {
    return Fail(
        op, absl::StrCat("tail moved back from ", last_tail_, " to ", tail));
  }
  if (ring_.mode == ShmRingMode::kMessages && tail % kShmRecordAlign != 0) {
    return Fail(op, absl::StrCat("tail ", tail, " is not at a record"));
  }
  last_tail_ = tail;
  return tail;
}

void ShmRingReader::CopyOut(uint64_t index, char* out, size_t n) const {
  const size_t mask = ring_.capacity - 1;
  const size_t at = static_cast<size_t>(index & mask);
  const size_t first = std::min(n, ring_.capacity - at);
  // No memcpy of nothing: `out` may then be null.
  if (first > 0) std::memcpy(out, ring_.data + at, first);
  if (n > first) std::memcpy(out + first, ring_.data, n - first);
}

absl::StatusOr<bool> ShmRingReader::LoadRecord(absl::string_view op,
                                               uint64_t tail, Position* pos,
                                               bool* began) {
  // A pipe marker taken up earlier (by CurrentMessageRemaining) still
  // begins its message: it set no message in progress.
  *began = pos->have_record && (pos->record.flags & kShmRecordOnPipe) != 0;
  if (pos->have_record) return true;
  const uint64_t used = tail - pos->head;  // <= capacity, checked.
  if (used == 0) return false;
  if (used < kShmRecordHeaderSize) {
    return Fail(op, "a partial record header was published");
  }
  uint32_t header[4];
  std::memcpy(header, ring_.data + (pos->head & (ring_.capacity - 1)),
              sizeof(header));
  const uint32_t length = header[0];
  const uint32_t flags = header[1];
  const uint32_t remaining = header[2];
  if (header[3] != RecordCheck(length, flags, remaining)) {
    return Fail(op,
                absl::StrCat("bad check word in the record at ", pos->head));
  }
  const bool marker = (flags & kShmRecordOnPipe) != 0;
  if ((flags & ~kShmPipeMarkerFlags) != 0 ||
      (marker && flags != kShmPipeMarkerFlags)) {
    return Fail(op, absl::StrCat("unknown record flags ", flags));
  }
  if (marker) {
    // A stand-in for a message on the pipe: nothing of its own to read.
    if (length != 0) {
      return Fail(op, absl::StrCat("a pipe marker has a payload of ", length,
                                   " bytes"));
    }
    if (pos->in_message) return Fail(op, "a pipe marker inside a message");
    *began = true;
    pos->record.length = 0;
    pos->record.flags = flags;
    pos->record.message_remaining = remaining;
    pos->have_record = true;
    pos->offset = 0;
    pos->in_message = false;
    pos->message_left = 0;
    return true;
  }
  if (length > ring_.capacity - kShmRecordHeaderSize) {
    return Fail(op,
                absl::StrCat("record length ", length,
                             " exceeds the ring capacity ", ring_.capacity));
  }
  if (RecordSize(length) > used) {
    return Fail(
        op, absl::StrCat("a record of ", length, " bytes extends beyond the ",
                         used, " bytes published"));
  }
  const bool first = (flags & kShmRecordFirst) != 0;
  const bool last = (flags & kShmRecordLast) != 0;
  if (pos->in_message) {
    if (first) return Fail(op, "a message begins inside another");
    if (remaining != pos->message_left) {
      return Fail(op, absl::StrCat("a fragment announces ", remaining,
                                   " bytes left of its message, not ",
                                   pos->message_left));
    }
  } else if (!first) {
    return Fail(op, "a fragment continues no message");
  }
  if (last ? remaining != length : (length == 0 || remaining <= length)) {
    return Fail(op, absl::StrCat("a record of ", length, " bytes announces ",
                                 remaining, " bytes left of its message"));
  }
  *began = first;
  pos->record.length = length;
  pos->record.flags = flags;
  pos->record.message_remaining = remaining;
  pos->have_record = true;
  pos->offset = 0;
  pos->in_message = true;
  pos->message_left = remaining - length;
  return true;
}

void ShmRingReader::ReleaseHead(ShmReadResult* result) {
  ShmConsumerLine& line = ring_.control->consumer;
  // Release: our reads of the freed bytes happen before the producer's
  // writes over them.
  line.head.store(pos_.head, std::memory_order_release);
  line.space_seq.fetch_add(1, std::memory_order_seq_cst);
  result->wake_peer = ring_.control->producer.writer_waiting.load(
                          std::memory_order_seq_cst) != 0;
}

absl::StatusOr<ShmReadResult> ShmRingReader::TryReadMessage(
    absl::Span<char> out) {
  constexpr absl::string_view kOp = "ShmRingReader::TryReadMessage";
  if (ring_.mode != ShmRingMode::kMessages) {
    return absl::FailedPreconditionError(
        absl::StrCat("canal: ", kOp, ": the ring is in byte mode"));
  }
  CANAL_ASSIGN_OR_RETURN(uint64_t tail, LoadTail(kOp));
  ShmReadResult result;
  bool released = false;
  // Each turn consumes a whole record (at least 16 published bytes) or
  // ends the loop.
  while (true) {
    bool began;
    CANAL_ASSIGN_OR_RETURN(bool have, LoadRecord(kOp, tail, &pos_, &began));
    if (!have) break;
    const Record& record = pos_.record;
    if ((record.flags & kShmRecordOnPipe) != 0) {
      // Only ever the first record of a call: a call that began a message
      // ends with it.
      result.on_pipe = true;
      result.pipe_message_size = record.message_remaining;
      pos_.head += kShmRecordHeaderSize;
      pos_.have_record = false;
      released = true;
      break;
    }
    const size_t n = std::min<size_t>(record.length - pos_.offset,
                                      out.size() - result.bytes);
    CopyOut(pos_.head + kShmRecordHeaderSize + pos_.offset,
            out.data() + result.bytes, n);
    result.bytes += n;
    pos_.offset += static_cast<uint32_t>(n);
    if (pos_.offset < record.length) break;  // `out` is full.
    const bool last = (record.flags & kShmRecordLast) != 0;
    pos_.head += RecordSize(record.length);
    pos_.have_record = false;
    pos_.offset = 0;
    released = true;
    if (last) {
      pos_.in_message = false;
      result.message_end = true;
      break;
    }
  }
  if (released) ReleaseHead(&result);
  return result;
}

absl::StatusOr<ShmReadResult> ShmRingReader::TryReadBytes(
    absl::Span<char> out) {
  constexpr absl::string_view kOp = "ShmRingReader::TryReadBytes";
  if (ring_.mode != ShmRingMode::kBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("canal: ", kOp, ": the ring is in message mode"));
  }
  CANAL_ASSIGN_OR_RETURN(uint64_t tail, LoadTail(kOp));
  ShmReadResult result;
  const size_t n =
      static_cast<size_t>(std::min<uint64_t>(tail - pos_.head, out.size()));
  if (n > 0) {
    CopyOut(pos_.head, out.data(), n);
    pos_.head += n;
    ReleaseHead(&result);
  }
  result.bytes = n;
  return result;
}

absl::StatusOr<ShmPeekResult> ShmRingReader::Peek(absl::Span<char> out) {
  constexpr absl::string_view kOp = "ShmRingReader::Peek";
  CANAL_ASSIGN_OR_RETURN(uint64_t tail, LoadTail(kOp));
  ShmPeekResult result;
  if (ring_.mode == ShmRingMode::kBytes) {
    const uint64_t used = tail - pos_.head;
    result.size = static_cast<size_t>(std::min<uint64_t>(used, out.size()));
    CopyOut(pos_.head, out.data(), result.size);
    result.available = static_cast<size_t>(used);
    result.readable = used > 0;
    return result;
  }
  // Walks the published records on a copy of the position; each turn
  // passes one record (at least 16 bytes) and the walk ends at the tail.
  Position pos = pos_;
  bool counted = false;  // The current message's size is counted.
  bool copying = true;   // Still within the current message.
  uint64_t available = 0;
  if (pos.in_message) {
    const uint64_t left =
        pos.message_left +
        (pos.have_record ? pos.record.length - pos.offset : 0);
    available = left;
    result.message_remaining = static_cast<size_t>(left);
    counted = true;
  }
  while (true) {
    bool began;
    CANAL_ASSIGN_OR_RETURN(bool have, LoadRecord(kOp, tail, &pos, &began));
    if (!have) break;
    result.readable = true;
    const Record& record = pos.record;
    if (began) {
      // Each term is below 2^32 and there are fewer than 2^27 records: the
      // sum does not overflow.
      available += record.message_remaining;
      if (counted) {
        copying = false;  // A later message: counted, not copied.
      } else {
        result.message_remaining = record.message_remaining;
        result.on_pipe = (record.flags & kShmRecordOnPipe) != 0;
        counted = true;
      }
    }
    if (copying) {
      const size_t n = std::min<size_t>(record.length - pos.offset,
                                        out.size() - result.size);
      CopyOut(pos.head + kShmRecordHeaderSize + pos.offset,
              out.data() + result.size, n);
      result.size += n;
    }
    if ((record.flags & kShmRecordLast) != 0) {
      copying = false;
      pos.in_message = false;
    }
    pos.head += RecordSize(record.length);
    pos.have_record = false;
    pos.offset = 0;
  }
  result.available = static_cast<size_t>(
      std::min<uint64_t>(available, std::numeric_limits<size_t>::max()));
  return result;
}

uint32_t ShmRingReader::PrepareToWait() {
  ring_.control->consumer.reader_waiting.store(1, std::memory_order_seq_cst);
  return ring_.control->producer.data_seq.load(std::memory_order_seq_cst);
}

void ShmRingReader::FinishWait() {
  ring_.control->consumer.reader_waiting.store(0, std::memory_order_seq_cst);
}

void ShmRingReader::Attach() {
  ring_.control->consumer.attached.store(1, std::memory_order_seq_cst);
}

bool ShmRingReader::PeerSwitched(uint64_t* pipe_units) const {
  if (ring_.control->producer.switched.load(std::memory_order_seq_cst) == 0) {
    return false;
  }
  *pipe_units =
      ring_.control->producer.pipe_units.load(std::memory_order_relaxed);
  return true;
}

void ShmRingReader::MarkClosed() {
  ring_.control->consumer.closed.store(1, std::memory_order_seq_cst);
  BumpDoorbells();
}

void ShmRingReader::BumpDoorbells() {
  ring_.control->consumer.space_seq.fetch_add(1, std::memory_order_seq_cst);
  ring_.control->producer.data_seq.fetch_add(1, std::memory_order_seq_cst);
}

absl::StatusOr<bool> ShmRingReader::HasUnread() {
  CANAL_ASSIGN_OR_RETURN(uint64_t tail, LoadTail("ShmRingReader::HasUnread"));
  if (pos_.have_record && pos_.offset < pos_.record.length) return true;
  return tail != pos_.head;
}

absl::StatusOr<int64_t> ShmRingReader::CurrentMessageRemaining() {
  constexpr absl::string_view kOp = "ShmRingReader::CurrentMessageRemaining";
  if (ring_.mode != ShmRingMode::kMessages) {
    return absl::FailedPreconditionError(
        absl::StrCat("canal: ", kOp, ": the ring is in byte mode"));
  }
  CANAL_ASSIGN_OR_RETURN(uint64_t tail, LoadTail(kOp));
  if (pos_.in_message) {
    return static_cast<int64_t>(
        pos_.message_left +
        (pos_.have_record ? pos_.record.length - pos_.offset : 0));
  }
  bool began;
  CANAL_ASSIGN_OR_RETURN(bool have, LoadRecord(kOp, tail, &pos_, &began));
  if (!have) return -1;
  return static_cast<int64_t>(pos_.record.message_remaining);
}

}  // namespace internal
}  // namespace canal
